"""Depth and tagger cost per frame on this machine, with the real architectures and random weights.

    python bench/bench_depth_tags.py [--threads 2] [--repeat 2] [--video CLIP] [--device cpu] [--json OUT]

No weights can be downloaded here, so the depth models are built from configs with the
published sizes (random weights: the timing is what counts) and their processors are set
as the hub's (DPT-Large: 384x384 square, mean/std 0.5; Depth Anything V2 Small: 518 on the
short side keeping aspect, multiple of 14, ImageNet mean/std), saved, and loaded through
`load_depth_model` like a downloaded folder.

1. One frame of the demo clip (852x480), or a synthetic one without it.
2. Depth: ms per frame of `predict` (preprocess, network, bicubic resize, normalise),
   median of --repeat runs after one warm-up, for DPT-Large and Depth Anything V2 Small.
3. Taggers: ms per frame of each family's preprocessing at 852x480 (WD14 448, DeepDanbooru 512);
   the networks themselves (ViT / ResNet ONNX) cannot be built here without their weights.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--repeat", type=int, default=2)
ap.add_argument("--video", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "media",
                                                "mmd-demo-852x480-30fps.mp4"))
ap.add_argument("--device", default="cpu")
ap.add_argument("--json", default="")
ARGS = ap.parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(ARGS.threads)


def frame() -> tuple[np.ndarray, str]:
    """Frame 60 of the clip as float32 RGB [0, 1], or a synthetic 852x480 gradient with shapes."""
    if os.path.isfile(ARGS.video):
        import av

        with av.open(ARGS.video) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i == 60:
                    return f.to_ndarray(format="rgb24").astype(np.float32) / 255, "clip frame 60"
    yy, xx = np.mgrid[0:480, 0:852].astype(np.float32)
    img = np.stack([xx / 852, yy / 480, 0.5 + 0 * xx], axis=2)
    img[100:300, 200:400] = (0.9, 0.2, 0.1)
    return img, "synthetic"


def timed(fn, repeat: int) -> float:
    fn()                                   # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def build_models(root: Path) -> dict[str, Path]:
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTConfig,
        DPTForDepthEstimation,
    )
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    out = {}
    large = DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                      image_size=384, patch_size=16, backbone_out_indices=[5, 11, 17, 23],
                      neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256)
    DPTForDepthEstimation(large).save_pretrained(root / "dpt-large")
    processor = DPTImageProcessorPil(size={"height": 384, "width": 384}, keep_aspect_ratio=False)
    processor.save_pretrained(root / "dpt-large")
    out["dpt_large (DPT-Large arch)"] = root / "dpt-large"
    small = DepthAnythingConfig(
        backbone_config=Dinov2Config(image_size=518, hidden_size=384, num_attention_heads=6, num_hidden_layers=12,
                                     out_indices=[3, 6, 9, 12], apply_layernorm=True, reshape_hidden_states=False),
        neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, reassemble_hidden_size=384, head_hidden_size=32)
    DepthAnythingForDepthEstimation(small).save_pretrained(root / "da-small")
    DPTImageProcessorPil(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                         resample=3).save_pretrained(root / "da-small")
    out["depth-anything-v2-small (arch)"] = root / "da-small"
    return out


def main() -> None:
    from vid2vid.models.depth import load_depth_model
    from vid2vid.models.taggers.preprocess import deepdanbooru_input, wd14_input

    img, source = frame()
    results = {"frame": source, "size": f"{img.shape[1]}x{img.shape[0]}", "threads": ARGS.threads,
               "device": ARGS.device, "load_average": os.getloadavg()[0], "depth_ms": {}, "tagger_prep_ms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, folder in build_models(Path(tmp)).items():
            model = load_depth_model(str(folder), device=ARGS.device)
            n = sum(p.numel() for p in model.model.parameters())
            results["depth_ms"][label] = {"ms": round(timed(lambda: model.predict(img), ARGS.repeat), 1),
                                          "params_M": round(n / 1e6, 1)}
    results["tagger_prep_ms"]["wd14 (448, BGR 0..255, white pad)"] = round(timed(lambda: wd14_input(img, 448), 5), 2)
    results["tagger_prep_ms"]["deepdanbooru (512, RGB 0..1, edge fill)"] = round(
        timed(lambda: deepdanbooru_input(img, 512), 5), 2)

    print(f"frame: {source} {results['size']}, {ARGS.threads} threads, {ARGS.device}, "
          f"load average {results['load_average']:.1f}")
    for label, r in results["depth_ms"].items():
        print(f"depth  {label:34s} {r['ms']:9.1f} ms/frame   ({r['params_M']} M params)")
    for label, ms in results["tagger_prep_ms"].items():
        print(f"tagger preprocessing {label:40s} {ms:7.2f} ms/frame")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
