"""The whole-list figures and video reader as they were before the metrics streamed (the code of
that time, lint aside), kept as the reference the streaming code must match to the last digit;
tests only."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from vid2vid.temporal.metrics import (
    METRICS_PRESET,
    _nanmean,
    frame_difference,
    mse,
    pair_warping_error,
    psnr_from_mse,
)
from vid2vid.temporal.opticalflow import pair_flow, resize_to


def source_flows(source_frames, size=None, preset=METRICS_PRESET):
    flows = []
    prev = None
    for frame in source_frames:
        cur = frame if size is None else resize_to(np.asarray(frame), *size)
        if prev is not None:
            flows.append(pair_flow(prev, cur, preset))
        prev = cur
    return flows


def consistency_report(source_frames, output_frames, ref_frames=None, *, preset=METRICS_PRESET) -> dict:
    assert len(source_frames) == len(output_frames) > 0
    h, w = np.asarray(output_frames[0]).shape[:2]
    flows = source_flows(source_frames, (w, h), preset)
    src = [resize_to(np.asarray(f), w, h) for f in source_frames]
    we, swe, fl, valid = [], [], [], []
    for k, pf in enumerate(flows):
        we.append(pair_warping_error(output_frames[k], output_frames[k + 1], pf))
        swe.append(pair_warping_error(src[k], src[k + 1], pf))
        fl.append(frame_difference(output_frames[k], output_frames[k + 1]))
        valid.append(float(pf.valid.mean()))
    per_psnr = None
    seq_psnr = None
    if ref_frames is not None:
        errs = [mse(o, r) for o, r in zip(output_frames, ref_frames)]
        per_psnr = [psnr_from_mse(e) for e in errs]
        seq_psnr = psnr_from_mse(float(np.mean(errs)))
    src_fl = [frame_difference(a, b) for a, b in itertools.pairwise(src)]
    return {
        "frames": len(output_frames),
        "width": w,
        "height": h,
        "flow": f"opencv-dis-{preset}",
        "warping_error": _nanmean(we),
        "source_warping_error": _nanmean(swe),
        "flicker": float(np.mean(fl)) if fl else 0.0,
        "source_flicker": float(np.mean(src_fl)) if src_fl else 0.0,
        "psnr": seq_psnr,
        "per_pair": {"warping_error": we, "source_warping_error": swe, "flicker": fl,
                     "valid_fraction": valid},
        "per_frame": {"psnr": per_psnr},
    }


def _frame_seconds(frame):
    if frame.pts is None or frame.time_base is None:
        return None
    return frame.pts * Fraction(frame.time_base.numerator, frame.time_base.denominator)


def read_video(path, count=None) -> list[np.ndarray]:
    import av

    p = Path(path)
    with av.open(str(p)) as container:
        stream = container.streams.video[0]
        frames: list[np.ndarray] = []
        if count is None:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
            return frames
        if stream.duration is not None and stream.time_base is not None:
            duration = stream.duration * Fraction(stream.time_base.numerator, stream.time_base.denominator)
        else:
            duration = Fraction(container.duration, 1_000_000)
        start = None
        prev = None
        k = 0
        for frame in container.decode(stream):
            t = _frame_seconds(frame)
            if start is None:
                start = t if t is not None else Fraction(0)
            t = t if t is not None else start
            while k < count and t > start + Fraction(k) * duration / count and prev is not None:
                frames.append(prev)
                k += 1
            prev = frame.to_ndarray(format="rgb24")
            if k >= count:
                break
        while k < count and prev is not None:
            frames.append(prev)
            k += 1
    return frames


def same(a, b) -> bool:
    """Equal to the last digit, NaN equal to NaN, recursively through dicts and lists."""
    if isinstance(a, dict):
        return isinstance(b, dict) and all(k in b and same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)
