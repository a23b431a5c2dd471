"""The detail-keeping flow pass (issue 16): a steady input stays sharp, an untrusted region carries nothing old."""
from __future__ import annotations

import numpy as np

from test_propagate import texture
from vid2vid import metrics
from vid2vid.temporal import flow_correct_sequence


def subpixel_pan(n: int, dx: float = 1.5, width: int = 160, height: int = 96) -> list[np.ndarray]:
    big = texture(width + int(n * dx) + 4, height, seed=5)
    import cv2

    out = []
    for t in range(n):
        m = np.float32([[1, 0, t * dx], [0, 1, 0]])      # frame t reads the texture at x + t dx
        out.append(cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_CUBIC)[:, :width])
    return out


def test_a_steady_sequence_keeps_its_detail():
    frames = subpixel_pan(12)
    ref = sum(metrics.mean_gradient(f) for f in frames)
    new = flow_correct_sequence(frames, frames)
    old = flow_correct_sequence(frames, frames, keep_detail=False, preset="fast")
    sharp_new = sum(metrics.mean_gradient(f) for f in new) / ref
    sharp_old = sum(metrics.mean_gradient(f) for f in old) / ref
    assert sharp_new > 0.97
    assert sharp_new > sharp_old + 0.01


def test_weak_trust_carries_no_old_frame():
    # a frame whose content differs where the source changes: the output there is the frame itself
    frames = [texture(96, 64, seed=s) for s in (1, 1, 1, 2, 2)]        # a change at frame 3 (a cut)
    gen = [np.full((64, 96, 3), v, np.float32) for v in (0.2, 0.2, 0.2, 0.8, 0.8)]
    out = flow_correct_sequence(frames, gen)
    for t in range(5):
        np.testing.assert_allclose(out[t], gen[t], atol=1e-5)
