"""Where a carried running average's fine detail is another drawing: keep the frame's own (the flow pass).

Per-frame img2img re-draws small things on every frame: a tuft of hair, the line of an eyelid, the
strands of a fringe come out a little different each time, while the colours and the shading around
them stay close. Averaged along the motion, those drawings do not add up: they leave faint,
half-transparent copies of lines (a tuft at a third of its contrast, a doubled eyelid), so the
steadied frame looks softer than any frame that was painted. The ghost gate (vid2vid.temporal.trust)
does not see them: the difference is small in amount, large only in the fine band.

So the carried picture is split in two bands before it is averaged with frame t:

- its low band (a Gaussian of DETAIL_SIGMA px) is carried as it is: colour and shading flicker are
  what the averaging is for;
- its high band (the rest) is compared with frame t's high band. The mean |difference| over a
  neighbourhood (a Gaussian of DETAIL_SPREAD px, weighted by the carried weight) says whether the
  neighbours drew the same detail. Where it exceeds DETAIL_TOLERANCE (falling over DETAIL_WIDTH),
  the carried detail is replaced by frame t's own, so the average keeps one drawing of it.

Both low bands are taken over the pixels the carried average covers, weighted by its weight W (a
normalised convolution), so that a region it carries nothing of (a gated ghost, an occlusion) lends
no halo to either band. With C = W * c its premultiplied RGB, g frame t, blur a Gaussian of
DETAIL_SIGMA px and k in [0, 1] the share replaced:

    low(c) - low(g) = blur(C - W g) / blur(W)                  (how the two low bands differ)
    high(c) - high(g) = (c - g) - (low(c) - low(g))            (how the two drawings of detail differ)
    C' = (1 - k) C + k W (g + low(c) - low(g)),    W' = W      (frame t's detail on the carried low band)

Images float32 HxWx3 in [0, 1]; the carried average float32 HxWx4 premultiplied (w * RGB, w).
"""
from __future__ import annotations

import cv2
import numpy as np

DETAIL_SIGMA = 3.0        # px: finer than this (Gaussian sigma) is detail (lines, strands), the rest colour and shading
DETAIL_SPREAD = 2.0       # px: the detail difference is averaged over this (Gaussian sigma): a strand counts alone
DETAIL_TOLERANCE = 0.03   # mean |difference| of the two high bands that still counts as the same drawing (grain)
DETAIL_WIDTH = 0.06       # ... the carried detail is replaced in full this much above it
_EPS = np.float32(1e-6)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of float32 HxW or HxWxC, `sigma` px, edges replicated (the band split)."""
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


_MEAN3 = np.full((1, 3), 1.0 / 3.0, np.float32)


def _inverse(weight: np.ndarray) -> np.ndarray:
    """1 / max(weight, eps), float32 HxW."""
    return cv2.divide(1.0, cv2.max(weight, float(_EPS)))


def _times(img: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """img (float32 HxWxC) times a float32 HxW plane, per channel."""
    return cv2.multiply(img, cv2.merge([plane] * img.shape[2]))


def band_differences(carried: np.ndarray, current: np.ndarray,
                     sigma: float = DETAIL_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """(low(c) - low(g), high(c) - high(g)), float32 HxWx3 each: how the picture a premultiplied running
    average stands for (carried, float32 HxWx4) and frame t (current, float32 HxWx3) differ in each band,
    both split over the carried weight (see the module docstring). Where the average carries no weight
    its picture counts as 0."""
    weight = cv2.extractChannel(carried, 3)
    apart = cv2.subtract(carried, cv2.cvtColor(_times(current, weight), cv2.COLOR_RGB2RGBA))   # alpha: w - 1
    cv2.insertChannel(weight, apart, 3)
    lowp = blur(apart, sigma)
    low = _times(cv2.cvtColor(lowp, cv2.COLOR_RGBA2RGB), _inverse(cv2.extractChannel(lowp, 3)))
    mean = _times(cv2.cvtColor(carried, cv2.COLOR_RGBA2RGB), _inverse(weight))
    return low, cv2.subtract(cv2.subtract(mean, current), low)


def detail_disagreement(carried: np.ndarray, high_difference: np.ndarray,
                        spread: float = DETAIL_SPREAD) -> np.ndarray:
    """Mean over channels of |high(c) - high(g)| (`band_differences`), averaged over a Gaussian of
    `spread` px weighted by the carried weight (carried: float32 HxWx4 premultiplied) -> float32 HxW."""
    weight = cv2.extractChannel(carried, 3)
    d = cv2.transform(cv2.absdiff(high_difference, 0.0), _MEAN3)
    return cv2.divide(blur(cv2.multiply(d, weight), spread), cv2.max(blur(weight, spread), float(_EPS)))


def keep_current_detail(carried: np.ndarray, current: np.ndarray, tolerance: float = DETAIL_TOLERANCE,
                        width: float = DETAIL_WIDTH, sigma: float = DETAIL_SIGMA,
                        spread: float = DETAIL_SPREAD) -> np.ndarray:
    """The carried running average (float32 HxWx4 premultiplied, changed in place and returned) with its
    high band replaced by frame t's (`current`, float32 HxWx3) where they differ by more than `tolerance`
    (in full `width` above it); its weight and low band are kept (see the module docstring)."""
    low_difference, high_difference = band_differences(carried, current, sigma)
    d = detail_disagreement(carried, high_difference, spread)
    k = np.clip((d - np.float32(tolerance)) * np.float32(1.0 / width), 0.0, 1.0)
    weight = cv2.extractChannel(carried, 3)
    target = _times(cv2.cvtColor(cv2.add(current, low_difference), cv2.COLOR_RGB2RGBA), weight)   # alpha: w
    cv2.add(carried, _times(cv2.subtract(target, carried), k), dst=carried)
    return carried
