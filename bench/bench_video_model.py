"""Wan VACE painter: seconds per output frame and peak memory for clips of 1, 2 and 4 windows.

The transformer has the Wan 2.1 VACE 1.3B architecture (30 layers of width 1536, 12 heads, FFN 8960,
VACE blocks after every second layer, text width 4096) with random weights; the VAE has the Wan 2.1
VAE's architecture (base width 96), random too. The prompt embeddings are made once, outside the
timed part (random, 512 x 4096, as UMT5-XXL gives). Each clip runs in its own process through
`painting/wan_clip.py` (the window machinery, one step of the whole clip at a time, the streamed
decode), so each peak is that clip's alone. Run it under `flock /tmp/heavy.lock` (about 9 GB).

The last line: `video model: N.NN s/frame, memory 4/1 windows: N.NNx` (s/frame of the 4-window clip;
peak resident memory of the 4-window clip over the 1-window clip's; target <= 1.2).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench_long import peak_kb, reset_peak
from machine import device_options, start

WAN_13B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
               out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
               qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
               vace_layers=list(range(0, 30, 2)), vace_in_channels=96)
WAN_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
               temperal_downsample=[False, True, True])


def build(args, device, dtype):
    import torch
    from diffusers import AutoencoderKLWan, WanVACETransformer3DModel

    from vid2vid.diffusion import wan_vace as wv

    torch.manual_seed(0)
    config = dict(WAN_13B, num_layers=args.layers, vace_layers=list(range(0, args.layers, 2)))
    transformer = WanVACETransformer3DModel(**config).to(device, dtype).eval()
    vae = AutoencoderKLWan(**WAN_VAE).to(device).eval()
    parts = wv.WanVace(transformer, vae, None, None, device, dtype)
    embeds = torch.randn(1, 512, 4096, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    return parts, embeds


def child(args) -> None:
    """One clip of `args.windows` windows; prints one JSON line."""
    import numpy as np

    device, dtype = start(args, args.dtype)
    from vid2vid.painting import wan_clip as wc
    from vid2vid.painting import windows as win

    parts, embeds = build(args, device, dtype)
    length, overlap = args.window, 1
    frames = length + (args.windows - 1) * (length - overlap)
    rng = np.random.default_rng(0)
    control = [rng.random((args.size, args.size, 3)).astype(np.float32) for _ in range(frames)]
    model = wc.WanWindows(parts, frames, lambda idx: [control[i] for i in idx], embeds, None, 1.0)
    run = wc.sampling(frames, (16, args.size // 8, args.size // 8), args.steps, 3.0, 0, length, overlap)
    base_mb = peak_kb() / 1024
    resettable = reset_peak()
    t0 = time.perf_counter()
    out = sum(1 for _ in wc.paint_clip(parts, model, run, win.LocalSpread(model)))
    seconds = time.perf_counter() - t0
    print(json.dumps({"windows": len(run.windows), "frames": out, "seconds": seconds, "base_mb": base_mb,
                      "peak_mb": peak_kb() / 1024, "resettable": resettable}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    device_options(ap, size=64)
    ap.add_argument("--window", type=int, default=17, help="context_length (4n+1 frames)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--layers", type=int, default=30, help="transformer layers (30 = the 1.3B model)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--windows", type=int, default=0, help=argparse.SUPPRESS)   # set for the child runs
    args = ap.parse_args()
    if args.windows:
        child(args)
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus (shared machine); "
          f"{args.size}x{args.size}, windows of {args.window} frames overlapping by 1, {args.steps} steps, "
          f"{args.layers} layers, {args.dtype}")
    rows = {}
    for n in (1, 2, 4):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--windows", str(n)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"the {n}-window run failed:\n{done.stderr[-3000:]}")
        print(done.stdout.splitlines()[0])                 # the child's device line
        rows[n] = json.loads(done.stdout.splitlines()[-1])
    print(f"{'windows':>7} {'frames':>6} {'seconds':>8} {'s/frame':>8} {'model MB':>9} {'peak MB':>8} "
          f"{'run MB':>7} {'peak ratio':>10}")
    for n, r in rows.items():
        print(f"{n:>7} {r['frames']:>6} {r['seconds']:>8.1f} {r['seconds'] / r['frames']:>8.2f} "
              f"{r['base_mb']:>9.0f} {r['peak_mb']:>8.0f} {r['peak_mb'] - r['base_mb']:>7.0f} "
              f"{r['peak_mb'] / rows[1]['peak_mb']:>9.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f}")
    last = rows[4]
    print(f"video model: {last['seconds'] / last['frames']:.2f} s/frame, "
          f"memory 4/1 windows: {last['peak_mb'] / rows[1]['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
