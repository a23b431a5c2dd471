"""Frame delta correction: frame deltas, motion and depth masks, delta masks, statistics.

Pure, vectorised functions on arrays; no file IO. Conventions:

- images: float32 RGB, shape HxWx3, range [0, 1]
- deltas: float32, shape HxWx3, range [-1, 1]  (d_t = src_t - src_(t-1); none for the first frame)
- masks:  float32, shape HxWx1, range [0, 1]

Functions that accept `out=` write their result there (it may be the input itself) so a caller
can chain steps without temporaries; without `out` they return a new array and leave their
inputs alone. Heavy lifting goes through OpenCV (SIMD, no Python loops).

Per frame, as the img2img stage and `vid2vid correct` use it::

    d = frame_delta(src_prev, src_cur)                  # source delta of frame t (t >= 2)
    out, mask = correct_frame(generated, prev_out, d, settings, depth=depth_t)
    # prev_out for the next frame: `out` as it was written (8-bit round trip), so that a
    # resumed run computes exactly the same frames as an uninterrupted one.

Spatial (inpainting) masks: `motion_mask(d, lowcut, highext)` or `depth_mask(depth, lowcut)`,
or `spatial_mask(settings, ...)` which picks one by `settings.spatial_mask`.

Where this differs from the seed's code, on purpose: deltas and the grey step stay in float
(the seed truncated to 8 bits, so a still pixel's grey was 1/255, not 0); `clip` uses each
channel's min and max like the other statistics (the seed took them over all channels); a
channel of the change with std below eps has n(c) = 0 instead of crashing; the boost clamps
1 - m to [0, 1] before its power, so no rounding or out-of-range input can make a NaN.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vid2vid.core.errors import BadInput, stage_ref

if TYPE_CHECKING:
    from vid2vid.config import CorrectSettings

EPS = float(np.finfo(np.float32).eps)
BOOST_PX = 4                 # the boost maps a normalised change of px/255 to about 0.5
_EXP_FLOOR = -87.0           # exp(-87) ~ 1.6e-38, near the smallest normal float32
_LOG_FLOOR = 1e-30           # log() input floor: OpenCV's log of 0 (-inf) and denormals is ~30x slower
STAT_METHODS = ("none", "clip", "shift-mean", "shift-std", "shift-mean-std")


# ---------------------------------------------------------------- helpers

def _f32(a: np.ndarray) -> np.ndarray:
    """The array as C-contiguous float32 (no copy when it already is)."""
    return np.ascontiguousarray(a, dtype=np.float32)


def _plane(m: np.ndarray) -> np.ndarray:
    """HxWx1 (or HxW) -> an HxW view of the same memory, the shape OpenCV wants for one channel."""
    return m[..., 0] if m.ndim == 3 else m


def _out_like(src: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return src.copy()
    if out is not src:
        np.copyto(out, src)
    return out


def _check_image(name: str, img: np.ndarray, channels: int = 3) -> None:
    if img.ndim != 3 or img.shape[2] != channels:
        raise BadInput(f"{name} must be an HxWx{channels} array, got shape {tuple(img.shape)}")


def threshold(lowcut: int) -> np.float32:
    """Low-cut level L in -1..255 -> threshold t = L / 255 as float32 (so every comparison agrees)."""
    return np.float32(lowcut / 255.0)


# ---------------------------------------------------------------- frame delta

def frame_delta(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Source frame delta d_t = cur - prev at full precision.

    prev, cur: float32 RGB HxWx3 in [0, 1] (consecutive source frames) -> float32 HxWx3 in [-1, 1].
    """
    prev, cur = _f32(prev), _f32(cur)
    if prev.shape != cur.shape:
        raise BadInput(f"consecutive frames differ in size ({prev.shape[1]}x{prev.shape[0]} vs "
                       f"{cur.shape[1]}x{cur.shape[0]}); extract the frames again from one video")
    return cv2.subtract(cur, prev)


# ---------------------------------------------------------------- motion mask, step by step

def grey_magnitude(delta: np.ndarray) -> np.ndarray:
    """Step 1: |grey| of a delta. float32 HxWx3 in [-1, 1] -> float32 HxWx1 in [0, 1].

    The seed converted (d + 1) / 2 to luminance and mapped it back to [-1, 1]; the BT.601
    weights sum to 1, so that is exactly the luminance of d itself (no 8-bit detour here).
    """
    delta = _f32(delta)
    _check_image("delta", delta)
    grey = cv2.cvtColor(delta, cv2.COLOR_RGB2GRAY)
    np.abs(grey, out=grey)
    return grey[..., None]


def minmax_normalise(m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Step 2: stretch a one-channel map to [0, 1]; left as it is when max - min < float32 eps.

    float32 HxWx1 -> float32 HxWx1. Uses true division so the maximum maps to exactly 1.
    """
    out = _out_like(_f32(m), out)
    lo, hi, _, _ = cv2.minMaxLoc(_plane(out))
    span = np.float32(hi) - np.float32(lo)
    if span >= EPS:
        if lo != 0.0:                                     # usually 0 already: save a pass
            np.subtract(out, np.float32(lo), out=out)
        np.divide(out, span, out=out)
    return out


def high_cut(m: np.ndarray, t: float | np.floating, out: np.ndarray | None = None) -> np.ndarray:
    """Step 3: pixels with m <= t are min-max renormalised among themselves, pixels above t become 1.

    float32 HxWx1 in [0, 1] -> float32 HxWx1 in [0, 1]. As in the seed, the renormalisation runs
    on m with the pixels above t set to 0 (and is skipped when that map's range is below eps).
    """
    src = _f32(m)
    t = float(np.float32(t))
    low = cv2.threshold(_plane(src), t, 0.0, cv2.THRESH_TOZERO_INV)[1]       # m if m <= t else 0
    above = cv2.threshold(_plane(src), t, 1.0, cv2.THRESH_BINARY)[1]         # 1 if m > t else 0
    low = minmax_normalise(low, out=low)
    # Where m > t, `low` is (0 - min) / range = 0: any pixel above t puts a 0 into the map, so its
    # minimum is 0. Adding the indicator therefore gives exactly 1 there.
    if out is None:
        out = np.empty_like(src)
    cv2.add(low, above, dst=_plane(out))
    return out


def boost_exponent(t: float | np.floating, px: int = BOOST_PX) -> float:
    """Step 4's exponent 1 + a with F = -1 / log2(1 - px/255) and a = (1 - t) * F."""
    f = -1.0 / math.log2(1.0 - px / 255.0)
    return 1.0 + (1.0 - float(t)) * f


def boost(m: np.ndarray, t: float | np.floating, px: int = BOOST_PX, out: np.ndarray | None = None) -> np.ndarray:
    """Step 4: m -> 1 - (1 - m)^(1 + a), a concave lift of small values.

    float32 HxWx1 in [0, 1] -> same. At t = 0 a normalised change of px/255 maps to about 0.5
    ((1 - px/255)^F = 1/2 exactly). Computed as exp(p * log(1 - m)) with 1 - m floored at 1e-30
    and the exponent argument at -87: results change by less than 1e-29 (invisible next to 1 in
    float32) and OpenCV's log/exp stay on their fast paths (zeros and denormals are ~30x slower).
    """
    out = _out_like(_f32(m), out)
    p = _plane(out)
    np.subtract(np.float32(1.0), p, out=p)                # u = 1 - m
    np.clip(p, np.float32(_LOG_FLOOR), np.float32(1.0), out=p)   # also guards rounding outside [0, 1]
    cv2.log(p, dst=p)
    np.multiply(p, np.float32(boost_exponent(t, px)), out=p)
    np.maximum(p, np.float32(_EXP_FLOOR), out=p)
    cv2.exp(p, dst=p)
    np.subtract(np.float32(1.0), p, out=p)                # 1 - u^(1 + a)
    return out


def high_ext(m: np.ndarray, k: int) -> np.ndarray:
    """Step 5: k x k maximum filter (grey dilation); the window is clipped at the image border.

    float32 HxWx1 -> new float32 HxWx1. k odd, 1 = unchanged.
    """
    if k < 1 or k % 2 != 1:
        raise BadInput(f"motion high-ext {k} must be odd (1, 3, ..., 15)")
    src = _f32(m)
    if k == 1:
        return src.copy()
    kernel = np.ones((k, k), dtype=np.uint8)
    return cv2.dilate(_plane(src), kernel)[..., None]


def motion_mask(delta: np.ndarray, lowcut: int = 32, highext: int = 7, px: int = BOOST_PX) -> np.ndarray:
    """Motion mask of a source delta (steps 1-5 below). Stable signature: the img2img stage uses it.

    delta: float32 HxWx3 in [-1, 1]; lowcut L in 0..255; highext k odd in 1..15.
    Returns float32 HxWx1 in [0, 1]; white = moving (may change).
    """
    if not 0 <= lowcut <= 255:
        raise BadInput(f"motion low-cut {lowcut} must be from 0 to 255")
    t = threshold(lowcut)
    # one HxWx1 buffer carried through steps 1-4 (high-cut adds two maps, high-ext its output)
    m = grey_magnitude(delta)            # 1. |grey|
    minmax_normalise(m, out=m)           # 2. stretch to [0, 1]
    high_cut(m, t, out=m)                # 3. high-cut at t
    boost(m, t, px, out=m)               # 4. boost
    return high_ext(m, highext)          # 5. high-ext


# ---------------------------------------------------------------- depth mask

def depth_mask(depth: np.ndarray, lowcut: int = -1) -> np.ndarray:
    """Depth-mask low-cut: pixels below L/255 become 0, then min-max renormalise.

    depth: float32 HxWx1 (or HxW) in [0, 1], near = bright. L = -1 cuts nothing (the map is
    still min-max normalised, as in the seed). Returns float32 HxWx1 in [0, 1].
    """
    if not -1 <= lowcut <= 255:
        raise BadInput(f"depth low-cut {lowcut} must be from -1 to 255 (-1 = no cut)")
    d = _f32(depth)
    if d.ndim == 2:
        d = d[..., None]
    _check_image("depth", d, channels=1)
    out = np.empty_like(d)
    if lowcut < 0:
        np.copyto(out, d)
    else:
        # THRESH_TOZERO keeps src where src > thresh; the seed keeps m >= t, so cut just below t.
        t = threshold(lowcut)
        below_t = float(np.nextafter(t, np.float32(-np.inf)))
        cv2.threshold(_plane(d), below_t, 0.0, cv2.THRESH_TOZERO, dst=_plane(out))
    return minmax_normalise(out, out=out)


# ---------------------------------------------------------------- applying masks and statistics

def apply_delta_mask(generated: np.ndarray, prev_out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Delta mask: o = o_prev + (g - o_prev) * mask  (= g * mask + o_prev * (1 - mask)).

    The seed wrote the motion and depth forms separately; they are the same blend.
    generated, prev_out: float32 HxWx3 in [0, 1]; mask float32 HxWx1 in [0, 1] -> float32 HxWx3.
    """
    change = masked_change(_f32(generated), _f32(prev_out), mask)
    return cv2.add(_f32(prev_out), change)


def masked_change(generated: np.ndarray, prev_out: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """c = (g - o_prev) * mask (mask None = 1). float32 HxWx3 in [-1, 1], new array."""
    change = cv2.subtract(generated, prev_out)
    if mask is not None:
        m = _plane(_f32(mask))
        cv2.multiply(change, cv2.merge((m, m, m)), dst=change)
    return change


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std over H and W. float32 HxWxC -> two float64 (C,)."""
    mean, std = cv2.meanStdDev(_f32(x))
    return mean.ravel(), std.ravel()


def stat_correct(change: np.ndarray, target: np.ndarray, method: str,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Statistical correction of a change c = o - o_prev against the target (source) delta d.

    Per channel over H and W, with n(x) = (x - mean) / std:
      none: c;  clip: clip(c, min d, max d);  shift-mean: n(c) * std(c) + mean(d)
      shift-std: n(c) * std(d) + mean(c);     shift-mean-std: n(c) * std(d) + mean(d)
    A channel of c whose std is below float32 eps has n(c) = 0 (no shape to rescale), so a
    constant change or target never divides by zero. change, target: float32 HxWx3 in
    [-1, 1], same shape -> float32 HxWx3.
    """
    if method not in STAT_METHODS:
        raise BadInput(f"statistical correction '{method}' is not known; use one of: {', '.join(STAT_METHODS)}")
    c, d = _f32(change), _f32(target)
    if c.shape != d.shape:
        raise BadInput(f"change {c.shape} and target delta {d.shape} differ in shape; resize the delta first")
    if method == "none":
        return _out_like(c, out)
    if method == "clip":
        flat = d.reshape(-1, d.shape[2])
        lo, hi = flat.min(axis=0), flat.max(axis=0)
        return np.clip(c, lo, hi, out=out if out is not None else np.empty_like(c))
    mean_c, std_c = channel_stats(c)
    mean_d, std_d = channel_stats(d)
    if method == "shift-mean":
        scale = np.ones_like(std_c)                   # n(c) * std(c) = c - mean(c)
    else:
        scale = np.divide(std_d, std_c, out=np.zeros_like(std_c), where=std_c >= EPS)
    shift = (mean_c if method == "shift-std" else mean_d) - scale * mean_c
    # One pass per pixel: c' = scale * c + shift per channel, as a diagonal colour transform.
    matrix = np.zeros((c.shape[2], c.shape[2] + 1), dtype=np.float64)
    matrix[np.arange(c.shape[2]), np.arange(c.shape[2])] = scale
    matrix[:, -1] = shift
    if out is None:
        out = np.empty_like(c)
    cv2.transform(c, matrix, dst=out)
    return out


# ---------------------------------------------------------------- per-frame entry points

def _fit(a: np.ndarray, shape: tuple[int, int], lo: float) -> np.ndarray:
    """Resize float32 HxWxC to (H, W) = shape (area when shrinking, cubic when growing), clipped to [lo, 1]."""
    h, w = shape
    if a.shape[:2] == (h, w):
        return a
    interp = cv2.INTER_AREA if w * h < a.shape[0] * a.shape[1] else cv2.INTER_CUBIC
    r = cv2.resize(a, (w, h), interpolation=interp)
    if r.ndim == 2:
        r = r[..., None]
    return np.clip(r, lo, 1.0, out=r)


def fit_delta(delta: np.ndarray, height: int, width: int) -> np.ndarray:
    """A source delta resized to the generated frame's size (float32 HxWx3 in [-1, 1])."""
    return _fit(_f32(delta), (height, width), -1.0)


def fit_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A depth map resized to the generated frame's size (float32 HxWx1 in [0, 1])."""
    d = _f32(depth)
    return _fit(d[..., None] if d.ndim == 2 else d, (height, width), 0.0)


def delta_mask(settings: CorrectSettings, delta: np.ndarray | None,
               depth: np.ndarray | None = None) -> np.ndarray | None:
    """The delta mask `settings.delta_mask` asks for (motion / depth / none), at the delta's size."""
    kind = settings.delta_mask
    if kind == "none":
        return None
    if kind == "motion":
        if delta is None:
            raise BadInput("the motion delta mask needs the source frame delta; give the source frames")
        return motion_mask(delta, settings.motion_lowcut, settings.motion_highext)
    if kind == "depth":
        if depth is None:
            raise BadInput(f"the depth delta mask needs depth maps; run {stage_ref('depth')} first")
        return depth_mask(depth, settings.depth_lowcut)
    raise BadInput(f"delta mask '{kind}' is not known; use none, motion or depth")


def spatial_mask(settings: CorrectSettings, delta: np.ndarray | None, depth: np.ndarray | None,
                 height: int, width: int) -> np.ndarray | None:
    """The inpainting mask `settings.spatial_mask` asks for (white = may change), at height x width.

    Motion spatial masks start at the second frame: pass delta=None for the first and get None.
    """
    kind = settings.spatial_mask
    if kind == "motion":
        if delta is None:
            return None
        return motion_mask(fit_delta(delta, height, width), settings.motion_lowcut, settings.motion_highext)
    if kind == "depth":
        if depth is None:
            raise BadInput(f"the depth spatial mask needs depth maps; run {stage_ref('depth')} first")
        return depth_mask(fit_depth(depth, height, width), settings.depth_lowcut)
    if kind == "none":
        return None
    raise BadInput(f"spatial mask '{kind}' is not known; use none, motion or depth")


def correct_frame(generated: np.ndarray, prev_out: np.ndarray | None, src_delta: np.ndarray | None,
                  settings: CorrectSettings, depth: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Frame delta correction of one generated frame. Stable signature.

    generated: float32 RGB HxWx3 in [0, 1], the frame just generated (g_t).
    prev_out:  float32 RGB HxWx3 in [0, 1], the previous *output* frame o_(t-1); None for the
               first frame, which passes unchanged.
    src_delta: float32 HxWx3 in [-1, 1], source delta d_t (any size: resized to g's size).
    depth:     float32 HxWx1 in [0, 1] depth of source frame t (any size), for delta mask "depth".
    Uses settings.fdc, .delta_mask, .motion_lowcut, .motion_highext, .depth_lowcut (the "stats"
    method; sequence-level methods such as "flow" are dispatched by the caller).
    Returns (o_t: float32 HxWx3 in [0, 1], the delta mask used as float32 HxWx1, or None).
    Order: delta mask first, then statistics, then o = clip(o_prev + c', 0, 1).
    """
    g = _f32(generated)
    _check_image("generated frame", g)
    if prev_out is None:
        return g, None
    prev = _f32(prev_out)
    if prev.shape != g.shape:
        raise BadInput(f"previous output {prev.shape[1]}x{prev.shape[0]} and generated frame "
                       f"{g.shape[1]}x{g.shape[0]} differ in size; generate all frames at one size")
    if settings.delta_mask == "none" and settings.fdc == "none":
        return g.copy(), None
    h, w = g.shape[:2]
    d = None
    if src_delta is not None:
        d = fit_delta(src_delta, h, w)
        _check_image("source delta", d)
    elif settings.fdc != "none":
        raise BadInput(f"statistical correction '{settings.fdc}' needs the source frame delta")
    mask = delta_mask(settings, d, None if depth is None else fit_depth(depth, h, w))
    change = masked_change(g, prev, mask)                        # 1. c = (g - o_prev) * mask
    if settings.fdc != "none":
        assert d is not None                                     # checked above: fdc needs the delta
        stat_correct(change, d, settings.fdc, out=change)        # 2. statistics of c against d
    cv2.add(prev, change, dst=change)                            # 3. o = clip(o_prev + c', 0, 1)
    np.clip(change, 0.0, 1.0, out=change)
    return change, mask
