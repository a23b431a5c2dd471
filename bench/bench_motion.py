"""Benchmark: what a motion module costs per frame, and what a long clip costs in memory.

SD 1.5-size UNet and a v2-size motion module (diffusers' MotionAdapter defaults with the mid
block: 320/640/1280/1280, two layers per block, 32 frames), random weights (the real FLOPs),
built once from the bundled configs; a TAESD-size tiny VAE for encode/decode on both sides, so
the figures are about the painting, not the VAE. One sampling step by default (enough for ratios).

  image:  the engine without motion layers on 16 frames in one batch of 16 (a window's batch; a
          frame's cost does not depend on the clip's length);
  motion: the windowed painter's path (`painting/windows.paint_clip`): frames encoded one at a
          time, windows of 16 frames overlapping by 4 (64 frames: 5 windows, 80 frame
          evaluations), each window one UNet batch with the motion layers on, blended, decoded
          frame by frame; run on 16, 32 and 64 frames.
Memory: resident memory sampled every 5 ms during each run; the figure is the process's peak
(weights included: what a user's machine must hold), with the growth over the built model beside
it. Freed memory is handed back to the system between runs (`malloc_trim`), so each run's growth
is its own. Last line: `motion cost: N.NNx, memory 64/16 frames: N.NNx` (seconds per frame of the
64-frame motion run over the image run's; peak memory of the 64-frame run over the 16-frame run's).

    flock /tmp/heavy.lock python bench/bench_motion.py             # CPU, 256x256
    python bench/bench_motion.py --device cuda --size 512          # the GPU check

`--accel` measures the UNet accelerators on the motion path instead: one window of `--accel-frames`
frames (16) over `--accel-steps` steps (4, the fast preset's count), painted with no accelerator,
`cache:3` and `tome:0.5 cache:3`, side by side in one run (s/frame, UNet seconds, this process's CPU
seconds, full / shallow UNet calls, ratios over no accelerator); last line
`motion accel speed-up: cache:3 N.NNx, tome:0.5 cache:3 N.NNx`.

    flock /tmp/heavy.lock python bench/bench_motion.py --accel     # CPU, 256x256
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))
from bench_fast import frames, tiny_vae  # noqa: E402
from bench_img2img import PeakMemory, sd15_random_model  # noqa: E402


def build(device, dtype, tiny: bool = False):
    """The SD 1.5-size random model with a tiny VAE, and a v2-size random motion module (with `tiny`: the
    tiny test model and motion module, to check the script itself in seconds)."""
    from diffusers import MotionAdapter

    if tiny:
        import tempfile

        from vid2vid.diffusion.loading import load_model
        from vid2vid.diffusion.tiny import make_tiny_model
        from vid2vid.diffusion.tiny_motion import build_tiny_motion_module

        folder = make_tiny_model(Path(tempfile.mkdtemp(prefix="bench-motion-")) / "tiny")
        return load_model(str(folder), device=str(device), dtype="float32"), build_tiny_motion_module()

    model = dataclasses.replace(sd15_random_model(device, dtype), vae=tiny_vae(device, dtype))
    torch.manual_seed(2)
    adapter = MotionAdapter(use_motion_mid_block=True, motion_max_seq_length=32).eval().requires_grad_(False)
    return model, adapter


def trim() -> None:
    """Hand freed heap memory back to the system (glibc), so the next run's growth is its own."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def image_run(engine, canvases) -> float:
    t0 = time.perf_counter()
    engine.repaint(canvases)
    return time.perf_counter() - t0


def motion_run(engine, layers, canvases, device, cycle: int = 1) -> float:
    from vid2vid.diffusion.motion_windows import EngineWindows, sampler_step
    from vid2vid.painting import windows as W

    s, n = engine.settings, len(canvases)
    sigmas = torch.tensor(engine.real_sigmas, dtype=torch.float32)
    sampling = W.ClipSampling(n, (4, s.height // 8, s.width // 8), sigmas, sampler_step(engine), s.seed, 16, 4,
                              "pyramid", device=device, cycle=cycle)
    written = []
    t0 = time.perf_counter()
    W.paint_clip(sampling, W.LocalSpread(EngineWindows(engine, layers)), lambda i: engine.encode([canvases[i]]),
                 lambda z: engine.decode(z)[0], lambda i, im: written.append(float(np.asarray(im).mean())))
    assert len(written) == n
    return time.perf_counter() - t0


ACCEL_SIDES = ((), ("cache:3",), ("tome:0.5", "cache:3"))


def accel_side(model, layers, settings, accel, canvases, device) -> dict:
    """One accelerator setting on the motion path: wall, CPU and UNet seconds per frame, deep-block calls."""
    from vid2vid.diffusion import deepcache
    from vid2vid.diffusion.engine import Img2ImgEngine

    engine = Img2ImgEngine(model, dataclasses.replace(settings, accel=list(accel)))
    before = deepcache.counts(model.unet)
    cpu = time.process_time()
    wall = motion_run(engine, layers, canvases, device, cycle=engine.accel.cache + 1)
    cpu = time.process_time() - cpu
    after = deepcache.counts(model.unet)
    n = len(canvases)
    calls = {k: after[k] - before[k] for k in after}
    return {"name": " ".join(accel) or "no accelerator", "s": wall / n, "cpu": cpu / n,
            "unet": engine.timings.seconds.get("unet", 0.0) / n, **calls}


def accel_table(model, layers, settings, canvases, device) -> None:
    warm = accel_side(model, layers, dataclasses.replace(settings, steps=1), (), canvases, device)
    print(f"  (warm-up, one step without accelerator: {warm['s']:.3f} s/frame)", flush=True)
    rows = []
    for accel in ACCEL_SIDES:
        trim()
        rows.append(accel_side(model, layers, settings, accel, canvases, device))
        r = rows[-1]
        print(f"  {r['name']:<22} {r['s']:8.3f} s/frame  UNet {r['unet']:8.3f} s  cpu {r['cpu']:8.3f} s  "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    base = rows[0]
    print(f"\n{'side':<22} {'s/frame':>8} {'UNet s':>8} {'cpu s':>8} {'full':>5} {'shallow':>7} {'x wall':>7} "
          f"{'x cpu':>6}")
    for r in rows:
        full = r["full"] if r is not base else "-"     # without accelerators the calls are not counted
        shallow = r["shallow"] if r is not base else "-"
        print(f"{r['name']:<22} {r['s']:8.3f} {r['unet']:8.3f} {r['cpu']:8.3f} {full!s:>5} {shallow!s:>7} "
              f"{base['s'] / r['s']:7.2f} {base['cpu'] / r['cpu']:6.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("motion accel speed-up: " + ", ".join(f"{r['name']} {base['s'] / r['s']:.2f}x" for r in rows[1:]))


def measured(name: str, n: int, run, device) -> dict:
    trim()
    base = PeakMemory.rss()
    with PeakMemory(device) as mem:
        seconds = run()
    r = {"seconds": seconds, "per_frame": seconds / n, "peak": base + mem.peak, "growth": mem.peak}
    print(f"  {name:>6} {n:>3} frames: {r['per_frame']:.3f} s/frame ({seconds:.1f} s), peak memory "
          f"{r['peak'] / 2**30:.2f} GiB (+{r['growth'] / 2**20:.0f} MiB over the model), load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cfg", type=float, default=1.0, help="CFG (1: one batch half, as AnimateLCM runs)")
    ap.add_argument("--steps", type=int, default=1, help="sampling steps (denoise 1.0)")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--tiny", action="store_true", help="the tiny test model (checks the script, no figures)")
    ap.add_argument("--accel", action="store_true", help="measure the UNet accelerators on the motion path instead")
    ap.add_argument("--accel-frames", type=int, default=16)
    ap.add_argument("--accel-steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from vid2vid.config import Img2ImgSettings
    from vid2vid.core import devices
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.motion import MotionLayers

    device = devices.pick(args.device)
    dtype = devices.resolve_dtype("auto", device)
    print(f"{args.size}x{args.size}, {device} {dtype}, torch threads {torch.get_num_threads()}, CFG {args.cfg:g}, "
          f"{args.accel_steps if args.accel else args.steps} step(s), context 16 overlap 4, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus", flush=True)
    t0 = time.perf_counter()
    model, adapter = build(device, dtype, args.tiny)
    print(f"(model and motion module built in {time.perf_counter() - t0:.0f} s, {PeakMemory.rss() / 2**30:.2f} GiB)",
          flush=True)
    s = Img2ImgSettings(model="sd15-random", prompt="a dancer", negative="blurry", width=args.size,
                        height=args.size, device=str(device), cfg=args.cfg,
                        steps=args.accel_steps if args.accel else args.steps, denoise=1.0, sampler="euler")
    canvases = frames(args.accel_frames if args.accel else args.frames, args.size)
    layers = MotionLayers(model.unet, adapter)
    if args.accel:
        print(f"UNet accelerators on the motion path: {len(canvases)} frames in one window, {s.steps} steps")
        accel_table(model, layers, s, canvases, device)
        return
    engine = Img2ImgEngine(model, s)
    motion = {16: measured("motion", 16, lambda: motion_run(engine, layers, canvases[:16], device), device)}
    # after the first window: the image run's UNet batch (16 frames) is a window's, its kernels are warm too
    image = measured("image", 16, lambda: image_run(engine, canvases[:16]), device)
    for n in sorted({32, args.frames}):
        motion[n] = measured("motion", n, lambda n=n: motion_run(engine, layers, canvases[:n], device), device)
    big = motion[args.frames]
    print(f"\nper frame: motion ({args.frames} frames) {big['per_frame']:.3f} s, image {image['per_frame']:.3f} s; "
          "peak memory " + " / ".join(f"{n}: {m['peak'] / 2**30:.2f} GiB" for n, m in motion.items()))
    print(f"motion cost: {big['per_frame'] / image['per_frame']:.2f}x, memory {args.frames}/16 frames: "
          f"{big['peak'] / motion[16]['peak']:.2f}x")


if __name__ == "__main__":
    main()
