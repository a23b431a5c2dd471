"""Benchmark: what a motion module costs per frame, and what a long clip costs in memory.

SD 1.5-size UNet and a v2-size motion module (diffusers' MotionAdapter defaults with the mid
block: 320/640/1280/1280, two layers per block, 32 frames), random weights (the real FLOPs),
built from the bundled configs; a TAESD-size tiny VAE for encode/decode on both sides, so the
figures are about the painting, not the VAE. One sampling step by default (enough for ratios).

  motion: the windowed painter's path (`painting/windows.py`): frames encoded one at a time,
          windows of 16 frames overlapping by 4 (64 frames: 5 windows, 80 frame evaluations),
          each window one UNet batch with the motion layers on, blended, decoded frame by frame;
  image:  the same engine without motion layers on the first 16 frames in one batch of 16 (the same
          UNet batch as a window; a frame's cost does not depend on the clip's length).
Seconds per frame of the 64-frame clip for both; peak resident memory of separate processes
painting 16, 32 and 64 frames with the motion module (each process builds its own model; the
weights are most of it). Last line: `motion cost: N.NNx, memory 64/16 frames: N.NNx`.

    flock /tmp/heavy.lock python bench/bench_motion.py             # CPU, 256x256 (about 10 min)
    python bench/bench_motion.py --device cuda --size 512          # the GPU check
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_fast import frames, tiny_vae  # noqa: E402


def build(device, dtype):
    """The SD 1.5-size random model with a tiny VAE, and a v2-size random motion module."""
    import dataclasses

    from diffusers import MotionAdapter

    from bench_img2img import sd15_random_model

    model = sd15_random_model(device, dtype)
    model = dataclasses.replace(model, vae=tiny_vae(device, dtype))
    torch.manual_seed(2)
    adapter = MotionAdapter(use_motion_mid_block=True, motion_max_seq_length=32).eval().requires_grad_(False)
    return model, adapter


def child(args) -> dict:
    """One run in this process: paint `args.frames` frames with the motion module or the image engine."""
    from vid2vid.config import Img2ImgSettings
    from vid2vid.core import devices
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.motion import MotionLayers
    from vid2vid.diffusion.motion_windows import EngineWindows, sampler_step
    from vid2vid.painting import windows as W

    torch.set_num_threads(args.threads)
    device = devices.pick(args.device)
    dtype = devices.resolve_dtype("auto", device)
    t0 = time.perf_counter()
    model, adapter = build(device, dtype)
    built = time.perf_counter() - t0
    s = Img2ImgSettings(model="sd15-random", prompt="a dancer", negative="blurry", width=args.size,
                        height=args.size, device=str(device), cfg=args.cfg, steps=args.steps, denoise=1.0,
                        sampler="euler")
    engine = Img2ImgEngine(model, s)
    canvases = frames(args.frames, args.size)
    out = []
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if args.mode == "image":
        for i in range(0, args.frames, 16):
            out += engine.repaint(canvases[i:i + 16])
    else:
        layers = MotionLayers(model.unet, adapter)
        sampling = W.ClipSampling(args.frames, (4, args.size // 8, args.size // 8),
                                  torch.tensor(engine.real_sigmas, dtype=torch.float32), sampler_step(engine),
                                  s.seed, 16, 4, "pyramid", device=device)
        W.paint_clip(sampling, W.LocalSpread(EngineWindows(engine, layers)),
                     lambda i: engine.encode([canvases[i]]), lambda z: engine.decode(z)[0],
                     lambda i, im: out.append(np.asarray(im).mean()))
    seconds = time.perf_counter() - t0
    return {"mode": args.mode, "frames": args.frames, "seconds": seconds, "per_frame": seconds / args.frames,
            "unet": engine.timings.seconds.get("unet", 0.0), "build": built,
            "parts": {k: round(v, 2) for k, v in engine.timings.seconds.items()},
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_before": base_rss * 1024}


def run_child(mode: str, n: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--frames", str(n), "--size", str(args.size),
           "--threads", str(args.threads), "--device", args.device, "--cfg", str(args.cfg), "--steps",
           str(args.steps)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{mode} {n} frames failed:\n{res.stderr[-3000:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {mode:>6} {n:>3} frames: {r['per_frame']:.3f} s/frame (UNet {r['unet']:.1f} s of {r['seconds']:.1f} s), "
          f"peak RSS {r['peak_rss'] / 2**30:.2f} GiB (model built: {r['rss_before'] / 2**30:.2f} GiB, "
          f"{r['build']:.0f} s), load {os.getloadavg()[0]:.1f}; seconds by part {r['parts']}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cfg", type=float, default=1.0, help="CFG (1: one batch half, as AnimateLCM runs)")
    ap.add_argument("--steps", type=int, default=1, help="sampling steps (denoise 1.0)")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--image-frames", type=int, default=16,
                    help="frames the image side paints (its cost per frame does not depend on the clip length)")
    ap.add_argument("--child", choices=("motion", "image"), dest="mode")
    args = ap.parse_args()
    if args.mode:
        sys.path.insert(0, str(ROOT / "src"))
        print(json.dumps(child(args)))
        return
    print(f"{args.size}x{args.size}, {args.device}, torch threads {args.threads}, CFG {args.cfg:g}, "
          f"{args.steps} step(s), context 16 overlap 4, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cpus", flush=True)
    motion = run_child("motion", args.frames, args)
    image = run_child("image", args.image_frames, args)
    mem = {n: run_child("motion", n, args)["peak_rss"] for n in (16, 32)}
    mem[args.frames] = motion["peak_rss"]
    unet_ratio = motion["unet"] / max(image["unet"], 1e-9)
    print(f"\nper frame: motion {motion['per_frame']:.3f} s, image {image['per_frame']:.3f} s; UNet time "
          f"{unet_ratio:.2f}x; peak RSS 16/32/{args.frames} frames: "
          + " / ".join(f"{mem[n] / 2**30:.2f} GiB" for n in sorted(mem)))
    print(f"motion cost: {motion['per_frame'] / image['per_frame']:.2f}x, memory {args.frames}/16 frames: "
          f"{mem[args.frames] / mem[16]:.2f}x")


if __name__ == "__main__":
    main()
