"""Benchmark: how close each stage's disk estimate (its `space_need`, checked before it starts) comes
to the bytes it then writes, on real video frames.

The demo clip (../shared/media/mmd-demo-852x480-30fps.mp4) is extracted at --fps through the real
extract stage; the painted frames are stood in for by the extracted frames fitted to the canvas
and blurred a little (no weights here: generated frames are smoother than camera frames, which is
what the blur imitates). Then delta, control (canny and soft edges), flow, upscale (lanczos-x2)
and interpolate (blend, ratio 2) run through `runner.run_stage`, each with its estimate taken
just before. Printed: estimate, written, estimate / written (above 1: an over-estimate).

    python bench/bench_disk_estimates.py            # about a minute on 2 shared cores
    python bench/bench_disk_estimates.py --fps 2 --size 448x256
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CLIP = Path("/work/shared/media/mmd-demo-852x480-30fps.mp4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(CLIP))
    ap.add_argument("--fps", type=float, default=3.0)
    ap.add_argument("--size", default="640x360", help="canvas WxH")
    args = ap.parse_args()
    from vid2vid import config
    from vid2vid.core.diskspace import human_bytes
    from vid2vid.core.imageops import fit, read_image, write_image
    from vid2vid.core.progress import Job
    from vid2vid.core.workspace import Workspace, frame_name
    from vid2vid.pipeline import runner

    w, h = map(int, args.size.split("x"))
    s = config.Settings()
    s.extract.fps = args.fps
    s.img2img.width, s.img2img.height = w, h
    s.img2img.controlnet = [config.ControlNetSettings(model="cn.safetensors", control="canny"),
                            config.ControlNetSettings(model="cn.safetensors", control="softedge")]
    s.correct.method, s.correct.flow_mask = "flow", "none"
    s.upscale.model, s.upscale.device = "lanczos-x2", "cpu"
    s.interpolate.model, s.interpolate.ratio, s.interpolate.device = "blend", 2.0, "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        extract = importlib.import_module("vid2vid.stages.extract")
        info = extract.check_source(args.video, s.extract)
        need = extract._sample_bytes(info, s.extract, extract.plan_decoding(info)) * extract.planned_frames(
            info, s.extract)
        runner.run_stage("extract", ws, s, Job(), video=args.video)
        rows.append(("extract", int(need), sum(p.stat().st_size for p in ws.frames())))
        for i, f in enumerate(ws.frames(), 1):          # the stand-in for painted frames
            painted = cv2.GaussianBlur(fit(read_image(f), w, h, "crop"), (0, 0), 1.2)
            write_image(ws.path("img2img", frame_name(i)), painted)
        ws.begin_stage("img2img", {"bench": True}, inputs=("extract",), outputs=())
        ws.complete_stage("img2img", frames=len(ws.frames()))
        for stage, folder in (("delta", "framedelta"), ("control", "control"), ("flow", "flow"),
                              ("upscale", "resr"), ("interpolate", "rife")):
            module = importlib.import_module(f"vid2vid.stages.{stage}")
            est = module.space_need(ws, s)
            runner.run_stage(stage, ws, s, Job(), follow=False)
            rows.append((stage, est.bytes, sum(p.stat().st_size for p in ws.path(folder).rglob("*.png"))))
        n = len(ws.frames())
    print(f"{args.video}: {n} frames at {args.fps:g} fps, canvas {w}x{h}")
    print(f"{'stage':12s} {'estimate':>10s} {'written':>10s} {'ratio':>6s}")
    for stage, est, real in rows:
        print(f"{stage:12s} {human_bytes(est):>10s} {human_bytes(real):>10s} {est / real:6.2f}")


if __name__ == "__main__":
    main()
