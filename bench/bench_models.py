"""Upscaler and interpolator benchmark: ms per frame on the CPU, and RIFE's accuracy next to blending.

    python bench/bench_models.py [--threads 2] [--repeat 3] [--video CLIP] [--device cpu] [--json OUT]

1. Two frames of the demo clip (852x480, 30 fps; frames 60 and 62, with 61 as the true middle),
   resized to 416x240 and 832x480. Without the clip, synthetic frames are used for timing.
2. Upscale x2, ms per frame (median of --repeat runs after one warm-up): Real-ESRGAN
   realesr-animevideov3-x2 (ncnn, CPU) next to Lanczos x2 (PIL, float).
3. Interpolation, ms per frame: RIFE (bundled HDv3 weights, torch) next to plain blending.
4. Accuracy against the true middle frame, mean absolute error in [0, 1] and PSNR:
   a synthetic scene (a textured square moving 8 px per frame over a gradient, and a second
   one moving 24 px), and the clip's frames 60/62 vs 61; ratio = RIFE error / blend error.
5. Scene cuts found in the clip at 10 fps, with the highest scene-change scores.
torch and ncnn (OpenMP) are limited to --threads threads, set before they are imported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--video", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "media",
                                                "mmd-demo-852x480-30fps.mp4"))
ap.add_argument("--device", default="cpu", help="cpu (default) or cuda for the RIFE timing")
ap.add_argument("--json", default="")
ARGS = ap.parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vid2vid.models.interpolators import load_interpolator  # noqa: E402
from vid2vid.models.upscalers import load_upscaler  # noqa: E402

torch.set_num_threads(ARGS.threads)
cv2.setNumThreads(ARGS.threads)
SIZES = ((416, 240), (832, 480))


def clip_frames(path: str, indices=(60, 61, 62)) -> list[np.ndarray] | None:
    """Frames of the clip as float32 RGB [0, 1] at 852x480 (None without the clip)."""
    if not os.path.isfile(path):
        return None
    import av

    want, got = set(indices), {}
    with av.open(path) as box:
        for i, frame in enumerate(box.decode(video=0)):
            if i in want:
                got[i] = frame.to_ndarray(format="rgb24").astype(np.float32) / 255
            if i >= max(indices):
                break
    return [got[i] for i in indices]


def synthetic_scene(x: float, w: int = 832, h: int = 480, seed: int = 0) -> np.ndarray:
    """A smooth-textured 160 px square at column x over a colour gradient, float32 [0, 1]."""
    rng = np.random.default_rng(seed)
    tex = cv2.resize(rng.random((8, 8, 3)).astype(np.float32), (160, 160), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.2 * np.sin(xx / 37 + yy / 53)], axis=2)
    xi = int(x)
    img[160:320, xi:xi + 160] = np.clip(tex, 0, 1)
    return img.astype(np.float32)


def ms_per_call(fn, repeat: int) -> float:
    fn()                                               # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def scan_scene_cuts(path: str, results: dict, step: int = 3) -> None:
    """Scene-change scores between every `step`-th frame of the clip (10 fps at step 3)."""
    import av

    from vid2vid.models.interpolators import scene_change_score
    from vid2vid.models.interpolators.plan import is_scene_cut

    prev, scores, cuts = None, [], []
    with av.open(path) as box:
        for i, frame in enumerate(box.decode(video=0)):
            if i % step:
                continue
            img = frame.to_ndarray(format="rgb24").astype(np.float32) / 255
            if prev is not None:
                scores.append(scene_change_score(prev, img))
                if is_scene_cut(prev, img):
                    cuts.append((i - step, i))
            prev = img
    top = sorted(scores, reverse=True)[:8]
    results["scene_cuts"] = {"pairs": cuts, "top_scores": top}
    print(f"\nscene cuts (default threshold 0.2, every {step}rd frame): {len(cuts)} at source frames "
          f"{', '.join(f'{a}->{b}' for a, b in cuts)}; highest scores {', '.join(f'{v:.3f}' for v in top)}")


def main() -> int:
    results: dict = {"threads": ARGS.threads, "device": ARGS.device, "timing_ms": {}, "accuracy": {}}
    frames = clip_frames(ARGS.video)
    source = "clip frames 60-62" if frames else "synthetic frames"
    if frames is None:
        frames = [synthetic_scene(300 + 8 * i) for i in range(3)]
    esr = load_upscaler("realesr-animevideov3-x2", device="cpu")
    lanczos = load_upscaler("lanczos-x2")
    rife = load_interpolator("rife", device=ARGS.device)
    blend = load_interpolator("blend")

    print(f"# {source}; {ARGS.threads} thread(s); median of {ARGS.repeat}; RIFE on {ARGS.device}")
    print(f"{'size':>9} | {'ESRGAN x2':>10} {'Lanczos x2':>11} {'ratio':>7} | {'RIFE':>8} {'blend':>8} {'ratio':>7}")
    for w, h in SIZES:
        a, b = (cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in (frames[0], frames[2]))
        t_esr = ms_per_call(lambda: esr.upscale(a), ARGS.repeat)
        t_lz = ms_per_call(lambda: lanczos.upscale(a), ARGS.repeat)
        t_rife = ms_per_call(lambda: rife.interpolate(a, b, 0.5), ARGS.repeat)
        t_blend = ms_per_call(lambda: blend.interpolate(a, b, 0.5), ARGS.repeat)
        results["timing_ms"][f"{w}x{h}"] = {"realesr-animevideov3-x2": t_esr, "lanczos-x2": t_lz,
                                            "rife": t_rife, "blend": t_blend}
        print(f"{w:>4}x{h:<4} | {t_esr:>8.0f}ms {t_lz:>9.0f}ms {t_esr / t_lz:>6.1f}x | "
              f"{t_rife:>6.0f}ms {t_blend:>6.1f}ms {t_rife / t_blend:>6.0f}x")

    print(f"\n{'middle frame of':>28} | {'RIFE MAE':>9} {'blend MAE':>9} {'ratio':>6} | "
          f"{'RIFE PSNR':>9} {'blend PSNR':>10}")
    cases = {
        "synthetic, 8 px/frame": [synthetic_scene(300 + 8 * i) for i in range(3)],
        "synthetic, 24 px/frame": [synthetic_scene(300 + 24 * i) for i in range(3)],
    }
    if source.startswith("clip"):
        cases["clip 60/62 vs 61 (852x480)"] = frames
    for name, (a, truth, b) in cases.items():
        r, bl = rife.interpolate(a, b, 0.5), blend.interpolate(a, b, 0.5)
        e_r, e_b = float(np.abs(r - truth).mean()), float(np.abs(bl - truth).mean())
        results["accuracy"][name] = {"rife_mae": e_r, "blend_mae": e_b, "ratio": e_r / e_b,
                                     "rife_psnr": psnr(r, truth), "blend_psnr": psnr(bl, truth)}
        print(f"{name:>28} | {e_r:>9.4f} {e_b:>9.4f} {e_r / e_b:>6.2f} | {psnr(r, truth):>8.2f}dB "
              f"{psnr(bl, truth):>8.2f}dB")
    if source.startswith("clip"):
        scan_scene_cuts(ARGS.video, results)
    if ARGS.json:
        with open(ARGS.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
