"""`vid2vid sigmas`: every sigma schedule in one plot, with the img2img truncation point marked.

`plot_sigmas(...)` returns a matplotlib Figure (no pyplot, so the web UI can call it from any
thread); `plot_png(...)` returns the PNG bytes. The "default" curve is the model's own schedule;
without a model it is Stable Diffusion 1.x/2.x's training schedule.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np

from vid2vid.diffusion import schedules

OVERRIDES = ("karras", "exponential", "poly-exponential", "vp", "linear")


def schedule_table(steps: int, denoise: float, sigma_min: float, sigma_max: float,
                   training_sigmas: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Full schedules (steps + 1 values each) by name, "default" first; checks the inputs."""
    schedules.check_params(steps, denoise, sigma_min, sigma_max)
    train = schedules.sd_training_sigmas() if training_sigmas is None else training_sigmas
    table = {"default": schedules.model_default(steps, train)}
    for name in OVERRIDES:
        table[name] = schedules.full_schedule(name, steps, sigma_min, sigma_max)
    return table


def plot_sigmas(steps: int = 20, denoise: float = 0.75, sigma_min: float = 0.1, sigma_max: float = 1.2,
                training_sigmas: np.ndarray | None = None, width: float = 8.0, height: float = 5.0):
    """A Figure with every schedule against the step index; the steps img2img skips are shaded."""
    from matplotlib.figure import Figure

    table = schedule_table(steps, denoise, sigma_min, sigma_max, training_sigmas)
    start = steps - schedules.encode_steps(steps, denoise) - 1
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(steps + 1)
    for name, sig in table.items():
        style: dict[str, Any] = dict(linestyle="--", color="grey") if name == "default" else {}
        label = "poly-exponential (rho 1)" if name == "poly-exponential" else name
        ax.plot(x, sig, marker=".", label=label, **style)
    ax.axvspan(-0.5, start, color="0.9", zorder=0)
    ax.axvline(start, color="black", linewidth=1)
    ax.annotate(f"img2img starts here\n(denoise {denoise:g}: {steps - start} steps)", xy=(start, sigma_max),
                xytext=(6, 6), textcoords="offset points", fontsize=8)
    ax.set_yscale("symlog", linthresh=max(sigma_min / 2, 1e-3))
    ax.set_ylim(0, max(float(v.max()) for v in table.values()) * 1.5)
    ax.set_xlim(-0.5, steps + 0.5)
    locator: Any = ax.xaxis.get_major_locator()     # a MaxNLocator, whose set_params takes integer=
    locator.set_params(integer=True)
    ax.set_xlabel("step")
    ax.set_ylabel("sigma (symlog)")
    ax.set_title(f"sigma schedules: {steps} steps, sigma {sigma_min:g}..{sigma_max:g}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def message_figure(text: str, width: float = 7, height: float = 3.6) -> Any:
    """A Figure with no curves that shows `text` (the live preview on bad settings)."""
    import textwrap

    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.text(0.5, 0.5, textwrap.fill(text, 70), ha="center", va="center", wrap=True, color="#b00020")
    return fig


def plot_png(*args, **kwargs) -> bytes:
    """`plot_sigmas(...)` as PNG bytes."""
    buf = io.BytesIO()
    plot_sigmas(*args, **kwargs).savefig(buf, format="png")
    return buf.getvalue()
