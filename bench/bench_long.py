"""Long videos in bounded memory: the whole `vid2vid run` on a short and a long clip, side by side.

Makes two synthetic clips in code (320x180, 12 fps; by default 1 and 10 minutes: 720 and 7,200
frames), then runs the whole pipeline on each in its own process (extract at 12 fps, delta,
img2img with a tiny random model on a small canvas, export, and the consistency summary at the
end; upscale and interpolate off). Each process reports, per stage, the seconds per frame and
the peak resident memory (the kernel's high-water mark, reset at each stage start through
/proc/self/clear_refs). Targets: the long clip's peak memory within 1.15x of the short one's,
time per frame within 10%.

    python bench/bench_long.py [--minutes 1,10] [--canvas 64] [--steps 4] [--keep DIR]

The last line is `peak memory 10 min / 1 min: N.NNx` (with the --minutes given).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("setup", "extract", "delta", "img2img", "export", "summary")


# ---------------------------------------------------------------- memory of this process

def peak_kb() -> int:
    """The resident set's high-water mark since the last reset (VmHWM), in KiB."""
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1))


def reset_peak() -> bool:
    """Reset the high-water mark to the current resident set (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- one run (child process)

def child(args: argparse.Namespace) -> int:
    """Run the whole pipeline once; print one JSON line with per-phase seconds and peak MB."""
    phases: dict[str, dict] = {}
    state = {"name": "setup", "t": time.monotonic()}
    resettable = reset_peak()

    def mark(name: str) -> None:
        now = time.monotonic()
        phases[state["name"]] = {"seconds": now - state["t"], "peak_mb": peak_kb() / 1024}
        reset_peak()
        state.update(name=name, t=time.monotonic())

    from vid2vid.config import Settings
    from vid2vid.core.progress import Job
    from vid2vid.pipeline.runner import run

    s = Settings()
    s.extract.fps, s.extract.audio, s.export.audio = 12.0, False, False
    s.img2img.model, s.img2img.prompt = args.model, "(watercolor:1.2), shapes"
    s.img2img.width = s.img2img.height = args.canvas
    s.img2img.steps = args.steps
    s.run.upscale = s.run.interpolate = False
    s.run.metrics_size, s.run.metrics_every = args.metrics_size, args.metrics_every

    def on_log(text: str) -> None:
        m = re.match(r"\[\d+/\d+\] (\w+)$", text)
        if m:
            mark(m.group(1))

    def on_progress(ev) -> None:
        # the summary starts once export has written its last frame
        if ev.stage.endswith("export") and ev.total and ev.done >= ev.total and state["name"] == "export":
            mark("summary")

    result = run(args.child, s, workspace=args.workspace, job=Job(on_progress=on_progress, log=on_log))
    mark("end")
    frames = result.stages["extract"]["frames"]
    print(json.dumps({"frames": frames, "phases": phases, "resettable": resettable,
                      "metrics": result.metrics, "seconds": result.seconds}))
    return 0


# ---------------------------------------------------------------- the comparison (parent)

def make_inputs(root: Path, minutes: list[float]) -> tuple[Path, dict[float, Path]]:
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.video.democlip import make_clip

    model = make_tiny_model(root / "tiny")
    clips = {}
    for m in minutes:
        t0 = time.perf_counter()
        clips[m] = make_clip(root / f"clip-{m:g}min.mp4", width=320, height=180, fps=12, seconds=60 * m,
                             audio=False)
        print(f"made a {m:g}-minute clip ({round(60 * m * 12)} frames) in {time.perf_counter() - t0:.1f} s",
              flush=True)
    return model, clips


def run_child(clip: Path, model: Path, ws: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(clip), "--workspace", str(ws), "--model", str(model),
           "--canvas", str(args.canvas), "--steps", str(args.steps),
           "--metrics-size", str(args.metrics_size), "--metrics-every", str(args.metrics_every)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the run on {clip.name} failed (exit {done.returncode})")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="1,10", help="the short and the long clip's length, e.g. 1,10 or 0.5,2")
    ap.add_argument("--canvas", type=int, default=64, help="img2img width and height")
    ap.add_argument("--steps", type=int, default=4, help="img2img sampling steps")
    ap.add_argument("--metrics-size", type=int, default=0)
    ap.add_argument("--metrics-every", type=int, default=1)
    ap.add_argument("--keep", help="folder for the clips, model and workspaces (default: a temporary one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workspace", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    short, long_ = (float(x) for x in args.minutes.split(","))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-long-"))
    root.mkdir(parents=True, exist_ok=True)
    model, clips = make_inputs(root, [short, long_])
    res = {}
    for m in (short, long_):
        res[m] = run_child(clips[m], model, root / f"ws-{m:g}min", args)
        print(f"ran the {m:g}-minute clip: {res[m]['frames']} frames in {res[m]['wall']:.1f} s", flush=True)

    a, b = res[short], res[long_]
    if not (a["resettable"] and b["resettable"]):
        print("note: /proc/self/clear_refs is not writable here, so each stage's peak is the peak so far")
    print(f"\ncanvas {args.canvas}x{args.canvas}, {args.steps} steps, clips 320x180 at 12 fps; "
          f"summary measured {'at the output size' if not args.metrics_size else f'at {args.metrics_size}'}"
          f"{'' if args.metrics_every == 1 else f', every {args.metrics_every}th pair'}")
    ha, hb = f"{short:g} min", f"{long_:g} min"
    print(f"{'stage':<10} {'ms/frame ' + ha:>16} {'ms/frame ' + hb:>16} {'ratio':>6}   "
          f"{'peak MB ' + ha:>15} {'peak MB ' + hb:>15} {'ratio':>6}")
    for ph in PHASES:
        pa, pb = a["phases"].get(ph), b["phases"].get(ph)
        if pa is None or pb is None:
            continue
        ta, tb = 1000 * pa["seconds"] / a["frames"], 1000 * pb["seconds"] / b["frames"]
        print(f"{ph:<10} {ta:>16.2f} {tb:>16.2f} {tb / ta if ta else float('nan'):>5.2f}x   "
              f"{pa['peak_mb']:>15.0f} {pb['peak_mb']:>15.0f} {pb['peak_mb'] / pa['peak_mb']:>5.2f}x")
    peak_a = max(p["peak_mb"] for p in a["phases"].values())
    peak_b = max(p["peak_mb"] for p in b["phases"].values())
    tpf_a, tpf_b = a["seconds"] / a["frames"], b["seconds"] / b["frames"]

    def per_frame_work(r: dict) -> float:
        """Seconds per frame of the stages and the summary (the imports and checks before them left out)."""
        return sum(p["seconds"] for name, p in r["phases"].items() if name != "setup") / r["frames"]

    print(f"{'whole run':<10} {1000 * tpf_a:>16.2f} {1000 * tpf_b:>16.2f} {tpf_b / tpf_a:>5.2f}x   "
          f"{peak_a:>15.0f} {peak_b:>15.0f} {peak_b / peak_a:>5.2f}x")
    print(f"figures: {short:g} min {a['metrics']}, {long_:g} min {b['metrics']}")
    fa, fb = per_frame_work(a), per_frame_work(b)
    print(f"time per frame {long_:g} min / {short:g} min: {tpf_b / tpf_a:.2f}x whole run, "
          f"{fb / fa:.2f}x without the setup ({1000 * fa:.1f} / {1000 * fb:.1f} ms; target <= 1.10x)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"peak memory {long_:g} min / {short:g} min: {peak_b / peak_a:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
