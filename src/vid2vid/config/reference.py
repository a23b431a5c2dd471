"""A reference picture a painter takes its look from: the `--reference SOURCE` value, parsed once.

SOURCE is one of
- an image file (`look.png`): that picture;
- a folder of images: all of them (an IP-Adapter averages their embeddings);
- `first-painted`: frame 1 painted first with the same settings but without the reference, then
  used as everyone's reference (frame 1 included), so the first frame fixes the look;
- `key:N`: the painted frame N (1-based) of this workspace's img2img stage.
Painters that take reference pictures (the IP-Adapter of SD painters, VACE's reference images)
read the same parsed form; only whether a file exists is checked here, reading is theirs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vid2vid.core.errors import BadInput

FIRST_PAINTED = "first-painted"
KINDS = ("image", "folder", FIRST_PAINTED, "key")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
FORMS = "an image file, a folder of images, first-painted or key:N (a painted frame)"


@dataclass(frozen=True)
class Reference:
    """A parsed SOURCE: `kind` (one of KINDS), the `path` of an image or folder, the `frame` of key:N."""

    kind: str
    path: str = ""
    frame: int = 0

    def painted(self) -> bool:
        """Whether the reference is a frame this run paints (first-painted, key:N)."""
        return self.kind in (FIRST_PAINTED, "key")

    def frame_number(self) -> int:
        """The 1-based frame whose painting is the reference (1 for first-painted)."""
        return 1 if self.kind == FIRST_PAINTED else self.frame


def parse_reference(text: str, where: str = "the reference of {img2img.ip_adapter}") -> Reference:
    """SOURCE -> Reference; a malformed value gets one line naming `where` and the accepted forms."""
    value = (text or "").strip()
    if not value:
        raise BadInput(f"{where}: no reference given; give {FORMS}")
    if value == FIRST_PAINTED:
        return Reference(FIRST_PAINTED)
    m = re.fullmatch(r"key:(\S*)", value)
    if m:
        if not m.group(1).isdigit() or int(m.group(1)) < 1:
            raise BadInput(f"{where} '{value}': key:N needs a frame number N of 1 or more (key:1 = the first frame)")
        return Reference("key", frame=int(m.group(1)))
    path = Path(value).expanduser()
    if path.is_dir():
        return Reference("folder", str(path))
    return Reference("image", str(path))


def reference_images(ref: Reference, where: str = "the reference of {img2img.ip_adapter}") -> list[Path]:
    """The image files of an image or folder reference, sorted; BadInput when missing or empty."""
    path = Path(ref.path)
    if ref.kind == "folder":
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BadInput(f"{where}: the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                           "put the reference pictures in it")
        return files
    if ref.kind != "image":
        raise ValueError(f"a {ref.kind} reference has no files of its own")
    if not path.is_file():
        raise BadInput(f"{where}: no such image file: {path}; give {FORMS}")
    return [path]
