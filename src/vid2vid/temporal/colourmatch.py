"""Colour match of a generated frame to what its neighbours carry into it (the flow pass and the
steadied keys of the propagation use it).

Per-frame diffusion flicker is largely a global colour shift (a gain and an offset per channel).
Where the motion is trusted, the pass averages it away; where it is not (moving limbs,
disocclusions), the generated frame passes through with its shift. So before a frame enters the
backward pass, its colour is matched to what its neighbours carry into it from both sides (past
and future, so the match follows no single side and cannot drift), by a gain and an offset per
channel that give it their mean and spread over the pixels the neighbours reach.

The fit reads the low band of both (each MATCH_STEP x MATCH_STEP block averaged, then a Gaussian of
MATCH_DETAIL px): the neighbours' estimate is an average of several frames, and where the painter
re-drew fine detail in each of them that average holds less of it than any one frame. Fitted on
the full band, the spread of the estimate would be the smaller one, and every frame's contrast would
be turned down to it (on real img2img footage the gain came out below 1 in 94% of the frames); the
colour flicker the match is for is the same in both bands.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MATCH_WEIGHT = 0.5          # pixels whose carried weight is below this take no part in the fit
MATCH_MIN = 0.01            # share of such pixels below which the frame is left as it is
MATCH_GAIN = (0.8, 1.25)    # the fitted gain is clipped to this range
MATCH_STEP = 4              # the fit reads the frames reduced by this factor (block averages)
MATCH_DETAIL = 8.0          # px: ... and blurred by a Gaussian of this much (the scales averaging loses, see below)


def colour_fit(img: np.ndarray, target: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (gain, offset), float32 (3,), that give `img` the weighted mean and standard
    deviation of `target`: gain = sd(target) / sd(img), offset = mean(target) - gain * mean(img).

    img, target: float32 HxWx3; weight: float32 HxW >= 0 (no weight: gain 1, offset 0). The ratio
    of deviations rather than a least-squares slope, because both images carry noise (a slope
    would shrink the contrast). A channel without contrast (variance below 1e-8) gets gain 1; the
    gain is clipped to MATCH_GAIN."""
    w = weight.astype(np.float64)
    total = w.sum()
    gain, offset = np.ones(3, np.float32), np.zeros(3, np.float32)
    if total <= 0:
        return gain, offset
    for c in range(3):
        x, y = img[..., c].astype(np.float64), target[..., c].astype(np.float64)
        mx, my = (w * x).sum() / total, (w * y).sum() / total
        vx, vy = (w * (x - mx) ** 2).sum() / total, (w * (y - my) ** 2).sum() / total
        g = float(np.clip(math.sqrt(vy / vx), *MATCH_GAIN)) if vx > 1e-8 else 1.0
        gain[c], offset[c] = g, my - g * mx
    return gain, offset


def low_band(img: np.ndarray, step: int = MATCH_STEP, detail: float = MATCH_DETAIL) -> np.ndarray:
    """float32 HxW or HxWxC reduced by `step` (block averages), then blurred by a Gaussian of `detail` px
    of the full size: what the colour fit reads."""
    h, w = img.shape[:2]
    small = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (max(1, w // step), max(1, h // step)),
                       interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), detail / step, borderType=cv2.BORDER_REPLICATE)


def match_to_neighbours(gen: np.ndarray, carried: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The generated frame (float32 HxWx3) with its colour fitted to what its neighbours carry.

    carried: (premultiplied RGB HxWx3, weight HxW) pairs, one per side (past, future); their sum is
    the neighbours' estimate of this frame. Fitted on the low band (`low_band`) of both, each weighted
    by the carried weight (a normalised convolution), where that weight is at least MATCH_WEIGHT;
    unchanged when fewer than MATCH_MIN of the pixels qualify."""
    weight = np.asarray(np.sum([c[1] for c in carried], axis=0, dtype=np.float32))
    wsum = low_band(weight)
    mask = np.asarray(wsum >= np.float32(MATCH_WEIGHT))
    if float(mask.mean()) < MATCH_MIN:
        return gen
    inverse = (1.0 / np.maximum(wsum, np.float32(1e-6)))[..., None]
    estimate = np.sum([low_band(c[0]) for c in carried], axis=0, dtype=np.float32) * inverse
    own = low_band(gen * weight[..., None]) * inverse          # the frame's low band over the same weights
    gain, offset = colour_fit(own, estimate, mask.astype(np.float32))
    matrix = np.concatenate([np.diag(gain), offset[:, None]], axis=1).astype(np.float32)
    out = cv2.transform(gen, matrix)                  # gain * gen + offset per channel, in one pass
    return np.clip(out, 0.0, 1.0, out=out)
