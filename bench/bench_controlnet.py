"""Benchmark: what one ControlNet costs per guided UNet call, as a ratio to the UNet alone.

On the SD 1.5 architecture with random weights (the FLOPs are real): the UNet from the bundled
sd1 config and a ControlNet made from it (`ControlNetModel.from_unet`, the shape of
control_v11p_sd15_*, 361M parameters) at 256x256 (a 32x32 latent), classifier-free guidance
(uncond and cond in one batch of 2, as the img2img engine runs it). Each side calls our
denoiser, `CFGDenoiser(x, sigma)` without and with a ControlNet `Conditioning` (window 0..1),
alternating, `--repeat` times; the fastest call of each is kept. Both networks together take
about 5 GB in float32, more than a shared CPU machine may have free: by default the guided UNet
call is timed first, then (UNet freed) the ControlNet's part of the same call, and the cost is
their sum over the UNet's; `--together` times the real call with both loaded.

    python bench/bench_controlnet.py                    # CPU, 2 threads, 256x256
    python bench/bench_controlnet.py --size 512 --device cuda

Last line: `controlnet cost: N.NNx` = (UNet + ControlNet call) / (UNet call).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import device_options, start  # noqa: E402  (bench/ on the path first)


def build_unet(device: torch.device, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel

    from vid2vid.diffusion.tiny import bundled_config_dir

    cfg = json.loads((bundled_config_dir("sd1") / "unet" / "config.json").read_text())
    torch.manual_seed(0)
    return _ready(UNet2DConditionModel.from_config(cfg), device, dtype)


def build_controlnet(device: torch.device, dtype: torch.dtype):
    from diffusers import ControlNetModel

    from vid2vid.diffusion.tiny import bundled_config_dir
    from vid2vid.diffusion.tiny_controlnet import reinit_zero_convolutions

    torch.manual_seed(1)
    net = ControlNetModel.from_config(json.loads((bundled_config_dir("controlnet-sd1") / "config.json").read_text()))
    reinit_zero_convolutions(net, 1)               # real residuals (the FLOPs are the same either way)
    return _ready(net, device, dtype)


def _ready(m, device, dtype):
    m.to(device).eval().requires_grad_(False)
    if dtype != torch.float32:
        m.to(dtype)
    return m


def sd1_sigmas() -> np.ndarray:
    from vid2vid.diffusion.loading import alphas_cumprod_from_config
    from vid2vid.diffusion.tiny import bundled_config_dir

    cfg = json.loads((bundled_config_dir("sd1") / "scheduler" / "scheduler_config.json").read_text())
    ac = alphas_cumprod_from_config(cfg)
    return ((1 - ac) / ac).sqrt().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    device_options(ap, size=256)
    ap.add_argument("--repeat", type=int, default=3, help="calls per side (alternating); the fastest is kept")
    ap.add_argument("--together", action="store_true",
                    help="both networks in memory at once, timing the real call with a ControlNet (about 5 GB "
                         "in float32 on a CPU); default: one at a time, the ControlNet's part timed alone")
    args = ap.parse_args()
    device, dtype = start(args)
    from vid2vid.diffusion import shared_prefix
    from vid2vid.diffusion.controlnet import ControlGuide, ControlUnit
    from vid2vid.diffusion.denoiser import CFGDenoiser, Timings
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    h = w = args.size
    x = torch.randn(1, 4, h // 8, w // 8, generator=g).to(device)
    sigma = torch.tensor([2.0], device=device)
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    real = np.array([4.0, 2.0, 1.0, 0.0])
    timings = Timings(device)
    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    def fastest(fns: dict) -> dict:
        """Each callable once to warm up, then `repeat` alternating rounds; the fastest of each."""
        for fn in fns.values():
            timed(fn)
        best = {k: float("inf") for k in fns}
        for i in range(args.repeat):
            for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
                best[k] = min(best[k], timed(fns[k]))
        return best

    t0 = time.perf_counter()
    unet = build_unet(device, dtype)
    denoiser = CFGDenoiser(unet, sd1_sigmas(), "epsilon", cond, uncond, 7.0, timings)
    if args.together:
        # both networks in memory: the real call with a ControlNet against the call without
        net = build_controlnet(device, dtype)
        print(f"UNet {params(unet):.0f}M and ControlNet {params(net):.0f}M parameters (SD 1.5 architecture, "
              f"random weights), built in {time.perf_counter() - t0:.0f} s")
        control = ControlGuide([ControlUnit(net, 1.0, 0.0, 1.0, "cn")], real, unet, timings).bind([[image]])
        best = fastest({"unet": lambda: denoiser(x, sigma), "both": lambda: denoiser(x, sigma, control)})
        plain, steered = best["unet"], best["both"]
        net_alone = None
    else:
        # one network at a time (about 5 GB for both in float32 did not fit beside the other jobs
        # here): the guided call without ControlNet, then the ControlNet's part of the call
        # (`Conditioning.residuals` on the same batch of 2, with the shared text-free start)
        print(f"UNet {params(unet):.0f}M parameters (SD 1.5 architecture, random weights), "
              f"built in {time.perf_counter() - t0:.0f} s")
        plain = fastest({"unet": lambda: denoiser(x, sigma)})["unet"]
        del denoiser, unet
        gc.collect()
        net = build_controlnet(device, dtype)
        print(f"ControlNet {params(net):.0f}M parameters (the shape of control_v11p_sd15_*), random weights")
        control = ControlGuide([ControlUnit(net, 1.0, 0.0, 1.0, "cn")], real, None, timings).bind([[image]])
        z = torch.cat([x * (sigma ** 2 + 1).rsqrt()] * 2)
        t = torch.full((2,), 500.0, device=device)
        emb = torch.cat([uncond, cond]).to(device)

        def residuals():
            with shared_prefix.active():
                control.residuals(z, t, emb, None, sigma)

        net_alone = fastest({"cn": residuals})["cn"]
        steered = plain + net_alone
    print(f"\nguided denoiser call at {w}x{h} (batch 2: uncond + cond), fastest of {args.repeat}:")
    print(f"  UNet alone            {plain:8.3f} s")
    if net_alone is None:
        print(f"  UNet + ControlNet     {steered:8.3f} s")
    else:
        print(f"  ControlNet part       {net_alone:8.3f} s   (ControlNet / UNet {net_alone / plain:.2f})")
        print(f"  UNet + ControlNet     {steered:8.3f} s   (sum of the two parts)")
    print(f"controlnet cost: {steered / plain:.2f}x")


if __name__ == "__main__":
    main()
