"""A tiny ControlNet that matches the tiny SD model, for tests and the demo (`make-tiny-model --controlnet`).

Built like a real ControlNet: `ControlNetModel.from_unet` on the tiny model's UNet (config
`tiny-controlnet-sd1` or `tiny-controlnet-sdxl`, bundled in `vid2vid/data/configs/`), copying
its encoder weights. A fresh ControlNet's output convolutions (`controlnet_down_blocks`,
`controlnet_mid_block`) and the last convolution on the control image
(`controlnet_cond_embedding.conv_out`) are zero, so it changes nothing and no test could fail:
here they get seeded random weights (PyTorch's default convolution init), so that the control
image and the ControlNet really change the output.

Two layouts, as ControlNets are shared:
- a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`);
- one original-layout file (`control_model.*` names, as lllyasviel's control_v11p_sd15_*.pth),
  `DIR/tiny-controlnet-sd1.safetensors` or `.pth`, whose `vid2vid_config` metadata (safetensors)
  names its bundled config. SDXL ControlNets are shared in diffusers' layout, so the tiny SDXL
  single file keeps diffusers' names.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from vid2vid.core.errors import BadInput

CONFIGS = {"tiny-sd1": "tiny-controlnet-sd1", "tiny-sdxl": "tiny-controlnet-sdxl"}


def build_tiny_controlnet(seed: int = 0, config: str = "tiny-sd1"):
    """The tiny ControlNet for the tiny model family `config` ("tiny-sd1" or "tiny-sdxl"), zero convs re-initialised."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from vid2vid.diffusion.tiny import bundled_config_dir

    if config not in CONFIGS:
        raise BadInput(f"no tiny ControlNet for '{config}'; use one of: {', '.join(CONFIGS)}")
    cn_cfg = json.loads((bundled_config_dir(CONFIGS[config]) / "config.json").read_text(encoding="utf-8"))
    unet_cfg = json.loads((bundled_config_dir(config) / "unet" / "config.json").read_text(encoding="utf-8"))
    torch.manual_seed(seed)                          # the tiny model's UNet is the first thing built from seed
    unet = UNet2DConditionModel.from_config(unet_cfg)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(
        cn_cfg["conditioning_embedding_out_channels"]))
    reinit_zero_convolutions(net, seed + 1)
    return net.eval()


def reinit_zero_convolutions(net, seed: int) -> None:
    """Give the zero-initialised convolutions of a ControlNet seeded random weights (default conv init).

    The control image passes through the eight convolutions of `controlnet_cond_embedding`; with
    default weights and biases the biases' constant drowns the image (two different images gave
    embeddings 0.1 % apart). There every convolution gets He-normal weights and zero biases, and
    the last one is scaled so that its output on a random image has the standard deviation of
    the latent's features after conv_in (0.5): the control image then clearly matters.
    """
    torch.manual_seed(seed)
    for conv in list(net.controlnet_down_blocks) + [net.controlnet_mid_block]:
        conv.reset_parameters()
    emb = net.controlnet_cond_embedding
    probe = torch.rand(1, net.config.conditioning_channels, 64, 64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for conv in [emb.conv_in, *emb.blocks, emb.conv_out]:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        emb.conv_out.weight.mul_(0.5 / float(emb(probe).std()))


def original_layout(net) -> dict[str, torch.Tensor]:
    """A ControlNet's weights under the original (lllyasviel / A1111) `control_model.*` names."""
    from vid2vid.diffusion.tiny import unet_key_to_original

    cfg = net.config
    out: dict[str, torch.Tensor] = {}
    hint_blocks = len(net.controlnet_cond_embedding.blocks)
    for key, value in net.state_dict().items():
        head, _, tail = key.rpartition(".")
        m = re.match(r"controlnet_down_blocks\.(\d+)$", head)
        if m:
            name = f"zero_convs.{m.group(1)}.0.{tail}"
        elif head == "controlnet_mid_block":
            name = f"middle_block_out.0.{tail}"
        elif head == "controlnet_cond_embedding.conv_in":
            name = f"input_hint_block.0.{tail}"
        elif head == "controlnet_cond_embedding.conv_out":
            name = f"input_hint_block.{2 * (hint_blocks + 1)}.{tail}"
        elif head.startswith("controlnet_cond_embedding.blocks."):
            name = f"input_hint_block.{2 * (int(head.split('.')[-1]) + 1)}.{tail}"
        elif head.startswith("add_embedding.linear_"):
            name = f"label_emb.0.{ {'1': 0, '2': 2}[head[-1]] }.{tail}"
        else:
            name = unet_key_to_original(key, cfg.layers_per_block, []).removeprefix("model.diffusion_model.")
        out["control_model." + name] = value
    if len(out) != len(net.state_dict()):
        raise AssertionError("two ControlNet keys got the same original name")
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def make_tiny_controlnet(dir: str | Path, single_file: bool = False, seed: int = 0, config: str = "tiny-sd1",
                         suffix: str = ".safetensors") -> Path:
    """Write the tiny ControlNet under `dir`; returns the folder, or the single file (`suffix` .safetensors or .pth)."""
    net = build_tiny_controlnet(seed, config)
    target = Path(dir)
    if not single_file:
        if target.exists() and not target.is_dir():
            raise BadInput(f"{target} exists and is not a folder; pick another path for the tiny ControlNet")
        net.save_pretrained(str(target), safe_serialization=True)
        return target
    name = CONFIGS[config]
    path = target if target.suffix in (".safetensors", ".pth") else target / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = original_layout(net) if config == "tiny-sd1" else \
        {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".pth":
        if config != "tiny-sd1":
            raise BadInput("a .pth tiny ControlNet exists for tiny-sd1 only (SDXL ControlNets come as .safetensors)")
        torch.save(state, str(tmp))                  # no metadata in a .pth: the loader tells SD 1.x by its shapes
    else:
        from safetensors.torch import save_file

        save_file(state, str(tmp), metadata={"vid2vid_config": name, "format": "pt"})
    tmp.replace(path)
    return path
