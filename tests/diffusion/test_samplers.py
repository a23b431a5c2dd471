"""Samplers on a Gaussian data distribution, where the ideal denoiser and the ODE are analytic."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vid2vid.core.errors import BadInput
from vid2vid.diffusion import samplers as K
from vid2vid.diffusion.schedules import karras

MU, S0 = 0.3, 0.5           # data: every element ~ N(MU, S0^2)


def gaussian_denoiser(x, sigma):
    """E[x0 | x] for x = x0 + sigma * n with x0 ~ N(MU, S0^2): a posterior mean, computed in float64."""
    s2 = sigma.double().view(-1, 1, 1, 1) ** 2
    return ((S0 ** 2 * x.double() + s2 * MU) / (S0 ** 2 + s2)).to(x.dtype)


def ode_endpoint(x_t: np.ndarray, sigma_t: float) -> np.ndarray:
    """Probability-flow ODE solution at sigma 0: x0 = MU + (x_t - MU) * S0 / sqrt(S0^2 + sigma_t^2)."""
    return MU + (x_t - MU) * S0 / math.sqrt(S0 ** 2 + sigma_t ** 2)


DETERMINISTIC = ["euler", "heun", "dpm++-2m", "lms", "ddim"]
STOCHASTIC = ["euler-a", "dpm++-2m-sde"]


def test_registry_matches_config_tokens():
    from vid2vid import config
    from vid2vid.diffusion import fewstep

    # the sigma samplers here, the few-step ones (bound to their timestep grid) in fewstep.py
    assert set(K.SAMPLERS) | set(fewstep.FEWSTEP_SAMPLERS) == set(config.SAMPLERS)
    assert not set(K.SAMPLERS) & set(fewstep.FEWSTEP_SAMPLERS)
    with pytest.raises(BadInput, match="not known"):
        K.get_sampler("plms")


def _ode_errors(name: str, steps: tuple[int, ...]) -> list[float]:
    sigma_t = 5.0
    x_t = torch.linspace(-8, 8, 64, dtype=torch.float64).view(1, 1, 8, 8)
    want = ode_endpoint(x_t.numpy(), sigma_t)
    errs = []
    for n in steps:
        sig = torch.tensor(karras(n, 0.002, sigma_t))
        out = K.get_sampler(name)(gaussian_denoiser, x_t.clone(), sig, noise=None)
        errs.append(float(np.abs(out.numpy() - want).max()))
    return errs


@pytest.mark.parametrize("name,order", [("euler", 1), ("ddim", 1), ("heun", 2), ("dpm++-2m", 2), ("lms", 3)])
def test_deterministic_samplers_converge_to_the_ode_solution(name, order):
    e20, e80 = _ode_errors(name, (20, 80))
    assert e80 < 0.02
    # four times the steps: error falls by about 4^order (first order 4x, second order 16x)
    assert e20 / e80 > 0.75 * 4 ** min(order, 2), (e20, e80)


def test_ddim_without_eta_is_euler():
    assert _ode_errors("ddim", (10,)) == pytest.approx(_ode_errors("euler", (10,)), rel=1e-12)


@pytest.mark.parametrize("name", STOCHASTIC + DETERMINISTIC)
def test_every_sampler_recovers_the_data_distribution(name):
    sigma_t, n = 8.0, 120
    shape = (64, 64)
    seeds = list(range(4))
    noise = K.BatchNoise(seeds, (1, *shape), dtype=torch.float64)
    x_t = MU + noise() * math.sqrt(S0 ** 2 + sigma_t ** 2)
    sig = torch.tensor(karras(n, 0.01, sigma_t))
    out = K.get_sampler(name)(gaussian_denoiser, x_t, sig, noise).numpy()
    assert abs(out.mean() - MU) < 0.02
    assert abs(out.std() - S0) < 0.03


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_are_seeded_per_item(name):
    sig = torch.tensor(karras(6, 0.05, 3.0))
    sampler = K.get_sampler(name)

    def run(seeds):
        noise = K.BatchNoise(seeds, (1, 4, 4))
        x = noise() * 3.0
        return sampler(gaussian_denoiser, x, sig, noise)

    batch = run([7, 8, 9])
    alone = torch.cat([run([7]), run([8]), run([9])])
    torch.testing.assert_close(batch, alone, rtol=0, atol=0)
    assert torch.equal(run([7]), run([7]))
    assert not torch.equal(run([7]), run([8]))


def test_lms_coefficients_integrate_lagrange_basis():
    sig = np.array([4.0, 2.0, 1.0, 0.5, 0.0])
    # order 1: integral of 1 over [sigma_i, sigma_{i+1}]
    assert K.lms_coefficient(1, sig, 0, 0) == pytest.approx(-2.0)
    # order 2 at i=1, nodes 2 (j=0) and 4 (j=1): integral over [2, 1] of (tau-4)/(2-4) and (tau-2)/(4-2)
    assert K.lms_coefficient(2, sig, 1, 0) == pytest.approx(-((1 - 4) ** 2 - (2 - 4) ** 2) / 4)
    assert K.lms_coefficient(2, sig, 1, 1) == pytest.approx(((1 - 2) ** 2 - 0) / 4)


def test_model_calls():
    assert K.model_calls("euler", 17) == 16
    assert K.model_calls("heun", 17) == 31
