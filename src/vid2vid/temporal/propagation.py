"""Key frames and propagation: paint a few frames, carry them to the rest along the source's motion.

Key frames. `parse_keyframes("every:K" | "motion:T" | "off")`; `choose_keys` picks, 0-based:
- every:K: frames 0, K, 2K, ... of each shot (the count restarts at a scene cut);
- motion:T: a new key when the motion accumulated since the last key reaches T, in pixels of mean
  flow length at the frame size (`SourceMotion.motion[t]` for the pair t-1, t);
- always the first and last frame, and both frames around every scene cut (a shot's first and
  last frame are keys, so nothing is carried across a cut).
Scene cuts and motion come from `analyse_source`, with the same rule as the flow pass
(vid2vid.temporal.flowpass.source_link: mean trust of a pair below `cut_level`).

Propagation. A frame t between two consecutive keys a < t < b is

    O_t = c * (w_a T_a A + w_b T_b B) / (w_a T_a + w_b T_b) + (1 - c) * fill_t

- A = key a warped into t once, along the flow from t to a composed pair by pair (the flow fields
  are resampled along the chain, the key's pixels only once, so they keep their detail); B the
  same from key b;
- distance weights w_a = (b - t) / (b - a), w_b = (t - a) / (b - a);
- trust T_a in [0, 1]: every link of the chain passes the forward-backward check of the warping error and
  stays inside the frame, times a direct photometric check of the composed flow on the source,
  exp(-(r / sigma)^2) with r = |grey_t - warp(grey_a)|;
- coverage c = clip(max(T_a, T_b) / HOLE_TRUST, 0, 1); where it is below 1, neither key sees the
  pixel well (a disocclusion) and `fill_t` takes over: the nearer key's warp (fill "warp") or a
  callable (fill "img2img": the stage repaints just that region with a light img2img).

Steadied keys (`steady`, the default): before it is carried, each key K_j becomes `steady_key` of
it and the STEADY_REACH keys on each side warped into it along the chained flow (key-to-key chains
of the intervals between them), with the same trust, rescaled above `trust_floor`:
K'_j = (match(K_j) + sum T_o warp(K_o)) / (1 + sum T_o), match = the colour match of the flow pass
(vid2vid.temporal.flowpass.match_to_neighbours) to all of them. The keys' own per-key flicker would otherwise
fade in and out across every interval. Nothing crosses a cut (the chains are invalid there).

The img2img fill is called only for frames whose hole, opened by a disc (`meaningful_hole`,
`fill_opening`: 9 px at 480 rows), is over FILL_MIN of the frame: slivers along edges are left to
the warp.

Images are float32 RGB HxWx3 in [0, 1] at the generated size; flows are computed at that size times
`FlowOptions.flow_scale` (OpenCV DIS), so one frame costs two small flows, four small remaps and
two full-size warps (plus, steadied, four warps per key). Memory holds about four key intervals of
flow fields.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vid2vid.config.keyframes import KeySpec, parse_keyframes  # noqa: F401  (callers read them here too)
from vid2vid.core.errors import BadInput
from vid2vid.temporal.flowpass import FlowOptions, flow_grey, flow_size, match_to_neighbours, source_link
from vid2vid.temporal.opticalflow import as_float_rgb, consistency_mask, inside_mask, resize_flow, sample_grid, warp

HOLE_TRUST = 0.5          # a key trusted at least this much covers a pixel fully
FILL_MIN = 0.005          # share of meaningful hole (`meaningful_hole`) below which a frame gets no img2img fill
FILL_OPEN = 9             # pixels at 480 rows (scaled with the shorter side): thinner holes are slivers, no fill
FILL_OPEN_AT = 480
STEADY_REACH = 2          # steady keys: each key is averaged with this many keys on each side


# ---------------------------------------------------------------- key frames

@dataclass
class SourceMotion:
    """Per source pair (t-1, t), index t = 1..n-1 (index 0 unused): mean flow length in pixels at the
    analysed size, and whether the pair is a scene cut."""

    motion: list[float]
    cuts: list[bool]


def analyse_source(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray],
                   options: FlowOptions | None = None,
                   progress: Callable[[], None] | None = None) -> SourceMotion:
    """Motion and scene cuts of n source frames (read one at a time, uint8 or float HxWx3, at any size;
    measured at `size` = (width, height) * flow_scale, motion given in pixels of `size`)."""
    options = options or FlowOptions()
    fsize = flow_size(size, options)
    scale = size[0] / fsize[0]
    motion, cuts = [0.0], [False]
    prev = flow_grey(source(0), fsize) if n else None
    for t in range(1, n):
        cur = flow_grey(source(t), fsize)
        assert prev is not None                    # n > 1 here
        link = source_link(prev, cur, options)
        f = link.flow_bw.astype(np.float32)
        motion.append(float(np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2).mean()) * scale)
        cuts.append(link.cut)
        prev = cur
        if progress is not None:
            progress()
    return SourceMotion(motion, cuts)


def choose_keys(n: int, spec: KeySpec, motion: SourceMotion | None = None) -> list[int]:
    """Sorted 0-based key frames of n frames (see the module docstring); `motion` is needed for
    mode "motion" and gives the scene cuts for both modes (None: no cuts known)."""
    if n <= 0:
        return []
    if not spec.on:
        return list(range(n))
    if spec.mode == "motion" and motion is None:
        raise BadInput("key frames by motion need the source's motion; analyse the source first")
    cuts = motion.cuts if motion is not None else [False] * n
    keys = {0, n - 1}
    last, acc = 0, 0.0
    for t in range(1, n):
        if cuts[t]:
            keys.update((t - 1, t))
            last, acc = t, 0.0
            continue
        if spec.mode == "every":
            if t - last >= spec.value:
                keys.add(t)
                last = t
        else:
            assert motion is not None                 # checked above for the motion mode
            acc += motion.motion[t]
            if acc >= spec.value:
                keys.add(t)
                last, acc = t, 0.0
    return sorted(keys)


# ---------------------------------------------------------------- motion along a key interval

@dataclass
class PairLink:
    """Source motion of the pair (t-1, t) at the flow size: flows and their validity
    (forward-backward check and inside the frame)."""

    flow_bw: np.ndarray     # float32 HxWx2 at t towards t-1
    valid_bw: np.ndarray    # float32 HxW in {0, 1}
    flow_fw: np.ndarray     # float32 HxWx2 at t-1 towards t
    valid_fw: np.ndarray    # float32 HxW in {0, 1}


def pair_link(grey_prev: np.ndarray, grey_cur: np.ndarray, options: FlowOptions) -> PairLink:
    """Flows and validity of one source pair (uint8 HxW greys at the flow size); a scene cut
    (temporal.source_link's rule) is valid nowhere."""
    link = source_link(grey_prev, grey_cur, options)
    bw, fw = link.flow_bw.astype(np.float32), link.flow_fw.astype(np.float32)
    if link.cut:
        zero = np.zeros(bw.shape[:2], np.float32)
        return PairLink(bw, zero, fw, zero.copy())
    vb = (consistency_mask(bw, fw) & inside_mask(bw)).astype(np.float32)
    vf = (consistency_mask(fw, bw) & inside_mask(fw)).astype(np.float32)
    return PairLink(bw, vb, fw, vf)


def compose(step_flow: np.ndarray, step_valid: np.ndarray, far_flow: np.ndarray | None,
            far_valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Chain one step onto a composed flow: at frame t, F(x) = f(x) + F'(x + f(x)), V(x) = v(x) V'(x + f(x)).

    step_flow / step_valid: t towards its neighbour s; far_flow / far_valid: s towards the key
    (None when s is the key). float32 HxWx2 / HxW at the flow size."""
    if far_flow is None:
        return step_flow, step_valid
    map_x, map_y = sample_grid(step_flow)
    far = cv2.remap(far_flow, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.remap(far_valid, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return step_flow + far, step_valid * valid


def key_trust(valid: np.ndarray, flow: np.ndarray, grey_t: np.ndarray, grey_key: np.ndarray,
              sigma: float) -> np.ndarray:
    """Trust (float32 HxW, flow size) in the key warped into t: chain validity times the direct
    photometric check exp(-(r / sigma)^2), r = |grey_t - warp(grey_key, flow)| (greys float32 [0, 1])."""
    r = grey_t - warp(grey_key, flow)
    return valid * np.exp(-(r * r) * np.float32(1.0 / (sigma * sigma)))


def warp_key(key: np.ndarray, flow_small: np.ndarray) -> np.ndarray:
    """The key frame (float32 HxWx3) read at x + flow(x), with the small flow scaled up: one resampling."""
    h, w = key.shape[:2]
    map_x, map_y = sample_grid(resize_flow(flow_small, w, h))
    return cv2.remap(key, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def blend_weight(a_trust: np.ndarray, b_trust: np.ndarray, wa: float, wb: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight of the farther key, coverage), float32 HxW at full size, for the frame

        nearer + weight * (farther - nearer) = c * (w_a T_a A + w_b T_b B) / (w_a T_a + w_b T_b) + (1 - c) * nearer

    with c = clip(max(T_a, T_b) / HOLE_TRUST, 0, 1); where neither key has any trust (w_a T_a + w_b T_b
    <= 1e-6) the weight is 0 (the nearer key). The nearer key is a when wa >= wb."""
    ka, kb = a_trust * np.float32(wa), b_trust * np.float32(wb)
    far = kb if wa >= wb else ka
    den = ka + kb
    cover = np.clip(np.maximum(a_trust, b_trust) * np.float32(1.0 / HOLE_TRUST), 0.0, 1.0)
    weight = far / np.maximum(den, np.float32(1e-6)) * cover
    weight[den <= 1e-6] = 0.0
    return weight, cover


def steady_key(key: np.ndarray, neighbours: Sequence[tuple[np.ndarray, np.ndarray]],
               trust_floor: float) -> np.ndarray:
    """A key (float32 HxWx3) steadied with its neighbouring keys warped into it: (its colour matched
    to the mean and spread of all of them, plus the warps weighted by their trust) / (1 + their
    weights); neighbours: (warped key, trust HxW at full size), the trust rescaled from
    [trust_floor, 1] to [0, 1] (below the floor a neighbour gives nothing, as in the flow pass).
    Without any trusted neighbour: the key itself."""
    acc = np.zeros_like(key)
    wsum = np.zeros(key.shape[:2], np.float32)
    for img, trust in neighbours:
        t = np.clip((trust - np.float32(trust_floor)) * np.float32(1.0 / (1.0 - trust_floor)), 0.0, 1.0)
        acc += img * t[..., None]
        wsum += t
    if not float(wsum.max()) > 0:
        return key
    weight = wsum + np.float32(1.0)
    matched = match_to_neighbours(key, [(key + acc, weight)])
    acc += matched
    acc /= weight[..., None]
    return np.clip(acc, 0.0, 1.0, out=acc)


def fill_opening(size: tuple[int, int]) -> int:
    """The disc (pixels) `meaningful_hole` opens a hole with at frame size (width, height): FILL_OPEN
    at FILL_OPEN_AT pixels on the shorter side, in proportion elsewhere, at least 1 (no opening)."""
    return max(1, round(FILL_OPEN * min(size) / FILL_OPEN_AT))


def meaningful_hole(hole: np.ndarray, size: int = FILL_OPEN) -> np.ndarray:
    """The part of a hole mask (float32 HxW in [0, 1]) worth repainting: the pixels over 0.5 opened
    with a size x size disc (slivers and specks thinner than `size` go), grown back by the same disc
    so the kept regions keep their soft rim, times the hole. size <= 1: the hole itself."""
    if size <= 1:
        return hole
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    core = cv2.morphologyEx((hole > 0.5).astype(np.uint8), cv2.MORPH_OPEN, disc)
    return hole * cv2.dilate(core, disc).astype(np.float32)


# ---------------------------------------------------------------- the pass

FillFn = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class IntervalMotion:
    """The source motion of one key interval a < b at the flow size: the links of its pairs, the
    float greys of its frames, and the chains between its two keys (at b towards a, at a towards b)."""

    links: dict[int, PairLink]
    greys: dict[int, np.ndarray]
    back: tuple[np.ndarray, np.ndarray]
    ahead: tuple[np.ndarray, np.ndarray]


def interval_motion(a: int, b: int, grey: Callable[[int], np.ndarray], options: FlowOptions) -> IntervalMotion:
    """Links, greys (float32 [0, 1]) and key-to-key chains of the interval a < b; grey(t): uint8 grey
    of source frame t at the flow size."""
    greys = {t: grey(t) for t in range(a, b + 1)}
    links = {t: pair_link(greys[t - 1], greys[t], options) for t in range(a + 1, b + 1)}
    gf = {t: g.astype(np.float32) * np.float32(1 / 255) for t, g in greys.items()}
    back: tuple = (None, None)
    for t in range(a + 1, b + 1):
        back = compose(links[t].flow_bw, links[t].valid_bw, *back)
    ahead: tuple = (None, None)
    for t in range(b - 1, a - 1, -1):
        ahead = compose(links[t + 1].flow_fw, links[t + 1].valid_fw, *ahead)
    return IntervalMotion(links, gf, back, ahead)


def key_chain(j: int, o: int, motion: Callable[[int], IntervalMotion]) -> tuple[np.ndarray, np.ndarray]:
    """The chain (flow, validity) at key number j towards key number o != j, composed from the
    key-to-key chains of the intervals between them (motion(i): interval between keys i and i+1)."""
    if o > j:
        far: tuple = (None, None)
        for m in range(o - 1, j - 1, -1):
            far = compose(*motion(m).ahead, *far)
    else:
        far = (None, None)
        for m in range(o, j):
            far = compose(*motion(m).back, *far)
    return far


def propagate_frames(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray], keys: Sequence[int],
                     key_frame: Callable[[int], np.ndarray],
                     write: Callable[[int, np.ndarray, np.ndarray | None], None],
                     *, fill: str | FillFn = "warp", todo: Callable[[int], bool] | None = None,
                     options: FlowOptions | None = None, progress: Callable[[], None] | None = None,
                     fill_open: int | None = None, fill_min: float = FILL_MIN, steady: bool = True) -> dict:
    """Make all n frames from the key frames, a few key intervals in memory at a time.

    size: (width, height) of the key frames; source(t): source frame t (0-based, uint8 or float,
    any size: resized for the flow); keys: sorted 0-based key frames, the first 0 and the last n-1;
    key_frame(k): the painting of key k (float32 or uint8 HxWx3 at `size`); write(t, frame, hole)
    gets every frame once, in order: float32 HxWx3 in [0, 1] and the hole mask (float32 HxW, 1 =
    neither key sees it; None for keys); fill: "warp" or fill(t, frame, hole) -> frame, called
    only for frames with more than `fill_min` of meaningful hole (`meaningful_hole` with `fill_open`,
    default `fill_opening(size)`:
    a frame with only slivers keeps the nearer key's warp there), with the whole hole, and its
    result pasted into the whole hole; steady: steady each key with the STEADY_REACH keys on each
    side (`steady_key`, along the chains of the intervals between them) before it is carried, and
    write the steadied key (the keys' own per-key flicker otherwise jumps at every key); todo(t):
    False to skip frame t (an interval none of whose frames is wanted is not computed at all, unless
    a wanted interval's steady keys need its motion); progress: called once per frame.
    Returns {"keys", "propagated", "filled" (frames given to the fill callable), "hole_fraction"}.
    """
    options = options or FlowOptions()
    keys = list(keys)
    _check_keys(n, keys)
    if not callable(fill) and fill != "warp":
        raise BadInput(f"fill '{fill}' is not known here; give \"warp\" or a function that paints the holes")
    w, h = size
    fsize = flow_size(size, options)
    fill_open = fill_opening(size) if fill_open is None else fill_open
    wanted = todo or (lambda t: True)
    tick = progress or (lambda: None)
    stats = {"keys": len(keys), "propagated": 0, "filled": 0, "hole_fraction": 0.0}
    holes: list[float] = []
    reach = STEADY_REACH if steady else 0
    motions: dict[int, IntervalMotion] = {}
    raws: dict[int, np.ndarray] = {}
    steadied: dict[int, np.ndarray] = {}
    up = lambda x: cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)     # noqa: E731

    def raw(j: int) -> np.ndarray:
        if j not in raws:
            img = as_float_rgb(key_frame(keys[j]))
            if img.shape != (h, w, 3):
                raise BadInput(f"key frame {keys[j] + 1} is {img.shape[1]}x{img.shape[0]}; "
                               f"the keys must all be {w}x{h}")
            raws[j] = img
        return raws[j]

    def motion(i: int) -> IntervalMotion:
        if i not in motions:
            motions[i] = interval_motion(keys[i], keys[i + 1], lambda t: flow_grey(source(t), fsize), options)
        return motions[i]

    def key_grey(j: int) -> np.ndarray:
        return motion(j).greys[keys[j]] if j < len(keys) - 1 else motion(j - 1).greys[keys[j]]

    def key_at(j: int) -> np.ndarray:
        """Key number j as it is carried: steadied with its neighbours, or as painted."""
        if not reach or len(keys) < 2:
            return raw(j)
        if j not in steadied:
            near = []
            for o in range(max(0, j - reach), min(len(keys), j + reach + 1)):
                if o != j:
                    flow, valid = key_chain(j, o, motion)
                    trust = key_trust(valid, flow, key_grey(j), key_grey(o), options.photo_sigma)
                    near.append((warp_key(raw(o), flow), up(trust)))
            steadied[j] = steady_key(raw(j), near, options.trust_floor)
        return steadied[j]

    if wanted(keys[0]):
        write(keys[0], key_at(0), None)
    tick()
    for i, (a, b) in enumerate(zip(keys[:-1], keys[1:])):
        if not any(wanted(t) for t in range(a + 1, b + 1)):
            for _ in range(a + 1, b + 1):
                tick()
            continue
        # 1. the source motion of every pair in the interval, and the keys as carried
        m = motion(i)
        key_a, key_b = key_at(i), key_at(i + 1)
        # 2. backward chains: at t towards key b
        to_b: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        far: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        for t in range(b - 1, a, -1):
            far = to_b[t] = compose(m.links[t + 1].flow_fw, m.links[t + 1].valid_fw, *far)
        # 3. forward chains, each frame finished as soon as its chain towards key a is known
        far = (None, None)
        for t in range(a + 1, b):
            far = compose(m.links[t].flow_bw, m.links[t].valid_bw, *far)
            if wanted(t):
                frame, hole = _frame_between(t, a, b, far, to_b[t], m.greys, key_a, key_b, fill, options, stats,
                                             fill_open, fill_min)
                holes.append(float(hole.mean()))
                write(t, frame, hole)
            tick()
        if wanted(b):
            write(b, key_b, None)
        tick()
        # 4. forget what no later interval needs (its keys reach back `reach` keys)
        for cache, first in ((motions, i + 1 - reach), (raws, i + 1 - reach), (steadied, i + 1)):
            for j in [j for j in cache if j < first]:
                del cache[j]
    stats["hole_fraction"] = float(np.mean(holes)) if holes else 0.0
    return stats


def _frame_between(t: int, a: int, b: int, chain_a, chain_b, gf: dict, key_a: np.ndarray, key_b: np.ndarray,
                   fill: str | FillFn, options: FlowOptions, stats: dict,
                   fill_open: int = FILL_OPEN, fill_min: float = FILL_MIN) -> tuple[np.ndarray, np.ndarray]:
    """Frame t from its keys a < t < b: both warps, trust, blend, fill (see the module docstring)."""
    h, w = key_a.shape[:2]
    (fa, va), (fb, vb) = chain_a, chain_b
    ta = key_trust(va, fa, gf[t], gf[a], options.photo_sigma)
    tb = key_trust(vb, fb, gf[t], gf[b], options.photo_sigma)
    img_a, img_b = warp_key(key_a, fa), warp_key(key_b, fb)
    up = lambda x: cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)     # noqa: E731
    wa, wb = (b - t) / (b - a), (t - a) / (b - a)
    weight, cover = blend_weight(up(ta), up(tb), wa, wb)
    hole = 1.0 - cover
    nearer, farther = (img_a, img_b) if wa >= wb else (img_b, img_a)
    frame = farther
    frame -= nearer
    frame *= weight[..., None]
    frame += nearer
    stats["propagated"] += 1
    if callable(fill) and float(meaningful_hole(hole, fill_open).mean()) > fill_min:
        painted = as_float_rgb(fill(t, frame, hole))
        frame = frame * cover[..., None] + painted * hole[..., None]
        stats["filled"] += 1
    return np.clip(frame, 0.0, 1.0, out=frame), hole


def _check_keys(n: int, keys: list[int]) -> None:
    if n <= 0:
        raise BadInput("there are no frames to propagate to")
    if not keys:
        raise BadInput("no key frames given; give at least the first and the last frame's painting")
    if keys != sorted(set(keys)) or keys[0] < 0 or keys[-1] >= n:
        raise BadInput(f"key frames must be distinct frame numbers from 1 to {n}, in order")
    if keys[0] != 0 or keys[-1] != n - 1:
        missing = [str(k + 1) for k in (0, n - 1) if k not in keys]
        raise BadInput(f"the first and the last frame must be key frames (missing: frame {', '.join(missing)}); "
                       f"paint them too, or trim the sequence to the frames between keys")


def propagate_sequence(source_frames: Sequence[np.ndarray], key_frames: dict[int, np.ndarray],
                       fill: str | FillFn = "warp", fill_open: int | None = None, fill_min: float = FILL_MIN,
                       steady: bool = True, **opts) -> tuple[list[np.ndarray | None], dict]:
    """The list form of `propagate_frames`: source frames (any size), paintings of the keys by
    0-based frame number -> (every frame, float32 HxWx3 in [0, 1]; the stats dict)."""
    from vid2vid.temporal.flowpass import flow_options

    options = flow_options(opts)
    keys = sorted(key_frames)
    if not keys:
        raise BadInput("no key frames given")
    h, w = np.asarray(key_frames[keys[0]]).shape[:2]
    out: list[np.ndarray | None] = [None] * len(source_frames)

    def keep(t: int, frame: np.ndarray, hole) -> None:
        out[t] = frame

    stats = propagate_frames(len(source_frames), (w, h), source_frames.__getitem__, keys, key_frames.__getitem__,
                             keep, fill=fill, options=options, fill_open=fill_open, fill_min=fill_min,
                             steady=steady)
    return out, stats
