"""Depth models: backends behind one protocol (`DepthModel.predict`) and a registry.

    from vid2vid.models.depth import load_depth_model
    model = load_depth_model("dpt_hybrid")        # or a hub id, or a save_pretrained folder
    mask = model.predict(image)                   # float32 HxWx3 [0, 1] -> HxWx1 [0, 1], near = bright
"""
from vid2vid.models.depth.base import DepthModel, normalize_depth
from vid2vid.models.depth.registry import DEPTH_MODELS, load_depth_model, resolve_depth_model

__all__ = ["DepthModel", "normalize_depth", "DEPTH_MODELS", "load_depth_model", "resolve_depth_model"]
