"""Sigma schedules against direct float64 formulas, truncation indexes, and input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vid2vid.core.errors import BadInput
from vid2vid.diffusion import schedules as S

N, LO, HI = 12, 0.1, 1.2


def _direct(name: str, n: int, lo: float, hi: float) -> list[float]:
    """Each schedule written out value by value from its textbook formula (pure Python floats)."""
    out = []
    for i in range(n):
        f = i / (n - 1)                                   # 0 at sigma_max, 1 at sigma_min
        if name == "karras":
            out.append((hi ** (1 / 7) + f * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7)
        elif name == "exponential":
            out.append(hi * (lo / hi) ** f)
        elif name == "poly-exponential":                  # rho 1: the same curve as exponential
            out.append(math.exp(math.log(lo) + (1 - f) * (math.log(hi) - math.log(lo))))
        elif name == "linear":
            out.append(hi - f * (hi - lo))
        elif name == "vp":
            # sigma(t)^2 = exp(19.9 t^2 / 2 + 0.1 t) - 1; solve for the end times by bisection
            def sig(t):
                return math.sqrt(math.exp(19.9 * t * t / 2 + 0.1 * t) - 1)

            def solve(target):
                a, b = 1e-9, 5.0
                for _ in range(200):
                    m = (a + b) / 2
                    a, b = (m, b) if sig(m) < target else (a, m)
                return (a + b) / 2
            t0, t1 = solve(hi), solve(lo)
            out.append(sig(t0 + f * (t1 - t0)))
    return out + [0.0]


@pytest.mark.parametrize("name", ["karras", "exponential", "poly-exponential", "vp", "linear"])
def test_schedule_values_match_direct_formula(name):
    got = S.full_schedule(name, N, LO, HI)
    assert got.shape == (N + 1,) and got.dtype == np.float64
    np.testing.assert_allclose(got, _direct(name, N, LO, HI), rtol=1e-9, atol=1e-12)
    assert got[-1] == 0.0
    assert np.all(np.diff(got) < 0), "schedules must decrease"
    assert got[0] == pytest.approx(HI) and got[-2] == pytest.approx(LO)


def test_poly_exponential_rho_changes_the_curve():
    a, b = S.poly_exponential(10, LO, HI, rho=1.0), S.poly_exponential(10, LO, HI, rho=2.0)
    assert b[0] == pytest.approx(HI) and b[-2] == pytest.approx(LO)
    for i in range(10):   # log sigma = log lo + (1 - i/9)^rho (log hi - log lo)
        assert math.log(b[i]) == pytest.approx(math.log(LO) + (1 - i / 9) ** 2 * math.log(HI / LO))
    assert np.all(b[1:-2] < a[1:-2])


def test_vp_differs_from_the_seeds_argument_mixup():
    ours = S.vp(20, LO, HI)
    # the seed's call get_sigmas_vp(n, sigma_max, sigma_min) meant beta_d=1.2, beta_min=0.1 over t in [1, 1e-3]
    t = np.linspace(1, 1e-3, 20)
    seed = np.sqrt(np.exp(HI * t ** 2 / 2 + LO * t) - 1)
    assert ours[0] == pytest.approx(HI) and ours[-2] == pytest.approx(LO)
    assert abs(seed[-1] - LO) > 0.05      # the seed's list did not end at sigma_min


def test_default_schedule_is_linspace_over_training_timesteps():
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    alphas = np.cumprod(1 - betas)
    train = np.sqrt((1 - alphas) / alphas)
    np.testing.assert_allclose(S.sd_training_sigmas(), train, rtol=1e-12)
    got = S.full_schedule("default", 10, LO, HI, training_sigmas=train)
    for i, t in enumerate(np.linspace(999, 0, 10)):
        lo_i = int(math.floor(t))
        hi_i = min(lo_i + 1, 999)
        w = t - lo_i
        want = math.exp((1 - w) * math.log(train[lo_i]) + w * math.log(train[hi_i]))
        assert got[i] == pytest.approx(want, rel=1e-10)
    assert got[0] == pytest.approx(train[-1]) and got[-1] == 0.0
    with pytest.raises(BadInput, match="training sigmas"):
        S.full_schedule("default", 10, LO, HI)


def test_sigma_to_timestep_on_a_hand_made_schedule():
    import torch

    # training sigmas e^0, e^1, e^2, e^4: log sigma is 0, 1, 2, 4 at timesteps 0..3
    log_sigmas = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    sigma = torch.tensor([1.0, math.e, math.exp(1.25), math.exp(3.0), math.exp(4.0), 0.5, 100.0], dtype=torch.float64)
    t = S.sigma_to_timestep(sigma, log_sigmas)
    assert t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), [0.0, 1.0, 1.25, 2.5, 3.0, 0.0, 3.0], rtol=0, atol=1e-12)
    # the inverse of sigma_at_timestep, and float32 in float32
    train = S.sd_training_sigmas()
    ts = np.array([0.0, 10.5, 250.25, 998.9, 999.0])
    back = S.sigma_to_timestep(torch.tensor(S.sigma_at_timestep(ts, train)), torch.tensor(np.log(train)))
    np.testing.assert_allclose(back.numpy(), ts, atol=1e-9)
    t32 = S.sigma_to_timestep(sigma.float(), log_sigmas.float())
    assert t32.dtype == torch.float32 and torch.allclose(t32.double(), t, atol=1e-5)


@pytest.mark.parametrize("steps,denoise,start", [
    (20, 0.75, 4),     # t_enc = 15 -> full[20 - 15 - 1:]
    (20, 1.0, 0),      # min(1, 0.999) * 20 = 19.98 -> 19 -> full[0:]
    (20, 0.5, 9),
    (20, 0.0, 19),     # one step from sigma_min
    (10, 0.33, 6),     # int(3.3) = 3
    (7, 0.999, 0),
    (3, 0.34, 1),      # int(1.02) = 1
])
def test_truncation_index(steps, denoise, start):
    full = S.linear(steps, LO, HI)
    real = S.real_sigmas("linear", steps, denoise, LO, HI)
    t_enc = int(min(denoise, 0.999) * steps)
    assert start == steps - t_enc - 1
    np.testing.assert_array_equal(real, full[start:])
    assert len(real) == t_enc + 2 and real[-1] == 0.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0, denoise=0.5, sigma_min=0.1, sigma_max=1.2), "--steps"),
    (dict(steps=20, denoise=1.5, sigma_min=0.1, sigma_max=1.2), "--denoise"),
    (dict(steps=20, denoise=-0.1, sigma_min=0.1, sigma_max=1.2), "--denoise"),
    (dict(steps=20, denoise=0.5, sigma_min=2.0, sigma_max=1.2), "below --sigma-min"),
    (dict(steps=20, denoise=0.5, sigma_min=0.0, sigma_max=1.2), "positive"),
    (dict(steps=20, denoise=0.5, sigma_min=0.1, sigma_max=float("nan")), "positive"),
])
def test_invalid_values_are_rejected(kwargs, match):
    with pytest.raises(BadInput, match=match):
        S.real_sigmas("karras", **kwargs)


def test_unknown_schedule():
    with pytest.raises(BadInput, match="not known"):
        S.full_schedule("cosine", 10, LO, HI)


def test_sigmas_command_writes_a_plot(tmp_path, capsys):
    from vid2vid.cli.main import main

    out = tmp_path / "sigmas.png"
    assert main(["sigmas", "--steps", "10", "--denoise", "0.5", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "exponential: [1.2000" not in text          # truncated: t_enc = 5 -> full[4:]
    assert f"{S.exponential(10, 0.1, 1.2)[4]:.4f}" in text
    assert main(["sigmas", "--sigma-min", "2", "-o", str(out)]) == 2


def test_size_recommendations_are_the_nearest_aspect_ratios():
    from vid2vid.config.canvas import recommend_sizes

    got = recommend_sizes(852, 480, 8, 360, 720, top=10)
    assert all(c.width % 8 == 0 and c.height % 8 == 0 and 360 <= min(c.width, c.height) for c in got)
    # brute force: no excluded size is strictly closer in aspect ratio than the worst one kept
    worst = max(abs(math.log(c.width / c.height / (852 / 480))) for c in got)
    closer = [(w, h) for w in range(360, 721, 8) for h in range(360, 721, 8)
              if abs(math.log(w / h / (852 / 480))) < worst - 1e-12]
    assert set(closer) <= {(c.width, c.height) for c in got}
    assert (got[0].width, got[0].height) == (696, 392)
    with pytest.raises(BadInput):
        recommend_sizes(0, 480)
