"""The live painter: the image painter's session, one frame at a time in the order they are shown,
with the frame delta correction of the offline stage (against the previous shown frame).

Frames are numbered by their place among the painted frames (a dropped frame is never painted), so
cross-frame attention reads what it reads in an offline run of the same painted frames: the anchor is
the first painted frame, the bank the few painted before. With nothing dropped, frame k is painted
exactly as the offline img2img stage paints frame k with the same settings (batch 1).
"""
from __future__ import annotations

import numpy as np

from vid2vid import config
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.diffusion.crossframe import references
from vid2vid.live.sources import Captured
from vid2vid.painting.frameplan import Unit
from vid2vid.temporal import fdc


def live_unit(mode: str, k: int, bank: int) -> Unit:
    """Painted frame k's unit: its references, whether a later frame reads it, what it leaves behind."""
    refs = references(mode, k, bank)
    later = set(references(mode, k + 1, bank))
    return Unit((k,), refs, keep=k in later or (mode != "none" and k == 1),
                release=tuple(r for r in refs if r not in later))


class LivePainter:
    """paint(captured) -> the painted frame at the canvas size (float32 HxWx3 in [0, 1])."""

    def __init__(self, settings: config.Settings, job: Job, model=None):
        from vid2vid.painting.painters import image

        s = settings.img2img
        if s.flow_init > 0 or s.skip_still > 0:
            raise BadInput("live painting takes neither {img2img.flow_init} nor {img2img.skip_still} (both read "
                           "files of an offline run); set them to 0 for live")
        c = settings.correct
        if "depth" in (c.delta_mask, c.spatial_mask) or c.method != "stats":
            raise BadInput("live correction takes the stats method with motion or no masks (depth maps and the "
                           "flow pass need the whole video); change {correct.method}, {correct.delta_mask} or "
                           "{correct.spatial_mask}")
        if any(cn.control in ("depth", "folder") for cn in s.controlnet):
            raise BadInput("live ControlNets take the sources made from the frame itself (canny, softedge, lineart, "
                           "tile), not depth or a folder; change {img2img.controlnet}'s control source")
        self.s, self.c, self.k = s, c, 0
        self.prev: tuple[np.ndarray, np.ndarray] | None = None      # (canvas, output as written) of the last frame
        self.session = image.load(settings, job, model)

    def warm_up(self) -> None:
        """One painting of a grey canvas that nothing reads or records, so the first live frame is not
        the one that pays for allocations and kernel choices."""
        s = self.s
        grey = np.full((s.height, s.width, 3), 0.5, np.float32)
        self.session.paint(Unit((0,)), [grey], None, self.controls(grey))

    def controls(self, canvas: np.ndarray) -> list[list[np.ndarray]] | None:
        """The frame's ControlNet images, made from its canvas as the control stage makes them."""
        if not self.s.controlnet:
            return None
        from vid2vid.video.controlimages import control_image

        c8 = imageops.to_uint8(canvas)
        return [[imageops.to_float(control_image(cn.control, c8, low=cn.low, high=cn.high, blur=cn.blur))
                 for cn in self.s.controlnet]]

    def __call__(self, cap: Captured) -> np.ndarray:
        """Frame k painted and corrected as the offline stage does it: o_k = correct(g_k, o_(k-1), d_k)."""
        self.k += 1
        s, c = self.s, self.c
        canvas = imageops.fit(cap.image, s.width, s.height, s.resize)
        delta = None if self.prev is None else fdc.frame_delta(self.prev[0], canvas)
        masks = self.session.canvas_masks([fdc.spatial_mask(c, delta, None, s.height, s.width)])
        unit = live_unit(s.cross_frame, self.k, s.cross_frame_bank)
        generated = self.session.paint(unit, [canvas], masks, self.controls(canvas))[0]
        out, _ = fdc.correct_frame(generated, None if self.prev is None else self.prev[1], delta, c)
        out = imageops.to_float(imageops.to_uint8(out))          # the next frame reads it as written
        self.prev = (canvas, out)
        return out

    def close(self) -> None:
        self.session.close()
