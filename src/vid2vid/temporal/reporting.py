"""The figures of `vid2vid.temporal.metrics` for people: the console table, strict JSON and a per-frame plot."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vid2vid.temporal import metrics


def _fmt(v: float | None, digits: int = 5) -> str:
    if v is None:
        return "-"
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def format_report(report: dict) -> str:
    """A small table of the main figures, for the console."""
    rows = [
        ("frames", str(report["frames"]), f"{report['width']}x{report['height']}"),
        ("warping error", _fmt(report["warping_error"]), f"source {_fmt(report['source_warping_error'])}"),
        ("flicker", _fmt(report["flicker"]), f"source {_fmt(report['source_flicker'])}"),
        ("fidelity PSNR (dB)", _fmt(report["psnr"], 2), "vs reference" if report["psnr"] is not None
         else "no --ref given"),
    ]
    if report.get("psnr") is not None:
        rows.append(("moving-pixel PSNR (dB)", _fmt(report.get("moving_psnr"), 2), "where the source moves"))
        rows.append((f"  worst {metrics.WORST_SHARE}% of frames", _fmt(report.get("moving_psnr_worst"), 2),
                     "tears and ghosts on moving parts"))
        rows.append(("sharpness", _fmt(report.get("sharpness"), 3), "mean gradient / reference's"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value:>10}  {note}" for name, value, note in rows]
    note = measured_note(report)
    if note:
        lines.append(f"(measured {note})")
    lines.append(f"(flow: {report['flow']}; warping error = mean |O_t - warp(O_t-1)| over consistent pixels, [0,1])")
    return "\n".join(lines)


def measured_note(report: dict) -> str:
    """'at 160x90, on every 4th pair (25 of 99)' when the figures were not measured on every pair
    at the output's size, else ''."""
    m = report.get("measured") or {}
    parts = []
    if (m.get("width"), m.get("height")) != (report["width"], report["height"]):
        parts.append(f"at {m['width']}x{m['height']}")
    if m.get("every", 1) > 1:
        parts.append(f"on every {_ordinal(m['every'])} pair ({m['pairs']} of {report['frames'] - 1})")
    return ", ".join(parts)


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def json_safe(obj):
    """Non-finite floats become None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def report_json(report: dict) -> str:
    """The report as strict JSON (NaN / inf written as null)."""
    return json.dumps(json_safe(report), indent=2)


def plot_report(report: dict, path: str | Path) -> Path:
    """Write a per-frame plot (PNG): warping error and flicker per pair, PSNR per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pp = report["per_pair"]
    x = pp["frame"]
    panels = 3 if report["per_frame"]["psnr"] is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.6 * panels), sharex=True)
    axes[0].plot(x, pp["warping_error"], label="output")
    axes[0].plot(x, pp["source_warping_error"], label="source", alpha=0.7)
    axes[0].set_ylabel("warping error")
    axes[0].legend(loc="upper right")
    axes[1].plot(x, pp["flicker"], label="output")
    axes[1].set_ylabel("flicker |O_t - O_t-1|")
    if panels == 3:
        y = [v if math.isfinite(v) else np.nan for v in report["per_frame"]["psnr"]]
        axes[2].plot(report["per_frame"]["frame"], y)
        axes[2].set_ylabel("PSNR vs ref (dB)")
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    out = Path(path)
    from vid2vid.core.workspace import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
