"""Frame interpolators behind one protocol (`Interpolator`) and a registry, plus frame planning.

    from vid2vid.models.interpolators import load_interpolator, interpolate_many, plan_frames
    rife = load_interpolator("rife")                    # bundled HDv3 weights (middle frames)
    rife4 = load_interpolator("/path/flownet.pkl")      # user RIFE v4.x weights (any timestep)
    mid = rife.interpolate(a, b, 0.5)                   # float32 HxWx3 [0,1]
    frames = interpolate_many(rife, a, b, [1/3, 2/3])   # recursive midpoints when needed
    plan = plan_frames(n_frames, ratio)                 # which frames to make for ratio 0.5..4
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from vid2vid.errors import ModelNotFound
from vid2vid.models.interpolators.base import BlendInterpolator, Interpolator, dyadic_path, interpolate_many
from vid2vid.models.interpolators.plan import (PlannedFrame, across_cut, is_scene_cut, output_count,
                                               plan_frames, scene_change_score)
from vid2vid.models.interpolators.rife import WEIGHT_SUFFIXES, RifeInterpolator, bundled_weights_path

__all__ = ["Interpolator", "REGISTRY", "available_interpolators", "load_interpolator", "interpolate_many",
           "dyadic_path", "PlannedFrame", "plan_frames", "output_count", "scene_change_score", "is_scene_cut",
           "across_cut", "BlendInterpolator", "RifeInterpolator", "bundled_weights_path"]

# name -> factory(device: str) -> Interpolator
REGISTRY: dict[str, Callable[..., Interpolator]] = {
    "rife": lambda device="auto": RifeInterpolator(None, device=device),
    "blend": lambda device="auto": BlendInterpolator(),
}


def available_interpolators() -> list[str]:
    """Registered names (a RIFE v4.x weight file path is accepted on top of these)."""
    return list(REGISTRY)


def load_interpolator(name: str, device: str = "auto") -> Interpolator:
    """A registered interpolator by name, or RIFE with the weights at a path (.pkl/.pth/.safetensors)."""
    if name in REGISTRY:
        return REGISTRY[name](device=device)
    if Path(name).suffix.lower() in WEIGHT_SUFFIXES or Path(name).expanduser().is_file():
        return RifeInterpolator(name, device=device)
    raise ModelNotFound(f"interpolator '{name}' is not known; use one of: {', '.join(REGISTRY)}, or the path "
                        "of RIFE v4.x weights (flownet.pkl from a Practical-RIFE release)")
