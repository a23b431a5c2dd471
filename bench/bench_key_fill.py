"""The cost of the key-frame fill (`--key-fill img2img`) with cross-frame attention (issue 15).

    python bench/bench_key_fill.py [--model PATH] [--frames 17] [--every 4] [--size 128] [--steps 8]

With cross-frame attention on, the fill of an in-between frame reads its nearest key's K/V, which
is recorded by sampling the key's painting once at the fill's schedule: one light sampling per key
that some fill reads, on top of the attention over twice the tokens in the chosen blocks. Here
every in-between frame of `--frames` frames with keys every `--every` is filled (the worst case:
in a real run only frames with holes are), once with the plain fill and once with the fill that
reads its key, on the same engine, fastest of 2 rounds. Without --model a tiny random model is
made (its cost ratio is what the figure is about, not its pixels). Last line:
`key fill cost: N.NNx` (fills with key attention, key samplings included, over plain fills).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from vid2vid.config import Settings  # noqa: E402
from vid2vid.core import imageops  # noqa: E402
from vid2vid.core.progress import Job  # noqa: E402
from vid2vid.core.workspace import Workspace, frame_name  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    from vid2vid.diffusion.loading import load_model
    from vid2vid.stages.propagate import _image_fill

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-key-fill-"))
    model_path = args.model
    if not model_path:
        from vid2vid.diffusion.tiny import make_tiny_model

        model_path = str(make_tiny_model(tmp / "tiny"))
    model = load_model(model_path, device="cpu", dtype="float32")
    n, k, size = args.frames, args.every, args.size
    keys = sorted(set(range(0, n, k)) | {n - 1})
    ws = Workspace(tmp / "ws").ensure()
    rng = np.random.default_rng(0)
    for key in keys:
        painting = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
        imageops.write_image(ws.path("img2img", frame_name(key + 1)), painting)
    frames = {t: rng.uniform(0, 1, (size, size, 3)).astype(np.float32) for t in range(n) if t not in keys}
    hole = np.zeros((size, size), np.float32)
    hole[size // 4:3 * size // 4, size // 4:3 * size // 4] = 1.0

    def settings(mode: str) -> Settings:
        st = Settings()
        st.img2img.model, st.img2img.prompt = model_path, "a watercolor painting"
        st.img2img.width = st.img2img.height = size
        st.img2img.steps, st.img2img.cross_frame = args.steps, mode
        return st

    best: dict[str, float] = {}
    samplings = 0
    for _ in range(args.rounds):
        for mode in ("none", "anchor"):
            fill = _image_fill(settings(mode), Job(), model, ws, keys)
            t0 = time.perf_counter()
            for t, frame in frames.items():
                fill(t, frame, hole)
            dt = time.perf_counter() - t0
            if hasattr(fill, "close"):
                samplings = fill.key_samplings
                fill.close()
            best[mode] = min(best.get(mode, dt), dt)
    fills = len(frames)
    print(f"{n} frames, {len(keys)} keys (every {k}), {fills} fills at {size}x{size}, {args.steps} steps, "
          f"fill denoise {settings('none').propagate.fill_denoise}, 1 thread, fastest of {args.rounds}")
    print(f"{'fill':<24}{'s total':>10}{'s/fill':>10}{'ratio':>8}")
    print(f"{'plain':<24}{best['none']:>10.3f}{best['none'] / fills:>10.3f}{1.0:>7.2f}x")
    ratio = best["anchor"] / best["none"]
    print(f"{'reads its nearest key':<24}{best['anchor']:>10.3f}{best['anchor'] / fills:>10.3f}{ratio:>7.2f}x"
          f"   ({samplings} key samplings)")
    print(f"expected from the samplings alone: {(fills + samplings) / fills:.2f}x")
    print(f"key fill cost: {ratio:.2f}x")


if __name__ == "__main__":
    main()
