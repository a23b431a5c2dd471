"""The text-free start of a guided UNet call runs once for both halves, with the same result."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from vid2vid.diffusion import shared_prefix

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_unet(config: str = "tiny-sd1", **changes):
    from diffusers import UNet2DConditionModel

    from vid2vid.diffusion.tiny import bundled_config_dir

    cfg = json.loads((bundled_config_dir(config) / "unet" / "config.json").read_text())
    cfg.update(changes)
    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(cfg).eval()


def guided_batch(unet, b: int = 2, seed: int = 1):
    """[x, x] at [t, t] with different text halves, as the CFG denoiser calls the UNet."""
    g = torch.Generator().manual_seed(seed)
    n = unet.config.sample_size
    x = torch.randn(b, unet.config.in_channels, n, n, generator=g)
    t = torch.tensor([700.0, 250.5][:b] + [500.0] * max(0, b - 2))
    text = torch.randn(2 * b, 77, unet.config.cross_attention_dim, generator=g)
    return torch.cat([x, x]), torch.cat([t, t]), text


@pytest.mark.parametrize("config,changes,shared", [
    ("tiny-sd1", {}, 3),                                       # conv_in, first ResNet, first self-attention
    ("tiny-sd2", {}, 3),                                       # linear projections, several heads
    ("tiny-sd1", {"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
                  "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"]}, 2),   # conv_in + the whole text-free block
])
def test_shared_prefix_gives_the_unshared_result(config, changes, shared):
    unet = tiny_unet(config, **changes)
    reference = copy.deepcopy(unet)
    assert shared_prefix.install(unet) == shared
    assert shared_prefix.install(unet) == shared                # idempotent: nothing wrapped twice
    x, t, text = guided_batch(unet)
    with torch.no_grad():
        want = reference(x, t, encoder_hidden_states=text).sample
        plain = unet(x, t, encoder_hidden_states=text).sample    # installed but not active: untouched
        with shared_prefix.active():
            got = unet(x, t, encoder_hidden_states=text).sample
    assert torch.equal(plain, want)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert not torch.equal(got[:2], got[2:])                     # the text still makes the halves differ


def test_shared_modules_really_run_on_half_the_batch():
    unet = tiny_unet()
    shared_prefix.install(unet)
    attn1 = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    seen = {}
    attn1.to_q.register_forward_pre_hook(lambda m, a: seen.setdefault("rows", []).append(a[0].shape[0]))
    unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_q.register_forward_pre_hook(
        lambda m, a: seen.setdefault("text rows", []).append(a[0].shape[0]))
    x, t, text = guided_batch(unet, b=3)
    with torch.no_grad(), shared_prefix.active():
        unet(x, t, encoder_hidden_states=text)
    assert seen == {"rows": [3], "text rows": [6]}
    seen.clear()
    with torch.no_grad():                                       # other threads and callers: full batch
        unet(x, t, encoder_hidden_states=text)
    assert seen == {"rows": [6], "text rows": [6]}


def test_a_time_embedding_with_text_shares_only_conv_in():
    from diffusers import UNet2DConditionModel

    from vid2vid.diffusion.tiny import bundled_config_dir

    cfg = json.loads((bundled_config_dir("tiny-sdxl") / "unet" / "config.json").read_text())
    unet = UNet2DConditionModel.from_config(cfg)
    assert shared_prefix.text_free_prefix(unet) == [unet.conv_in]


def test_active_is_per_thread_and_restored():
    import threading

    seen = []
    with shared_prefix.active():
        th = threading.Thread(target=lambda: seen.append(getattr(shared_prefix._state, "on", False)))
        th.start()
        th.join()
        assert shared_prefix._state.on
    assert seen == [False] and not shared_prefix._state.on
