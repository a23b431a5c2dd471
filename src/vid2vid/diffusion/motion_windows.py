"""An img2img engine whose UNet has motion layers, as a window model of `painting/windows.py`.

`EngineWindows(engine, layers, controls).predict(x, sigma, frames)` is the guided denoiser of
`diffusion/engine.py` (CFG, LoRA already in the weights, ControlNet residuals of the window's
own control images) run on the window's frames as one batch with the motion layers on, so the
frames of a window attend to each other. The engine's UNet accelerators apply per window: token
merging (`tome.merging`) in the UNet's own self-attention layers, which are the spatial ones (the
motion layers are the adapter's modules and keep their processors), and `cache:N` with the features
held per window (`deepcache.WindowFeatures`): evaluation k of the clip is full when k % (N + 1) == 0.
`sampler_step` is the step of the engine's sampler (samplers.py's step form; LCM and TCD on their
timestep grid) for the per-step loop.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
import torch

from vid2vid.diffusion import deepcache, fewstep, samplers, tome
from vid2vid.diffusion.motion import MotionLayers


def sampler_step(engine) -> samplers.Step:
    """The step of the engine's sampler (fixed schedule, or a few-step sampler's timesteps)."""
    s = engine.settings
    if engine.timesteps is not None:
        training = np.asarray(torch.as_tensor(engine.model.sigmas).cpu(), dtype=np.float64)
        return fewstep.step_for(s.sampler, engine.timesteps, training, s.tcd_gamma)
    return samplers.get_step(s.sampler)


class EngineWindows:
    """WindowModel: the engine's denoiser on a window of frames with the motion layers on.

    controls(frames) -> canvas-sized control images [frame][net] for those frames (engines with
    ControlNets only); each window's conditioning is bound once and kept.
    """

    def __init__(self, engine, layers: MotionLayers | None,
                 controls: Callable[[range], list[list[np.ndarray]]] | None = None):
        self.engine, self.layers, self.controls = engine, layers, controls
        self.bound: dict[tuple[int, int], object] = {}
        self.lock = threading.Lock()
        cache = engine.accel.cache
        self.features = deepcache.WindowFeatures(cache) if cache > 0 else None

    def _control(self, frames: range):
        if self.engine.control is None:
            return None
        key = (frames.start, frames.stop)
        with self.lock:
            if key not in self.bound:
                if self.controls is None:
                    raise ValueError("this engine has ControlNets: give the control images of each window")
                self.bound[key] = self.engine.bind_control(self.controls(frames), len(frames))
            return self.bound[key]

    def predict(self, x: torch.Tensor, sigma: torch.Tensor, frames: range, evaluation: int = 0) -> torch.Tensor:
        control = self._control(frames)
        with ExitStack() as inside:
            if self.layers is not None:
                inside.enter_context(self.layers.frames(len(frames)))
            if self.engine.accel.tome > 0:
                inside.enter_context(tome.merging(self.engine.accel.tome, tuple(x.shape[-2:])))
            if self.features is not None:
                inside.enter_context(self.features.evaluation(frames, evaluation))
            return self.engine.denoiser(x, sigma, control)
