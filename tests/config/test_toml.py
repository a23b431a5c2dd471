"""Settings files: an unknown key names the nearest known one; a file can go over other settings."""
from __future__ import annotations

import pytest

from vid2vid import config
from vid2vid.core.errors import BadInput


def test_unknown_key_says_the_nearest(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[img2img]\nstpes = 3\nzzz = 1\n", encoding="utf-8")
    with pytest.raises(BadInput) as exc:
        config.load_toml(p)
    msg = str(exc.value)
    assert "stpes (did you mean steps?)" in msg and "zzz;" in msg and "\n" not in msg


def test_a_file_over_base_settings_sets_only_its_keys(tmp_path):
    base = config.Settings()
    base.img2img.width, base.correct.method = 256, "flow"
    p = tmp_path / "s.toml"
    p.write_text("[img2img]\nsteps = 3\n", encoding="utf-8")
    got = config.load_toml(p, base)
    assert (got.img2img.width, got.img2img.steps, got.correct.method) == (256, 3, "flow")
    assert base.img2img.steps == config.Settings().img2img.steps          # base is not changed
