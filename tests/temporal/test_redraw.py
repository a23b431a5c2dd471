"""The keys' colour model (vid2vid.temporal.redraw): a local linear map from the source's grey to the painting."""
from __future__ import annotations

import numpy as np
from test_metrics import smooth_texture

from vid2vid.temporal import redraw


def grey_texture(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    return smooth_texture(width, height, seed, waves=5, freq=(0.1, 0.4))[..., 0]


def test_a_global_linear_painting_is_recovered():
    grey = grey_texture()
    gain, offset = np.array([0.9, -0.5, 0.3], np.float32), np.array([0.05, 0.8, 0.2], np.float32)
    painted = grey[..., None] * gain + offset
    model = redraw.colour_model(grey, painted, radius=4, eps=1e-6)
    np.testing.assert_allclose(model[8:-8, 8:-8, :3], np.broadcast_to(gain, (48, 80, 3)), atol=2e-3)
    np.testing.assert_allclose(redraw.apply_model(model, grey), painted, atol=2e-3)


def test_the_model_draws_the_key_colours_on_a_new_shape():
    # the key paints bright source pixels red and dark ones blue; at frame t a bright square has moved
    base = 0.1 + 0.3 * grey_texture(seed=2)
    grey_key = base.copy()
    grey_key[20:36, 10:26] += 0.5
    grey_t = base.copy()
    grey_t[20:36, 18:34] += 0.5                 # the square 8 px to the right

    def paint(g):
        return np.stack([g, np.zeros_like(g), 1 - g], axis=2).astype(np.float32)

    model = redraw.colour_model(grey_key, paint(grey_key), radius=6, eps=1e-6)
    out = redraw.apply_model(model, grey_t)
    # the moved square is painted red where the key had background (columns 26-33), and the background
    # it left is blue again (columns 10-17)
    np.testing.assert_allclose(out[22:34, 26:34], paint(grey_t)[22:34, 26:34], atol=0.03)
    np.testing.assert_allclose(out[22:34, 10:18], paint(grey_t)[22:34, 10:18], atol=0.03)
    # the key's own pixels (a warp by a wrong, zero motion) are far off there: the model follows the shape
    assert np.abs(paint(grey_key)[22:34, 10:18] - paint(grey_t)[22:34, 10:18]).mean() > 0.3
    # a model at half size applies at full size (resized)
    small = redraw.colour_model(grey_key[::2, ::2], paint(grey_key)[::2, ::2], radius=2, eps=1e-6)
    assert redraw.apply_model(small, grey_t).shape == (64, 96, 3)
