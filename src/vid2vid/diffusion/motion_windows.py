"""An img2img engine whose UNet has motion layers, as a window model of `painting/windows.py`.

`EngineWindows(engine, layers, controls).predict(x, sigma, frames)` is the guided denoiser of
`diffusion/engine.py` (CFG, LoRA already in the weights, ControlNet residuals of the window's
own control images) run on the window's frames as one batch with the motion layers on, so the
frames of a window attend to each other. `sampler_step` is the step of the engine's sampler
(samplers.py's step form; LCM and TCD on their timestep grid) for the per-step loop.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from vid2vid.diffusion import fewstep, samplers
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

    def predict(self, x: torch.Tensor, sigma: torch.Tensor, frames: range) -> torch.Tensor:
        control = self._control(frames)
        if self.layers is None:
            return self.engine.denoiser(x, sigma, control)
        with self.layers.frames(len(frames)):
            return self.engine.denoiser(x, sigma, control)
