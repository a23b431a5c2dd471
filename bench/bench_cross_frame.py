"""Benchmark: the cost of cross-frame attention per UNet call, as a ratio to stock attention.

The SD 1.5-architecture UNet with random weights (the real FLOPs; built from the bundled config,
no download) at 256x256 (latent 32x32), one guided call (uncond + cond, batch 2). For each mode
the references are recorded once from another frame's call, then the same call is timed with
the stock processors and with each mode; runs alternate and the fastest of each is kept.
Also printed: the memory a reference frame keeps per UNet call (its self-attention inputs in
the model's dtype), which scales with the pixel count and the number of calls per frame.

    python bench/bench_cross_frame.py                 # last line: "anchor cost: N.NNx"
    python bench/bench_cross_frame.py --size 512 --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import device_options, start  # noqa: E402  (bench/ on the path first)


def sd15_unet(device: torch.device, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel

    from vid2vid.diffusion.loading import config_folder

    cfg = json.loads((config_folder("sd1") / "unet" / "config.json").read_text())
    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(cfg).to(device, dtype).eval().requires_grad_(False)


def built_unet(args, device: torch.device, dtype: torch.dtype):
    """(the SD 1.5-architecture UNet, the latent side for args.size, a seeded generator), said on the console."""
    t0 = time.perf_counter()
    unet = sd15_unet(device, dtype)
    print(f"SD 1.5-architecture UNet with random weights built in {time.perf_counter() - t0:.0f} s; "
          f"{args.size}x{args.size}, one guided call (batch 2)")
    return unet, args.size // 8, torch.Generator().manual_seed(0)


def timed(fn, cuda: bool) -> float:
    """Seconds one call of fn() takes (CUDA synchronised around it)."""
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def timed_call(unet, x, t, emb, cuda: bool) -> float:
    return timed(lambda: unet(x, t, encoder_hidden_states=emb, return_dict=False), cuda)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    device_options(ap, size=256)
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per case (fastest kept)")
    ap.add_argument("--bank", type=int, default=4)
    args = ap.parse_args()
    device, dtype = start(args)
    from vid2vid.diffusion import crossframe as xf

    cuda = device.type == "cuda"
    unet, side, g = built_unet(args, device, dtype)
    x = torch.randn(2, 4, side, side, generator=g).to(device, dtype)
    ref_x = torch.randn(2, 4, side, side, generator=g).to(device, dtype)
    t = torch.full((2,), 700.0, device=device)
    emb = torch.randn(2, 77, 768, generator=g).to(device, dtype)

    cases = [("stock", None, "up", 0), ("anchor", "anchor", "up", 1), ("anchor-prev", "anchor-prev", "up", 2),
             (f"bank {args.bank}", "bank", "up", args.bank), ("anchor, all blocks", "anchor", "all", 1)]
    best: dict[str, float] = {}
    memory: dict[str, int] = {}
    with torch.no_grad():
        timed_call(unet, x, t, emb, cuda)                   # warm up
        for r in range(args.repeat):
            order = cases if r % 2 == 0 else cases[::-1]
            for name, mode, blocks, nref in order:
                if mode is None:
                    sec = timed_call(unet, x, t, emb, cuda)
                else:
                    with xf.CrossFrame(unet, mode, blocks, max(1, nref)):
                        rec = xf.Recording()
                        with xf.attending([], rec):
                            unet(ref_x, t, encoder_hidden_states=emb, return_dict=False)
                        memory[blocks] = rec.nbytes()
                        with xf.attending([rec] * nref):
                            sec = timed_call(unet, x, t, emb, cuda)
                best[name] = min(best.get(name, float("inf")), sec)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
                  + f" (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\n{'mode':>20} {'s/call':>8} {'ratio':>7}")
    for name, *_ in cases:
        print(f"{name:>20} {best[name]:>8.3f} {best[name] / best['stock']:>6.2f}x")
    for blocks, nbytes in memory.items():
        print(f"kept per reference frame and UNet call ({blocks} blocks): {nbytes / 2 ** 20:.1f} MB "
              f"in {dtype} (x calls per frame; x4 at twice the side)")
    print(f"anchor cost: {best['anchor'] / best['stock']:.2f}x")


if __name__ == "__main__":
    main()
