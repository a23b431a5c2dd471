"""Control images for ControlNets, made from the source frames without downloaded weights.

    img = control_image("canny", canvas_u8, low=100, high=200)       # uint8 HxWx3, canvas-sized

Every source works on the frame as img2img sees it (fitted to the canvas with img2img's resize
mode, 8-bit) and returns an 8-bit RGB image of the same size, white structure on black as the
usual ControlNets (lllyasviel's v1.1) expect:
- canny: OpenCV's Canny edges with hysteresis thresholds `low` < `high` (0..255 grey levels).
- softedge: soft edge strength (HED-like): the Sobel gradient magnitude of the grey frame,
  Gaussian-blurred at sigma `blur` and 2 * `blur`, averaged and mapped through the fixed curve
  1 - exp(-m / 0.25) (no per-frame normalisation, so it does not flicker).
- lineart: dark strokes as white lines: how much darker each pixel is than its neighbourhood
  (Gaussian of sigma 2 * `blur` minus the pixel), times 6, clipped; thin dark lines of a drawing
  or an outline come out bright, flat areas black.
- depth: the depth stage's map (near = white), repeated into three channels.
- tile: the frame itself.
- folder: the user's own image for this frame (the n-th image of the folder in natural order).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vid2vid.core import imageops
from vid2vid.core.errors import BadInput

SOURCES = ("canny", "softedge", "lineart", "depth", "tile", "folder")
SOFTEDGE_SCALE = 0.25
LINEART_GAIN = 6.0


def _grey(canvas_u8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(canvas_u8), cv2.COLOR_RGB2GRAY)


def _rgb(single: np.ndarray) -> np.ndarray:
    """float [0, 1] or uint8 HxW(x1) -> uint8 HxWx3."""
    a = np.asarray(single)
    if a.dtype != np.uint8:
        a = imageops.to_uint8(a)
    a = a.reshape(a.shape[0], a.shape[1])
    return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))


def canny(canvas_u8: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges (white on black) of an 8-bit RGB frame."""
    import cv2

    return _rgb(cv2.Canny(_grey(canvas_u8), float(low), float(high)))


def _blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    k = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(grey, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def softedge(canvas_u8: np.ndarray, blur: float = 1.0) -> np.ndarray:
    """Soft edge strength in [0, 1] as an image: blurred Sobel magnitude at two scales, fixed curve."""
    import cv2

    g = _grey(canvas_u8).astype(np.float32) / 255.0
    mags = []
    for sigma in (blur, 2.0 * blur):
        b = _blur(g, sigma)
        dx = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
        dy = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
        mags.append(np.sqrt(dx * dx + dy * dy))
    m = 0.5 * (mags[0] + mags[1])
    return _rgb(1.0 - np.exp(-m / SOFTEDGE_SCALE))


def lineart(canvas_u8: np.ndarray, blur: float = 1.0) -> np.ndarray:
    """Dark strokes as white lines on black: (neighbourhood - pixel) * gain, clipped to [0, 1]."""
    g = _grey(canvas_u8).astype(np.float32) / 255.0
    return _rgb(np.clip((_blur(g, 2.0 * blur) - g) * LINEART_GAIN, 0.0, 1.0))


def control_image(source: str, canvas_u8: np.ndarray, *, low: int = 100, high: int = 200, blur: float = 1.0,
                  depth: np.ndarray | None = None, user: np.ndarray | None = None) -> np.ndarray:
    """The control image of one canvas-sized 8-bit frame for `source` (see the module docstring).

    depth: the frame's depth map (float HxWx1, canvas-sized) for "depth"; user: the user's
    image for this frame (float or uint8 HxWx3, canvas-sized) for "folder".
    """
    canvas_u8 = np.asarray(canvas_u8)
    if canvas_u8.dtype != np.uint8 or canvas_u8.ndim != 3 or canvas_u8.shape[2] != 3:
        raise ValueError("control_image takes an 8-bit HxWx3 frame")
    if source == "canny":
        return canny(canvas_u8, low, high)
    if source == "softedge":
        return softedge(canvas_u8, blur)
    if source == "lineart":
        return lineart(canvas_u8, blur)
    if source == "tile":
        return np.ascontiguousarray(canvas_u8)
    if source == "depth":
        if depth is None:
            raise ValueError("the depth source needs the frame's depth map")
        return _rgb(depth)
    if source == "folder":
        if user is None:
            raise ValueError("the folder source needs the user's image for the frame")
        u = np.asarray(user)
        return np.ascontiguousarray(u if u.dtype == np.uint8 else imageops.to_uint8(u))
    raise BadInput(f"control source '{source}' is not known; use one of: {', '.join(SOURCES)}")


def user_images(folder: str | Path, frames: int) -> list[Path]:
    """The images of a user's control folder, one per frame in natural order (checked: enough of them)."""
    from vid2vid.core.workspace import list_frames

    p = Path(folder).expanduser()
    if not p.is_dir():
        raise BadInput(f"control image folder {p} does not exist; give a folder with one image per frame")
    files = list_frames(p)
    if len(files) < frames:
        raise BadInput(f"control image folder {p} has {len(files)} images for {frames} frames; "
                       "give one image per frame (00001.png, 00002.png, ... in frame order)")
    return files[:frames]


def folder_identity(folder: str | Path, frames: int) -> list:
    """Names, sizes and times of the images a folder source uses (replacing one invalidates the stage)."""
    out = []
    for f in user_images(folder, frames):
        st = f.stat()
        out.append([f.name, st.st_size, st.st_mtime_ns])
    return [str(Path(folder).expanduser().resolve()), out]
