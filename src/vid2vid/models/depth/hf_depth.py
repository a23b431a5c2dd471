"""Depth through `transformers`: DPT / MiDaS 3.x and Depth Anything (any `AutoModelForDepthEstimation`).

The model's own image processor (saved beside its weights) does the resizing and
normalisation it was trained with; its `predicted_depth` (relative disparity, larger = nearer,
at the processor's resolution) is resized back to the frame with bicubic interpolation, as
transformers' own post-processing does, and then min-max normalised (near = bright).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2vid.core import devices
from vid2vid.core.imageops import check_rgb, to_uint8
from vid2vid.models.depth.base import normalize_depth


def _processor_kwargs() -> dict:
    """Ask transformers 5 for the PIL image processor (the torchvision one needs torchvision)."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"backend": "pil"} if major >= 5 else {"use_fast": False}


class TransformersDepth:
    """A `DepthModel` over a transformers depth-estimation model and its image processor."""

    def __init__(self, source: str | Path, name: str = "", device: str = "auto", *,
                 cache_dir: str | Path | None = None, local_files_only: bool = False):
        """Load from a local folder or a hub id; raises OSError-like errors for the caller to explain."""
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        kw = {"cache_dir": None if cache_dir is None else str(cache_dir), "local_files_only": local_files_only}
        self.name = name or str(source)
        self.device = devices.pick(device)
        self.processor = AutoImageProcessor.from_pretrained(str(source), **kw, **_processor_kwargs())
        self.model = AutoModelForDepthEstimation.from_pretrained(str(source), **kw).to(self.device).eval()
        self._torch = torch

    def raw(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 [0, 1] -> the model's float32 disparity resized to HxW (not normalised)."""
        torch = self._torch
        img = check_rgb(image)
        h, w = img.shape[:2]
        # Frames are 8-bit files; the processor expects 8-bit input and rescales it itself.
        inputs = self.processor(images=to_uint8(img), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, dtype=next(self.model.parameters()).dtype)
        with torch.inference_mode():
            pred = self.model(pixel_values=pixels).predicted_depth          # 1 x h' x w'
            full = torch.nn.functional.interpolate(pred[:, None].float(), size=(h, w), mode="bicubic",
                                                   align_corners=False)
        return full[0, 0].cpu().numpy().astype(np.float32)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """float32 HxWx3 RGB [0, 1] -> float32 HxWx1 [0, 1], near = bright."""
        return normalize_depth(self.raw(image))
