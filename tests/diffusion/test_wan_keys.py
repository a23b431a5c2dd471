"""Wan 2.1 key renaming (ours) against diffusers' own single-file converters, on the real sizes."""
from __future__ import annotations

import pytest

from vid2vid.diffusion import wan_keys


def empty(cls, config):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls.from_config(config)


def converted(converter, table):
    """diffusers' converter run on a checkpoint whose 'tensors' are their own original names."""
    return converter({old: old for old in table})


@pytest.mark.parametrize("size", ["transformer-1.3B", "transformer-14B"])
def test_transformer_names_are_the_inverse_of_diffusers_converter(size):
    from diffusers import WanVACETransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from vid2vid.diffusion.wan_single import bundled_config

    model = empty(WanVACETransformer3DModel, bundled_config(size))
    table = wan_keys.original_names(model.state_dict().keys(), wan_keys.transformer_key_to_original)
    assert len(table) == len(model.state_dict())
    assert {"patch_embedding.weight", "vace_patch_embedding.weight", "blocks.0.self_attn.q.weight", "head.head.weight",
            "vace_blocks.0.before_proj.weight", "vace_blocks.0.after_proj.bias", "blocks.3.norm3.weight",
            "head.modulation", "blocks.0.modulation"} <= set(table)
    back = converted(convert_wan_transformer_to_diffusers, table)
    assert back == {new: old for old, new in table.items()}


@pytest.mark.parametrize("nrb", [1, 2])
def test_vae_names_are_the_inverse_of_diffusers_converter(nrb):
    """diffusers' converter knows only the real layout (2 residual blocks per level: its indices are fixed);
    ours takes the count, so the tiny VAE (1 per level) is checked for a clean one-to-one table."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    from vid2vid.diffusion.wan_single import bundled_config

    config = dict(bundled_config("vae"), num_res_blocks=nrb)
    model = empty(AutoencoderKLWan, config)
    table = wan_keys.original_names(model.state_dict().keys(), lambda k: wan_keys.vae_key_to_original(k, nrb))
    assert len(table) == len(model.state_dict())
    assert not [k for k in table if "up_blocks" in k or "mid_block" in k or "resnets" in k]
    if nrb == 2:
        assert "decoder.upsamples.3.resample.1.weight" in table and "decoder.upsamples.4.shortcut.weight" in table
        back = converted(convert_wan_vae_to_diffusers, table)
        assert back == {new: old for old, new in table.items()}
    else:
        assert "decoder.upsamples.2.resample.1.weight" in table       # 2 residual blocks, then the upsampler


def test_a_clash_of_names_is_refused():
    with pytest.raises(ValueError, match="map to one original name"):
        wan_keys.original_names(["a.to_q.weight", "a.q.weight"], lambda k: k.replace("to_q", "q"))
    assert wan_keys.strip_prefix("model.diffusion_model.head.head.bias") == "head.head.bias"
