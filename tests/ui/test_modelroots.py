"""The user's model folders: A1111 and ComfyUI layouts listed per kind, read but never written, and every
model path field (the VAE included) through the same rule."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.ui import form, modelroots, paths


def _tree(base: Path, files: list[str]) -> Path:
    for f in files:
        p = base / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"w")
    return base


@pytest.fixture
def roots(tmp_path):
    a1111 = _tree(tmp_path / "webui", ["models/Stable-diffusion/anime/v1.safetensors", "models/Lora/ink.safetensors",
                                       "models/VAE/ft-mse.safetensors", "models/ControlNet/canny.pth",
                                       "models/Stable-diffusion/notes.txt"])
    comfy = _tree(tmp_path / "ComfyUI" / "models", ["checkpoints/real.ckpt", "loras/x.safetensors",
                                                    "vae/taesd/config.json", "controlnet/depth.safetensors",
                                                    "animatediff_models/mm_sd15_v3.safetensors",
                                                    "diffusion_models/wan2.1.safetensors"])
    return modelroots.check_roots([a1111, comfy])


def _names(found):
    return [p.name for p in found]


def test_both_layouts_are_listed_per_kind(roots):
    assert _names(modelroots.find(roots, "checkpoint")) == ["v1.safetensors", "real.ckpt"]   # not notes.txt
    assert _names(modelroots.find(roots, "lora")) == ["ink.safetensors", "x.safetensors"]
    assert _names(modelroots.find(roots, "vae")) == ["ft-mse.safetensors", "taesd"]            # a diffusers folder
    assert _names(modelroots.find(roots, "controlnet")) == ["canny.pth", "depth.safetensors"]
    assert _names(modelroots.find(roots, "motion_module")) == ["mm_sd15_v3.safetensors"]
    assert _names(modelroots.find(roots, "video_model")) == ["wan2.1.safetensors"]
    assert modelroots.choices(roots, "checkpoint") == [
        (os.path.join("Stable-diffusion", "anime", "v1.safetensors") + " (webui)",
         str(roots[0] / "models/Stable-diffusion/anime/v1.safetensors")),
        (os.path.join("checkpoints", "real.ckpt") + " (models)", str(roots[1] / "checkpoints/real.ckpt"))]


def test_a_missing_root_is_one_clear_line(tmp_path):
    with pytest.raises(BadInput, match="is not a folder"):
        modelroots.check_roots([tmp_path / "nope"])


def test_model_fields_read_from_the_roots_and_nowhere_else(roots, tmp_path):
    cache = paths.cache_root(tmp_path / "cache")
    v1 = roots[0] / "models/Stable-diffusion/anime/v1.safetensors"
    assert paths.model_spec(cache, str(v1), roots=roots) == str(v1)
    assert paths.model_spec(cache, "checkpoints/real.ckpt", roots=roots) == str(roots[1] / "checkpoints/real.ckpt")
    outside = _tree(tmp_path / "elsewhere", ["m.safetensors"]) / "m.safetensors"
    with pytest.raises(BadInput, match="outside the cache folder .* and the model folders"):
        paths.model_spec(cache, str(outside), roots=roots)
    with pytest.raises(BadInput, match="does not exist in the model folder"):
        paths.model_spec(cache, str(roots[0] / "models/VAE/missing.safetensors"), roots=roots)
    # a link inside a root that leads out of it is outside
    (roots[0] / "models/VAE/escape.safetensors").symlink_to(outside)
    with pytest.raises(BadInput, match="outside"):
        paths.model_spec(cache, str(roots[0] / "models/VAE/escape.safetensors"), roots=roots)


def test_the_vae_goes_through_the_path_rule(roots, tmp_path):
    cache = paths.cache_root(tmp_path / "cache")
    (cache / "vae").mkdir()
    outside = _tree(tmp_path / "elsewhere", ["vae.safetensors"]) / "vae.safetensors"
    with pytest.raises(BadInput, match="outside the cache"):                       # was read before
        form.settings_from_form({"img2img.vae": str(outside)}, cache, sections=("img2img",))
    s = form.settings_from_form({"img2img.vae": "vae"}, cache, sections=("img2img",))  # was "not a local file"
    assert s.img2img.vae == str(cache / "vae")
    vae = roots[0] / "models/VAE/ft-mse.safetensors"
    lora = str(roots[0] / "models/Lora/ink.safetensors") + ":0.5"
    s = form.settings_from_form({"img2img.vae": str(vae), "img2img.loras": [lora]}, cache, sections=("img2img",),
                                roots=roots)
    assert s.img2img.vae == str(vae) and s.img2img.loras == [lora]
    assert "img2img.vae" in form.MODEL_FIELDS
    assert all(k in form.MODEL_FIELDS or k in form.LIST_PATH_FIELDS
               for k in modelroots.FIELD_KINDS if k in config.all_keys())      # every model field, one rule
