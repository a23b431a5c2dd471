"""A side-by-side comparison video of a workspace's stages (`vid2vid compare`).

    info = make_comparison(ws, panels=["frames", "img2img", "propagate", "flow", "final"], output=None)

Each panel is one frame folder of the workspace, labelled, scaled to one height, laid out in a
row (up to three panels) or a grid. The video plays at the final video's frame rate and lasts as
long as the source, with the source audio. A panel with fewer frames than the final video (the
frames before interpolation, key frames only) is *held*: output frame j at time t shows the
panel's frame that covers t, never a stretched or blended one. With `stats`, each panel gets a
line under it with its warping error (along the source's motion) and flicker at that frame.

Pure parts: `panel_index` (which panel frame is shown at output frame j), `grid_shape`,
`draw_label`; `make_comparison` reads the workspace and encodes.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vid2vid.config import stagetable
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace, atomic_path

DEFAULT_PANELS = ("frames", "img2img", "propagate", "flow", "final")
PANEL_LABELS = {"frames": "source", "img2img": "img2img", "propagate": "propagated from the keys",
                "flow": "flow-corrected", "resr": "upscaled",
                "rife": "interpolated"}
MAX_HEIGHT = 480
LABEL_PAD = 4
STATS_H = 18


# ---------------------------------------------------------------- pure helpers

def frame_number(path: Path) -> int:
    """The 1-based frame number in a frame file's name (00012.png -> 12)."""
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    if not digits:
        raise BadInput(f"{path} is not named like a frame (00001.png)")
    return int(digits)


def panel_index(numbers: list[int], length: int, j: int, n_out: int) -> int:
    """Which of a panel's frames output frame j (0-based, of n_out over the same duration) shows.

    The panel's sequence has `length` frame slots over the duration (frame number k covers the
    time [(k-1)/length, k/length) of it); `numbers` are the frame numbers it holds, sorted. The
    shown frame is the last one whose slot starts at or before output frame j's start: a held
    frame, never a later one.
    """
    slot = (j * length) // n_out + 1               # the panel slot that holds time j / n_out
    lo, hi = 0, len(numbers) - 1
    if numbers[0] > slot:
        return 0
    while lo < hi:                                  # last index with numbers[i] <= slot
        mid = (lo + hi + 1) // 2
        if numbers[mid] <= slot:
            lo = mid
        else:
            hi = mid - 1
    return lo


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns): one row for up to three panels, else the squarest grid."""
    if n <= 3:
        return 1, n
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                               # Pillow without sized default fonts
        return ImageFont.load_default()


def draw_label(img: np.ndarray, text: str, size: int = 14) -> np.ndarray:
    """uint8 HxWx3 with `text` in white on a dark box in the top-left corner."""
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = label_font(size)
    x0, y0, x1, y1 = draw.textbbox((LABEL_PAD, LABEL_PAD), text, font=font)
    draw.rectangle((0, 0, x1 + LABEL_PAD, y1 + LABEL_PAD), fill=(16, 16, 16))
    draw.text((LABEL_PAD, LABEL_PAD), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil)


def stats_strip(width: int, text: str) -> np.ndarray:
    """A dark uint8 strip STATS_H x width x 3 with one line of figures."""
    pil = Image.new("RGB", (width, STATS_H), (16, 16, 16))
    ImageDraw.Draw(pil).text((LABEL_PAD, 2), text, fill=(230, 230, 230), font=label_font(12))
    return np.asarray(pil)


# ---------------------------------------------------------------- panels of a workspace

@dataclass
class Panel:
    token: str
    label: str
    files: list[Path]
    numbers: list[int]
    length: int                 # frame slots over the whole duration


def _final_folder(ws: Workspace) -> str:
    for name in ("interpolate", "upscale"):
        row = stagetable.stage(name)
        if ws.is_complete(name) and row.frames:
            return row.frames
    return stagetable.generated(ws).folder


def resolve_panels(ws: Workspace, tokens: list[str] | None) -> list[Panel]:
    """The panels to show: folder tokens of the workspace, `final` = the video's last frames.

    Default: those of frames, img2img, propagate (key frames on), flow and final that exist (final
    only when it is not one of the others). A token the user names that has no frames is an error.
    """
    explicit = tokens is not None
    wanted = list(tokens) if tokens is not None else list(DEFAULT_PANELS)
    n_src = len(ws.frames())
    if n_src == 0:
        raise BadInput(f"{ws.root} has no extracted frames; extract the video first")
    known = {row.frames for row in stagetable.STAGES if row.frames} | {"final"}
    panels: list[Panel] = []
    folders: list[str] = []
    for token in wanted:
        if token not in known:
            raise BadInput(f"panel '{token}' is not known; use some of: {', '.join(sorted(known))}")
        folder = _final_folder(ws) if token == "final" else token
        files = ws.frames(folder)
        if not files:
            if explicit:
                raise BadInput(f"panel '{token}' has no frames in {ws.path(folder)}; run its stage first "
                               "or leave it out of the panels")
            continue
        if folder in folders:               # final is img2img when nothing came after it, say
            continue
        folders.append(folder)
        numbers = [frame_number(p) for p in files]
        label = PANEL_LABELS.get(folder, folder) + (" (final)" if token == "final" else "")
        panels.append(Panel(token, label, files, numbers, max(n_src, numbers[-1])))
    if not panels:
        raise BadInput(f"no panel of {', '.join(wanted)} has frames in {ws.root}")
    return panels


# ---------------------------------------------------------------- the video

def _read_scaled(path: Path, height: int) -> np.ndarray:
    with Image.open(path) as f:
        im = f.convert("RGB")
        w = max(2, round(im.width * height / im.height))
        return np.asarray(im.resize((w, height), Image.Resampling.LANCZOS if im.height > height
                                    else Image.Resampling.BICUBIC))


class _PanelReader:
    """Panel frames as shown: scaled, labelled, read once per change (a held frame is not re-read),
    with the panel's figures for the pair it just moved across."""

    def __init__(self, panel: Panel, height: int, width: int, source: list[Path], stats: bool):
        self.panel, self.height, self.width, self.source, self.stats = panel, height, width, source, stats
        self.index = -1
        self.image: np.ndarray | None = None
        self.raw: np.ndarray | None = None
        self.text = "warp -      flicker -"

    def frame(self, j: int, n_out: int) -> np.ndarray:
        i = panel_index(self.panel.numbers, self.panel.length, j, n_out)
        if i != self.index:
            raw = _read_scaled(self.panel.files[i], self.height)
            if self.stats and self.raw is not None and self.raw.shape == raw.shape:
                self.text = self._figures(self.index, i, self.raw, raw)
            self.index, self.raw = i, raw
            img = np.zeros((self.height, self.width, 3), np.uint8)
            img[:, : min(self.width, raw.shape[1])] = raw[:, : self.width]
            self.image = draw_label(img, self.panel.label)
        assert self.image is not None
        if not self.stats:
            return self.image
        return np.concatenate([self.image, stats_strip(self.width, self.text)], axis=0)

    def _figures(self, i_prev: int, i_cur: int, prev: np.ndarray, cur: np.ndarray) -> str:
        from vid2vid.temporal.metrics import frame_difference, pair_warping_error
        from vid2vid.temporal.opticalflow import pair_flow

        n_src = len(self.source)
        a = min(n_src - 1, (self.panel.numbers[i_prev] - 1) * n_src // self.panel.length)
        b = min(n_src - 1, (self.panel.numbers[i_cur] - 1) * n_src // self.panel.length)
        h, w = cur.shape[:2]
        sa, sb = (_read_scaled(self.source[k], h)[:, :w] for k in (a, b))
        warp_err = pair_warping_error(prev, cur, pair_flow(sa, sb))
        return f"warp {warp_err:.4f}  flicker {frame_difference(prev, cur):.4f}"


def _grid(cells: list[np.ndarray], rows: int, cols: int) -> np.ndarray:
    h, w = cells[0].shape[:2]
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = cell
    return out


def make_comparison(ws: Workspace, panels: list[str] | None = None, output: str | Path | None = None,
                    job: Job | None = None, stats: bool = False, height: int = 0, crf: int = 20) -> dict:
    """Write the comparison video; returns its path, size, frame count, rate and panels."""
    from vid2vid.video.encode import encode_video

    job = job or Job()
    # 1. panels, the final video's rate and the source duration
    chosen = resolve_panels(ws, panels)
    duration = float((ws.manifest.get("video") or {}).get("duration") or 0)
    if duration <= 0:
        raise BadInput(f"the workspace {ws.root} does not know the source duration; extract again")
    final = resolve_panels(ws, ["final"])[0]
    n_out = final.length
    fps = Fraction(n_out) / Fraction(duration).limit_denominator(1_000_000)
    out = Path(output).expanduser() if output else ws.path("compare.mp4")
    if out.suffix.lower() != ".mp4":
        raise BadInput(f"comparison output {out} must end in .mp4")
    # 2. one height for all (the final's, at most MAX_HEIGHT, even), cells as wide as the widest
    with Image.open(final.files[0]) as im:
        h = height or min(MAX_HEIGHT, im.height)
    h -= h % 2
    widths = []
    for p in chosen:
        with Image.open(p.files[0]) as im:
            widths.append(max(2, round(im.width * h / im.height)))
    cell_w = max(widths) + max(widths) % 2
    rows, cols = grid_shape(len(chosen))
    readers = [_PanelReader(p, h, cell_w, ws.frames(), stats) for p in chosen]
    size = (cols * cell_w, rows * (h + (STATS_H if stats else 0)))
    audio = ws.path("audio.mka") if ws.path("audio.mka").is_file() else None
    tracker = job.tracker("compare", n_out)

    def frames() -> Iterator[np.ndarray]:
        for j in range(n_out):
            job.check()
            yield _grid([r.frame(j, n_out) for r in readers], rows, cols)

    # 3. encode (atomically: a half-written comparison never replaces a finished one)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        n = encode_video(frames(), tmp, "mp4", fps, size, crf=crf, audio=audio, duration=duration,
                         on_frame=tracker.advance)
    info = {"output": str(out), "frames": n, "fps": round(float(fps), 3), "width": size[0], "height": size[1],
            "panels": [p.token if p.token == "final" else p.files[0].parent.name for p in chosen],
            "audio": audio is not None}
    ws.log("compare", **info)
    return info
