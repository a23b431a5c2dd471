"""Redraw a region of frame t in the keys' colours on the source's own shape (the propagation's fill
where no key's warp can be trusted: fast motion, disocclusions, torn chains).

Around each pixel of a key, the painting is modelled as a linear function of the source's grey level,
painted ~ a * grey + b per channel, fitted by least squares in a (2r+1)^2 box with a ridge `eps` on the
slope and then averaged over the same box (the guided filter of He, Sun and Tang, 2010). The model's
coefficients vary slowly, so they can be carried to frame t along a flow that is only roughly right,
and applied there to the source's grey level of frame t: the result has the source's shapes at t and
the key's local colours, without the streaks a wrong flow draws when it carries the key's pixels.

Arrays float32; greys HxW and paintings HxWx3 in [0, 1]; a model HxWx6 (a of R, G, B, then b).
"""
from __future__ import annotations

import cv2
import numpy as np

MODEL_RADIUS = 16        # box radius in pixels at 480 rows (scaled with the model's size)
MODEL_RADIUS_AT = 480
MODEL_EPS = 1e-4         # ridge on the slope (grey variance units): flat regions get a ~ 0, b ~ the mean


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def model_radius(height: int) -> int:
    """MODEL_RADIUS scaled from MODEL_RADIUS_AT rows to `height` rows, at least 1."""
    return max(1, round(MODEL_RADIUS * height / MODEL_RADIUS_AT))


def colour_model(grey: np.ndarray, painted: np.ndarray, radius: int, eps: float = MODEL_EPS) -> np.ndarray:
    """The local linear model painted ~ a * grey + b (float32 HxWx6: a for R, G, B, then b), box-averaged."""
    mean_i = _box(grey, radius)
    mean_p = _box(painted, radius)
    cov = _box(grey[..., None] * painted, radius) - mean_i[..., None] * mean_p
    var = _box(grey * grey, radius) - mean_i * mean_i
    a = cov / (var + np.float32(eps))[..., None]
    b = mean_p - a * mean_i[..., None]
    return np.concatenate([_box(a, radius), _box(b, radius)], axis=2).astype(np.float32)


def apply_model(model: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """a * grey + b per channel (model HxWx6 resized to grey's size if needed) -> float32 HxWx3."""
    h, w = grey.shape[:2]
    if model.shape[:2] != (h, w):
        model = cv2.resize(model, (w, h), interpolation=cv2.INTER_LINEAR)
    return model[..., :3] * grey[..., None] + model[..., 3:]
