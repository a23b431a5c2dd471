"""Few-step samplers (LCM, TCD) on their own discrete timestep grid, in our sigma-space contract.

Few-step models (LCM-distilled checkpoints, LCM-LoRA, TCD, Hyper-SD) were trained on a grid of
discrete timesteps, not on a continuous sigma schedule. The grid (diffusers' LCMScheduler and
TCDScheduler `set_timesteps(steps, strength=denoise)`, with k = T // original_steps, here
T = 1000 training timesteps and original_steps = 50, so k = 20):

    origin    = [1, 2, ..., int(original_steps * denoise)] * k - 1      (ascending)
    timesteps = reversed(origin)[floor(linspace(0, len(origin), steps, endpoint=False))]

so the denoising strength truncates the grid from the top (as diffusers' img2img does with
`strength`) and `steps` is the number of UNet evaluations whatever the strength. The sigma
override options (schedule, sigma min/max) do not apply. The real sigmas shown are the training
sigmas of those timesteps, then 0; the init latent is init + noise * sigma(t_0) as for every sampler.

Each step, written in sigma space (x = z / sqrt(a_t), sigma_t^2 = (1 - a_t) / a_t; the
denoiser gives D = the predicted clean latent, evaluated at exactly the integer timestep):
- LCM (Luo et al. 2023): D' = c_out(t) * D + c_skip(t) * z with the consistency boundary
  scalings (sigma_data 0.5, timestep scaling 10); then x = D' + sigma(t_next) * fresh noise, and
  on the last step x = D'.
- TCD (Zheng et al. 2024), gamma in [0, 1]: eps = (x - D) / sigma(t); s = floor((1 - gamma) *
  t_next) (t_next = 0 after the last step); x_s = D + sigma(s) * eps; then, unless gamma is 0 or
  this is the last step, x = x_s + sqrt(sigma(t_next)^2 - sigma(s)^2) * fresh noise, else x = x_s.
  The last step's s is 0, and its x_s is returned as diffusers returns it, as the VP sample
  z_s = x_s * sqrt(a_0) (SD: 0.04 % smaller than x_s, TCD's own choice).
Both equal diffusers' schedulers' `step` moved from z to x (checked in tests to 1e-5).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vid2vid.core.errors import BadInput
from vid2vid.diffusion import samplers

FEWSTEP_SAMPLERS = ("lcm", "tcd")
ORIGINAL_STEPS = 50               # LCM / TCD distillation grid: 50 steps over 1000 timesteps
SIGMA_DATA = 0.5                  # LCM boundary condition constants (diffusers' defaults)
TIMESTEP_SCALING = 10.0
# Words in a model, LoRA or scheduler name that say "trained for few steps".
FEWSTEP_MARKERS = ("lcm", "tcd", "turbo", "hyper", "lightning", "latent-consistency", "latent_consistency")


def is_fewstep(sampler: str) -> bool:
    return sampler in FEWSTEP_SAMPLERS


def timesteps(steps: int, denoise: float, train_steps: int = 1000,
              original_steps: int = ORIGINAL_STEPS) -> np.ndarray:
    """The discrete timesteps (int64, descending, `steps` of them) few-step samplers run at."""
    if steps < 1:
        raise BadInput("{img2img.steps} %s is invalid for a few-step sampler; use 1 to 8 (e.g. 4)" % steps)
    k = train_steps // original_steps
    available = int(original_steps * denoise)
    if available < steps:
        raise BadInput("{img2img.steps} %d is more than the few-step grid holds at {img2img.denoise} %s "
                       "(%d timesteps); lower the steps or raise the denoising strength to at least %.2f"
                       % (steps, denoise, available, steps / original_steps))
    origin = (np.arange(1, available + 1, dtype=np.int64) * k - 1)[::-1]
    pick = np.floor(np.linspace(0, len(origin), num=steps, endpoint=False)).astype(np.int64)
    return origin[pick].copy()


def real_sigmas(steps: int, denoise: float, training_sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, sigmas): the grid and its training sigmas followed by 0 (float64, steps + 1)."""
    ts = timesteps(steps, denoise, len(training_sigmas))
    return ts, np.concatenate([np.asarray(training_sigmas, np.float64)[ts], [0.0]])


def lcm_boundary(t: int) -> tuple[float, float]:
    """LCM's (c_skip, c_out) at discrete timestep t."""
    scaled = t * TIMESTEP_SCALING
    return SIGMA_DATA ** 2 / (scaled ** 2 + SIGMA_DATA ** 2), scaled / math.sqrt(scaled ** 2 + SIGMA_DATA ** 2)


def _expand(sigma: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device)


def _timestep_step(ts: np.ndarray, training_sigmas: np.ndarray, step):
    """A step in samplers.py's step form that denoises at timestep ts[i] (at its training sigma) and
    takes `step(i, t, sigma, x, denoised, noise) -> (x, denoised)` from there; the carry stays empty."""
    train = np.asarray(training_sigmas, np.float64)
    grid = [int(t) for t in ts]

    def timestep_step(denoise, x, sigmas, i, carry, noise):
        t = grid[i]
        sigma = float(train[t])
        return step(i, t, sigma, x, denoise(x, _expand(sigma, x)), noise)

    return timestep_step, grid, train


def lcm_step(ts: np.ndarray, training_sigmas: np.ndarray):
    """LCM's step (samplers.py's step form) at timesteps `ts`."""

    def lcm(i, t, sigma, x, denoised, noise):
        c_skip, c_out = lcm_boundary(t)
        # c_skip multiplies the VP sample z = x / sqrt(1 + sigma^2)
        denoised = denoised * c_out + x * (c_skip / math.sqrt(1.0 + sigma * sigma))
        return (denoised + noise() * float(train[grid[i + 1]]) if i + 1 < len(grid) else denoised), denoised

    step, grid, train = _timestep_step(ts, training_sigmas, lcm)
    return step


def tcd_step(ts: np.ndarray, training_sigmas: np.ndarray, gamma: float = 0.3):
    """TCD's step (samplers.py's step form) at timesteps `ts` with stochasticity gamma."""
    if not 0.0 <= gamma <= 1.0:
        raise BadInput("{img2img.tcd_gamma} %s is out of range; it must be from 0 to 1 (0.3 is TCD's default)" % gamma)

    def tcd(i, t, sigma, x, denoised, noise):
        eps = (x - denoised) / sigma
        last = i + 1 == len(grid)
        t_next = 0 if last else grid[i + 1]
        s = int(math.floor((1.0 - gamma) * t_next))
        x = denoised + eps * float(train[s])
        if last:                      # diffusers returns the last x_s as a VP sample: z_s = x_s * sqrt(a_s)
            x = x / math.sqrt(1.0 + float(train[s]) ** 2)
        elif gamma > 0:
            x = x + noise() * math.sqrt(max(float(train[t_next]) ** 2 - float(train[s]) ** 2, 0.0))
        return x, denoised

    step, grid, train = _timestep_step(ts, training_sigmas, tcd)
    return step


def step_for(name: str, ts: np.ndarray, training_sigmas: np.ndarray, gamma: float = 0.3):
    """The few-step sampler `name` ('lcm' or 'tcd') as one step (samplers.py's step form), bound to its timesteps."""
    if name == "lcm":
        return lcm_step(ts, training_sigmas)
    if name == "tcd":
        return tcd_step(ts, training_sigmas, gamma)
    raise BadInput("{img2img.sampler} '%s' is not a few-step sampler; use lcm or tcd" % name)


def sampler_for(name: str, ts: np.ndarray, training_sigmas: np.ndarray, gamma: float = 0.3):
    """The few-step sampler `name` ('lcm' or 'tcd') bound to its timesteps (samplers.Sampler contract)."""
    return samplers.looped(step_for(name, ts, training_sigmas, gamma))


# ---------------------------------------------------------------- warnings (allowed, but said)

def looks_fewstep(model) -> bool:
    """Whether a loaded model says it was made for few steps (scheduler class, file or LoRA names)."""
    cfg = getattr(model, "scheduler_config", None) or {}
    names = [str(cfg.get("_class_name", "")), str(getattr(model, "spec", ""))]
    names += [str(p) for p, _ in getattr(model, "loras", [])]
    return any(m in n.lower() for n in names for m in FEWSTEP_MARKERS)


def warnings_for(settings, model=None) -> list[str]:
    """What to warn about a few-step sampler run: high CFG, a model that is not few-step."""
    if not is_fewstep(settings.sampler):
        return []
    out = []
    if settings.cfg > 2:
        out.append(f"sampler {settings.sampler} with CFG {settings.cfg:g}: few-step models are made for CFG 1-2 "
                   "(higher burns the colours, and CFG 1 runs half the UNet work); try --cfg 1 or --preset fast")
    if model is not None and not looks_fewstep(model):
        out.append(f"sampler {settings.sampler} with a model that does not look few-step ({model.spec}): "
                   "expect blurry frames; add an LCM/TCD/Hyper-SD LoRA (--lora) or use a few-step checkpoint")
    return out
