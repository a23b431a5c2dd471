"""The grid picture: paintings pasted unchanged, headers and captions in the white margins."""
from __future__ import annotations

import numpy as np

from vid2vid.pipeline import grid_draw


def cells(n: int, w: int = 40, h: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_cells_are_pasted_unchanged_at_their_origins_and_text_is_only_in_the_margins():
    imgs = cells(6)
    sheet = grid_draw.plan_sheet((40, 30), ["denoise: 0.5", "denoise: 0.65", "denoise: 0.75"],
                                 ["schedule: linear", "schedule: karras"], title="cfg: 7")
    out = grid_draw.compose(sheet, grid_draw.background(sheet), imgs)
    assert out.shape == (sheet.height, sheet.width, 3) and out.dtype == np.uint8
    covered = np.zeros(out.shape[:2], bool)
    for k, img in enumerate(imgs):
        x, y = grid_draw.origin(sheet, *divmod(k, 3))
        np.testing.assert_array_equal(out[y:y + 30, x:x + 40], img)
        covered[y:y + 30, x:x + 40] = True
    ink = (out.min(axis=2) < 128) & ~covered
    x0, y0 = grid_draw.origin(sheet, 0, 0)
    assert ink[:y0].sum() > 100 and ink[y0:, :x0].sum() > 100     # title + column headers; row headers
    assert not ink[y0:, x0:].any()                               # nothing drawn between the cells
    assert (out[~covered] == 255).all(axis=1).mean() > 0.8


def test_a_label_wider_than_its_cell_breaks_after_the_name_and_captions_widen_the_columns():
    size = grid_draw.font_size(40, 30)
    assert grid_draw.wrap_label("denoise: 0.75", 400, size) == "denoise: 0.75"
    assert grid_draw.wrap_label("init_noise: 0.75", 40, size) == "init_noise:\n0.75"
    plain = grid_draw.plan_sheet((40, 30), ["a: 1", "a: 2"], [])
    captioned = grid_draw.plan_sheet((40, 30), ["a: 1", "a: 2"], [], captions=["warp 0.0123\nflicker 0.0456"] * 2)
    assert captioned.pitch_w > plain.pitch_w and captioned.pitch_h > plain.pitch_h
    out = grid_draw.compose(captioned, grid_draw.background(captioned), cells(2))
    x, y = grid_draw.origin(captioned, 0, 0)
    assert (out[y + 30:y + captioned.pitch_h, x:x + captioned.pitch_w].min(axis=2) < 128).sum() > 50   # the caption
