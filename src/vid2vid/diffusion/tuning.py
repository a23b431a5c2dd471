"""GPU tuning of a loaded model: channels-last weights, SDPA attention, optional torch.compile.

`prepare(model, compile=False)` is called by the engine for every run and does its work once per
model (marked on the UNet):
- on CUDA, the UNet and VAE weights go channels-last (cuDNN's convolutions are faster in NHWC,
  above all in float16); on a CPU they stay as loaded (the engine already gives the VAE
  channels-last inputs there, where oneDNN gains; the UNet gained nothing on a CPU);
- attention: diffusers' default processor on torch 2 is `AttnProcessor2_0`, which calls
  `scaled_dot_product_attention` (flash / memory-efficient kernels on CUDA). Processors are
  left as they are (cross-frame attention installs its own); `sdpa_processors` reports them;
- `compile=True`: `torch.compile` of the UNet and of the VAE's encoder and decoder, in place
  (`Module.compile`), so the modules keep their type, config and attributes. The first calls
  at each new shape are slow (compilation); it pays on long runs on a GPU.
float16 comes from the dtype setting (auto = float16 on CUDA) and batched frames from the batch
size; both are the loader's and the stage's business.
"""
from __future__ import annotations

import torch

MARK = "_vid2vid_tuned"


def sdpa_processors(unet) -> tuple[int, int]:
    """(processors that use SDPA, all attention processors) of a diffusers UNet."""
    procs = getattr(unet, "attn_processors", {}) or {}
    sdpa = sum(1 for p in procs.values() if "2_0" in type(p).__name__ or "SDPA" in type(p).__name__.upper())
    return sdpa, len(procs)


def prepare(model, compile: bool = False) -> dict:
    """Tune `model` (a LoadedModel) for its device once; returns what was done."""
    unet, vae = model.unet, model.vae
    done = getattr(unet, MARK, None)
    if done is not None and (done["compile"] or not compile):
        return done                # once compiled, a module stays compiled
    device = torch.device(getattr(model, "device", "cpu"))
    info: dict[str, object] = {"channels_last": False, "compile": False}
    if device.type == "cuda":
        unet.to(memory_format=torch.channels_last)
        vae.to(memory_format=torch.channels_last)
        info["channels_last"] = True
    if compile:
        unet.compile()
        for part in (getattr(vae, "encoder", None), getattr(vae, "decoder", None)):
            if part is not None:
                part.compile()
        info["compile"] = True
    info["sdpa_attention"], info["attention_processors"] = sdpa_processors(unet)
    try:
        setattr(unet, MARK, info)
    except AttributeError:     # a stand-in module without attributes (tests); tuning is then redone
        pass
    return info
