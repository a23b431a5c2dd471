"""The real img2img footage (../shared/media/real-img2img-dev/) and a stand-in built on it, for the
temporal benchmarks (bench_keyframes.py, bench_temporal.py), or alone:

    python bench/real_dev.py [--dev DIR] [--only real|stand-in] [--rows flow,propagate,model]
                             [--first F --frames N] [--json OUT]

- real: the 81 painted frames of the development part and their aligned source frames (lossless mkv,
  decoded with PyAV); keys every 4th painted frame (1, 5, ..., 81).
- stand-in: the same source frames through bench_temporal's stand-in stylizer, after a paint-like
  re-drawing of what moves (`redrawn_stand_in`): each frame's moving parts (grey change over 8/255,
  widened and softened) are displaced by a smooth random field of up to JITTER px, new in every frame,
  as per-frame img2img re-draws a moving limb a little elsewhere each time. The stylizer's colour
  flicker and texture come on top. The stand-in of bench_temporal without the re-drawing keeps the
  source's exact shapes and shows neither tears nor ghosts.

Rows (groups --rows flow,propagate,model): painted (no correction); the flow pass without its gates, without
its detail gate (FlowOptions.ghost_gate, detail_gate), as it is by default, and at strength 0.95;
propagation from every 4th frame with the keys as painted and steadied (the default); propagation
"with a model" (the img2img fill given the real painter's own frame: `stand_in_fill`) for each key
rule of MODEL_RULES at the fill budget MODEL_SHARE (--key-fill-budget), MODEL_KEYS without a budget,
and MODEL_KEYS without the fill; these rows are scored on the frames rounded to 8 bits, as the stage
writes them. Figures as `vid2vid metrics --metrics-size 416` measures them
(source flows computed once per sequence), plus CPU ms per output frame on one core (cv2 one thread,
flow included) for the propagation and the flow pass. The load average is printed beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stand_in import stand_in_stylizer  # noqa: E402
from vid2vid.temporal import metrics, reporting  # noqa: E402
from vid2vid.temporal.flowpass import flow_correct_sequence  # noqa: E402
from vid2vid.temporal.keyframes import analyse_source, describe_rules, key_rules  # noqa: E402
from vid2vid.temporal.propagation import meaningful_hole, parse_keyframes, propagate_sequence  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "media" / "real-img2img-dev"
MEASURE = 416           # --metrics-size of the figures
KEY_EVERY = 4
MODEL_KEYS = "every:4+fast"     # the row "with a model": automatic fast-motion keys
MODEL_SHARE = 0.35              # ... with at most this share of the frames painted (the fill's budget)
MODEL_RULES = ("every:4+fast", "every:6+fast", "every:8+fast", "every:4", "every:5", "every:5+fast", "every:6")
JITTER = 6.0            # px: how far the stand-in re-draws a moving part
JITTER_CELL = 48        # px: the size of the jitter field's random cells
SEED = 1234


def decode(path: Path) -> list[np.ndarray]:
    """Every frame of a video as uint8 RGB (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def redrawn_stand_in(source: list[np.ndarray], seed: int = SEED) -> list[np.ndarray]:
    """The stand-in 'painted' frames (float32) of uint8 source frames: moving parts re-drawn a little
    elsewhere in every frame, then bench_temporal's stylizer (see the module docstring)."""
    out = []
    h, w = source[0].shape[:2]
    gh, gw = h // JITTER_CELL + 2, w // JITTER_CELL + 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for t, src in enumerate(source):
        img = src.astype(np.float32) / 255
        prev = source[max(0, t - 1)].astype(np.float32) / 255
        change = np.abs(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) - cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)) > 8 / 255
        moving = cv2.dilate(change.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(np.float32)
        moving = cv2.GaussianBlur(moving, (0, 0), 8)
        rng = np.random.default_rng([seed, t, 7])
        field = cv2.resize(rng.uniform(-JITTER, JITTER, (gh, gw, 2)).astype(np.float32), (w, h),
                           interpolation=cv2.INTER_CUBIC) * moving[..., None]
        redrawn = cv2.remap(img, xx + field[..., 0], yy + field[..., 1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        out.append(stand_in_stylizer(redrawn, t, seed))
    return out


def score(source, frames, painted, flows) -> dict:
    r = metrics.consistency_report(source, frames, painted, flows=flows, max_side=MEASURE)
    return {k: r[k] for k in ("warping_error", "source_warping_error", "psnr", "moving_psnr", "moving_psnr_worst",
                              "sharpness")}


def cpu_ms(fn) -> tuple[object, float]:
    """(fn(), CPU milliseconds it took on this process)."""
    t0 = time.process_time()
    result = fn()
    return result, 1000 * (time.process_time() - t0)


FLOW_ROWS = (("flow pass, no gates", {"ghost_gate": False, "detail_gate": False}),
             ("flow pass, no detail gate", {"detail_gate": False}),
             ("flow pass (default)", {}),
             ("flow pass, strength 0.95", {"strength": 0.95}))
GROUPS = ("flow", "propagate", "model")


def rows_for(name: str, source: list[np.ndarray], painted: list[np.ndarray], groups=GROUPS) -> list[dict]:
    """The rows of one sequence (see the module docstring), of the row groups named in `groups`."""
    h, w = painted[0].shape[:2]
    mw, mh = metrics.measure_size(w, h, MEASURE)
    flows = list(metrics.source_flows(source, (mw, mh)))
    n = len(painted)
    keys = {k: painted[k] for k in range(0, n, KEY_EVERY)} | {n - 1: painted[n - 1]}
    rows = [{"sequence": name, "method": "painted (no correction)", **score(source, painted, painted, flows)}]
    for label, opts in FLOW_ROWS if "flow" in groups else ():
        out, ms = cpu_ms(lambda opts=opts: flow_correct_sequence(source, painted, **opts))
        rows.append({"sequence": name, "method": label, "cpu_ms": ms / n, **score(source, out, painted, flows)})
    for label, steady in (("propagate every 4th, keys as painted", False), ("propagate every 4th (default)", True)):
        if "propagate" not in groups:
            break
        (out, _), ms = cpu_ms(lambda steady=steady: propagate_sequence(source, keys, steady=steady))
        rows.append({"sequence": name, "method": label, "cpu_ms": ms / n, **score(source, out, painted, flows)})
    return rows + (model_rows(name, source, painted, flows) if "model" in groups else [])


def stand_in_fill(painted: list[np.ndarray]):
    """(fill, log): a fill(t, frame, hole) for `propagate_sequence` (the callable the stage's img2img fill
    hands it, stages/propagate.py) whose 'model' returns frame t as the real painter painted it. It is a
    stand-in for a model, not one: the stage's fill repaints the propagated frame lightly (at
    --key-fill-denoise), this one returns the full img2img frame, so its fidelity is an upper bound and its
    flicker that of per-frame painting. log gets (t, mean hole, meaningful-hole share) per call."""
    log: list[tuple[int, float, float]] = []

    def fill(t: int, frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
        log.append((t, float(hole.mean()), float(meaningful_hole(hole).mean())))
        return painted[t]

    return fill, log


def model_rows(name: str, source: list[np.ndarray], painted: list[np.ndarray], flows) -> list[dict]:
    """Propagation 'with a model' (the img2img fill with `stand_in_fill`): each key rule of MODEL_RULES
    at the budget MODEL_SHARE, MODEL_KEYS with no budget and without the fill; each row says how many
    frames were painted (keys + frames given to the fill) and what share of the pixels (keys whole,
    filled frames their hole)."""
    n = len(painted)
    h, w = painted[0].shape[:2]
    motion = analyse_source(n, (w, h), source.__getitem__)
    cases = [(rule, MODEL_SHARE, True) for rule in MODEL_RULES] + [(MODEL_KEYS, 1.0, True), (MODEL_KEYS, 1.0, False)]
    rows = []
    for rule, budget, with_fill in cases:
        rules = key_rules(n, parse_keyframes(rule), motion)
        keys = sorted(set().union(*rules.values()))
        print(f"{name}: {rule}: {describe_rules(rules)} of {n} frames")
        fill, log = stand_in_fill(painted) if with_fill else ("warp", [])
        (out, stats), ms = cpu_ms(lambda fill=fill, keys=keys, budget=budget: propagate_sequence(
            source, {k: painted[k] for k in keys}, fill=fill, fill_budget=budget))
        out8 = [np.round(np.asarray(f) * 255) / 255 for f in out]            # as the stage writes them
        rows.append({"sequence": name, "method": model_label(rule, budget, with_fill), "cpu_ms": ms / n,
                     "keys": len(keys), "filled": stats["filled"], "painted_share": (len(keys) + stats["filled"]) / n,
                     "pixel_share": (len(keys) + sum(hole for _, hole, _ in log)) / n,
                     "filled_frames": [t + 1 for t, _, _ in log], "filled_hole": [round(hole, 4) for _, hole, _ in log],
                     **score(source, out8, painted, flows)})
    return rows


def model_label(rule: str, budget: float, with_fill: bool) -> str:
    """The method name of a 'with a model' row."""
    if not with_fill:
        return f"{rule}, no model"
    return f"{rule}, stand-in fill" + (f", budget {budget:g}" if budget < 1 else ", no budget")


def print_painted(rows: list[dict]) -> None:
    """The painted-frame counts of the rows that have them."""
    for r in rows:
        if "keys" in r:
            print(f"{r['sequence']}: {r['method']}: {r['keys']} keys + {r['filled']} filled = "
                  f"{r['painted_share']:.1%} of the frames painted, {r['pixel_share']:.1%} of the pixels "
                  f"(filled frames {r['filled_frames']}, mean hole {r['filled_hole']})")


def print_rows(rows: list[dict]) -> None:
    print(f"load average {os.getloadavg()[0]:.2f} (shared machine: CPU times are per process, not wall)")
    print(f"{'sequence':<9} {'method':<40} {'warp err':>8} {'PSNR':>6} {'moving':>6} {'worst5%':>7} {'sharp':>6} "
          f"{'ms/frame':>8}")
    for r in rows:
        def f(k, d=2):
            v = r.get(k)
            return "-" if v is None else ("inf" if v == float("inf") else f"{v:.{d}f}")
        print(f"{r['sequence']:<9} {r['method']:<40} {f('warping_error', 5):>8} {f('psnr'):>6} {f('moving_psnr'):>6} "
              f"{f('moving_psnr_worst'):>7} {f('sharpness', 3):>6} {f('cpu_ms', 0):>8}")
    src = {r["sequence"]: r["source_warping_error"] for r in rows}
    print("source warping error: " + ", ".join(f"{k} {v:.5f}" for k, v in src.items()))
    print_painted(rows)


TARGETS = {   # on the real dev part (the issue's): (row, figure, bound, at most?)
    "propagation": [("propagate every 4th (default)", "warping_error", 0.0100, True),
                    ("propagate every 4th (default)", "psnr", 27.5, False),
                    ("propagate every 4th (default)", "moving_psnr", 22.0, False),
                    ("propagate every 4th (default)", "sharpness", 0.98, False),
                    ("propagate every 4th (default)", "cpu_ms", 150.0, True)],
    "model": [(model_label(rule, MODEL_SHARE, True), fig, bound, at_most) for rule in MODEL_RULES
              for fig, bound, at_most in (("warping_error", 0.0100, True), ("psnr", 27.5, False),
                                          ("moving_psnr", 22.0, False), ("sharpness", 0.98, False),
                                          ("painted_share", MODEL_SHARE, True))],
    "flow": [(row, fig, bound, at_most) for row in ("flow pass (default)", "flow pass, strength 0.95")
             for fig, bound, at_most in (("warping_error", 0.0105, True), ("moving_psnr", 28.5, False),
                                         ("sharpness", 0.97, False))],
}


def print_targets(rows: list[dict], which: str) -> None:
    """'target: ...: True/False (value)' for the real rows, `which` = "propagation", "model" or "flow"."""
    real = {r["method"]: r for r in rows if r["sequence"] == "real"}
    for method, fig, bound, at_most in TARGETS[which]:
        if method not in real:
            continue
        v = real[method][fig]
        ok = v <= bound if at_most else v >= bound
        print(f"target (real dev part): {method}: {fig} {'<=' if at_most else '>='} {bound:g}: {ok} ({v:.4g})")


def add_option(ap: argparse.ArgumentParser) -> None:
    """--real-dev / --no-real-dev for the benchmarks that report on the real footage too."""
    ap.add_argument("--real-dev", action=argparse.BooleanOptionalAction, default=True,
                    help=f"also report on the real img2img footage and its re-drawing stand-in ({DEV})")


def report(dev: Path = DEV, only: str | None = None, first: int = 0, frames: int = 0, groups=GROUPS) -> list[dict]:
    """Decode the dev part (frames first .. first+frames-1, 0-based; frames 0: to the end), make the
    stand-in, score every row of both; prints the table."""
    cv2.setNumThreads(1)
    if not (dev / "painted.mkv").is_file():
        print(f"no real footage at {dev}: skipped")
        return []
    end = first + frames if frames else None
    source, painted = decode(dev / "source.mkv")[first:end], decode(dev / "painted.mkv")[first:end]
    print(f"dev frames {first + 1}..{first + len(painted)}, a key every {KEY_EVERY}th from frame {first + 1}")
    rows: list[dict] = []
    if only in (None, "real"):
        rows += rows_for("real", source, painted, groups)
    if only in (None, "stand-in"):
        rows += rows_for("stand-in", source, redrawn_stand_in(source), groups)
    print_rows(rows)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", default=str(DEV), help="the folder with painted.mkv and source.mkv")
    ap.add_argument("--only", choices=("real", "stand-in"))
    ap.add_argument("--first", type=int, default=0, help="first frame, 0-based (40: frames 41..81, the fast motion)")
    ap.add_argument("--frames", type=int, default=0, help="this many frames (0: to the end)")
    ap.add_argument("--rows", default=",".join(GROUPS), help=f"row groups, comma-separated: {', '.join(GROUPS)}")
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    groups = tuple(g for g in args.rows.split(",") if g)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        ap.error(f"unknown row group(s) {', '.join(sorted(unknown))} in --rows; use {', '.join(GROUPS)}")
    rows = report(Path(args.dev), args.only, args.first, args.frames, groups)
    for which in ("propagation", "model", "flow"):
        print_targets(rows, which)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reporting.json_safe({"rows": rows}), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
