"""Frame interpolators behind one protocol (`Interpolator`) and a registry, plus frame planning.

    from vid2vid.models.interpolators import load_interpolator, interpolate_many, plan_frames
    rife = load_interpolator("rife")                    # bundled HDv3 weights (middle frames)
    rife4 = load_interpolator("/path/flownet.pkl")      # user RIFE v4.x weights (any timestep)
    mid = rife.interpolate(a, b, 0.5)                   # float32 HxWx3 [0,1]
    frames = interpolate_many(rife, a, b, [1/3, 2/3])   # recursive midpoints when needed
    plan = plan_frames(n_frames, ratio)                 # which frames to make for ratio 0.5..4
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vid2vid.core.errors import ModelNotFound
from vid2vid.models.interpolators.base import BlendInterpolator, Interpolator, dyadic_path, interpolate_many
from vid2vid.models.interpolators.plan import (
    PlannedFrame,
    across_cut,
    is_scene_cut,
    output_count,
    plan_frames,
    scene_change_score,
)
from vid2vid.models.interpolators.rife import WEIGHT_SUFFIXES, RifeInterpolator, bundled_weights_path

__all__ = ["Interpolator", "REGISTRY", "available_interpolators", "check_interpolator", "load_interpolator",
           "interpolate_many", "dyadic_path", "PlannedFrame", "plan_frames", "output_count", "scene_change_score",
           "is_scene_cut",
           "across_cut", "BlendInterpolator", "RifeInterpolator", "bundled_weights_path"]

# name -> factory(device: str) -> Interpolator
REGISTRY: dict[str, Callable[..., Interpolator]] = {
    "rife": lambda device="auto": RifeInterpolator(None, device=device),
    "blend": lambda device="auto": BlendInterpolator(),
}


def available_interpolators() -> list[str]:
    """Registered names (a RIFE v4.x weight file path is accepted on top of these)."""
    return list(REGISTRY)


def check_interpolator(name: str) -> None:
    """Raise `ModelNotFound` (saying how to get it) unless `name` can be loaded; loads nothing."""
    if name == "rife":
        bundled_weights_path()
    elif name in REGISTRY:
        return
    elif Path(name).suffix.lower() in WEIGHT_SUFFIXES or Path(name).expanduser().is_file():
        if not Path(name).expanduser().is_file():
            raise ModelNotFound(f"RIFE weight file {name} does not exist; give the path of a RIFE v4.x "
                                "flownet.pkl (Practical-RIFE releases), or use the bundled model 'rife'")
    else:
        raise ModelNotFound(f"interpolator '{name}' is not known; use one of: {', '.join(REGISTRY)}, or the "
                            "path of RIFE v4.x weights (flownet.pkl from a Practical-RIFE release)")


def load_interpolator(name: str, device: str = "auto") -> Interpolator:
    """A registered interpolator by name, or RIFE with the weights at a path (.pkl/.pth/.safetensors)."""
    check_interpolator(name)
    if name in REGISTRY:
        return REGISTRY[name](device=device)
    return RifeInterpolator(name, device=device)
