"""The benchmarks' stand-in for per-frame diffusion: a steady colour grade of the source plus per-frame
flicker (bench_temporal.py, bench_keyframes.py, real_dev.py)."""
from __future__ import annotations

import cv2
import numpy as np

from vid2vid.temporal import opticalflow

SIZE = (832, 480)
SEED = 1234


GRADE = np.array([[0.95, 0.10, -0.05],      # a fixed warm colour grade (rows: output R, G, B)
                  [0.05, 0.85, 0.10],
                  [-0.05, 0.15, 0.80]], np.float32)


def clean_style(src_u8: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The steady part: source resized to `size`, colour-graded, gamma 0.9, float32 HxWx3 [0, 1]."""
    img = opticalflow.as_float_rgb(opticalflow.resize_to(src_u8, *size))
    graded = np.clip(img @ GRADE.T, 0.0, 1.0)
    return (graded ** 0.9).astype(np.float32)


def stand_in_stylizer(clean: np.ndarray, t: int, seed: int = SEED) -> np.ndarray:
    """Add per-frame flicker like per-frame diffusion to a clean stylized frame (float32 HxWx3).

    With a generator seeded by (seed, t):
    - colour shift: per-channel gain N(1, 0.03) and offset N(0, 0.02), the whole frame;
    - latent noise: N(0, 0.02) per channel on a 1/8-size grid, upsampled bicubically (the
      8x8-pixel texture of a diffusion latent that changes from frame to frame);
    - fine noise: N(0, 0.008) per pixel and channel;
    - texture changes: 3 Gaussian blobs (radius 15-50 px) at random places, each multiplying
      a random oriented stripe pattern (period 4-12 px) of amplitude 0.12 (details the model
      re-invents differently in each frame).
    """
    rng = np.random.default_rng([seed, t])
    h, w = clean.shape[:2]
    out = clean * rng.normal(1.0, 0.03, 3).astype(np.float32) + rng.normal(0.0, 0.02, 3).astype(np.float32)
    latent = rng.normal(0.0, 0.02, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    out += cv2.resize(latent, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC)[:h, :w]
    out += rng.normal(0.0, 0.008, (h, w, 3)).astype(np.float32)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 50)
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        phase, tint = rng.uniform(0, 6.3), rng.uniform(-1, 1, 3).astype(np.float32)
        x0, x1 = int(max(0, cx - 4 * r)), int(min(w, cx + 4 * r + 1))    # the blob is ~0 beyond 4 r
        y0, y1 = int(max(0, cy - 4 * r)), int(min(h, cy + 4 * r + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period) + phase)
        out[y0:y1, x0:x1] += (0.12 * blob * stripes)[..., None] * tint
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------- seed methods
