"""Benchmark: the fast path against the seed's defaults, per frame, on the SD 1.5-size architecture.

Both sides run our img2img engine on the same frames with random weights (the real FLOPs of SD
1.5's UNet, VAE and text encoder, built from the bundled configs; no download):
  defaults: euler, 20 steps at denoise 0.75 (the truncated schedule: 16 sampler steps), CFG 7
            (uncond + cond in one batch), the model's full VAE;
  fast:     the fast preset (lcm, 4 steps = 4 UNet evaluations, CFG 1 = one batch half) and a
            TAESD-size tiny VAE (diffusers AutoencoderTiny, random weights).
Prints seconds per frame and the part breakdown (UNet, VAE encode/decode, rest) for each side,
frames per second, and as its last line `speed-up: N.NNx` (defaults / fast, seconds per frame).
Prompts are encoded once per engine, before the timed frames, as the stage does.

    python bench/bench_fast.py                           # CPU, 256x256, 1 frame per side
    python bench/bench_fast.py --device cuda --size 512 --frames 32 --batch 8   # the GPU check

No PyAV anywhere (the frames are made in code), so it runs where only torch, diffusers,
transformers and safetensors are installed.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "(masterpiece:1.3), best quality, a girl dancing in a room"
NEGATIVE = "lowres, bad hands, blurry"


def frames(n: int, size: int) -> list[np.ndarray]:
    """n float32 RGB canvases in [0, 1]: a gradient with a square moving right."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for i in range(n):
        img = np.stack([xx, yy, 0.5 + 0 * xx], axis=2)
        a = size // 8 + 4 * i
        img[size // 4:size // 2, a:a + size // 4] = (0.9, 0.3, 0.2)
        out.append(img.astype(np.float32))
    return out


def tiny_vae(device: torch.device, dtype: torch.dtype):
    """A TAESD-size AutoencoderTiny (64 channels, 1/3/3/3 encoder and 3/3/3/1 decoder blocks), random weights."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(1)
    vae = AutoencoderTiny().to(device).eval().requires_grad_(False)
    return vae if dtype == torch.float32 else vae.to(dtype)


def run_side(name: str, model, settings, canvases: list[np.ndarray], batch: int, warmup: int) -> dict:
    """Repaint `canvases` in batches with one engine; seconds per frame and per part."""
    from vid2vid.diffusion.engine import Img2ImgEngine

    engine = Img2ImgEngine(model, settings)
    for _ in range(warmup):                   # compilation, cuDNN autotuning, allocator warm-up
        engine.repaint(canvases[:batch])
    engine.timings.seconds.clear()
    cuda = engine.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(canvases), batch):
        engine.repaint(canvases[i:i + batch])
    if cuda:
        torch.cuda.synchronize()
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(canvases)
    parts = {k: v / n for k, v in engine.timings.seconds.items()}
    unet = parts.get("unet", 0.0)
    vae = parts.get("vae_encode", 0.0) + parts.get("vae_decode", 0.0)
    d = engine.describe()
    print(f"  {name}: {total / n:.3f} s/frame ({n / total:.2f} frames/s), {d['model_calls_per_frame']} UNet "
          f"evaluations x {d['unet_batch_halves']} batch half(s) per frame, real sigmas "
          f"{[round(s, 3) for s in d['real_sigmas']]}", flush=True)
    return {"s": total / n, "cpu": cpu / n, "unet": unet, "vae": vae, "vae_encode": parts.get("vae_encode", 0.0),
            "vae_decode": parts.get("vae_decode", 0.0), "rest": total / n - unet - vae}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--size", type=int, default=256, help="canvas side (512 on a GPU)")
    ap.add_argument("--frames", type=int, default=1, help="timed frames per side")
    ap.add_argument("--batch", type=int, default=1, help="frames per engine call")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="auto", help="auto (float16 on CUDA), float32, float16")
    ap.add_argument("--warmup", type=int, default=-1, help="untimed batches first (default: 1 on CUDA, 0 on CPU)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet and VAE (both sides)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_img2img import sd15_random_model  # one place that builds the SD 1.5-size model
    from vid2vid.config import Img2ImgSettings
    from vid2vid.config.presets import PRESETS
    from vid2vid.core import devices

    device = devices.pick(args.device)
    dtype = devices.resolve_dtype(args.dtype, device)
    warmup = args.warmup if args.warmup >= 0 else (1 if device.type == "cuda" else 0)
    print(f"device {device}, dtype {dtype}, {args.size}x{args.size}, {args.frames} frame(s) per side, batch "
          f"{args.batch}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cpus", flush=True)
    t0 = time.perf_counter()
    model = sd15_random_model(device, dtype)
    fast_model = dataclasses.replace(model, vae=tiny_vae(device, dtype))
    print(f"(SD 1.5-size random model and TAESD-size tiny VAE built in {time.perf_counter() - t0:.0f} s)", flush=True)

    common = dict(model="sd15-random", prompt=PROMPT, negative=NEGATIVE, width=args.size, height=args.size,
                  device=str(device), batch_size=args.batch, compile=args.compile)
    seed_defaults = Img2ImgSettings(**common)                          # euler, 20 steps, denoise 0.75, CFG 7
    fast = dataclasses.replace(Img2ImgSettings(**common), **PRESETS["fast"]["img2img"])
    canvases = frames(args.frames, args.size)
    results = {"defaults": run_side("seed defaults", model, seed_defaults, canvases, args.batch, warmup),
               "fast": run_side("fast preset + tiny VAE", fast_model, fast, canvases, args.batch, warmup)}

    print(f"\n{'':>10} {'s/frame':>9} {'frames/s':>9} {'cpu s/fr':>9} {'UNet':>8} {'VAE enc':>8} {'VAE dec':>8} "
          f"{'rest':>8}   (seconds per frame)")
    for name, r in results.items():
        print(f"{name:>10} {r['s']:>9.3f} {1 / r['s']:>9.2f} {r['cpu']:>9.3f} {r['unet']:>8.3f} "
              f"{r['vae_encode']:>8.3f} "
              f"{r['vae_decode']:>8.3f} {r['rest']:>8.3f}")
    d, f = results["defaults"], results["fast"]
    print(f"UNet {d['unet'] / max(f['unet'], 1e-9):.2f}x, VAE {d['vae'] / max(f['vae'], 1e-9):.2f}x less per frame")
    if device.type == "cpu":
        print(f"CPU time per frame: {d['cpu'] / f['cpu']:.2f}x less (steadier than wall clock on a shared machine)")
    print(f"speed-up: {d['s'] / f['s']:.2f}x")


if __name__ == "__main__":
    main()
