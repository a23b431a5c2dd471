"""Benchmark: the live path on a file source played at 12 fps, tiny model and SD 1.5-size random model.

Both sides play the same kind of clip in real time through `vid2vid.live` (latest frame wins) with the
fast preset (lcm, 4 steps, CFG 1); the SD 1.5 side uses a TAESD-size tiny VAE (random weights, real
FLOPs). Prints per side: frames shown per second, p50 / p95 latency (capture to shown), frames
dropped, the painter's own time per frame, and whether p95 latency <= 2 x painter + 100 ms (no queue
builds up whatever the painter's speed). Last line (SD 1.5 size):
`live: N.N fps, p95 latency N ms, painter N ms/frame`.

    python bench/bench_live.py                        # CPU, 256x256 for SD 1.5, 64x48 for the tiny model
    python bench/bench_live.py --device cuda --size 512 --seconds 20      # the GPU check
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import ROOT, device_options, start  # noqa: E402


def side(name: str, clip: Path, settings, model) -> dict:
    """Play `clip` through a live painter on `model`; the stats' summary, printed."""
    from vid2vid.core.progress import Job
    from vid2vid.live.painter import LivePainter
    from vid2vid.live.session import run_live
    from vid2vid.live.sources import open_source

    painter = LivePainter(settings, Job(), model)
    painter.warm_up()                         # as `vid2vid live` does before the source starts playing
    source = open_source(str(clip))
    try:
        stats = run_live(source, painter, [], Job())
    finally:
        painter.close()
        source.close()
    s = stats.summary()
    bound = 2 * s["painter_ms"] + 100
    verdict = "met" if s["p95_latency_ms"] <= bound else "MISSED"
    print(f"  {name}: {s['fps']:.2f} fps shown, latency p50 {s['p50_latency_ms']:.0f} ms, p95 "
          f"{s['p95_latency_ms']:.0f} ms (bound {bound:.0f} ms: {verdict}), "
          f"painter {s['painter_ms']:.0f} ms/frame, dropped {s['dropped']} of {s['captured']}, "
          f"at most {s['max_waiting']} frame waiting", flush=True)
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    device_options(ap, size=256)
    ap.add_argument("--seconds", type=float, default=12.0, help="clip length played per side")
    ap.add_argument("--skip-sd15", action="store_true", help="the tiny model only")
    args = ap.parse_args()
    device, dtype = start(args)
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_fast import tiny_vae
    from bench_img2img import sd15_random_model
    from vid2vid.config import Settings
    from vid2vid.config.presets import apply
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.video.democlip import make_clip

    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    results = {}
    s = apply(Settings(), "fast")
    s.img2img.prompt, s.img2img.device, s.img2img.batch_size = "a watercolor painting", str(device), 1
    tiny = make_tiny_model(tmp / "tiny")
    s.img2img.model, s.img2img.width, s.img2img.height = str(tiny), 64, 48
    clip = make_clip(tmp / "tiny.mp4", width=64, height=48, fps=12, seconds=args.seconds)
    results["tiny"] = side("tiny model, 64x48", clip, s, load_model(str(tiny), device=str(device)))
    if not args.skip_sd15:
        t0 = time.perf_counter()
        model = sd15_random_model(device, dtype)
        model = dataclasses.replace(model, vae=tiny_vae(device, dtype))
        print(f"(SD 1.5-size random model and TAESD-size VAE built in {time.perf_counter() - t0:.0f} s)", flush=True)
        big = dataclasses.replace(s, img2img=dataclasses.replace(s.img2img, model="sd15-random", width=args.size,
                                                                 height=args.size))
        clip = make_clip(tmp / "sd15.mp4", width=args.size, height=args.size, fps=12, seconds=args.seconds)
        results["sd15"] = side(f"SD 1.5 size, {args.size}x{args.size}", clip, big, model)
    r = results.get("sd15", results["tiny"])
    print(f"live: {r['fps']:.1f} fps, p95 latency {r['p95_latency_ms']:.0f} ms, painter {r['painter_ms']:.0f} ms/frame")


if __name__ == "__main__":
    main()
