"""Benchmark: the cost of an IP-Adapter per UNet call, as a ratio to the same call without it.

The SD 1.5-architecture UNet with random weights (the real FLOPs; built from the bundled config,
no download) at 256x256 (latent 32x32), one guided call (uncond + cond, batch 2) through our
denoiser (`diffusion/denoiser.py`). The adapter has ip-adapter_sd15's shapes (a 1024-wide ViT-H
embedding projected to 4 tokens, a key and a value projection on each of the 16 cross-attention
layers), random weights, installed by `IPGuide` as a run installs it; the image tokens are
projected once per run, so a call pays only for the extra keys and values and their attention.
The plus adapters' 16 tokens are timed too. Runs alternate and the fastest of each case is kept.

    flock /tmp/heavy.lock python bench/bench_ip_adapter.py     # last line: "ip-adapter cost: N.NNx"
    python bench/bench_ip_adapter.py --size 512 --device cuda
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_cross_frame import built_unet, timed  # noqa: E402  (bench/ on the path first)
from machine import device_options, start  # noqa: E402


def sd15_adapter(unet, embed_width: int = 1024):
    """An AdapterFile with ip-adapter_sd15's shapes for `unet`, random weights (seeded)."""
    from vid2vid.diffusion.ip_adapter import AdapterFile, cross_attention_layers

    g = torch.Generator().manual_seed(1)
    width = unet.config.cross_attention_dim
    proj = {"proj.weight": torch.randn(4 * width, embed_width, generator=g) / embed_width ** 0.5,
            "proj.bias": torch.zeros(4 * width), "norm.weight": torch.ones(width), "norm.bias": torch.zeros(width)}
    layers = {}
    for n, name in enumerate(cross_attention_layers(unet)):
        hidden = unet.get_submodule(name.rsplit(".", 1)[0]).to_k.out_features
        for what in ("to_k_ip", "to_v_ip"):
            layers[f"{2 * n + 1}.{what}.weight"] = torch.randn(hidden, width, generator=g) / width ** 0.5
    return AdapterFile(Path("ip-adapter_sd15 (random)"), proj, layers, "embeds", embed_width, width)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    device_options(ap, size=256)
    ap.add_argument("--repeat", type=int, default=4, help="timed calls per case (fastest kept)")
    args = ap.parse_args()
    device, dtype = start(args)
    from vid2vid.diffusion.denoiser import CFGDenoiser
    from vid2vid.diffusion.ip_attention import IPGuide, IPUnit
    from vid2vid.diffusion.schedules import sd_training_sigmas

    cuda = device.type == "cuda"
    unet, side, g = built_unet(args, device, dtype)
    x = torch.randn(1, 4, side, side, generator=g).to(device)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    training = np.asarray(sd_training_sigmas(), dtype=np.float64)
    real = np.array([2.0, 1.0, 0.0])
    sigma = torch.tensor([2.0], device=device)
    plain = CFGDenoiser(unet, training, "epsilon", cond, uncond, 7.0)
    adapter = sd15_adapter(unet)
    embeds = torch.randn(1, 1024, generator=g)
    guide = IPGuide([IPUnit(adapter, embeds, torch.zeros_like(embeds))], real, unet)
    with_ip = CFGDenoiser(unet, training, "epsilon", cond, uncond, 7.0)
    with_ip.ip = guide
    plus = CFGDenoiser(unet, training, "epsilon", cond, uncond, 7.0)
    plus_guide = IPGuide.__new__(IPGuide)          # the same layers, 16 image tokens (the plus adapters' count)
    plus_guide.__dict__.update(guide.__dict__)
    plus_guide.tokens = [tuple(torch.randn(1, 16, 768, generator=g).to(device, dtype) for _ in range(2))]
    plus.ip = plus_guide
    cases = {"no adapter": plain, "ip-adapter (4 tokens)": with_ip, "plus (16 tokens)": plus}
    best: dict[str, float] = {}
    with torch.no_grad():
        for d in cases.values():
            d.model_output(x, sigma)                         # warm up
        for r in range(args.repeat):
            names = list(cases) if r % 2 == 0 else list(cases)[::-1]
            for name in names:
                sec = timed(lambda: cases[name].model_output(x, sigma), cuda)
                best[name] = min(best.get(name, float("inf")), sec)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
                  + f" (load average {os.getloadavg()[0]:.1f})", flush=True)
    guide.close()
    print(f"\n{'case':>22} {'s/call':>8} {'ratio':>7}")
    for name in cases:
        print(f"{name:>22} {best[name]:>8.3f} {best[name] / best['no adapter']:>6.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} (a shared machine: ratios, not seconds, are the figure)")
    print(f"ip-adapter cost: {best['ip-adapter (4 tokens)'] / best['no adapter']:.2f}x")


if __name__ == "__main__":
    main()
