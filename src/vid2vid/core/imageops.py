"""Image conversions with stated range and dtype.

Conventions (every module keeps them): images are float32 RGB in [0, 1], shape HxWx3; masks are float32
in [0, 1], shape HxWx1; deltas are float32 in [-1, 1]. Converting to 8 or 16 bits rounds
to the nearest level (never truncates).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from vid2vid.core.errors import BadInput
from vid2vid.core.workspace import atomic_path

# ITU-R BT.601 luma weights, as PIL's "L" conversion uses.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_rgb(image: np.ndarray) -> np.ndarray:
    """Validate an HxWx3 image and return it as contiguous float32 (range unchanged)."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def to_float(img_u8: np.ndarray) -> np.ndarray:
    """uint8 HxWxC [0, 255] -> float32 [0, 1]."""
    if img_u8.dtype != np.uint8:
        raise TypeError(f"expected uint8, got {img_u8.dtype}")
    return img_u8.astype(np.float32) * np.float32(1 / 255)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 [0, 255], rounded to nearest and clipped."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def to_uint16(img: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint16 [0, 65535], rounded to nearest and clipped."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float64) * 65535.0), 0, 65535).astype(np.uint16)


def luminance(img: np.ndarray) -> np.ndarray:
    """float32 HxWx3 -> float32 HxWx1 (BT.601 weights, same range as the input)."""
    return (np.asarray(img, dtype=np.float32) @ LUMA)[..., None]


def delta_view(delta: np.ndarray) -> np.ndarray:
    """A delta in [-1, 1] as an image in [0, 1] for people to look at: (d + 1) / 2."""
    return (np.asarray(delta, dtype=np.float32) + 1.0) * 0.5


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 RGB HxWx3 in [0, 1] (16-bit files keep their precision)."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                return np.repeat(arr[..., None], 3, axis=2)
            return to_float(np.asarray(im.convert("RGB")))
    except FileNotFoundError:
        raise BadInput(f"image {p} does not exist") from None
    except (OSError, SyntaxError) as exc:
        raise BadInput(f"image {p} cannot be read ({exc}); delete it and run the stage that makes it again") \
            from exc


def read_mask(path: str | Path) -> np.ndarray:
    """Read a grey (8 or 16 bit) image as float32 HxWx1 in [0, 1]."""
    p = Path(path)
    with Image.open(p) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float32) / 65535.0
        else:
            arr = to_float(np.asarray(im.convert("L")))
    return arr[..., None]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(img: np.ndarray, level: int = 1) -> bytes:
    """Encode uint8 HxWx3 (RGB), uint8 HxW (grey) or uint16 HxW (grey) as PNG bytes.

    Every row uses the "sub" filter (difference to the pixel on the left), then zlib at `level`.
    zlib runs without Python's lock, so frames encode in parallel on a thread pool; at level 1
    this is about twice as fast as Pillow's encoder for video frames, at a similar size.
    """
    if img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3:
        colour, depth, bpp = 2, 8, 3
    elif img.dtype == np.uint8 and img.ndim == 2:
        colour, depth, bpp = 0, 8, 1
    elif img.dtype == np.uint16 and img.ndim == 2:
        colour, depth, bpp = 0, 16, 2
        img = img.astype(">u2")
    else:
        raise TypeError(f"png_bytes takes uint8 HxWx3, uint8 HxW or uint16 HxW, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    rows = np.ascontiguousarray(img).view(np.uint8).reshape(h, w * bpp)
    raw = np.empty((h, w * bpp + 1), dtype=np.uint8)
    raw[:, 0] = 1                                   # filter type 1: sub
    raw[:, 1:bpp + 1] = rows[:, :bpp]
    np.subtract(rows[:, bpp:], rows[:, :-bpp], out=raw[:, bpp + 1:])   # wraps mod 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _png_chunk(b"IEND", b""))


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write uint8/uint16 pixels (see `png_bytes`) to a PNG file atomically."""
    data = png_bytes(img)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _save(pil: Image.Image, path: Path) -> None:
    ext = path.suffix.lower()
    with atomic_path(path) as tmp:
        if ext in (".jpg", ".jpeg"):
            pil.save(tmp, format="JPEG", quality=95, subsampling=0)
        elif ext == ".webp":
            pil.save(tmp, format="WEBP", lossless=True, quality=80, method=4)
        elif ext == ".png":
            pil.save(tmp, format="PNG", compress_level=1)
        else:
            raise BadInput(f"image format '{ext}' is not supported; use .png, .jpg or .webp")


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write float [0, 1] HxWx3 (or uint8) atomically; the suffix picks the format."""
    arr = img if img.dtype == np.uint8 else to_uint8(img)
    if Path(path).suffix.lower() == ".png":
        write_png(path, arr)
    else:
        _save(Image.fromarray(arr, "RGB"), Path(path))


def write_mask(path: str | Path, mask: np.ndarray, bits: int = 8) -> None:
    """Write a float [0, 1] HxWx1 (or HxW) mask as an 8- or 16-bit grey PNG, atomically."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    if Path(path).suffix.lower() == ".png":
        write_png(path, to_uint16(m) if bits == 16 else to_uint8(m))
        return
    if bits == 16:
        pil = Image.fromarray(to_uint16(m))          # Pillow picks I;16 itself (13.x rejects the mode argument)
    else:
        pil = Image.fromarray(to_uint8(m), "L")
    _save(pil, Path(path))


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize float32 HxWxC to height x width (area when shrinking, bicubic when growing, clipped)."""
    import cv2

    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (width, height), interpolation=interp)
    if out.ndim == 2:
        out = out[..., None]
    return np.clip(out, -1.0 if img.min() < 0 else 0.0, 1.0).astype(np.float32)


def fit(img: np.ndarray, width: int, height: int, mode: str = "just") -> np.ndarray:
    """Bring an image to width x height like A1111's resize modes.

    just: stretch; crop: scale to cover, then centre-crop; fill: scale to fit, then fill the
    borders by stretching the edge rows/columns.
    """
    h, w = img.shape[:2]
    if mode == "just":
        return resize(img, width, height)
    if mode == "crop":
        s = max(width / w, height / h)
        nw, nh = max(width, round(w * s)), max(height, round(h * s))
        big = resize(img, nw, nh)
        y0, x0 = (nh - height) // 2, (nw - width) // 2
        return np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])
    if mode == "fill":
        s = min(width / w, height / h)
        nw, nh = max(1, min(width, round(w * s))), max(1, min(height, round(h * s)))
        small = resize(img, nw, nh)
        y0, x0 = (height - nh) // 2, (width - nw) // 2
        out = np.empty((height, width, img.shape[2]), dtype=np.float32)
        out[y0:y0 + nh, x0:x0 + nw] = small
        out[:y0, x0:x0 + nw] = small[:1]
        out[y0 + nh:, x0:x0 + nw] = small[-1:]
        out[:, :x0] = out[:, x0:x0 + 1]
        out[:, x0 + nw:] = out[:, x0 + nw - 1:x0 + nw]
        return out
    raise BadInput(f"resize mode '{mode}' is not known; use just, crop or fill")
