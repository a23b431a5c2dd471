"""Benchmark: the UNet accelerators (token merging, cached deep features) on top of the fast path.

Every side runs our img2img engine on the same frames, SD 1.5-size random weights (built from the
bundled configs; no download):
  seed defaults:     euler, 20 steps at denoise 0.75 (16 sampler steps), CFG 7, the full VAE;
  fast:              the fast preset (lcm, 4 steps, CFG 1) and a TAESD-size tiny VAE (bench_fast.py);
  fast + tome:R      token merging in the full-resolution self-attention;
  fast + cache:N     deep features of a full UNet call reused for the next N calls;
  fast + cache-frames  a frame that reads the deep features another frame recorded (every call
                     shallow): the cost of a frame the stage lets reuse them (a still or barely
                     moving source); the frame that records them costs what `fast` costs;
  combinations of tome and cache; the fastest of them is the "best combination".
Per side: seconds per frame (wall and this process's CPU time, steadier on a shared machine), the
UNet part, and the UNet calls per frame that ran the deep blocks (full) and that did not (shallow).
The last line is `accel speed-up: N.NNx` (seed defaults / the best combination, seconds per frame at
the first size given, 256 by default).

    flock /tmp/heavy.lock python bench/bench_accel.py                 # CPU, 256x256
    flock /tmp/heavy.lock python bench/bench_accel.py --sizes 256 512
    python bench/bench_accel.py --device cuda --sizes 512 --frames 8  # the GPU check
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import device_options, start  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SINGLE = ("tome:0.5", "cache:1", "cache:3")
COMBOS = (("tome:0.5", "cache:1"), ("tome:0.5", "cache:3"))


def timed_side(name: str, model, settings, canvases, frame_features=None) -> dict:
    """Repaint `canvases` one frame per call; per-frame wall and CPU seconds, UNet part, deep-block calls."""
    from vid2vid.diffusion import deepcache
    from vid2vid.diffusion.engine import Img2ImgEngine

    engine = Img2ImgEngine(model, settings)
    record = None
    if frame_features is not None:            # the frame that records the features, untimed
        record = deepcache.Recording()
        with deepcache.frame_features(record=record):
            engine.repaint(canvases[:1])
        canvases = canvases[1:]
    engine.timings.seconds.clear()
    before = deepcache.counts(model.unet)
    t0, c0 = time.perf_counter(), time.process_time()
    for c in canvases:
        if record is None:
            engine.repaint([c])
        else:
            with deepcache.frame_features(read=record):
                engine.repaint([c])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(canvases)
    after = deepcache.counts(model.unet)
    d = engine.describe()
    hooked = engine.accel.cache > 0 or engine.accel.frames is not None
    full = (after["full"] - before["full"]) / n if hooked else d["model_calls_per_frame"]
    shallow = (after["shallow"] - before["shallow"]) / n if hooked else 0
    out = {"name": name, "s": wall / n, "cpu": cpu / n, "unet": engine.timings.seconds.get("unet", 0.0) / n,
           "full": full, "shallow": shallow}
    print(f"  {name}: {out['s']:.2f} s/frame, cpu {out['cpu']:.2f}, UNet {out['unet']:.2f}, UNet calls "
          f"{full:g} full + {shallow:g} shallow, load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def tome_layer(sides=(32, 64), dim: int = 320, heads: int = 8, reps: int = 20) -> None:
    """One SD 1.5-size full-resolution self-attention layer, stock vs token merging at 0.5 (CPU time,
    one thread): what ToMe saves where it acts; 32x32 tokens = a 256x256 image, 64x64 = 512x512."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from vid2vid.diffusion import tome

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    attn = Attention(dim, heads=heads, dim_head=dim // heads).eval()
    stock, merged = AttnProcessor2_0(), tome.TomeProcessor(AttnProcessor2_0())

    def cpu_seconds(fn) -> float:
        fn()
        c0 = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - c0) / reps

    for side in sides:
        x = torch.randn(1, side * side, dim)
        with torch.no_grad(), tome.merging(0.5, (side, side)):
            a, b = cpu_seconds(lambda: stock(attn, x)), cpu_seconds(lambda: merged(attn, x))
        print(f"self-attention layer, {side}x{side} tokens: stock {a * 1e3:.1f} ms, tome:0.5 {b * 1e3:.1f} ms "
              f"({a / b:.2f}x less CPU time)", flush=True)
    torch.set_num_threads(threads)


def one_size(size: int, frames: int, model, fast_model) -> list[dict]:
    from bench_fast import NEGATIVE, PROMPT
    from bench_fast import frames as make_frames
    from vid2vid.config import Img2ImgSettings
    from vid2vid.config.presets import PRESETS

    common = dict(model="sd15-random", prompt=PROMPT, negative=NEGATIVE, width=size, height=size,
                  device=str(model.device))
    fast = dataclasses.replace(Img2ImgSettings(**common), **PRESETS["fast"]["img2img"])
    canvases = make_frames(frames + 1, size)
    print(f"\n{size}x{size}, {frames} timed frame(s) per side, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = [timed_side("seed defaults", model, Img2ImgSettings(**common), canvases[:frames]),
            timed_side("fast", fast_model, fast, canvases[:frames])]
    for specs in [(s,) for s in SINGLE] + list(COMBOS):
        rows.append(timed_side("fast + " + " ".join(specs), fast_model,
                               dataclasses.replace(fast, accel=list(specs)), canvases[:frames]))
    reader = dataclasses.replace(fast, accel=["cache-frames"])
    rows.append(timed_side("fast + cache-frames (reader)", fast_model, reader, canvases, frame_features=True))
    return rows


def table(size: int, rows: list[dict]) -> dict:
    base = rows[0]
    print(f"\n{size}x{size}  {'side':<30} {'s/frame':>8} {'cpu s':>7} {'UNet s':>7} {'full':>5} {'shallow':>7} "
          f"{'x defaults':>10} {'x fast':>7} {'cpu x fast':>10}")
    for r in rows:
        print(f"{'':>9}{r['name']:<30} {r['s']:>8.2f} {r['cpu']:>7.2f} {r['unet']:>7.2f} {r['full']:>5g} "
              f"{r['shallow']:>7g} {base['s'] / r['s']:>10.2f} {rows[1]['s'] / r['s']:>7.2f} "
              f"{rows[1]['cpu'] / r['cpu']:>10.2f}")
    combos = [r for r in rows if r["name"].count(":") >= 2]
    best = min(combos, key=lambda r: r["s"])
    print(f"best combination: {best['name']} ({base['s'] / best['s']:.2f}x the seed defaults, "
          f"{rows[1]['s'] / best['s']:.2f}x the fast preset; CPU time {base['cpu'] / best['cpu']:.2f}x)")
    return best | {"speedup": base["s"] / best["s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    device_options(ap)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256], help="canvas sides (the first one is reported)")
    ap.add_argument("--frames", type=int, default=1, help="timed frames per side")
    ap.add_argument("--dtype", default="auto", help="auto (float16 on CUDA), float32, float16")
    args = ap.parse_args()
    device, dtype = start(args, args.dtype)      # prints the device, threads and load average
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_fast import tiny_vae
    from bench_img2img import sd15_random_model

    if device.type == "cpu":
        tome_layer()
    model = sd15_random_model(device, dtype)
    fast_model = dataclasses.replace(model, vae=tiny_vae(device, dtype))
    results = []
    for size in args.sizes:
        results.append(table(size, one_size(size, args.frames, model, fast_model)))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"accel speed-up: {results[0]['speedup']:.2f}x")


if __name__ == "__main__":
    main()
