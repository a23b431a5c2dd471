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

- forward-backward check of the source flow (DESIGN §6) and the sample lying inside the frame
  (occlusions and the frame border get no history);
- a photometric check on the source: the warped source must match, exp(-(r / sigma)^2) with r
  the absolute grey difference (flow errors, lighting changes);
- scene cuts: when the mean trust of a frame pair falls below `cut_level`, the pair is a cut
  and the trust is zero everywhere, so nothing crosses the cut in either direction.

The flow is OpenCV DIS on the source frames resized to the output size times `flow_scale`
(the flow is scaled back up), so the cost per frame is two cheap flows, one 4-channel warp per
pass and a few array operations. Images are float32 RGB HxWx3 in [0, 1]; masks HxWx1.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vid2vid.errors import BadInput
from vid2vid.metrics import (
    DIS_PRESETS,
    as_float_rgb,
    consistency_mask,
    dis_flow,
    grey_u8,
    inside_mask,
    resize_flow,
    resize_to,
    sample_grid,
    warp,
)

DEFAULT_STRENGTH = 0.75


@dataclass
class FlowOptions:
    """Tunables of the flow-guided correction (defaults measured on bench/bench_temporal.py)."""

    flow_scale: float = 0.5          # flow resolution relative to the output size
    preset: str = "fast"             # OpenCV DIS preset for the correction's own flow
    photo_sigma: float = 0.05        # photometric check width (grey levels in [0, 1])
    cut_level: float = 0.25          # mean trust below this marks a scene cut

    def validate(self) -> None:
        if not 0.05 <= self.flow_scale <= 1.0:
            raise BadInput(f"flow_scale {self.flow_scale} is out of range; use 0.05 .. 1")
        if self.preset not in DIS_PRESETS:
            raise BadInput(f"flow preset '{self.preset}' is not known; use {', '.join(DIS_PRESETS)}")
        if not self.photo_sigma > 0:
            raise BadInput(f"photo_sigma {self.photo_sigma} must be > 0")
        if not 0.0 <= self.cut_level <= 1.0:
            raise BadInput(f"cut_level {self.cut_level} is out of range; use 0 .. 1")


@dataclass
class Link:
    """Motion between frames t-1 and t at the flow resolution (float16 to save memory).

    flow_bw: HxWx2 at frame t towards t-1; trust_bw: HxW, trust in warped t-1 at frame t.
    flow_fw: HxWx2 at frame t-1 towards t; trust_fw: HxW, trust in warped t at frame t-1.
    cut: the pair is a scene cut (both trusts are zero)."""

    flow_bw: np.ndarray
    trust_bw: np.ndarray
    flow_fw: np.ndarray
    trust_fw: np.ndarray
    cut: bool


# ---------------------------------------------------------------- motion trust

def photometric_trust(grey: np.ndarray, grey_other: np.ndarray, flow: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-(r / sigma)^2), r = |grey - warp(grey_other, flow)|; greys float32 HxW in [0, 1] -> float32 HxW."""
    r = grey - warp(grey_other, flow)
    return np.exp(-(r * r) * np.float32(1.0 / (sigma * sigma)))


def motion_trust(flow: np.ndarray, flow_back: np.ndarray, grey: np.ndarray, grey_other: np.ndarray,
                 sigma: float) -> np.ndarray:
    """Trust in [0, 1] (float32 HxW) of `flow` (at this frame, towards the other one): 0 where the
    forward-backward check fails or the sample leaves the frame, else the photometric trust."""
    valid = consistency_mask(flow, flow_back) & inside_mask(flow)
    return photometric_trust(grey, grey_other, flow, sigma) * valid


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
    trust_bw = motion_trust(flow_bw, flow_fw, gb, ga, opts.photo_sigma)
    trust_fw = motion_trust(flow_fw, flow_bw, ga, gb, opts.photo_sigma)
    cut = min(float(trust_bw.mean()), float(trust_fw.mean())) < opts.cut_level
    if cut:
        trust_bw[:] = 0.0
        trust_fw[:] = 0.0
    return Link(flow_bw.astype(np.float16), trust_bw.astype(np.float16),
                flow_fw.astype(np.float16), trust_fw.astype(np.float16), cut)


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
              change_mask: np.ndarray | None, scratch: Scratch | None = None) -> np.ndarray:
    """Carry a neighbour's running average into this frame.

    state: float32 HxWx4 premultiplied average at the neighbouring frame; flow_small /
    trust_small: the link's flow at this frame towards the neighbour and its trust, at the
    flow resolution. Returns the carried average, float32 HxWx4, its weight scaled by
    strength * trust * (1 - change mask); with `scratch` it is scratch.warped (use it before
    the next call)."""
    h, w = state.shape[:2]
    scratch = scratch or Scratch.for_size(w, h)
    map_x, map_y = sample_grid(resize_flow(flow_small.astype(np.float32), w, h))
    warped = cv2.remap(state, map_x, map_y, cv2.INTER_LINEAR, dst=scratch.warped, borderMode=cv2.BORDER_REPLICATE)
    k = cv2.resize(trust_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
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
           change_masks: Sequence[np.ndarray] | None) -> tuple[int, int]:
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
    progress: called once per frame and pass (2 (N - 1) calls); opts: fields of FlowOptions.
    Returns float32 HxWx3 frames in [0, 1].
    """
    # 1. check the inputs
    try:
        options = FlowOptions(**opts)
    except TypeError as exc:
        raise BadInput(f"unknown option for the flow correction ({exc}); known: flow_scale, preset, "
                       f"photo_sigma, cut_level") from None
    options.validate()
    w, h = _check(source_frames, generated, strength, change_masks)
    n = len(generated)
    gen = [as_float_rgb(g) for g in generated]
    if n < 2 or strength == 0.0:
        return [g.copy() for g in gen]
    masks = [None if m is None else np.asarray(m, dtype=np.float32) for m in change_masks] \
        if change_masks is not None else [None] * n

    # 2. source frames as small greys for the flow (links[t] joins t-1 and t; links[0] unused)
    greys = [flow_grey(f, flow_size((w, h), options)) for f in source_frames]
    links: list[Link | None] = [None]

    # 3. forward pass: motion and trust of each pair, then what the past carries into each frame
    #    (premultiplied); its RGB part is kept in the output frame's buffer, its weight beside it
    out: list[np.ndarray] = [np.zeros((h, w, 3), np.float32)]
    past_w: list[np.ndarray] = [np.zeros((h, w), np.float32)]
    scratch = Scratch.for_size(w, h)
    state = premultiplied(gen[0])
    for t in range(1, n):
        links.append(source_link(greys[t - 1], greys[t], options))
        carried = propagate(state, links[t].flow_bw, links[t].trust_bw, strength, masks[t], scratch)
        out.append(cv2.cvtColor(carried, cv2.COLOR_RGBA2RGB))
        past_w.append(cv2.extractChannel(carried, 3))
        cv2.add(premultiplied(gen[t], scratch.frame4), carried, dst=state)
        if progress is not None:
            progress()

    # 4. backward pass: the same from the future; O_t = (G_t + past + future) / total weight
    state = premultiplied(gen[n - 1])
    for t in range(n - 1, -1, -1):
        if t < n - 1:
            future = propagate(state, links[t + 1].flow_fw, links[t + 1].trust_fw, strength, masks[t], scratch)
            cv2.add(premultiplied(gen[t], scratch.frame4), future, dst=state)
        resolve_into(out[t], past_w[t], state, scratch)
        past_w[t] = None
        if progress is not None and t < n - 1:
            progress()
    return out
