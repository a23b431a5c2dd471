"""Grid axes: setting names in every spelling, values checked as the flags check them, ranges, lists, frames."""
from __future__ import annotations

import pytest

from vid2vid.core.errors import BadInput
from vid2vid.pipeline.grid_axes import axis_keys, parse_axis, parse_frames, resolve, value_label


@pytest.mark.parametrize("name, key", [
    ("denoise", "img2img.denoise"), ("img2img.denoise", "img2img.denoise"), ("--sigma-max", "img2img.sigma_max"),
    ("sigma-max", "img2img.sigma_max"), ("sigma_max", "img2img.sigma_max"), ("--key-fill", "propagate.fill"),
    ("model", "img2img.model"), ("--depth-model", "depth.model"), ("lora", "img2img.loras"),
    ("fdc", "correct.fdc"), ("--keyframes", "propagate.keyframes"),
])
def test_a_setting_is_found_by_its_key_field_name_or_flag(name, key):
    assert resolve(name) == key


def test_an_unknown_name_gets_the_nearest_one_and_other_stages_settings_are_refused():
    with pytest.raises(BadInput, match=r"did you mean denoise \(img2img.denoise\)"):
        resolve("denoize")
    with pytest.raises(BadInput, match="not a setting of the painting stages"):
        resolve("upscale.tile")
    assert "img2img.single" not in axis_keys() and "img2img.controlnet" not in axis_keys()


def test_values_take_the_settings_type_and_ranges_include_both_ends():
    assert parse_axis("denoise=0.4:0.8:0.1").values == (0.4, 0.5, 0.6, 0.7, 0.8)
    assert parse_axis("steps=10:20:5").values == (10, 15, 20)
    assert parse_axis("cfg=5, 7.5").values == (5.0, 7.5)
    assert parse_axis("schedule=linear,karras").values == ("linear", "karras")
    assert parse_axis("method=seed,flow").values == ("stats", "flow")           # an old name, as the flag takes it
    assert parse_axis("steady-keys=off,on").values == (False, True)
    assert parse_axis("lora=none,a.safetensors:0.5+b.safetensors").values == ([], ["a.safetensors:0.5",
                                                                                    "b.safetensors"])
    assert [value_label(v) for v in parse_axis("lora=none,a+b").values] == ["none", "a+b"]


@pytest.mark.parametrize("spec, says", [
    ("denoise=1.5", "out of range"), ("steps=0", "out of range"), ("steps=2.5", "not a whole number"),
    ("schedule=square", "is not known"), ("denoise=0.8:0.4:0.1", "is empty"), ("cfg=5,5", "twice"),
    ("denoise", "has no values"), ("steady-keys=maybe", "not on or off"), ("denoise=nan", "not a finite number"),
])
def test_bad_values_are_refused_with_one_line(spec, says):
    with pytest.raises(BadInput, match=says):
        parse_axis(spec)


def test_frames_are_one_frame_or_a_range_inside_the_video():
    assert parse_frames("40", 64) == (40, 40)
    assert parse_frames("40-64", 64) == (40, 64)
    for at, says in (("0", "outside"), ("40-65", "outside"), ("5-5", "after its first"), ("x", "not a frame")):
        with pytest.raises(BadInput, match=says):
            parse_frames(at, 64)
