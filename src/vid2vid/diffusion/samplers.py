"""Samplers over a denoiser D(x, sigma) -> predicted clean x, k-diffusion style (Karras et al. 2022).

One contract for all: `sample(denoise, x, sigmas, noise, callback=None) -> x` where
- `denoise(x, sigma)` takes x of shape (B, C, H, W) and a tensor sigma of shape (B,) and returns
  the denoised estimate of x_0 (same shape);
- `x` starts at the highest noise level sigmas[0] (already noised);
- `sigmas` is a 1-D float tensor ending in 0 (see schedules.py);
- `noise()` returns fresh standard normal noise shaped like x (only the stochastic samplers
  call it; `BatchNoise` makes it deterministic per frame and independent of the batch size);
- `callback(i, x, denoised)` is called after each step (the engine blends inpainting masks there
  through the denoiser instead; the callback is for progress and inspection).

Registry: `SAMPLERS[token]` for the tokens in `config.SAMPLERS`.
Formulas (not code) follow k-diffusion's `sampling.py`: Euler and Heun (Karras et al. 2022,
Alg. 1/2), ancestral steps, DPM-Solver++(2M) and its SDE variant (Lu et al. 2022), linear
multistep (LMS) with integrated Lagrange coefficients, and DDIM (Song et al. 2020) written in
sigma space, where its deterministic step (eta = 0) equals Euler's.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from vid2vid.core.errors import BadInput

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None] | None


class Sampler(Protocol):
    def __call__(self, denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
                 noise: Callable[[], torch.Tensor], callback: Callback = None) -> torch.Tensor: ...


# ---------------------------------------------------------------- seeded noise

class BatchNoise:
    """Standard normal noise for a batch, one seeded CPU generator per item.

    Item i always draws from its own generator, so a frame gets the same noise whether it is
    sampled alone or in a batch of any size, on any device. Shape excludes the batch dimension.
    """

    def __init__(self, seeds: list[int], shape: tuple[int, ...], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        self.shape, self.device, self.dtype = tuple(shape), torch.device(device), dtype

    def __call__(self) -> torch.Tensor:
        out = torch.stack([torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self.generators])
        return out.to(self.device, self.dtype)


# ---------------------------------------------------------------- helpers

def _expand(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar sigma as a (B,) tensor for the denoiser."""
    return sigma.expand(x.shape[0]).to(x.dtype)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """ODE derivative dx/dsigma = (x - D(x)) / sigma."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step into a deterministic part down to sigma_down and fresh noise of std sigma_up."""
    if sigma_to == 0 or eta == 0:
        return sigma_to, 0.0
    up = min(sigma_to, eta * math.sqrt(sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2))
    down = math.sqrt(sigma_to ** 2 - up ** 2)
    return down, up


# ---------------------------------------------------------------- samplers, one step at a time
#
# Each sampler is written as its step: `step(denoise, x, sigmas, i, carry, noise) -> (x, denoised)`
# takes x at sigmas[i] to sigmas[i + 1]. `carry` is a dict the step reads and updates with what it
# keeps between steps (the last denoised sample and step size of DPM++ 2M, the derivatives of LMS);
# it holds only tensors, floats and lists of tensors, so a caller that stops after any step can save
# it with x and go on later with the same bits (painting/windows.py does). `looped(step)` is the
# whole sampler of the contract above.

Carry = dict
Step = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def looped(step: Step, **options) -> Sampler:
    """The sampler (contract above) that runs `step` over every interval of the schedule."""
    @torch.no_grad()
    def sample(denoise, x, sigmas, noise, callback=None):
        carry: Carry = {}
        for i in range(len(sigmas) - 1):
            x, denoised = step(denoise, x, sigmas, i, carry, noise, **options)
            if callback is not None:
                callback(i, x, denoised)
        return x

    return sample


def euler_step(denoise, x, sigmas, i, carry, noise):
    """First-order ODE step (Karras et al. 2022, Alg. 2 without churn)."""
    denoised = denoise(x, _expand(sigmas[i], x))
    d = to_d(x, sigmas[i], denoised)
    return x + d * (sigmas[i + 1] - sigmas[i]), denoised


def euler_ancestral_step(denoise, x, sigmas, i, carry, noise, eta: float = 1.0):
    """Euler down to sigma_down, then add noise of std sigma_up (the A1111 "Euler a")."""
    denoised = denoise(x, _expand(sigmas[i], x))
    down, up = ancestral_step(float(sigmas[i]), float(sigmas[i + 1]), eta)
    d = to_d(x, sigmas[i], denoised)
    x = x + d * (down - sigmas[i])
    if up > 0:
        x = x + noise() * up
    return x, denoised


def heun_step(denoise, x, sigmas, i, carry, noise):
    """Second-order ODE step: Euler predictor, trapezoidal corrector (none on the last step to 0)."""
    denoised = denoise(x, _expand(sigmas[i], x))
    d = to_d(x, sigmas[i], denoised)
    dt = sigmas[i + 1] - sigmas[i]
    if sigmas[i + 1] == 0:
        return x + d * dt, denoised
    x_pred = x + d * dt
    denoised_2 = denoise(x_pred, _expand(sigmas[i + 1], x))
    d_2 = to_d(x_pred, sigmas[i + 1], denoised_2)
    return x + (d + d_2) / 2 * dt, denoised


def _multistep(denoise, x, sigmas, i, carry, update):
    """One step of the DPM-Solver++ multistep samplers, in log-sigma time: denoise at sigmas[i], then
    x = update(x, denoised, old_denoised, s, s_next, h, h_last) with h = log s - log s_next (a step to
    sigma 0 takes the denoised sample as it is; old_denoised and h_last are None on the first step).
    The carry holds old_denoised and h_last."""
    denoised = denoise(x, _expand(sigmas[i], x))
    s, s_next = float(sigmas[i]), float(sigmas[i + 1])
    if s_next == 0:
        x = denoised
    else:
        h = math.log(s) - math.log(s_next)
        x = update(x, denoised, carry.get("old_denoised"), s, s_next, h, carry.get("h_last"))
        carry["h_last"] = h
    carry["old_denoised"] = denoised
    return x, denoised


def dpmpp_2m_step(denoise, x, sigmas, i, carry, noise):
    """DPM-Solver++(2M): second-order multistep in log-sigma time t = -log sigma."""
    def update(x, denoised, old_denoised, s, s_next, h, h_last):
        if old_denoised is None:
            d_eff = denoised
        else:
            r = h_last / h
            d_eff = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        return (s_next / s) * x - math.expm1(-h) * d_eff

    return _multistep(denoise, x, sigmas, i, carry, update)


def dpmpp_2m_sde_step(denoise, x, sigmas, i, carry, noise, eta: float = 1.0):
    """DPM-Solver++(2M) SDE (midpoint variant): the multistep update plus injected noise."""
    def update(x, denoised, old_denoised, s, s_next, h, h_last):
        eta_h = eta * h
        x = (s_next / s) * math.exp(-eta_h) * x - math.expm1(-h - eta_h) * denoised
        if old_denoised is not None:
            r = h_last / h
            x = x - 0.5 * math.expm1(-h - eta_h) * (1 / r) * (denoised - old_denoised)
        if eta:
            x = x + noise() * (s_next * math.sqrt(-math.expm1(-2 * eta_h)))
        return x

    return _multistep(denoise, x, sigmas, i, carry, update)


def lms_coefficient(order: int, sigmas: np.ndarray, i: int, j: int) -> float:
    """Integral over [sigma_i, sigma_(i+1)] of the Lagrange basis polynomial j over the last `order` sigmas."""
    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if k != j:
                prod *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
        return prod

    # Gauss-Legendre with `order` nodes integrates a polynomial of degree order-1 exactly.
    nodes, weights = np.polynomial.legendre.leggauss(max(order, 1))
    a, b = float(sigmas[i]), float(sigmas[i + 1])
    half, mid = (b - a) / 2, (a + b) / 2
    return float(sum(w * basis(mid + half * t) for t, w in zip(nodes, weights)) * half)


def lms_step(denoise, x, sigmas, i, carry, noise, order: int = 4):
    """Linear multistep: the ODE integrated with up to `order` past derivatives (the carry's "ds")."""
    sig = sigmas.detach().cpu().double().numpy()
    ds: list[torch.Tensor] = carry.setdefault("ds", [])
    denoised = denoise(x, _expand(sigmas[i], x))
    ds.append(to_d(x, sigmas[i], denoised))
    if len(ds) > order:
        ds.pop(0)
    cur = min(i + 1, order)
    coeffs = [lms_coefficient(cur, sig, i, j) for j in range(cur)]
    return x + sum(c * d for c, d in zip(coeffs, reversed(ds))), denoised


def ddim_step(denoise, x, sigmas, i, carry, noise, eta: float = 0.0):
    """DDIM in sigma space: x_next = D + sigma_next' * eps + noise, eps = (x - D) / sigma.

    With eta = 0 (the default, as A1111's DDIM) the step is deterministic and equal to Euler's;
    eta > 0 moves part of the noise into fresh noise (eta = 1 is ancestral sampling).
    """
    denoised = denoise(x, _expand(sigmas[i], x))
    down, up = ancestral_step(float(sigmas[i]), float(sigmas[i + 1]), eta)
    eps = (x - denoised) / sigmas[i]
    x = denoised + eps * down
    if up > 0:
        x = x + noise() * up
    return x, denoised


def euler(denoise, x, sigmas, noise, callback=None):
    return looped(euler_step)(denoise, x, sigmas, noise, callback)


def euler_ancestral(denoise, x, sigmas, noise, callback=None, eta: float = 1.0):
    return looped(euler_ancestral_step, eta=eta)(denoise, x, sigmas, noise, callback)


def heun(denoise, x, sigmas, noise, callback=None):
    return looped(heun_step)(denoise, x, sigmas, noise, callback)


def dpmpp_2m(denoise, x, sigmas, noise, callback=None):
    return looped(dpmpp_2m_step)(denoise, x, sigmas, noise, callback)


def dpmpp_2m_sde(denoise, x, sigmas, noise, callback=None, eta: float = 1.0):
    return looped(dpmpp_2m_sde_step, eta=eta)(denoise, x, sigmas, noise, callback)


def lms(denoise, x, sigmas, noise, callback=None, order: int = 4):
    return looped(lms_step, order=order)(denoise, x, sigmas, noise, callback)


def ddim(denoise, x, sigmas, noise, callback=None, eta: float = 0.0):
    return looped(ddim_step, eta=eta)(denoise, x, sigmas, noise, callback)


STEPS: dict[str, Step] = {
    "euler": euler_step,
    "euler-a": euler_ancestral_step,
    "dpm++-2m": dpmpp_2m_step,
    "dpm++-2m-sde": dpmpp_2m_sde_step,
    "heun": heun_step,
    "lms": lms_step,
    "ddim": ddim_step,
}


SAMPLERS: dict[str, Sampler] = {
    "euler": euler,
    "euler-a": euler_ancestral,
    "dpm++-2m": dpmpp_2m,
    "dpm++-2m-sde": dpmpp_2m_sde,
    "heun": heun,
    "lms": lms,
    "ddim": ddim,
}


def get_step(name: str) -> Step:
    """The step of sampler `name` (a token of config.SAMPLERS), for callers that run steps themselves."""
    get_sampler(name)
    return STEPS[name]


def get_sampler(name: str) -> Sampler:
    """The sampler registered under `name` (a token of config.SAMPLERS)."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise BadInput(f"{{img2img.sampler}} '{name}' is not known; use one of: {', '.join(SAMPLERS)}") from None


def model_calls(name: str, n_sigmas: int) -> int:
    """How many denoiser calls sampler `name` makes over a schedule of n_sigmas values (ending in 0)."""
    steps = n_sigmas - 1
    return 2 * steps - 1 if name == "heun" and steps > 0 else steps
