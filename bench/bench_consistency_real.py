"""Benchmark for users with real weights: how steady each cross-frame mode and flow init make img2img.

On the demo clip (../shared/media/mmd-demo-852x480-30fps.mp4, the first --frames frames at
--fps), the img2img stage runs once per variant with the same model, prompt, seed and sigmas:
cross-frame none (the plain run), anchor, anchor-prev and bank, each without and with flow init.
The frames are scored as generated (correct.method flow, so no correction pass runs between):
warping error and flicker (lower is steadier; the source's own figures are the floor) and PSNR
against the plain run (how far a mode moves the frames from what plain img2img paints).

    python bench/bench_consistency_real.py --model /path/to/sd15.safetensors
    python bench/bench_consistency_real.py --model TINY_DIR --frames 6 --size 128x72 --steps 4   # a CPU check

No weights are downloaded: --model is a local file or folder (`vid2vid make-tiny-model DIR`
makes a small random one, which proves the script runs but says nothing about quality).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_img2img import make_workspace  # one place that makes a bench workspace from frames

ROOT = Path(__file__).resolve().parents[1]
CLIP = Path("/work/shared/media/mmd-demo-852x480-30fps.mp4")
PROMPT = "(masterpiece:1.3), best quality, a girl dancing in a room, anime style"
NEGATIVE = "lowres, bad hands, blurry"
MODES = ("none", "anchor", "anchor-prev", "bank")


def clip_frames(path: Path, n: int, fps: float) -> list[np.ndarray]:
    from vid2vid.video.decode import iter_frames

    out = []
    for f in iter_frames(path, "fps", fps):
        out.append(f.rgb().astype(np.float32) / 255.0)
        if len(out) == n:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a local .safetensors file or diffusers folder")
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--size", default="512x288", help="WIDTHxHEIGHT, multiples of 8")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--denoise", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=1, help="batch size of the independent modes")
    ap.add_argument("--bank", type=int, default=4)
    ap.add_argument("--blocks", default="up", choices=("up", "all"))
    ap.add_argument("--flow-init", type=float, default=0.5, help="strength of the 'with flow init' variants")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from vid2vid.config import Settings
    from vid2vid.core.errors import Vid2VidError
    from vid2vid.core.progress import Job
    from vid2vid.diffusion.loading import load_model
    from vid2vid.stages import img2img as stage
    from vid2vid.temporal import metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if not Path(args.clip).is_file():
        sys.exit(f"the clip {args.clip} is missing; give --clip VIDEO")
    try:
        model = load_model(args.model, device=args.device)
    except Vid2VidError as exc:
        sys.exit(f"cannot load --model {args.model}: {exc}")
    source = clip_frames(Path(args.clip), args.frames, args.fps)
    print(f"{len(source)} frames of {args.clip} at {args.fps:g} fps, {width}x{height}, {args.steps} steps, "
          f"denoise {args.denoise}, model {args.model} on {model.device} "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")

    variants = [(mode, fi) for fi in (0.0, args.flow_init) for mode in MODES]
    results: dict[tuple[str, float], dict] = {}
    outputs: dict[tuple[str, float], list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-consistency-") as tmpdir:
        for mode, fi in variants:
            st = Settings()
            st.img2img.__dict__.update(model=args.model, prompt=PROMPT, negative=NEGATIVE, steps=args.steps,
                                       denoise=args.denoise, width=width, height=height, batch_size=args.batch,
                                       cross_frame=mode, cross_frame_bank=args.bank,
                                       cross_frame_blocks=args.blocks, flow_init=fi)
            st.correct.method = "flow"            # score the frames as generated
            ws = make_workspace(Path(tmpdir) / f"{mode}-{fi:g}", source)
            t0 = time.perf_counter()
            info = stage.run(ws, st, Job(), model=model)
            seconds = time.perf_counter() - t0
            outputs[(mode, fi)] = metrics.read_folder(ws.path("img2img"))
            results[(mode, fi)] = {"seconds": seconds, "peak_mb": info.get("cross_frame_peak_mb", 0.0)}
            print(f"  {mode:>12} flow init {fi:<4g} {seconds / len(source):7.2f} s/frame", flush=True)
    plain = outputs[("none", 0.0)]
    flows = metrics.source_flows(source, (width, height))
    print(f"\n{'cross-frame':>12} {'flow init':>9} {'warp err':>9} {'flicker':>9} {'PSNR vs plain':>14} "
          f"{'s/frame':>8} {'refs MB':>8}")
    src_report = None
    for key in variants:
        rep = metrics.consistency_report(source, outputs[key], plain, flows=flows)
        src_report = rep
        psnr = "-" if key == ("none", 0.0) else f"{rep['psnr']:.2f} dB"
        r = results[key]
        print(f"{key[0]:>12} {key[1]:>9g} {rep['warping_error']:>9.5f} {rep['flicker']:>9.5f} {psnr:>14} "
              f"{r['seconds'] / len(source):>8.2f} {r['peak_mb']:>8.1f}")
    print(f"{'source':>12} {'':>9} {src_report['source_warping_error']:>9.5f} {src_report['source_flicker']:>9.5f}")


if __name__ == "__main__":
    main()
