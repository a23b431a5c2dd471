"""Temporal consistency and fidelity of an output sequence (DESIGN §6), and `vid2vid metrics`.

Figures, all in float arithmetic on pixels in [0, 1] (uint8 inputs are converted first, so
nothing wraps):

- warping error (Lai et al. 2018): optical flow between consecutive SOURCE frames (OpenCV
  DIS); output frame t-1 is warped into frame t; the mean absolute difference (over pixels
  and channels) is taken over the pixels that pass the forward-backward check
  |F_fw + F_bw| <= 0.01 (|F_fw|^2 + |F_bw|^2) + 0.5 and whose sample lies inside frame t-1;
  then the mean over pairs (pairs without a single consistent pixel are left out).
- flicker: mean absolute difference of consecutive output frames, mean over pairs.
- fidelity: PSNR of the output against a reference sequence (e.g. the uncorrected generated
  frames), 10 log10(1 / MSE) with the MSE over all frames; per frame as well.

The source's own warping error (the same figure on the source frames, with the same flows)
is reported beside the output's: it is the floor a perfectly stable output would reach.

Flow convention: `flow` at frame t maps each pixel x of frame t to x + flow(x) in the other
frame; warping the other frame "backward" reads it at x + flow(x).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vid2vid.errors import BadInput

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
METRICS_PRESET = "medium"   # the measuring flow; the correction method uses its own, cheaper one


# ---------------------------------------------------------------- conversions

def as_float_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] HxWx3 -> float32 HxWx3 in [0, 1] (uint8 is divided, never wraps)."""
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    return a.astype(np.float32, copy=False)


def grey_u8(img: np.ndarray) -> np.ndarray:
    """uint8 or float [0, 1] HxWx3 -> uint8 HxW luminance (BT.601), the input DIS wants."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    return a.reshape(a.shape[:2])


def resize_to(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize any HxW[xC] array to height x width (area when shrinking, linear otherwise), same dtype."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=interp)
    return out.reshape((height, width) + img.shape[2:])


def resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxWx2 flow field to height x width, scaling its vectors with the size."""
    h, w = flow.shape[:2]
    if (w, h) == (width, height):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


# ---------------------------------------------------------------- flow and warping

def dis_flow(frame: np.ndarray, other: np.ndarray, preset: str = METRICS_PRESET) -> np.ndarray:
    """DIS optical flow at `frame` towards `other` (uint8 HxW grey): float32 HxWx2 (dx, dy) in pixels,
    such that frame(x) ~ other(x + flow(x))."""
    if preset not in DIS_PRESETS:
        raise BadInput(f"flow preset '{preset}' is not known; use {', '.join(DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])  # type: ignore[attr-defined]  # missing from cv2's stubs
    return dis.calc(frame, other, None)


def sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute float32 sampling coordinates (map_x, map_y) = pixel grid + flow, for cv2.remap."""
    h, w = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = img(x + flow(x)), bilinear, borders replicated.

    img: float32 HxW[xC] (any range); flow: HxWx2 at the output frame. Same shape as img."""
    map_x, map_y = sample_grid(flow)
    out = cv2.remap(np.ascontiguousarray(img, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """bool HxW: x + flow(x) lies inside the frame (so the warped sample is real, not a border copy)."""
    h, w = flow.shape[:2]
    map_x, map_y = sample_grid(flow)
    return (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)


def consistency_mask(flow: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Forward-backward check (DESIGN §6), bool HxW at the frame that `flow` starts from.

    flow: HxWx2 at frame a towards frame b; flow_back: HxWx2 at frame b towards frame a.
    With F = flow(x) and B = flow_back(x + F) (bilinear), a pixel passes when
    |F + B| <= 0.01 (|F|^2 + |B|^2) + 0.5 (|.| the Euclidean length, in pixels).
    """
    back = warp(flow_back, flow)
    s = flow + back
    lhs = np.sqrt(s[..., 0] ** 2 + s[..., 1] ** 2)
    rhs = 0.01 * (flow[..., 0] ** 2 + flow[..., 1] ** 2 + back[..., 0] ** 2 + back[..., 1] ** 2) + 0.5
    return lhs <= rhs


# ---------------------------------------------------------------- figures

@dataclass
class PairFlow:
    """What the figures need of one source pair (t-1, t) at the output size.

    flow: float32 HxWx2 at frame t towards frame t-1; valid: bool HxW, pixels that pass the
    forward-backward check and sample inside frame t-1."""

    flow: np.ndarray
    valid: np.ndarray


def pair_flow(src_prev: np.ndarray, src_cur: np.ndarray, preset: str = METRICS_PRESET) -> PairFlow:
    """Flows of one source pair (uint8 or float HxWx3, same size) and its valid-pixel mask."""
    a, b = grey_u8(src_prev), grey_u8(src_cur)
    flow_bw = dis_flow(b, a, preset)      # at t, towards t-1
    flow_fw = dis_flow(a, b, preset)      # at t-1, towards t
    return PairFlow(flow_bw, consistency_mask(flow_bw, flow_fw) & inside_mask(flow_bw))


def source_flows(source_frames: Sequence[np.ndarray], size: tuple[int, int] | None = None,
                 preset: str = METRICS_PRESET, progress: Callable[[], None] | None = None) -> list[PairFlow]:
    """PairFlow of every consecutive pair of source frames, computed at `size` = (width, height)
    (the output's size; default the source's). Reuse it to score several outputs of one source."""
    flows = []
    prev = None
    for frame in source_frames:
        cur = frame if size is None else resize_to(np.asarray(frame), *size)
        if prev is not None:
            flows.append(pair_flow(prev, cur, preset))
            if progress is not None:
                progress()
        prev = cur
    return flows


def pair_warping_error(out_prev: np.ndarray, out_cur: np.ndarray, pf: PairFlow) -> float:
    """Mean |out_cur - warp(out_prev)| over valid pixels and channels (float, [0, 1] units);
    NaN when no pixel is valid (e.g. at a scene cut)."""
    n = int(pf.valid.sum())
    if n == 0:
        return float("nan")
    diff = np.abs(as_float_rgb(out_cur) - warp(as_float_rgb(out_prev), pf.flow))
    return float(diff.mean(axis=2)[pf.valid].sum(dtype=np.float64) / n)


def warping_error(source_frames: Sequence[np.ndarray], output_frames: Sequence[np.ndarray],
                  preset: str = METRICS_PRESET) -> float:
    """Warping error of `output_frames` with flows of `source_frames` (DESIGN §6): mean over pairs."""
    _check_counts(source_frames, output_frames, "source")
    h, w = np.asarray(output_frames[0]).shape[:2]
    flows = source_flows(source_frames, (w, h), preset)
    return _nanmean([pair_warping_error(a, b, pf) for a, b, pf in
                     zip(output_frames[:-1], output_frames[1:], flows)])


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |b - a| over pixels and channels, in float ([0, 1] units)."""
    return float(np.abs(as_float_rgb(b) - as_float_rgb(a)).mean(dtype=np.float64))


def flicker(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute difference of consecutive frames, mean over pairs (0 for fewer than 2 frames)."""
    diffs = [frame_difference(a, b) for a, b in zip(frames[:-1], frames[1:])]
    return float(np.mean(diffs)) if diffs else 0.0


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two same-size images, in float ([0, 1] units)."""
    d = as_float_rgb(a).astype(np.float64) - as_float_rgb(b).astype(np.float64)
    return float(np.mean(d * d))


def psnr_from_mse(m: float) -> float:
    """10 log10(1 / m) for peak 1; inf for m == 0."""
    return float("inf") if m <= 0 else float(10.0 * math.log10(1.0 / m))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two same-size images with pixels in [0, 1] (uint8 is converted); inf if equal."""
    return psnr_from_mse(mse(a, b))


def sequence_psnr(frames: Sequence[np.ndarray], ref_frames: Sequence[np.ndarray]) -> float:
    """PSNR (dB) of a sequence against a reference: 10 log10(1 / MSE), MSE over all frames."""
    _check_counts(ref_frames, frames, "reference")
    return psnr_from_mse(float(np.mean([mse(a, b) for a, b in zip(frames, ref_frames)])))


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _check_counts(a: Sequence, b: Sequence, what: str) -> None:
    if len(a) != len(b):
        raise BadInput(f"the {what} has {len(a)} frames but the output has {len(b)}; "
                       f"give sequences of the same length")
    if len(b) == 0:
        raise BadInput("the output has no frames")


def consistency_report(source_frames: Sequence[np.ndarray], output_frames: Sequence[np.ndarray],
                       ref_frames: Sequence[np.ndarray] | None = None, *,
                       flows: list[PairFlow] | None = None, preset: str = METRICS_PRESET,
                       progress: Callable[[], None] | None = None) -> dict:
    """All figures of one output sequence (frames uint8 or float32 HxWx3 in [0, 1]).

    Source frames are resized to the output's size before the flow is computed. `flows`
    (from `source_flows` at the output size) skips the flow computation. Returns a dict of
    plain numbers and per-frame lists: warping_error, source_warping_error, flicker,
    source_flicker, psnr (None without a reference), per_pair {warping_error,
    source_warping_error, flicker, valid_fraction} (pair k = frames k, k+1), per_frame {psnr}.
    """
    # 1. check the inputs
    _check_counts(source_frames, output_frames, "source")
    if ref_frames is not None:
        _check_counts(ref_frames, output_frames, "reference")
    h, w = np.asarray(output_frames[0]).shape[:2]
    for i, f in enumerate(output_frames):
        if np.asarray(f).shape[:2] != (h, w):
            raise BadInput(f"output frame {i + 1} is {np.asarray(f).shape[1]}x{np.asarray(f).shape[0]}, "
                           f"frame 1 is {w}x{h}; all output frames must have one size")
    # 2. source flows at the output size
    if flows is None:
        flows = source_flows(source_frames, (w, h), preset, progress)
    if len(flows) != len(output_frames) - 1:
        raise BadInput(f"{len(flows)} flows given for {len(output_frames)} frames; need one per pair")
    # 3. per-pair figures
    src = [resize_to(np.asarray(f), w, h) for f in source_frames]
    we, swe, fl, valid = [], [], [], []
    for k, pf in enumerate(flows):
        we.append(pair_warping_error(output_frames[k], output_frames[k + 1], pf))
        swe.append(pair_warping_error(src[k], src[k + 1], pf))
        fl.append(frame_difference(output_frames[k], output_frames[k + 1]))
        valid.append(float(pf.valid.mean()))
    # 4. fidelity
    per_psnr = None
    seq_psnr = None
    if ref_frames is not None:
        errs = [mse(o, r) for o, r in zip(output_frames, ref_frames)]
        per_psnr = [psnr_from_mse(e) for e in errs]
        seq_psnr = psnr_from_mse(float(np.mean(errs)))
    src_fl = [frame_difference(a, b) for a, b in zip(src[:-1], src[1:])]
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


# ---------------------------------------------------------------- presentation

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
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value:>10}  {note}" for name, value, note in rows]
    lines.append(f"(flow: {report['flow']}; warping error = mean |O_t - warp(O_t-1)| over consistent pixels, [0,1])")
    return "\n".join(lines)


def _json_safe(obj):
    """Non-finite floats become None (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def report_json(report: dict) -> str:
    """The report as strict JSON (NaN / inf written as null)."""
    return json.dumps(_json_safe(report), indent=2)


def plot_report(report: dict, path: str | Path) -> Path:
    """Write a per-frame plot (PNG): warping error and flicker per pair, PSNR per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pp = report["per_pair"]
    x = np.arange(2, report["frames"] + 1)
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
        axes[2].plot(np.arange(1, report["frames"] + 1), y)
        axes[2].set_ylabel("PSNR vs ref (dB)")
    axes[-1].set_xlabel("frame")
    fig.tight_layout()
    out = Path(path)
    from vid2vid.workspace import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out


# ---------------------------------------------------------------- reading sequences

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".m4v"}


def read_folder(folder: str | Path) -> list[np.ndarray]:
    """Frames of a folder (natural order) as uint8 HxWx3 (8-bit memory per frame)."""
    from vid2vid.imageops import read_image, to_uint8
    from vid2vid.workspace import list_frames

    files = list_frames(folder)
    if not files:
        raise BadInput(f"{folder} has no image frames (.png, .jpg, .webp); give a frame folder or a video")
    return [to_uint8(read_image(p)) for p in files]


def _frame_seconds(frame) -> Fraction | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return frame.pts * Fraction(frame.time_base.numerator, frame.time_base.denominator)


def read_video(path: str | Path, count: int | None = None) -> list[np.ndarray]:
    """Frames of a video as uint8 HxWx3 RGB, decoded with PyAV.

    count None: every frame. Otherwise `count` frames at the times start + k * duration / count
    (k = 0..count-1), each the last frame shown at or before that time, which matches frames
    extracted at count / duration fps."""
    import av

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"video {p} does not exist")
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as exc:
        raise BadInput(f"{p} cannot be opened as a video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise BadInput(f"{p} has no video stream")
        stream = container.streams.video[0]
        frames: list[np.ndarray] = []
        if count is None:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
            return frames
        duration = _duration(container, stream)
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
    if not frames:
        raise BadInput(f"{p} has no decodable video frames")
    return frames


def _duration(container, stream) -> Fraction:
    if stream.duration is not None and stream.time_base is not None:
        return stream.duration * Fraction(stream.time_base.numerator, stream.time_base.denominator)
    if container.duration is not None:
        return Fraction(container.duration, 1_000_000)
    raise BadInput("the source video has no duration; extract its frames and pass the folder")


def read_sequence(path: str | Path, count: int | None = None) -> list[np.ndarray]:
    """A frame folder or a video file as uint8 frames (a video sampled to `count` frames if given)."""
    p = Path(path)
    if p.is_dir():
        frames = read_folder(p)
        if count is not None and len(frames) != count:
            raise BadInput(f"{p} has {len(frames)} frames but the output has {count}; "
                           f"pass the source video instead of the folder to match frame times")
        return frames
    if p.suffix.lower() in VIDEO_SUFFIXES or p.is_file():
        return read_video(p, count)
    raise BadInput(f"{p} is neither a frame folder nor a video file")


# ---------------------------------------------------------------- command

def main(args, parser, job) -> dict:
    """`vid2vid metrics --source VIDEO|DIR OUTPUT [--ref DIR] [--json] [--plot PNG]`."""
    # 1. read the output, then the source (at the output's frame count) and the reference
    output = read_sequence(args.output)
    if len(output) < 2:
        raise BadInput(f"{args.output} has {len(output)} frame(s); the figures need at least 2")
    source = read_sequence(args.source, len(output))
    ref = read_sequence(args.ref, len(output)) if args.ref else None
    # 2. compute the figures (one progress step per pair)
    tracker = job.tracker("metrics", len(output) - 1) if job is not None else None
    report = consistency_report(source, output, ref, progress=tracker.advance if tracker else None)
    # 3. show them
    print(report_json(report) if args.json else format_report(report))
    if getattr(args, "plot", None):
        plot_report(report, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return report
