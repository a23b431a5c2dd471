"""Flow-guided init (Rerender-A-Video's idea): the previous output, moved along the source's
motion, becomes part of the current frame's init image.

For frame t (canvas-sized, float32 HxWx3 in [0, 1]):

    W_t    = warp(O_(t-1), F_t)             F_t: source flow at frame t towards frame t-1
    init_t = S_t * (1 - k) + W_t * k,       k = strength * c_t

S_t is the source canvas, O_(t-1) the previous output as written, and c_t in [0, 1] the trust in
the motion at each pixel, the same trust the offline flow pass uses (`temporal.source_link`):
zero where the forward-backward check fails or the sample leaves the frame, the photometric
match of the warped source elsewhere, and zero everywhere at a scene cut. So the previous
painting carries over where the motion is known and the source frame shows through where it
is not (disocclusions, cuts). Strength 0 is the plain init; 1 puts the warped output wholly in
trusted pixels. The flow is computed at the canvas size on the source canvases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vid2vid.core.errors import BadInput
from vid2vid.temporal.flowpass import FlowOptions, flow_grey, source_link
from vid2vid.temporal.opticalflow import warp

PRESET = "medium"       # DIS preset of the init's flow (39 ms at 852x480 on one core)


@dataclass
class SourceMotion:
    """Motion from source frame t-1 to t at the canvas size: flow at t towards t-1 and its trust."""

    flow: np.ndarray        # float32 HxWx2
    trust: np.ndarray       # float32 HxW in [0, 1]


def source_motion(prev_canvas: np.ndarray, canvas: np.ndarray, preset: str = PRESET) -> SourceMotion:
    """The motion between two consecutive source canvases (float32 HxWx3 in [0, 1], same size)."""
    if prev_canvas.shape != canvas.shape:
        raise BadInput(f"consecutive frames differ in size ({prev_canvas.shape} vs {canvas.shape}); "
                       "extract the frames again from one video")
    h, w = canvas.shape[:2]
    link = source_link(flow_grey(prev_canvas, (w, h)), flow_grey(canvas, (w, h)), FlowOptions(preset=preset))
    return SourceMotion(link.flow_bw.astype(np.float32), link.trust_bw.astype(np.float32))


def mix(canvas: np.ndarray, prev_out: np.ndarray, motion: SourceMotion, strength: float) -> np.ndarray:
    """init_t = canvas * (1 - k) + warp(prev_out) * k with k = strength * trust; canvas itself at 0."""
    if not 0.0 <= strength <= 1.0:
        raise BadInput(f"flow init strength {strength} is out of range; use 0 (off) to 1")
    if strength == 0.0:
        return canvas
    prev = np.asarray(prev_out, dtype=np.float32)
    if prev.shape != canvas.shape:
        raise BadInput(f"the previous output is {prev.shape[1]}x{prev.shape[0]} but the canvas is "
                       f"{canvas.shape[1]}x{canvas.shape[0]}; run img2img again from the first frame")
    k = (np.float32(strength) * motion.trust)[..., None]
    warped = warp(prev, motion.flow)
    return np.clip(canvas * (1.0 - k) + warped * k, 0.0, 1.0).astype(np.float32)
