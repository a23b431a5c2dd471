"""Temporal consistency and fidelity of an output sequence, and `vid2vid metrics`.

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

`consistency_report` walks the sequences frame pair by frame pair: it holds the previous
frame of each sequence and one pair's flow, and keeps only the per-pair numbers (8 bytes a
figure), so memory does not grow with the length of the video. The means are numpy's over
those numbers, the same figures to the last digit as over whole lists. For very long videos
the figures can be measured at a reduced size (`max_side`) or on every N-th pair (`every`);
the report says so.

The flow and warping themselves are in `vid2vid.temporal.opticalflow`; reading videos and frame
folders one frame at a time is in `vid2vid.video.read`.
"""
from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from vid2vid.config import METRICS_MIN_SIDE
from vid2vid.core.errors import BadInput
from vid2vid.temporal.opticalflow import PairFlow, as_float_rgb, pair_flow, resize_to, warp

METRICS_PRESET = "medium"   # the measuring flow; the correction method uses its own, cheaper one
MIN_MEASURE_SIDE = METRICS_MIN_SIDE

# A frame: the array itself, or a zero-argument callable that reads it when (and only if) needed.
Frame = np.ndarray | Callable[[], np.ndarray]


# ---------------------------------------------------------------- per pair and per frame

def pair_warping_error(out_prev: np.ndarray, out_cur: np.ndarray, pf: PairFlow) -> float:
    """Mean |out_cur - warp(out_prev)| over valid pixels and channels (float, [0, 1] units);
    NaN when no pixel is valid (e.g. at a scene cut)."""
    n = int(pf.valid.sum())
    if n == 0:
        return float("nan")
    diff = np.abs(as_float_rgb(out_cur) - warp(as_float_rgb(out_prev), pf.flow))
    return float(diff.mean(axis=2)[pf.valid].sum(dtype=np.float64) / n)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |b - a| over pixels and channels, in float ([0, 1] units)."""
    return float(np.abs(as_float_rgb(b) - as_float_rgb(a)).mean(dtype=np.float64))


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


# ---------------------------------------------------------------- over short sequences in memory

def source_flows(source_frames: Iterable[np.ndarray], size: tuple[int, int] | None = None,
                 preset: str = METRICS_PRESET, progress: Callable[[], None] | None = None) -> Iterator[PairFlow]:
    """PairFlow of every consecutive pair of source frames, computed at `size` = (width, height)
    (the output's size; default the source's), one pair at a time. Keep them (`list(...)`) to
    score several outputs of one short source with `consistency_report(..., flows=...)`."""
    prev = None
    for frame in source_frames:
        cur = frame if size is None else resize_to(np.asarray(frame), *size)
        if prev is not None:
            yield pair_flow(prev, cur, preset)
            if progress is not None:
                progress()
        prev = cur


def warping_error(source_frames: Sequence[np.ndarray], output_frames: Sequence[np.ndarray],
                  preset: str = METRICS_PRESET) -> float:
    """Warping error of `output_frames` with flows of `source_frames`: mean over pairs."""
    _check_counts(len(source_frames), len(output_frames), "source")
    h, w = np.asarray(output_frames[0]).shape[:2]
    flows = source_flows(source_frames, (w, h), preset)
    return _nanmean([pair_warping_error(a, b, pf) for a, b, pf in
                     zip(output_frames[:-1], output_frames[1:], flows)])


def flicker(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute difference of consecutive frames, mean over pairs (0 for fewer than 2 frames)."""
    diffs = [frame_difference(a, b) for a, b in itertools.pairwise(frames)]
    return float(np.mean(diffs)) if diffs else 0.0


def sequence_psnr(frames: Sequence[np.ndarray], ref_frames: Sequence[np.ndarray]) -> float:
    """PSNR (dB) of a sequence against a reference: 10 log10(1 / MSE), MSE over all frames."""
    _check_counts(len(ref_frames), len(frames), "reference")
    return psnr_from_mse(float(np.mean([mse(a, b) for a, b in zip(frames, ref_frames)])))


# ---------------------------------------------------------------- detail figures, pair by pair
#
# Fidelity where things move, and sharpness: a temporal method that smooths along the motion can
# keep a high PSNR overall while it blurs or ghosts the moving parts; these figures look there.
# Each is a pure function of one frame (or one source pair); `DetailSums` adds them up so that a
# caller walking the sequence frame by frame holds nothing else.

MOVING_LEVEL = 8 / 255      # grey source change above which a pixel counts as moving
MOVING_DILATE = 5           # ... dilated by a square of this size


def grey_float(img: np.ndarray) -> np.ndarray:
    """uint8 or float [0, 1] HxWx3 -> float32 HxW luminance in [0, 1] (BT.601, computed in float)."""
    a = as_float_rgb(img)
    return a[..., 0] * np.float32(0.299) + a[..., 1] * np.float32(0.587) + a[..., 2] * np.float32(0.114)


def moving_mask(src_prev: np.ndarray, src_cur: np.ndarray, level: float = MOVING_LEVEL,
                size: int = MOVING_DILATE) -> np.ndarray:
    """bool HxW: pixels of frame t whose grey source change from t-1 exceeds `level`, dilated size x size."""
    moving = (np.abs(grey_float(src_cur) - grey_float(src_prev)) > level).astype(np.uint8)
    if size > 1:
        moving = cv2.dilate(moving, np.ones((size, size), np.uint8))
    return moving.astype(bool)


def masked_squared_error(out: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """(sum of squared differences, number of values) over the pixels of `mask` (bool HxW) and channels."""
    d = as_float_rgb(out).astype(np.float64) - as_float_rgb(ref).astype(np.float64)
    m = np.asarray(mask, dtype=bool)
    return float((d * d).sum(axis=2)[m].sum()), int(m.sum()) * d.shape[2]


def mean_gradient(img: np.ndarray) -> float:
    """Mean gradient magnitude of the grey image (central differences inside, one-sided at the border),
    per pixel in [0, 1] units per pixel step."""
    gy, gx = np.gradient(grey_float(img).astype(np.float64))
    return float(np.sqrt(gx * gx + gy * gy).mean())


WORST_SHARE = 5             # percent: the worst frames' moving-pixel PSNR (tears and ghosts) is taken here


@dataclass
class DetailSums:
    """Running sums of the detail figures; add frames in order with `add`. `moving_frames` keeps one
    number per frame with moving pixels (its moving-pixel MSE, 8 bytes) for the worst-frames figure."""

    moving_sq: float = 0.0
    moving_count: int = 0
    grad_out: float = 0.0
    grad_ref: float = 0.0
    frames: int = 0
    moving_frames: array = field(default_factory=lambda: array("d"))

    def add(self, out: np.ndarray, ref: np.ndarray | None, src_prev: np.ndarray | None,
            src_cur: np.ndarray) -> None:
        """Frame t of the output and its reference (None: no reference for this frame, e.g. not a
        key), with the source frames t-1 (None for the first frame) and t at the output size."""
        if ref is None:
            return
        if src_prev is not None:
            sq, count = masked_squared_error(out, ref, moving_mask(src_prev, src_cur))
            self.moving_sq += sq
            self.moving_count += count
            if count:
                self.moving_frames.append(sq / count)
        self.grad_out += mean_gradient(out)
        self.grad_ref += mean_gradient(ref)
        self.frames += 1

    @property
    def moving_psnr(self) -> float | None:
        """PSNR (dB) over the moving pixels of all frames with a reference; None when none moved."""
        return psnr_from_mse(self.moving_sq / self.moving_count) if self.moving_count else None

    @property
    def moving_psnr_worst(self) -> float | None:
        """PSNR (dB) of the frames' moving pixels at the worst WORST_SHARE percent of frames: the PSNR of
        the (100 - WORST_SHARE)th percentile (numpy's linear rule) of the per-frame moving-pixel MSE.
        A tear or a ghost on a moving limb in a few frames drags it down where the mean over all moving
        pixels hardly moves. None when no frame has moving pixels."""
        if not self.moving_frames:
            return None
        return psnr_from_mse(float(np.percentile(np.asarray(self.moving_frames), 100 - WORST_SHARE)))

    @property
    def sharpness(self) -> float | None:
        """Mean gradient magnitude of the output over the reference's (1 = as sharp); None without frames."""
        return self.grad_out / self.grad_ref if self.frames and self.grad_ref > 0 else None


def detail_figures(source_frames, output_frames, ref_frames) -> dict:
    """{"moving_psnr", "moving_psnr_worst", "sharpness", "frames"} of an output against a reference, walking the three
    sequences (iterables; reference entries may be None) one frame at a time; source frames are
    resized to the output's size."""
    sums = DetailSums()
    prev = None
    for src, out, ref in zip(source_frames, output_frames, ref_frames):
        h, w = np.asarray(out).shape[:2]
        cur = resize_to(np.asarray(src), w, h)
        sums.add(out, ref, prev, cur)
        prev = cur
    return {"moving_psnr": sums.moving_psnr, "moving_psnr_worst": sums.moving_psnr_worst,
            "sharpness": sums.sharpness, "frames": sums.frames}


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _count_error(what: str, n_other: int, n_output: int) -> BadInput:
    return BadInput(f"the {what} has {n_other} frames but the output has {n_output}; "
                    f"give sequences of the same length")


def _check_counts(n_other: int, n_output: int, what: str) -> None:
    if n_other != n_output:
        raise _count_error(what, n_other, n_output)
    if n_output == 0:
        raise BadInput("the output has no frames")


# ---------------------------------------------------------------- the report, pair by pair

def measure_size(width: int, height: int, max_side: int = 0) -> tuple[int, int]:
    """(width, height) scaled down so that the longer side is at most `max_side` (0: unchanged),
    aspect ratio kept; never scaled up."""
    if max_side <= 0 or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_sampling(max_side: int, every: int) -> None:
    """BadInput unless max_side is 0 or >= MIN_MEASURE_SIDE and every >= 1."""
    if max_side != 0 and max_side < MIN_MEASURE_SIDE:
        raise BadInput(f"metrics size {max_side} is too small; give 0 (the output's size) or at least "
                       f"{MIN_MEASURE_SIDE} pixels for the longer side")
    if every < 1:
        raise BadInput(f"metrics every {every} is not a pair step; give 1 (every pair) or more")


def _load(frame: Frame) -> np.ndarray:
    return np.asarray(frame() if callable(frame) else frame)


_END: Any = object()


def _rest(it: Iterator) -> int:
    return sum(1 for _ in it)


def _lockstep(output: Iterable[Frame], source: Iterable[Frame], ref: Iterable[Frame] | None,
              flows: Iterable[PairFlow] | None) -> Iterator[tuple[int, Frame, Frame, Frame | None, PairFlow | None]]:
    """(i, output i, source i, reference i, flow of pair (i-1, i)) until the output ends; BadInput
    as soon as one sequence turns out shorter or longer than the output."""
    out_it, src_it = iter(output), iter(source)
    ref_it = iter(ref) if ref is not None else None
    flow_it = iter(flows) if flows is not None else None
    n = 0
    for o in out_it:
        s = next(src_it, _END)
        r = next(ref_it, _END) if ref_it is not None else None
        f = next(flow_it, _END) if flow_it is not None and n > 0 else None
        if s is _END:
            raise _count_error("source", n, n + 1 + _rest(out_it))
        if r is _END:
            raise _count_error("reference", n, n + 1 + _rest(out_it))
        if f is _END:
            raise BadInput(f"{n - 1} flows given for {n + 1 + _rest(out_it)} frames; need one per pair")
        yield n, o, s, r, f
        n += 1
    if n == 0:
        raise BadInput("the output has no frames")
    extra = _rest(src_it)
    if extra:
        raise _count_error("source", n + extra, n)
    extra = _rest(ref_it) if ref_it is not None else 0
    if extra:
        raise _count_error("reference", n + extra, n)
    extra = _rest(flow_it) if flow_it is not None else 0
    if extra:
        raise BadInput(f"{n - 1 + extra} flows given for {n} frames; need one per pair")


@dataclass
class _Figures:
    """Per-pair and per-frame numbers of `consistency_report` (8 bytes a figure), and the detail sums."""

    frame_no: array = field(default_factory=lambda: array("l"))
    we: array = field(default_factory=lambda: array("d"))
    swe: array = field(default_factory=lambda: array("d"))
    fl: array = field(default_factory=lambda: array("d"))
    src_fl: array = field(default_factory=lambda: array("d"))
    valid: array = field(default_factory=lambda: array("d"))
    psnr_no: array = field(default_factory=lambda: array("l"))
    errs: array = field(default_factory=lambda: array("d"))
    detail: DetailSums = field(default_factory=DetailSums)

    def pair(self, i: int, prev_out: np.ndarray, out: np.ndarray, prev_src: np.ndarray, src: np.ndarray,
             pf: PairFlow) -> None:
        self.frame_no.append(i + 1)
        self.we.append(pair_warping_error(prev_out, out, pf))
        self.swe.append(pair_warping_error(prev_src, src, pf))
        self.fl.append(frame_difference(prev_out, out))
        self.src_fl.append(frame_difference(prev_src, src))
        self.valid.append(float(pf.valid.mean()))

    def report(self, n: int, size: tuple[int, int], measured: tuple[int, int], every: int, preset: str,
               with_ref: bool) -> dict:
        we_l, swe_l, fl_l, sfl_l = self.we.tolist(), self.swe.tolist(), self.fl.tolist(), self.src_fl.tolist()
        err_l = self.errs.tolist()
        return {
            "frames": n, "width": size[0], "height": size[1], "flow": f"opencv-dis-{preset}",
            "measured": {"width": measured[0], "height": measured[1], "every": every, "pairs": len(we_l)},
            "warping_error": _nanmean(we_l),
            "source_warping_error": _nanmean(swe_l),
            "flicker": float(np.mean(fl_l)) if fl_l else 0.0,
            "source_flicker": float(np.mean(sfl_l)) if sfl_l else 0.0,
            "psnr": psnr_from_mse(float(np.mean(err_l))) if with_ref else None,
            "moving_psnr": self.detail.moving_psnr if with_ref else None,
            "moving_psnr_worst": self.detail.moving_psnr_worst if with_ref else None,
            "sharpness": self.detail.sharpness if with_ref else None,
            "per_pair": {"frame": self.frame_no.tolist(), "warping_error": we_l, "source_warping_error": swe_l,
                         "flicker": fl_l, "valid_fraction": self.valid.tolist()},
            "per_frame": {"frame": self.psnr_no.tolist() if with_ref else None,
                          "psnr": [psnr_from_mse(e) for e in err_l] if with_ref else None},
        }


def _check_lengths(source_frames, output_frames, ref_frames, flows) -> None:
    """BadInput when sequences whose lengths are known before the walk do not match."""
    lengths = {name: len(seq) for name, seq in (("source", source_frames), ("reference", ref_frames),
                                               ("output", output_frames)) if isinstance(seq, Sequence)}
    if "output" in lengths:
        for what in ("source", "reference"):
            if what in lengths:
                _check_counts(lengths[what], lengths["output"], what)
        if isinstance(flows, Sequence) and len(flows) != lengths["output"] - 1:
            raise BadInput(f"{len(flows)} flows given for {lengths['output']} frames; need one per pair")


def _reference(r_item: Frame, i: int, size: tuple[int, int], measured: tuple[int, int]) -> np.ndarray:
    """Reference frame i, checked against the output's size and scaled to the measuring size."""
    ref = _load(r_item)
    if ref.shape[:2] != (size[1], size[0]):
        raise BadInput(f"reference frame {i + 1} is {ref.shape[1]}x{ref.shape[0]}, the output is "
                       f"{size[0]}x{size[1]}; give a reference of the output's size")
    return resize_to(ref, *measured)


def consistency_report(source_frames: Iterable[Frame], output_frames: Iterable[Frame],
                       ref_frames: Iterable[Frame] | None = None, *,
                       flows: Iterable[PairFlow] | None = None, preset: str = METRICS_PRESET,
                       progress: Callable[[], None] | None = None, max_side: int = 0,
                       every: int = 1) -> dict:
    """All figures of one output sequence, walked frame pair by frame pair.

    Frames are uint8 or float32 HxWx3 in [0, 1], given as arrays or as zero-argument callables
    that read them (`vid2vid.video.read.iter_sequence` yields those); any iterables, read once,
    in order. Source frames are resized to the measuring size before the flow is computed: the
    output's size, or with `max_side` the output's scaled down to that longer side (output and
    reference are scaled too). `every` N > 1 measures the pairs (k, k+1) with k = 0, N, 2N, ...
    and the fidelity of frames 0, N, 2N, ...; frames no measured pair needs are never read.
    `flows` (one PairFlow per pair at the measuring size, e.g. from `source_flows`) skips the flow
    computation. `progress` is called once per pair.

    Returns a dict of plain numbers and per-pair lists: frames, width, height (the output's),
    measured {width, height, every, pairs}, warping_error, source_warping_error, flicker,
    source_flicker, psnr, moving_psnr, moving_psnr_worst and sharpness (None without a reference; see
    DetailSums), per_pair {frame, warping_error, source_warping_error, flicker, valid_fraction} (frame t:
    the pair of frames t-1, t, 1-based), per_frame {frame, psnr} (None without a reference).
    """
    check_sampling(max_side, every)
    _check_lengths(source_frames, output_frames, ref_frames, flows)
    figs = _Figures()
    size = measured = (0, 0)
    prev_out = prev_src = None
    n = 0
    for i, o_item, s_item, r_item, pf in _lockstep(output_frames, source_frames, ref_frames, flows):
        n = i + 1
        first = i % every == 0                    # frame i starts a measured pair
        second = i > 0 and (i - 1) % every == 0   # frame i ends one
        if not (first or second):
            prev_out = prev_src = None
        else:
            out = _load(o_item)
            if i == 0:
                size = (out.shape[1], out.shape[0])
                measured = measure_size(*size, max_side)
            elif out.shape[:2] != (size[1], size[0]):
                raise BadInput(f"output frame {i + 1} is {out.shape[1]}x{out.shape[0]}, frame 1 is "
                               f"{size[0]}x{size[1]}; all output frames must have one size")
            out, src = resize_to(out, *measured), resize_to(_load(s_item), *measured)
            if second:
                assert prev_out is not None and prev_src is not None     # frame i - 1 started this pair
                figs.pair(i, prev_out, out, prev_src, src, _pair_flow(pf, i, prev_src, src, measured, preset))
            if ref_frames is not None and first:
                assert r_item is not None
                ref = _reference(r_item, i, size, measured)
                figs.psnr_no.append(i + 1)
                figs.errs.append(mse(out, ref))
                figs.detail.add(out, ref, prev_src if second else None, src)
            prev_out, prev_src = (out, src) if first else (None, None)
        if i > 0 and progress is not None:
            progress()
    return figs.report(n, size, measured, every, preset, ref_frames is not None)


def _pair_flow(pf: PairFlow | None, i: int, prev_src: np.ndarray, src: np.ndarray, measured: tuple[int, int],
               preset: str) -> PairFlow:
    """The given flow of pair (i-1, i), checked against the measuring size, or the one computed here."""
    if pf is None:
        return pair_flow(prev_src, src, preset)
    if pf.flow.shape[:2] != (measured[1], measured[0]):
        raise BadInput(f"flow {i} is {pf.flow.shape[1]}x{pf.flow.shape[0]}, the figures are measured "
                       f"at {measured[0]}x{measured[1]}; compute the flows at that size")
    return pf
