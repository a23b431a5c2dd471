"""Sigma schedules and their truncation by denoising strength.

Every schedule function has one contract (k-diffusion's): `fn(n, sigma_min, sigma_max)` returns
a float64 numpy array of n decreasing noise levels followed by a final 0 (length n + 1).
Sigmas are in the "variance exploding" parameterisation that k-diffusion samplers use:
x_sigma = x_0 + sigma * noise.

Truncation for img2img (what the A1111 img2img path did): with N steps and denoising strength
s, t_enc = int(min(s, 0.999) * N) and the sampler runs over full[N - t_enc - 1:], which has
t_enc + 1 noise levels and the final 0 (t_enc + 1 sampler steps). The init latent becomes
init_latent + init_noise_weight * noise * real[0].

"default" is the model's own schedule: N levels spaced evenly over the training timesteps
(from the last one down to 0), interpolated in log sigma, then 0 — k-diffusion's
DiscreteSchedule and diffusers' Euler scheduler with linspace spacing give the same list.

The seed's vp bug: it called k-diffusion's `get_sigmas_vp(n, sigma_max, sigma_min)`, whose
2nd and 3rd parameters are `beta_d` and `beta_min` of the VP SDE, so sigma_max and sigma_min
were read as beta values and the schedule ran from sqrt(exp(sigma_max / 2 + sigma_min) - 1) to
about sqrt(exp(1e-3 * sigma_min) - 1) instead of from sigma_max to sigma_min. Here `vp` keeps
the VP SDE's shape (beta_d = 19.9, beta_min = 0.1) and picks the time interval whose end
points have exactly sigma_max and sigma_min.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from vid2vid.core.errors import BadInput

ScheduleFn = Callable[[int, float, float], np.ndarray]

VP_BETA_D = 19.9
VP_BETA_MIN = 0.1


def _append_zero(sigmas: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(sigmas, dtype=np.float64), [0.0]])


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> np.ndarray:
    """Karras et al. (2022): evenly spaced in sigma^(1/rho); n values then 0 (float64, n + 1)."""
    ramp = np.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> np.ndarray:
    """Evenly spaced in log sigma; n values then 0 (float64, n + 1)."""
    return _append_zero(np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n)))


def poly_exponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> np.ndarray:
    """log sigma follows a polynomial ramp of degree rho (rho 1 = exponential); n values then 0."""
    ramp = np.linspace(1.0, 0.0, n) ** rho
    log_lo, log_hi = math.log(sigma_min), math.log(sigma_max)
    return _append_zero(np.exp(ramp * (log_hi - log_lo) + log_lo))


def vp_time(sigma: float, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN) -> float:
    """VP SDE time t at which sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) equals `sigma`."""
    c = math.log1p(sigma * sigma)
    return (math.sqrt(beta_min * beta_min + 2.0 * beta_d * c) - beta_min) / beta_d


def vp(n: int, sigma_min: float, sigma_max: float,
       beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN) -> np.ndarray:
    """The VP SDE's noise levels at n evenly spaced times from t(sigma_max) to t(sigma_min), then 0.

    Unlike the seed (see the module docstring), the first value is sigma_max and the last
    non-zero value is sigma_min.
    """
    t = np.linspace(vp_time(sigma_max, beta_d, beta_min), vp_time(sigma_min, beta_d, beta_min), n)
    return _append_zero(np.sqrt(np.expm1(beta_d * t ** 2 / 2.0 + beta_min * t)))


def linear(n: int, sigma_min: float, sigma_max: float) -> np.ndarray:
    """Evenly spaced in sigma from sigma_max to sigma_min; n values then 0."""
    return _append_zero(np.linspace(sigma_max, sigma_min, n))


SCHEDULES: dict[str, ScheduleFn] = {
    "karras": karras,
    "exponential": exponential,
    "poly-exponential": poly_exponential,
    "vp": vp,
    "linear": linear,
}


# ---------------------------------------------------------------- the model's own schedule

def training_sigmas_from_alphas(alphas_cumprod) -> np.ndarray:
    """Noise level of each training timestep: sqrt((1 - a) / a) for a = alphas_cumprod (float64, T)."""
    a = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.sqrt((1.0 - a) / a)


def sd_training_sigmas(timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> np.ndarray:
    """Training sigmas of Stable Diffusion 1.x/2.x (the "scaled linear" beta schedule), float64 (T,)."""
    betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=np.float64) ** 2
    return training_sigmas_from_alphas(np.cumprod(1.0 - betas))


def sigma_at_timestep(t: np.ndarray, training_sigmas: np.ndarray) -> np.ndarray:
    """Sigma at (fractional) timesteps t, interpolating log sigma between training timesteps."""
    log_s = np.log(np.asarray(training_sigmas, dtype=np.float64))
    return np.exp(np.interp(np.asarray(t, dtype=np.float64), np.arange(len(log_s)), log_s))


def sigma_to_timestep(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """Fractional training timestep of each sigma (B,): linear interpolation in log sigma between the
    training timesteps, k-diffusion's rule and the inverse of `sigma_at_timestep`.

    log_sigmas: (T,) log training sigmas, ascending; the work is done, and the result given, in its
    dtype. Sigmas outside the training range give timestep 0 or T - 1.
    """
    import torch

    log_sigma = sigma.to(log_sigmas.dtype).log().clamp(log_sigmas[0], log_sigmas[-1])
    idx = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1)
    lo, hi = log_sigmas[idx - 1], log_sigmas[idx]
    w = ((log_sigma - lo) / (hi - lo)).clamp(0, 1)
    return (idx - 1).to(log_sigmas.dtype) + w


def model_default(n: int, training_sigmas: np.ndarray) -> np.ndarray:
    """The model's own schedule: n levels over timesteps linspace(T - 1, 0, n), then 0 (float64)."""
    t_max = len(training_sigmas) - 1
    return _append_zero(sigma_at_timestep(np.linspace(t_max, 0, n), training_sigmas))


# ---------------------------------------------------------------- validation and truncation

def check_params(steps: int, denoise: float, sigma_min: float, sigma_max: float) -> None:
    """Raise BadInput (saying how to fix it) for values no schedule can use."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise BadInput(f"{{img2img.steps}} {steps} is invalid; give a whole number of sampling steps of at least 1, "
                       "e.g. 20")
    if not (0.0 <= denoise <= 1.0):
        raise BadInput(f"{{img2img.denoise}} {denoise} is outside 0..1; use e.g. 0.75 (0 keeps the image, "
                       "1 repaints it)")
    for name, v in (("{img2img.sigma_min}", sigma_min), ("{img2img.sigma_max}", sigma_max)):
        if not (math.isfinite(v) and v > 0):
            raise BadInput(f"{name} {v} must be a positive number, e.g. {{img2img.sigma_min}} 0.1 and "
                           "{img2img.sigma_max} 1.2")
    if sigma_max < sigma_min:
        raise BadInput(f"{{img2img.sigma_max}} {sigma_max} is below {{img2img.sigma_min}} {sigma_min}; "
                       "swap them or raise {img2img.sigma_max}")


def full_schedule(name: str, steps: int, sigma_min: float, sigma_max: float,
                  training_sigmas: np.ndarray | None = None) -> np.ndarray:
    """The whole schedule `name` for `steps` steps (float64, steps + 1 values ending in 0)."""
    check_params(steps, 0.0, sigma_min, sigma_max)
    if name == "default":
        if training_sigmas is None:
            raise BadInput("schedule 'default' needs the model's training sigmas; load a model first "
                           "or pick another {img2img.schedule}")
        return model_default(steps, training_sigmas)
    if name not in SCHEDULES:
        raise BadInput(f"{{img2img.schedule}} '{name}' is not known; use one of: default, {', '.join(SCHEDULES)}")
    return SCHEDULES[name](steps, sigma_min, sigma_max)


def encode_steps(steps: int, denoise: float) -> int:
    """t_enc = int(min(denoise, 0.999) * steps): how many sampler steps img2img runs, minus one."""
    return int(min(denoise, 0.999) * steps)


def truncate(full: np.ndarray, denoise: float) -> np.ndarray:
    """The part of a full schedule (N + 1 values) that img2img samples over: full[N - t_enc - 1:]."""
    n = len(full) - 1
    return full[n - encode_steps(n, denoise) - 1:]


def real_sigmas(name: str, steps: int, denoise: float, sigma_min: float, sigma_max: float,
                training_sigmas: np.ndarray | None = None) -> np.ndarray:
    """The sigmas img2img really uses: the schedule truncated by the denoising strength (float64)."""
    check_params(steps, denoise, sigma_min, sigma_max)
    return truncate(full_schedule(name, steps, sigma_min, sigma_max, training_sigmas), denoise)


def format_sigmas(sigmas) -> str:
    """A short human-readable list, e.g. '[1.2000, 0.9876, ..., 0.0000] (16 steps)'."""
    vals = ", ".join(f"{float(s):.4f}" for s in sigmas)
    return f"[{vals}] ({len(sigmas) - 1} steps)"
