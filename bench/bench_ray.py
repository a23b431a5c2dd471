"""Benchmark: the img2img stage locally and on 1 and 2 Ray actors, on this machine.

The same job each time: the tiny model at 256x256 (so each frame is real work), N frames, one
frame per block. Every side uses one CPU thread per model call (the local run one worker of one
thread; each actor reserves one CPU and runs one thread), so the 2-actor / 1-actor figure is the
scaling with resources. The actors are started and their models loaded before the clock starts
(a pool lives across videos); Ray's overhead per frame is the time a block took as the driver saw
it minus the time the actor computed, averaged over frames. The frames of every side are checked
to be byte-identical.

    python bench/bench_ray.py                 # 12 frames, 8 steps
    python bench/bench_ray.py --frames 24 --steps 20

Last line: `2 actors / 1 actor: N.NNx` (target >= 1.6x on 2 free cores).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
# the actors (other processes) import this checkout's vid2vid too, not an installed copy
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))

import numpy as np  # noqa: E402  (after the sys.path lines)


def moving_frames(n: int, size: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.stack([xx / size, yy / size, 0.5 + 0.0 * xx], axis=2)
    out = []
    for i in range(n):
        img = base.copy()
        x0 = 8 + 6 * i % (size - 72)
        img[40:104, x0:x0 + 64] = (0.8, 0.3, 0.2)
        out.append(img)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    import ray
    import torch
    from tests.conftest import make_workspace

    from vid2vid.config import Settings
    from vid2vid.core.progress import Job
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.painting import raypool
    from vid2vid.pipeline.runner import run_stage

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    model = make_tiny_model(tmp / "tiny")
    frames = moving_frames(args.frames, args.size)

    def settings(**ray_fields) -> Settings:
        s = Settings()
        s.img2img.model, s.img2img.prompt = str(model), "(watercolor:1.2), a red box"
        s.img2img.width = s.img2img.height = args.size
        s.img2img.steps, s.img2img.batch_size, s.img2img.workers = args.steps, 1, 1
        for k, v in ray_fields.items():
            setattr(s.ray, k, v)
        return s

    def timed(name: str, s: Settings) -> tuple[float, list[bytes], dict]:
        ws = make_workspace(tmp / name, frames)
        t0 = time.perf_counter()
        info = run_stage("img2img", ws, s)
        seconds = time.perf_counter() - t0
        return seconds, [p.read_bytes() for p in ws.frames("img2img")], info

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = {}
    local_s, local_bytes, _ = timed("local", settings())
    results["local, 1 thread"] = (local_s, {})
    for n in (1, 2):
        s = settings(enabled=True, actors=n, threads=1)
        raypool.close_pools()
        raypool.pool_for(s, raypool.plan(s.ray, s.img2img, args.frames, ray.cluster_resources(), 1),
                             Job())                                      # actors up, models loaded
        secs, data, info = timed(f"ray{n}", s)
        assert data == local_bytes, f"{n} actor(s): frames differ from the local run"
        results[f"Ray, {n} actor{'s' if n > 1 else ''}"] = (secs, info["time_breakdown"])
    raypool.close_pools()
    ray.shutdown()

    print(f"img2img stage, tiny model {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, "
          "1 thread per model call (frames byte-identical on every side)")
    print(f"{'side':<18} {'seconds':>8} {'s/frame':>8} {'Ray overhead/frame':>19}")
    for name, (secs, breakdown) in results.items():
        over = breakdown.get("ray_overhead")
        over_txt = f"{1000 * over / args.frames:.1f} ms" if over is not None else "-"
        print(f"{name:<18} {secs:8.2f} {secs / args.frames:8.3f} {over_txt:>19}")
    one, two = results["Ray, 1 actor"][0], results["Ray, 2 actors"][0]
    print(f"Ray 1 actor / local: {local_s / one:.2f}x")
    print(f"2 actors / 1 actor: {one / two:.2f}x")


if __name__ == "__main__":
    main()
