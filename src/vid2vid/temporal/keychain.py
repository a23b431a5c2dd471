"""The source motion between two key frames, and how far each key's warp into a frame can be trusted.

Read by vid2vid.temporal.propagation (which carries the keys along these chains) and
vid2vid.temporal.fillbudget (which measures each frame's hole before anything is painted). Flows are at
`FlowOptions.flow_scale` of the frame size; a frame t between keys a < b reads key a along the chain of
pair flows from t back to a, composed link by link (`compose`), and key b along the chain ahead.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from vid2vid.temporal.flowpass import FlowOptions, source_link
from vid2vid.temporal.opticalflow import consistency_mask, inside_mask, sample_grid, warp

HOLE_TRUST = 0.5          # a key trusted at least this much covers a pixel fully


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


def blend_weight(a_trust: np.ndarray, b_trust: np.ndarray, wa: float, wb: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight of key b, coverage), float32 HxW at full size, for the frame

        A + weight * (B - A) = (w_a T_a A + w_b T_b B) / (w_a T_a + w_b T_b)

    with c = clip(max(T_a, T_b) / HOLE_TRUST, 0, 1); where neither key has any trust (w_a T_a + w_b T_b
    <= 1e-12) the weight picks the nearer key (a when wa >= wb). Where c < 1 the caller redraws."""
    ka, kb = a_trust * np.float32(wa), b_trust * np.float32(wb)
    den = ka + kb
    cover = np.clip(np.maximum(a_trust, b_trust) * np.float32(1.0 / HOLE_TRUST), 0.0, 1.0)
    weight = kb / np.maximum(den, np.float32(1e-12))
    weight[den <= 1e-12] = 0.0 if wa >= wb else 1.0
    return weight, cover


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


Chain = tuple[np.ndarray, np.ndarray]


def interval_chains(m: IntervalMotion, a: int, b: int) -> Iterator[tuple[int, Chain, Chain]]:
    """(t, chain at t towards key a, chain at t towards key b) for t = a+1 .. b-1 in order."""
    to_b: dict[int, Chain] = {}
    far: tuple = (None, None)
    for t in range(b - 1, a, -1):                       # backward chains: at t towards key b
        far = to_b[t] = compose(m.links[t + 1].flow_fw, m.links[t + 1].valid_fw, *far)
    far = (None, None)
    for t in range(a + 1, b):                           # forward chains, each frame handed on at once
        far = compose(m.links[t].flow_bw, m.links[t].valid_bw, *far)
        yield t, far, to_b[t]


def frame_trust(t: int, a: int, b: int, chain_a: Chain, chain_b: Chain, greys: dict[int, np.ndarray],
                size: tuple[int, int], sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight of key b, coverage), float32 HxW at `size` (width, height), of frame t between the keys
    a < b: both keys' `key_trust` scaled up, blended with the distance weights (`blend_weight`)."""
    w, h = size
    (fa, va), (fb, vb) = chain_a, chain_b
    ta = cv2.resize(key_trust(va, fa, greys[t], greys[a], sigma), (w, h), interpolation=cv2.INTER_LINEAR)
    tb = cv2.resize(key_trust(vb, fb, greys[t], greys[b], sigma), (w, h), interpolation=cv2.INTER_LINEAR)
    return blend_weight(ta, tb, (b - t) / (b - a), (t - a) / (b - a))
