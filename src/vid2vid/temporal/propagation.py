"""Key frames and propagation: paint a few frames, carry them to the rest along the source's motion.

Key frames are chosen in vid2vid.temporal.keyframes (`choose_keys`, read here too).

Propagation. A frame t between two consecutive keys a < t < b is

    O_t = c * (w_a T_a A + w_b T_b B) / (w_a T_a + w_b T_b) + (1 - c) * fill_t

- A = key a warped into t once (bicubic), along the flow from t to a composed pair by pair (the flow
  fields are resampled along the chain, the key's pixels only once, so they keep their detail); B the
  same from key b;
- distance weights w_a = (b - t) / (b - a), w_b = (t - a) / (b - a);
- trust T_a in [0, 1]: every link of the chain passes the forward-backward check of the warping error and
  stays inside the frame, times a direct photometric check of the composed flow on the source,
  exp(-(r / sigma)^2) with r = |grey_t - warp(grey_a)|;
- coverage c = clip(max(T_a, T_b) / HOLE_TRUST, 0, 1); where it is below 1, neither key's warp can
  be trusted there (a disocclusion, or motion too fast for the chained flow: warping the key's
  pixels there draws torn streaks, blending two wrong warps a transparent double) and `fill_t`
  takes over: the region redrawn on the source's own shape at t with the keys' local colour models
  (vid2vid.temporal.redraw: the models of keys a and b carried along the same chains, weighted
  w_a, w_b, applied to the source's grey at t; fill "warp", no model needed), then, with a
  callable (fill "img2img"), the stage's repainting of that region with a light img2img.

Steadied keys (`steady`, the default): before it is carried, each key K_j becomes `steady_key` of
it and the STEADY_REACH keys on each side warped into it along the chained flow (key-to-key chains
of the intervals between them), with the same trust, rescaled above `trust_floor`, times the
agreement of warp(K_o) with K_j (vid2vid.temporal.trust.agreement: where the key sequence itself
disagrees beyond the source's change and the painter's flicker, a neighbour gives nothing and the key
stays as painted):
K'_j = (match(K_j) + sum T_o warp(K_o)) / (1 + sum T_o), match = the colour match of the flow pass
(vid2vid.temporal.flowpass.match_to_neighbours) to all of them. The keys' own per-key flicker would otherwise
fade in and out across every interval. Nothing crosses a cut (the chains are invalid there).

The img2img fill is called only for frames whose hole, opened by a disc (`meaningful_hole`,
`fill_opening`: 9 px at 480 rows), is over FILL_MIN of the frame: slivers along edges are left to
the warp.

Images are float32 RGB HxWx3 in [0, 1] at the generated size; flows are computed at that size times
`FlowOptions.flow_scale` (OpenCV DIS), so one frame costs two small flows, four small remaps,
two small 6-channel model warps and two full-size warps (plus, steadied, four warps per key).
Memory holds about four key intervals of flow fields.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from vid2vid.config.keyframes import KeySpec, parse_keyframes  # noqa: F401  (callers read them here too)
from vid2vid.core.errors import BadInput
from vid2vid.temporal import fillbudget, redraw, trust
from vid2vid.temporal.fillbudget import FILL_MIN, fill_opening, meaningful_hole  # noqa: F401  (read here too)
from vid2vid.temporal.flowpass import FlowOptions, flow_grey, flow_size, match_to_neighbours, photometric_residual
from vid2vid.temporal.keychain import (  # noqa: F401  (read here too)
    HOLE_TRUST,
    IntervalMotion,
    PairLink,
    blend_weight,
    compose,
    frame_trust,
    interval_chains,
    interval_motion,
    key_chain,
    key_trust,
    pair_link,
)
from vid2vid.temporal.keyframes import (  # noqa: F401  (read here too)
    SourceMotion,
    analyse_source,
    choose_keys,
    describe_rules,
    key_rules,
)
from vid2vid.temporal.metrics import grey_float
from vid2vid.temporal.opticalflow import as_float_rgb, resize_flow, resize_to, sample_grid, warp

STEADY_REACH = 2          # steady keys: each key is averaged with this many keys on each side
STEADY_TOLERANCE = 0.0   # ... where they agree with it within this (trust.agreement; the source's change aside)

# ---------------------------------------------------------------- key warps

def warp_key(key: np.ndarray, flow_small: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """The key frame (float32 HxWx3) read at x + flow(x), with the small flow scaled up: one resampling,
    bicubic by default (bilinear softens the key's strokes; the steadying's neighbours, averaged
    anyway, take the cheaper bilinear)."""
    h, w = key.shape[:2]
    map_x, map_y = sample_grid(resize_flow(flow_small, w, h))
    return cv2.remap(key, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def steady_key(key: np.ndarray, neighbours: Sequence[tuple[np.ndarray, np.ndarray]],
               trust_floor: float) -> np.ndarray:
    """A key (float32 HxWx3) steadied with its neighbouring keys warped into it: (its colour matched
    to the mean and spread of all of them, plus the warps weighted by their trust) / (1 + their
    weights); neighbours: (warped key, trust HxW at full size), the trust rescaled from
    [trust_floor, 1] to [0, 1] (below the floor a neighbour gives nothing, as in the flow pass).
    Without any trusted neighbour: the key itself."""
    acc = np.zeros_like(key)
    wsum = np.zeros(key.shape[:2], np.float32)
    for img, weight in neighbours:
        t = np.clip((weight - np.float32(trust_floor)) * np.float32(1.0 / (1.0 - trust_floor)), 0.0, 1.0)
        acc += img * t[..., None]
        wsum += t
    if not float(wsum.max()) > 0:
        return key
    weight = wsum + np.float32(1.0)
    matched = match_to_neighbours(key, [(key + acc, weight)])
    acc += matched
    acc /= weight[..., None]
    return np.clip(acc, 0.0, 1.0, out=acc)


# ---------------------------------------------------------------- the pass

FillFn = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class _Keys:
    """The keys as the pass reads, steadies and carries them, a few key intervals in memory at a time."""

    keys: list[int]
    size: tuple[int, int]
    source: Callable[[int], np.ndarray]
    key_frame: Callable[[int], np.ndarray]
    options: FlowOptions
    reach: int
    motions: dict[int, IntervalMotion] = field(default_factory=dict)
    raws: dict[int, np.ndarray] = field(default_factory=dict)
    steadied: dict[int, np.ndarray] = field(default_factory=dict)
    models: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def fsize(self) -> tuple[int, int]:
        return flow_size(self.size, self.options)

    def raw(self, j: int) -> np.ndarray:
        """Key number j as painted (float32)."""
        if j not in self.raws:
            w, h = self.size
            img = as_float_rgb(self.key_frame(self.keys[j]))
            if img.shape != (h, w, 3):
                raise BadInput(f"key frame {self.keys[j] + 1} is {img.shape[1]}x{img.shape[0]}; "
                               f"the keys must all be {w}x{h}")
            self.raws[j] = img
        return self.raws[j]

    def motion(self, i: int) -> IntervalMotion:
        """The source motion of the interval between keys number i and i+1."""
        if i not in self.motions:
            a, b = self.keys[i], self.keys[i + 1]
            self.motions[i] = interval_motion(a, b, lambda t: flow_grey(self.source(t), self.fsize), self.options)
        return self.motions[i]

    def grey(self, j: int) -> np.ndarray:
        """The source grey (float32, flow size) at key number j."""
        i = j if j < len(self.keys) - 1 else j - 1
        return self.motion(i).greys[self.keys[j]]

    def carried(self, j: int) -> np.ndarray:
        """Key number j as it is carried: steadied with its neighbours, or as painted."""
        if not self.reach or len(self.keys) < 2:
            return self.raw(j)
        if j not in self.steadied:
            around = range(max(0, j - self.reach), min(len(self.keys), j + self.reach + 1))
            near = [self._neighbour(j, o) for o in around if o != j]
            self.steadied[j] = steady_key(self.raw(j), near, self.options.trust_floor)
        return self.steadied[j]

    def _neighbour(self, j: int, o: int) -> tuple[np.ndarray, np.ndarray]:
        """Key number o warped into key j and its weight there: chain trust times the agreement with
        what key j has painted (trust.agreement: no pull where the key sequence disagrees)."""
        w, h = self.size
        flow, valid = key_chain(j, o, self.motion)
        weight = key_trust(valid, flow, self.grey(j), self.grey(o), self.options.photo_sigma)
        warped = warp_key(self.raw(o), flow, cv2.INTER_LINEAR)
        resid = photometric_residual(self.grey(j), self.grey(o), flow)
        weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
        return warped, weight * trust.agreement(warped, self.raw(j), resid, STEADY_TOLERANCE)

    def model(self, j: int) -> np.ndarray:
        """The colour model (vid2vid.temporal.redraw) of key number j as carried, at the flow size."""
        if j not in self.models:
            fw, fh = self.fsize
            painted = cv2.resize(self.carried(j), (fw, fh), interpolation=cv2.INTER_AREA)
            self.models[j] = redraw.colour_model(self.grey(j), painted, redraw.model_radius(fh))
        return self.models[j]

    def forget(self, i: int) -> None:
        """Drop what no interval after number i needs (its keys reach back `reach` keys)."""
        for cache, first in ((self.motions, i + 1 - self.reach), (self.raws, i + 1 - self.reach),
                             (self.steadied, i + 1), (self.models, i + 1)):
            for j in [j for j in cache if j < first]:
                del cache[j]


@dataclass
class _Fill:
    """How holes are filled, and the counts the pass returns."""

    fill: str | FillFn
    fill_open: int
    fill_min: float
    stats: dict
    chosen: Collection[int] | None = None      # the frames to fill (None: every frame over fill_min)
    holes: list[float] = field(default_factory=list)

    def wants(self, t: int, hole: np.ndarray) -> bool:
        """Whether the fill callable repaints frame t with this hole."""
        if not callable(self.fill):
            return False
        if self.chosen is not None:
            return t in self.chosen
        return float(meaningful_hole(hole, self.fill_open).mean()) > self.fill_min


def propagate_frames(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray], keys: Sequence[int],
                     key_frame: Callable[[int], np.ndarray],
                     write: Callable[[int, np.ndarray, np.ndarray | None], None],
                     *, fill: str | FillFn = "warp", todo: Callable[[int], bool] | None = None,
                     options: FlowOptions | None = None, progress: Callable[[], None] | None = None,
                     fill_open: int | None = None, fill_min: float = FILL_MIN, steady: bool = True,
                     fill_frames: Collection[int] | None = None) -> dict:
    """Make all n frames from the key frames, a few key intervals in memory at a time.

    size: (width, height) of the key frames; source(t): source frame t (0-based, uint8 or float, any size:
    resized for the flow); keys: sorted 0-based key frames, the first 0 and the last n-1; key_frame(k): the
    painting of key k (float32 or uint8 HxWx3 at `size`); write(t, frame, hole) gets every frame once, in
    order: float32 HxWx3 in [0, 1] and the hole mask (float32 HxW, 1 = neither key sees it; None for keys);
    fill: "warp" (holes redrawn from the keys' colour models, vid2vid.temporal.redraw) or fill(t, frame,
    hole) -> frame, called only for frames with more than `fill_min` of meaningful hole (`meaningful_hole`
    with `fill_open`, default `fill_opening(size)`: a frame with only slivers keeps the redraw there), with
    the whole hole, and its result pasted into the whole hole; fill_frames: when given, the fill callable
    repaints exactly these frames (the budget's choice, vid2vid.temporal.fillbudget.fill_frames) instead;
    steady: steady each key with the STEADY_REACH keys on each side (`steady_key`, along the chains of the
    intervals between them, where they agree with it) before it is carried, and write the steadied key;
    todo(t): False to skip frame t (an interval none of whose frames is wanted is not computed at all,
    unless a wanted interval's steady keys need its motion); progress: called once per frame.
    Returns {"keys", "propagated", "filled" (frames given to the fill callable), "hole_fraction"}.
    """
    options = options or FlowOptions()
    keys = list(keys)
    _check_keys(n, keys)
    if not callable(fill) and fill != "warp":
        raise BadInput(f"fill '{fill}' is not known here; give \"warp\" or a function that paints the holes")
    wanted = todo or (lambda t: True)
    tick = progress or (lambda: None)
    holes = _Fill(fill, fill_opening(size) if fill_open is None else fill_open, fill_min,
                  {"keys": len(keys), "propagated": 0, "filled": 0, "hole_fraction": 0.0}, fill_frames)
    state = _Keys(keys, size, source, key_frame, options, STEADY_REACH if steady else 0)
    if wanted(keys[0]):
        write(keys[0], state.carried(0), None)
    tick()
    for i, (a, b) in enumerate(zip(keys[:-1], keys[1:])):
        if any(wanted(t) for t in range(a + 1, b + 1)):
            _interval(i, state, holes, wanted, write, tick)
        else:
            for _ in range(a + 1, b + 1):
                tick()
        state.forget(i)
    holes.stats["hole_fraction"] = float(np.mean(holes.holes)) if holes.holes else 0.0
    return holes.stats


def _interval(i: int, state: _Keys, holes: _Fill, wanted: Callable[[int], bool],
              write: Callable[[int, np.ndarray, np.ndarray | None], None], tick: Callable[[], None]) -> None:
    """The frames a+1 .. b of the interval number i (keys a < b): each in-between frame from its chains
    towards both keys, then key b."""
    a, b = state.keys[i], state.keys[i + 1]
    for t, chain_a, chain_b in interval_chains(state.motion(i), a, b):
        if wanted(t):
            frame, hole = _frame_between(t, i, chain_a, chain_b, state, holes)
            holes.holes.append(float(hole.mean()))
            write(t, frame, hole)
        tick()
    if wanted(b):
        write(b, state.carried(i + 1), None)
    tick()


def _frame_between(t: int, i: int, chain_a, chain_b, state: _Keys, holes: _Fill) -> tuple[np.ndarray, np.ndarray]:
    """Frame t between the keys number i and i+1: both warps, trust, blend, redraw, fill (see the
    module docstring)."""
    a, b = state.keys[i], state.keys[i + 1]
    w, h = state.size
    (fa, _), (fb, _) = chain_a, chain_b
    weight, cover = frame_trust(t, a, b, chain_a, chain_b, state.motion(i).greys, state.size, state.options.photo_sigma)
    wa, wb = (b - t) / (b - a), (t - a) / (b - a)
    frame = warp_key(state.carried(i), fa)
    frame += (warp_key(state.carried(i + 1), fb) - frame) * weight[..., None]
    model = warp(state.model(i), fa) * np.float32(wa) + warp(state.model(i + 1), fb) * np.float32(wb)
    grey_t = grey_float(resize_to(np.asarray(state.source(t)), w, h))
    hole = 1.0 - cover
    frame = frame * cover[..., None] + redraw.apply_model(model, grey_t) * hole[..., None]
    holes.stats["propagated"] += 1
    if holes.wants(t, hole):
        painted = as_float_rgb(holes.fill(t, frame, hole))  # type: ignore[operator]
        frame = frame * cover[..., None] + painted * hole[..., None]
        holes.stats["filled"] += 1
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
                       steady: bool = True, fill_budget: float = 1.0, **opts) -> tuple[list[np.ndarray | None], dict]:
    """The list form of `propagate_frames`: source frames (any size), paintings of the keys by
    0-based frame number -> (every frame, float32 HxWx3 in [0, 1]; the stats dict). With a fill
    callable, `fill_budget` < 1 limits the frames it repaints (vid2vid.temporal.fillbudget), as the
    stage does."""
    from vid2vid.temporal.flowpass import flow_options

    options = flow_options(opts)
    keys = sorted(key_frames)
    if not keys:
        raise BadInput("no key frames given")
    h, w = np.asarray(key_frames[keys[0]]).shape[:2]
    out: list[np.ndarray | None] = [None] * len(source_frames)

    def keep(t: int, frame: np.ndarray, hole) -> None:
        out[t] = frame

    n, fill_open = len(source_frames), fill_opening((w, h)) if fill_open is None else fill_open
    chosen = fillbudget.fill_frames(n, (w, h), source_frames.__getitem__, keys, fill_budget, options, fill_open,
                                    fill_min) if callable(fill) else None
    stats = propagate_frames(n, (w, h), source_frames.__getitem__, keys, key_frames.__getitem__,
                             keep, fill=fill, options=options, fill_open=fill_open, fill_min=fill_min,
                             steady=steady, fill_frames=chosen)
    return out, stats
