"""Optical flow and warping on numpy frames (OpenCV DIS), shared by the metrics and the
flow-guided correction.

Flow convention: `flow` at frame t maps each pixel x of frame t to x + flow(x) in the other
frame; warping the other frame "backward" reads it at x + flow(x). Frames are uint8 [0, 255]
or float [0, 1] HxWx3; the flow is float32 HxWx2 (dx, dy) in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vid2vid.core.errors import BadInput

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_PRESET = "medium"


# ---------------------------------------------------------------- the arrays the flow works on

def as_float_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] HxWx3 -> float32 HxWx3 in [0, 1] (uint8 is divided, never wraps)."""
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    return a.astype(np.float32, copy=False)


def grey_u8(img: np.ndarray) -> np.ndarray:
    """uint8 or float [0, 1] HxWx3 -> uint8 HxW luminance (BT.601), the input DIS wants."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    return a.reshape(a.shape[:2])


def resize_to(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize any HxW[xC] array to height x width (area when shrinking, linear otherwise), same dtype."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=interp)
    return out.reshape((height, width) + img.shape[2:])


def resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxWx2 flow field to height x width, scaling its vectors with the size."""
    h, w = flow.shape[:2]
    if (w, h) == (width, height):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


# ---------------------------------------------------------------- flow and warping

def dis_flow(frame: np.ndarray, other: np.ndarray, preset: str = DEFAULT_PRESET) -> np.ndarray:
    """DIS optical flow at `frame` towards `other` (uint8 HxW grey): float32 HxWx2 (dx, dy) in pixels,
    such that frame(x) ~ other(x + flow(x))."""
    if preset not in DIS_PRESETS:
        raise BadInput(f"flow preset '{preset}' is not known; use {', '.join(DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])  # type: ignore[attr-defined]
    return dis.calc(frame, other, None)


def sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute float32 sampling coordinates (map_x, map_y) = pixel grid + flow, for cv2.remap."""
    h, w = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = img(x + flow(x)), bilinear, borders replicated.

    img: float32 HxW[xC] (any range); flow: HxWx2 at the output frame. Same shape as img."""
    map_x, map_y = sample_grid(flow)
    out = cv2.remap(np.ascontiguousarray(img, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """bool HxW: x + flow(x) lies inside the frame (so the warped sample is real, not a border copy)."""
    h, w = flow.shape[:2]
    map_x, map_y = sample_grid(flow)
    return (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)


def consistency_mask(flow: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Forward-backward check, bool HxW at the frame that `flow` starts from.

    flow: HxWx2 at frame a towards frame b; flow_back: HxWx2 at frame b towards frame a.
    With F = flow(x) and B = flow_back(x + F) (bilinear), a pixel passes when
    |F + B| <= 0.01 (|F|^2 + |B|^2) + 0.5 (|.| the Euclidean length, in pixels).
    """
    back = warp(flow_back, flow)
    s = flow + back
    lhs = np.sqrt(s[..., 0] ** 2 + s[..., 1] ** 2)
    rhs = 0.01 * (flow[..., 0] ** 2 + flow[..., 1] ** 2 + back[..., 0] ** 2 + back[..., 1] ** 2) + 0.5
    return lhs <= rhs


# ---------------------------------------------------------------- one frame pair

@dataclass
class PairFlow:
    """The flow of one frame pair (t-1, t) and where it can be trusted.

    flow: float32 HxWx2 at frame t towards frame t-1; valid: bool HxW, pixels that pass the
    forward-backward check and sample inside frame t-1."""

    flow: np.ndarray
    valid: np.ndarray


def pair_flow(prev: np.ndarray, cur: np.ndarray, preset: str = DEFAULT_PRESET) -> PairFlow:
    """Flows of one frame pair (uint8 or float HxWx3, same size) and its valid-pixel mask."""
    a, b = grey_u8(prev), grey_u8(cur)
    flow_bw = dis_flow(b, a, preset)      # at t, towards t-1
    flow_fw = dis_flow(a, b, preset)      # at t-1, towards t
    return PairFlow(flow_bw, consistency_mask(flow_bw, flow_fw) & inside_mask(flow_bw))
