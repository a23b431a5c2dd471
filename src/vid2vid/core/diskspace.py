"""The disk space a stage will write, estimated before it starts and compared with the free space.

Each frame-writing stage knows how many frames it will write and how large they are; the bytes
per frame come from real encodings: sample frames encoded in the stage's format (extract), or
the measured bytes per pixel of the folder the stage reads, scaled to the output size (later
stages write PNGs like their input). Frames already written (a resume) are not counted again;
outputs that the stage replaces count as freed. A margin of 10 % and a reserve of 64 MiB stay
free, so that the manifest, the log and the file system itself have room.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vid2vid.core.errors import BadInput

MARGIN = 1.10
RESERVE = 64 * 2**20
# what a later stage's refusal suggests (settings as {section.key}, rendered per interface)
FEWER_FRAMES = "fewer frames (extract again with a lower {extract.fps})"
SMALLER_CANVAS = "a smaller canvas ({img2img.width}, {img2img.height})"


@dataclass(frozen=True)
class SpaceNeed:
    """What a stage is about to write: `frames` files of about `bytes_per_frame` each."""

    stage: str
    frames: int
    bytes_per_frame: float
    width: int
    height: int
    fmt: str = "png"
    fix: str = ""           # what to change when it does not fit (settings as {section.key})

    @property
    def bytes(self) -> int:
        return int(self.frames * self.bytes_per_frame)


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (powers of 1000, as disks are sold and `df -H` shows)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system that holds `path` (or its nearest existing parent)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def folder_bytes(paths: Iterable[str | Path]) -> int:
    """Total size of existing files/folders (what replacing them frees)."""
    total = 0
    for p in map(Path, paths):
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def bytes_per_pixel(files: list[Path], sample: int = 8) -> float:
    """Mean file bytes per pixel over up to `sample` files spread over the list (0.0 when none)."""
    if not files:
        return 0.0
    step = max(1, len(files) // sample)
    size = pixels = 0
    for f in files[::step][:sample]:
        with Image.open(f) as im:
            w, h = im.size
        size += f.stat().st_size
        pixels += w * h
    return size / pixels if pixels else 0.0


def png_bytes_per_pixel(files: list[Path], sample: int = 8, encode: int = 3) -> float:
    """Bytes per pixel the frames take as PNG files: the file sizes of PNGs; frames in another
    format (jpg, webp: smaller than the PNGs later stages write) are encoded as PNG in memory,
    `encode` of them spread over the list."""
    if not files or files[0].suffix.lower() == ".png":
        return bytes_per_pixel(files, sample)
    from vid2vid.core.imageops import png_bytes, read_image, to_uint8

    step = max(1, len(files) // encode)
    size = pixels = 0
    for f in files[::step][:encode]:
        img = read_image(f)
        size += len(png_bytes(to_uint8(img)))
        pixels += img.shape[0] * img.shape[1]
    return size / pixels if pixels else 0.0


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    with Image.open(path) as im:
        return im.size


def written(folders: Iterable[str | Path]) -> int:
    """How many files the folders hold already (a resumed stage keeps them; a restarted one frees them)."""
    return sum(sum(1 for f in Path(d).iterdir() if f.is_file()) for d in folders if Path(d).is_dir())


def scaled_need(stage: str, frames: int, source_files: list[Path], width: int, height: int,
                factor: float = 1.0, fix: str = "") -> SpaceNeed:
    """`frames` PNGs of width x height, at the source folder's bytes per pixel (as PNG) times `factor`
    (e.g. 2/3 for 16-bit grey masks next to 8-bit RGB of the same content)."""
    return SpaceNeed(stage, frames, png_bytes_per_pixel(source_files) * width * height * factor, width, height,
                     fix=fix)


def folder_need(stage: str, total: int, outputs: Iterable[str | Path], source_files: list[Path], width: int,
                height: int, factor: float = 1.0, fix: str = "") -> SpaceNeed | None:
    """What a stage writing `total` PNGs into `outputs` still needs, or None when nothing is left.

    The files already there count as done: a resume keeps them, and a restart (other settings)
    removes them first, which frees about as much as rewriting them takes; so the need is the
    same either way, without knowing which of the two the stage will do.
    """
    todo = total - written(outputs)
    if todo <= 0 or not source_files:
        return None
    return scaled_need(stage, todo, source_files, width, height, factor, fix)


def check_space(need: SpaceNeed, where: str | Path, fix: str | None = None, freed: int = 0) -> None:
    """Refuse (BadInput) when `need` with the margin does not fit in the free space at `where`.

    `fix` says what to change (fewer frames, another format, a smaller size); `freed` counts
    bytes of old outputs the stage removes first.
    """
    fix = need.fix if fix is None else fix
    wanted = int(need.bytes * MARGIN) + RESERVE
    free = free_bytes(where) + freed
    if wanted <= free:
        return
    raise BadInput(f"{need.stage} would write about {human_bytes(need.bytes)} ({need.frames:,} {need.fmt} frames "
                   f"of {need.width}x{need.height}, about {human_bytes(need.bytes_per_frame)} each) into {where}, "
                   "but only "
                   f"{human_bytes(free)} is free there: {human_bytes(wanted - free)} missing (with a 10 % margin); "
                   f"{fix}, or free disk space")
