"""Flow-guided temporal correction: an offline pass that steadies generated frames.

Each output frame is a weighted average of the generated frames along the motion
trajectories of the SOURCE video, with weights that fall off exponentially with the distance
in time and vanish where the motion cannot be trusted:

    O_t = (G_t + w_p P_t + w_f N_t) / (1 + w_p + w_f)

P_t is the running average of the past frames warped into frame t, N_t the same for the
future frames, and w_p, w_f their accumulated weights. Two recursive passes compute them:

    forward:  w_p(t) = k_t * warp(1 + w_p(t-1)),   P_t = warp(A_(t-1)),   A_t = (G_t + w_p P_t) / (1 + w_p)
    backward: the same from the last frame to the first with the flow towards t+1,

where k_t = strength * c_t * (1 - m_t): `strength` in [0, 1) sets how long the memory is
(1 / (1 - strength) frames on each side in steady state), m_t is an optional change mask
(the seed's motion or depth masks: white = let the generated frame through), and c_t in [0, 1]
is the trust in the motion at each pixel:

- forward-backward check of the source flow (|F_fw + F_bw| <= 0.01 (|F_fw|^2 + |F_bw|^2) + 0.5, as the
  warping-error metric checks it) and the sample lying inside the frame
  (occlusions and the frame border get no history);
- a photometric check on the source: the warped source must match, exp(-(r / sigma)^2) with r
  the absolute grey difference (flow errors, lighting changes);
- scene cuts: when the mean trust of a frame pair falls below `cut_level`, the pair is a cut
  and the trust is zero everywhere, so nothing crosses the cut in either direction.

Keeping detail (`keep_detail`, the default): the running averages are warped with bicubic
rather than bilinear interpolation (they are resampled at every step, and bilinear resampling
compounds into blur), and the trust has a floor: below `trust_floor` a pixel carries nothing
from its neighbour, above it the trust is rescaled to [0, 1], so a doubtful match never drags an
old frame's content into this one (the ghosts on moving limbs). Two gates act on what a neighbour
carries into frame t: the ghost gate (vid2vid.temporal.trust: a second drawing of a moving part carries
nothing) and the detail gate (vid2vid.temporal.detailgate: where the carried fine detail is another
drawing than frame t's, frame t's detail replaces it, and only the colour and shading are steadied).
`keep_detail=False` with preset "fast" is the first version of the pass, to the bit.

The flow is OpenCV DIS on the source frames resized to the output size times `flow_scale`
(the flow is scaled back up), so the cost per frame is two cheap flows, one 4-channel warp per
pass and a few array operations. Images are float32 RGB HxWx3 in [0, 1]; masks HxWx1.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from vid2vid.config.sections import CorrectSettings
from vid2vid.core.errors import BadInput
from vid2vid.temporal import detailgate, trust
from vid2vid.temporal.colourmatch import colour_fit, match_to_neighbours  # noqa: F401  (read here too)
from vid2vid.temporal.opticalflow import (
    DIS_PRESETS,
    as_float_rgb,
    dis_flow,
    grey_u8,
    resize_flow,
    resize_to,
    sample_grid,
)
from vid2vid.temporal.trust import motion_trust, photometric_residual, photometric_trust  # noqa: F401  (read here too)

DEFAULT_STRENGTH = CorrectSettings.flow_strength        # the setting's default (config/sections.py)


@dataclass
class FlowOptions:
    """Tunables of the flow-guided correction (defaults measured on bench/bench_temporal.py)."""

    flow_scale: float = 0.5          # flow resolution relative to the output size
    preset: str = "medium"           # OpenCV DIS preset for the correction's own flow (the first version: fast)
    photo_sigma: float = 0.05        # photometric check width (grey levels in [0, 1])
    cut_level: float = 0.25          # mean trust below this marks a scene cut
    keep_detail: bool = True         # cubic warps and a hard trust floor (False, preset fast: the first version)
    trust_floor: float = 0.3         # keep_detail: trust below this carries nothing, above it is rescaled
    colour_match: bool = True        # keep_detail: match each frame's colour to its neighbours' (two-sided)
    ghost_gate: bool = True          # keep_detail: carry nothing where the carried picture and the frame
    ghost_tolerance: float = trust.GHOST_TOLERANCE   # ... differ beyond the source's change + this (trust.ghost_gate)
    ghost_width: float = trust.GHOST_WIDTH
    detail_gate: bool = True         # keep_detail: where the carried fine detail is another drawing than the
    detail_tolerance: float = detailgate.DETAIL_TOLERANCE   # frame's, keep the frame's (detailgate)

    def validate(self) -> None:
        if not 0.05 <= self.flow_scale <= 1.0:
            raise BadInput(f"flow_scale {self.flow_scale} is out of range; use 0.05 .. 1")
        if self.preset not in DIS_PRESETS:
            raise BadInput(f"flow preset '{self.preset}' is not known; use {', '.join(DIS_PRESETS)}")
        if not self.photo_sigma > 0:
            raise BadInput(f"photo_sigma {self.photo_sigma} must be > 0")
        if not 0.0 <= self.cut_level <= 1.0:
            raise BadInput(f"cut_level {self.cut_level} is out of range; use 0 .. 1")
        if not 0.0 <= self.trust_floor < 1.0:
            raise BadInput(f"trust_floor {self.trust_floor} is out of range; use 0 .. 0.99")


@dataclass
class Link:
    """Motion between frames t-1 and t at the flow resolution (float16 to save memory).

    flow_bw: HxWx2 at frame t towards t-1; trust_bw: HxW, trust in warped t-1 at frame t.
    flow_fw: HxWx2 at frame t-1 towards t; trust_fw: HxW, trust in warped t at frame t-1.
    cut: the pair is a scene cut (both trusts are zero).
    resid_bw / resid_fw: HxW, the source's grey residual |grey_t - warp(grey_t-1)| at frame t (and the
    same at t-1 towards t): how much the source itself changes along the flow (trust.ghost_gate)."""

    flow_bw: np.ndarray
    trust_bw: np.ndarray
    flow_fw: np.ndarray
    trust_fw: np.ndarray
    cut: bool
    resid_bw: np.ndarray | None = None
    resid_fw: np.ndarray | None = None


def flow_size(size: tuple[int, int], opts: FlowOptions) -> tuple[int, int]:
    """(width, height) at which the correction computes its flow: the output size * flow_scale."""
    return max(8, round(size[0] * opts.flow_scale)), max(8, round(size[1] * opts.flow_scale))


def flow_grey(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A source frame (uint8 or float HxWx3) as uint8 grey at `size` = (width, height)."""
    return resize_to(grey_u8(src), *size)


def source_link(grey_prev: np.ndarray, grey_cur: np.ndarray, opts: FlowOptions) -> Link:
    """Flows and trusts between two source frames given as uint8 HxW grey at the flow size."""
    flow_bw = dis_flow(grey_cur, grey_prev, opts.preset)
    flow_fw = dis_flow(grey_prev, grey_cur, opts.preset)
    ga = grey_prev.astype(np.float32) * np.float32(1 / 255)
    gb = grey_cur.astype(np.float32) * np.float32(1 / 255)
    trust_bw, resid_bw = trust.trust_and_residual(flow_bw, flow_fw, gb, ga, opts.photo_sigma)
    trust_fw, resid_fw = trust.trust_and_residual(flow_fw, flow_bw, ga, gb, opts.photo_sigma)
    cut = min(float(trust_bw.mean()), float(trust_fw.mean())) < opts.cut_level
    if cut:
        trust_bw[:] = 0.0
        trust_fw[:] = 0.0
    return Link(flow_bw.astype(np.float16), trust_bw.astype(np.float16),
                flow_fw.astype(np.float16), trust_fw.astype(np.float16), cut,
                resid_bw.astype(np.float16), resid_fw.astype(np.float16))


# ---------------------------------------------------------------- one recursive step
#
# A running average is kept premultiplied, float32 HxWx4 = (w * mean RGB, w): warping it is a
# normalised convolution, and adding two of them adds their weights.

@dataclass
class Scratch:
    """Work buffers reused from frame to frame (fresh large arrays cost page faults every time)."""

    warped: np.ndarray      # float32 HxWx4
    weight4: np.ndarray     # float32 HxWx4
    frame4: np.ndarray      # float32 HxWx4
    rgb: np.ndarray         # float32 HxWx3
    den3: np.ndarray        # float32 HxWx3

    @classmethod
    def for_size(cls, width: int, height: int) -> Scratch:
        four, three = (height, width, 4), (height, width, 3)
        return cls(np.empty(four, np.float32), np.empty(four, np.float32), np.empty(four, np.float32),
                   np.empty(three, np.float32), np.empty(three, np.float32))


def premultiplied(img: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 HxWx3 frame -> float32 HxWx4 (RGB, 1): the frame as an average of weight 1."""
    return cv2.cvtColor(img, cv2.COLOR_RGB2RGBA, dst=out)


def propagate(state: np.ndarray, flow_small: np.ndarray, trust_small: np.ndarray, strength: float,
              change_mask: np.ndarray | None, scratch: Scratch | None = None,
              options: FlowOptions | None = None) -> np.ndarray:
    """Carry a neighbour's running average into this frame.

    state: float32 HxWx4 premultiplied average at the neighbouring frame; flow_small /
    trust_small: the link's flow at this frame towards the neighbour and its trust, at the
    flow resolution. Returns the carried average, float32 HxWx4, its weight scaled by
    strength * trust * (1 - change mask); with `scratch` it is scratch.warped (use it before
    the next call)."""
    h, w = state.shape[:2]
    scratch = scratch or Scratch.for_size(w, h)
    map_x, map_y = sample_grid(resize_flow(flow_small.astype(np.float32), w, h))
    detail = options is not None and options.keep_detail
    interp = cv2.INTER_CUBIC if detail else cv2.INTER_LINEAR
    warped = cv2.remap(state, map_x, map_y, interp, dst=scratch.warped, borderMode=cv2.BORDER_REPLICATE)
    k = cv2.resize(trust_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if detail:
        assert options is not None
        floor = options.trust_floor
        k = np.clip((k - floor) * np.float32(1.0 / (1.0 - floor)), 0.0, 1.0, out=k) if floor > 0 else k
    k *= np.float32(strength)
    if change_mask is not None:
        k *= 1.0 - change_mask.reshape(h, w)
    return cv2.multiply(warped, cv2.merge([k, k, k, k], dst=scratch.weight4), dst=warped)


def resolve_into(past_rgb: np.ndarray, past_weight: np.ndarray, state: np.ndarray,
                 scratch: Scratch | None = None) -> None:
    """Final frame, written over `past_rgb`: (past RGB + state RGB) / (past weight + state weight).

    past_rgb: float32 HxWx3 (premultiplied RGB the past carries; replaced by the result, RGB
    in [0, 1]); past_weight: float32 HxW; state: float32 HxWx4, this frame's average with the
    future (premultiplied)."""
    h, w = past_weight.shape
    scratch = scratch or Scratch.for_size(w, h)
    cv2.add(past_rgb, cv2.cvtColor(state, cv2.COLOR_RGBA2RGB, dst=scratch.rgb), dst=past_rgb)
    den = cv2.add(past_weight, cv2.extractChannel(state, 3))
    cv2.divide(past_rgb, cv2.merge([den, den, den], dst=scratch.den3), dst=past_rgb)
    np.clip(past_rgb, 0.0, 1.0, out=past_rgb)


# ---------------------------------------------------------------- the pass

def _check(source_frames: Sequence[np.ndarray], generated: Sequence[np.ndarray], strength: float,
           change_masks: Sequence[np.ndarray | None] | None) -> tuple[int, int]:
    if len(source_frames) != len(generated):
        raise BadInput(f"{len(source_frames)} source frames but {len(generated)} generated frames; "
                       f"give one source frame per generated frame")
    if not 0.0 <= strength < 1.0:
        raise BadInput(f"strength {strength} is out of range; use 0 (no correction) .. 0.99")
    if not generated:
        return 0, 0
    h, w = np.asarray(generated[0]).shape[:2]
    for i, g in enumerate(generated):
        g = np.asarray(g)
        if g.ndim != 3 or g.shape[2] != 3 or g.shape[:2] != (h, w):
            raise BadInput(f"generated frame {i + 1} has shape {g.shape}; expected {h}x{w}x3 like frame 1")
    if change_masks is not None:
        if len(change_masks) != len(generated):
            raise BadInput(f"{len(change_masks)} masks for {len(generated)} frames; give one mask per frame")
        for i, m in enumerate(change_masks):
            if m is not None and np.asarray(m).shape[:2] != (h, w):
                raise BadInput(f"mask {i + 1} is {np.asarray(m).shape[:2]}, frames are {(h, w)}; resize the masks")
    return w, h


def flow_correct_sequence(source_frames: list[np.ndarray], generated: list[np.ndarray],
                          strength: float = DEFAULT_STRENGTH, *,
                          change_masks: Sequence[np.ndarray | None] | None = None,
                          progress: Callable[[], None] | None = None,
                          **opts) -> list[np.ndarray]:
    """Steady a generated sequence along the source's motion (offline: uses past and future).

    source_frames: uint8 or float32 HxWx3 in [0, 1], any size (resized to the generated size);
    generated: float32 (or uint8) HxWx3 frames, one per source frame; strength in [0, 1): 0
    returns the generated frames, higher is steadier; change_masks: optional float32 HxWx1 in
    [0, 1] per frame (None entries allowed), white = less correction there (the seed's masks);
    progress: called once per frame and pass (`flow_steps` calls); opts: fields of FlowOptions.
    Returns float32 HxWx3 frames in [0, 1]. `flow_correct_frames` does the same work reading
    and writing one frame at a time, in bounded memory.
    """
    options = flow_options(opts)
    w, h = _check(source_frames, generated, strength, change_masks)
    n = len(generated)
    gen = [as_float_rgb(g) for g in generated]
    if n < 2 or strength == 0.0:
        return [g.copy() for g in gen]
    out: list[np.ndarray | None] = [None] * n

    def keep(t: int, frame: np.ndarray) -> None:
        out[t] = frame

    flow_correct_frames(n, (w, h), source_frames.__getitem__, gen.__getitem__, strength, keep,
                        change_mask=None if change_masks is None else change_masks.__getitem__,
                        progress=progress, segment=n, options=options)
    return cast(list[np.ndarray], out)      # every frame was kept


def flow_options(opts: dict) -> FlowOptions:
    """FlowOptions from keyword options, checked (BadInput names the known ones)."""
    try:
        options = FlowOptions(**opts)
    except TypeError as exc:
        raise BadInput(f"unknown option for the flow correction ({exc}); known: flow_scale, preset, "
                       f"photo_sigma, cut_level, keep_detail, trust_floor, colour_match, ghost_gate, "
                       f"ghost_tolerance, ghost_width, detail_gate, detail_tolerance") from None
    options.validate()
    return options


# ---------------------------------------------------------------- frame by frame, bounded memory
#
# The pass keeps, per frame of the sequence, what the past carries into it (16 bytes a pixel) and
# the link to the previous frame until the backward pass reaches it. For a long video that does not
# fit in memory, so the sequence is cut into segments: a first forward pass keeps only the forward
# state at each segment start (checkpoints); then, from the last segment to the first, the forward
# pass is recomputed inside the segment from its checkpoint and the backward pass finishes its
# frames. Memory holds one segment and the checkpoints (about 2 sqrt(N) frames), the flows are
# computed twice, and the result is the one-segment result to the bit.

MEMORY_BUDGET = 2 * 2 ** 30          # bytes of per-frame buffers before the sequence is segmented


def segment_length(n: int, width: int, height: int, budget: int | None = None) -> int:
    """Frames per segment: the whole sequence when its buffers fit `budget` (MEMORY_BUDGET), else
    about sqrt(n), or more when the budget holds two segments of that many."""
    budget = MEMORY_BUDGET if budget is None else budget
    per_frame = width * height * (16 + 12 + 4 + 3)      # past RGBW, generated RGB, mask, links
    if n * per_frame <= budget:
        return max(1, n)
    return max(2, min(n, max(int(math.ceil(math.sqrt(n))), budget // (2 * per_frame))))


def flow_steps(n: int, segment: int) -> int:
    """How many times flow_correct_frames calls `progress` for n frames in segments of `segment`."""
    if n < 2:
        return 0
    checkpoints = (math.ceil(n / segment) - 1) * segment - 1 if segment < n else 0
    return checkpoints + 2 * n


@dataclass
class _Pass:
    """What the forward and the backward steps of `flow_correct_frames` share."""

    size: tuple[int, int]
    fsize: tuple[int, int]
    source: Callable[[int], np.ndarray]
    generated: Callable[[int], np.ndarray]
    mask: Callable[[int], np.ndarray | None]
    strength: float
    options: FlowOptions
    scratch: Scratch

    def frame(self, t: int) -> np.ndarray:
        w, h = self.size
        g = as_float_rgb(self.generated(t))
        if g.ndim != 3 or g.shape != (h, w, 3):
            raise BadInput(f"generated frame {t + 1} has shape {g.shape}; expected {h}x{w}x3 like frame 1")
        return g

    def mask_at(self, t: int) -> np.ndarray | None:
        m = self.mask(t)
        return None if m is None else np.asarray(m, dtype=np.float32)

    def first_frame(self, gen_0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forward state and grey of frame 0."""
        return premultiplied(gen_0), flow_grey(self.source(0), self.fsize)

    def carry(self, state: np.ndarray, flow: np.ndarray, link_trust: np.ndarray, resid: np.ndarray | None,
              gen_t: np.ndarray, mask_t: np.ndarray | None) -> np.ndarray:
        """A neighbour's running average carried into frame t (scratch.warped), gated where it is a
        second drawing of a moving part (trust.ghost_gate; with keep_detail and ghost_gate)."""
        opts = self.options
        carried = propagate(state, flow, link_trust, self.strength, mask_t, self.scratch, opts)
        if opts.keep_detail and opts.ghost_gate and resid is not None:
            gate = trust.ghost_gate(carried, gen_t, resid, opts.ghost_tolerance, opts.ghost_width)
            cv2.multiply(carried, cv2.merge([gate, gate, gate, gate], dst=self.scratch.weight4), dst=carried)
        return carried

    def shown(self, carried: np.ndarray, gen_t: np.ndarray) -> np.ndarray:
        """What frame t's output takes of a carried average: with keep_detail and detail_gate a copy whose
        fine detail is frame t's where the two drawings differ (detailgate), else `carried` itself. The
        running average carried on to the next frame is not changed, so a frame's own drawing enters it
        at the frame's own weight only (no faint copy of it lingers in the low band)."""
        opts = self.options
        if opts.keep_detail and opts.detail_gate:
            return detailgate.keep_current_detail(carried.copy(), gen_t, opts.detail_tolerance)
        return carried

    def step(self, state: np.ndarray, grey_prev: np.ndarray, t: int, gen_t: np.ndarray,
             mask_t: np.ndarray | None) -> tuple[Link, np.ndarray, np.ndarray]:
        """Forward step into frame t, updating `state` in place to frame t's running average.

        Returns (link t-1 -> t, grey of frame t, what the past carried into t (scratch.warped))."""
        grey_t = flow_grey(self.source(t), self.fsize)
        link = source_link(grey_prev, grey_t, self.options)
        carried = self.carry(state, link.flow_bw, link.trust_bw, link.resid_bw, gen_t, mask_t)
        cv2.add(premultiplied(gen_t, self.scratch.frame4), carried, dst=state)
        return link, grey_t, carried


@dataclass
class _Segment:
    """One segment's frames between its forward and its backward pass."""

    gens: dict[int, np.ndarray]
    masks: dict[int, np.ndarray | None]
    links: dict[int, Link]
    past_rgb: dict[int, np.ndarray]
    past_w: dict[int, np.ndarray]


def flow_correct_frames(n: int, size: tuple[int, int], source: Callable[[int], np.ndarray],
                        generated: Callable[[int], np.ndarray], strength: float,
                        write: Callable[[int, np.ndarray], None], *,
                        change_mask: Callable[[int], np.ndarray | None] | None = None,
                        progress: Callable[[], None] | None = None, segment: int | None = None,
                        options: FlowOptions | None = None) -> None:
    """The flow-guided correction of n frames read one at a time, each result handed to write(t, frame).

    size: (width, height) of the generated frames; source(t) / generated(t) / change_mask(t):
    frame t (0-based) as for `flow_correct_sequence` (they may be called more than once per t);
    write(t, frame) receives float32 HxWx3 in [0, 1], in no particular order, once per frame;
    segment: frames per segment (None: `segment_length`). Needs n >= 2 and 0 < strength < 1.
    """
    options = options or FlowOptions()
    w, h = size
    seg = segment or segment_length(n, w, h)
    starts = list(range(0, n, seg))
    run = _Pass(size, flow_size(size, options), source, generated, change_mask or (lambda t: None), strength,
                options, Scratch.for_size(w, h))
    tick = progress or (lambda: None)
    checkpoints = _checkpoints(run, starts, tick)
    future_state: np.ndarray | None = None
    link_after: Link | None = None           # the link from the segment's last frame to the next one
    for a in reversed(starts):
        b = min(a + seg, n)
        part = _forward_segment(run, a, b, checkpoints, tick)
        future_state = _backward_segment(run, n, a, b, part, future_state, link_after, write, tick)
        link_after = part.links.get(a)


def _checkpoints(run: _Pass, starts: list[int], tick: Callable[[], None]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The forward state and grey of frame a-1 for each segment start a > 0 (one forward pass)."""
    checkpoints: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if len(starts) > 1:
        state, grey_prev = run.first_frame(run.frame(0))
        if 1 in starts:
            checkpoints[1] = (state.copy(), grey_prev)
        for t in range(1, starts[-1]):
            _, grey_prev, _ = run.step(state, grey_prev, t, run.frame(t), run.mask_at(t))
            if t + 1 in starts:
                checkpoints[t + 1] = (state.copy(), grey_prev)
            tick()
    return checkpoints


def _forward_segment(run: _Pass, a: int, b: int, checkpoints: dict[int, tuple[np.ndarray, np.ndarray]],
                     tick: Callable[[], None]) -> _Segment:
    """The forward pass over frames a..b-1, from the checkpoint of a (or from frame 0)."""
    w, h = run.size
    part = _Segment({}, {}, {}, {}, {})
    if a == 0:
        part.gens[0], part.masks[0] = run.frame(0), run.mask_at(0)
        state, grey_prev = run.first_frame(part.gens[0])
        part.past_rgb[0], part.past_w[0] = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
        first = 1
        tick()
    else:
        state, grey_prev = checkpoints[a]
        state = state.copy()
        first = a
    for t in range(first, b):
        part.gens[t], part.masks[t] = run.frame(t), run.mask_at(t)
        part.links[t], grey_prev, carried = run.step(state, grey_prev, t, part.gens[t], part.masks[t])
        carried = run.shown(carried, part.gens[t])
        part.past_rgb[t] = cv2.cvtColor(carried, cv2.COLOR_RGBA2RGB)
        part.past_w[t] = cv2.extractChannel(carried, 3)
        tick()
    return part


def _backward_segment(run: _Pass, n: int, a: int, b: int, part: _Segment, future_state: np.ndarray | None,
                      link_after: Link | None, write: Callable[[int, np.ndarray], None],
                      tick: Callable[[], None]) -> np.ndarray | None:
    """The backward pass over frames b-1..a, each frame finished and written; returns the state at a."""
    match = run.options.keep_detail and run.options.colour_match
    gens, past_rgb, past_w = part.gens, part.past_rgb, part.past_w
    for t in range(b - 1, a - 1, -1):
        if t == n - 1:
            if match:
                gens[t] = match_to_neighbours(gens[t], [(past_rgb[t], past_w[t])])
            future_state = shown = premultiplied(gens[t])
        else:
            link = part.links[t + 1] if t + 1 < b else link_after
            assert future_state is not None and link is not None   # set at frame n - 1 / by the later segment
            future = run.carry(future_state, link.flow_fw, link.trust_fw, link.resid_fw, gens[t], part.masks[t])
            if match:
                gens[t] = match_to_neighbours(gens[t], [(past_rgb[t], past_w[t]), (future[..., :3], future[..., 3])])
            own = premultiplied(gens[t], run.scratch.frame4)
            cv2.add(own, future, dst=future_state)
            detail = run.shown(future, gens[t])            # the output's share of the future (detail gate)
            shown = future_state if detail is future else cv2.add(own, detail, dst=detail)
        resolve_into(past_rgb[t], past_w[t], shown, run.scratch)
        write(t, past_rgb.pop(t))
        del past_w[t], gens[t]
        tick()
    return future_state
