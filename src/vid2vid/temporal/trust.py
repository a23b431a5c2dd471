"""Where a carried picture cannot be trusted: pure per-pixel measures shared by the flow pass and
the key-frame propagation.

- `ghost_gate` (flow pass): a neighbour's running average warped into frame t is compared with the
  generated frame t. Where they differ by more than the source's own change explains (the source's
  residual after the same warp, plus a tolerance for the painter's frame-to-frame flicker), the
  carried picture is a different drawing of a moving part: carrying it would leave a second copy of
  the limb (a ghost), so the gate closes and the current frame is kept there.
- `agreement` (steadied keys): the same test between a key and a neighbouring key warped into it,
  so that steadying never pulls a key away from what was painted where the key sequence disagrees.
- `key_disagreement` (propagation): how far the two keys warped into a frame differ. Where they
  differ a lot, blending them draws two half-transparent copies; the propagation then redraws the
  region (vid2vid.temporal.redraw) instead.

- `motion_trust` (flow pass, propagation): how far a source flow itself can be trusted (forward-backward
  check, the sample inside the frame, the photometric check on the source).

Images float32 in [0, 1]; the returned maps float32 HxW in [0, 1].
"""
from __future__ import annotations

import cv2
import numpy as np

from vid2vid.temporal.opticalflow import consistency_mask, inside_mask, warp

GHOST_TOLERANCE = 0.2     # difference (mean over channels) the painter's own re-drawing may make where the
                          # motion is right (measured on media/real-img2img-dev: 0.06 keeps too little steady)
GHOST_WIDTH = 0.08        # the gate falls from 1 to 0 over this much more difference
DISAGREE_BLUR = 2.0       # pixels (Gaussian sigma) the key disagreement is smoothed over


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over channels of |a - b| (float32 HxWxC each) -> float32 HxW."""
    return cv2.absdiff(a, b).mean(axis=2, dtype=np.float32)


def carried_mean(carried: np.ndarray) -> np.ndarray:
    """The picture (float32 HxWx3) a premultiplied running average (HxWx4 = w * RGB, w) stands for;
    0 where it carries no weight."""
    w = np.maximum(carried[..., 3:4], np.float32(1e-6))
    return carried[..., :3] / w


def agreement(picture: np.ndarray, current: np.ndarray, source_residual: np.ndarray,
              tolerance: float = GHOST_TOLERANCE, width: float = GHOST_WIDTH) -> np.ndarray:
    """How far a picture carried into frame t (float32 HxWx3) may stand for the frame's own (`current`),
    float32 HxW in [0, 1]: 1 - clip((d - r - tolerance) / width, 0, 1), d = mean |picture - current| over
    channels, r = the source's residual after the same warp (float32, any size: resized to the frame's).
    1 wherever the difference is explained by the source's change or by flicker."""
    h, w = current.shape[:2]
    d = mean_abs_difference(picture, current)
    r = cv2.resize(source_residual.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    excess = d - r - np.float32(tolerance)
    return np.clip(1.0 - excess * np.float32(1.0 / width), 0.0, 1.0)


def ghost_gate(carried: np.ndarray, current: np.ndarray, source_residual: np.ndarray,
               tolerance: float = GHOST_TOLERANCE, width: float = GHOST_WIDTH) -> np.ndarray:
    """`agreement` of a carried running average (float32 HxWx4 premultiplied) with frame t: how much
    of it frame t may take."""
    return agreement(carried_mean(carried), current, source_residual, tolerance, width)


def key_disagreement(warped_a: np.ndarray, warped_b: np.ndarray, blur: float = DISAGREE_BLUR) -> np.ndarray:
    """Mean |A - B| over channels of the two keys warped into one frame (float32 HxWx3), smoothed by a
    Gaussian of `blur` pixels (0: not smoothed) -> float32 HxW."""
    d = mean_abs_difference(warped_a, warped_b)
    return cv2.GaussianBlur(d, (0, 0), blur) if blur > 0 else d


# ---------------------------------------------------------------- motion trust (the flow pass's links)

def photometric_residual(grey: np.ndarray, grey_other: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """|grey - warp(grey_other, flow)|; greys float32 HxW in [0, 1] -> float32 HxW."""
    return np.abs(grey - warp(grey_other, flow))


def photometric_trust(grey: np.ndarray, grey_other: np.ndarray, flow: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-(r / sigma)^2), r = |grey - warp(grey_other, flow)|; greys float32 HxW in [0, 1] -> float32 HxW."""
    r = photometric_residual(grey, grey_other, flow)
    return np.exp(-(r * r) * np.float32(1.0 / (sigma * sigma)))


def motion_trust(flow: np.ndarray, flow_back: np.ndarray, grey: np.ndarray, grey_other: np.ndarray,
                 sigma: float) -> np.ndarray:
    """Trust in [0, 1] (float32 HxW) of `flow` (at this frame, towards the other one): 0 where the
    forward-backward check fails or the sample leaves the frame, else the photometric trust."""
    return trust_and_residual(flow, flow_back, grey, grey_other, sigma)[0]


def trust_and_residual(flow: np.ndarray, flow_back: np.ndarray, grey: np.ndarray, grey_other: np.ndarray,
                       sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(`motion_trust`, `photometric_residual`) of one flow, float32 HxW, the warp done once."""
    valid = consistency_mask(flow, flow_back) & inside_mask(flow)
    r = photometric_residual(grey, grey_other, flow)
    return np.exp(-(r * r) * np.float32(1.0 / (sigma * sigma))) * valid, r
