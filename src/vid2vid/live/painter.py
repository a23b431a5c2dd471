"""The live painter: the image painter's session, one frame at a time in the order they are shown,
with the frame delta correction of the offline stage (against the previous shown frame).

Frames are numbered by their place among the painted frames (a dropped frame is never painted), so
cross-frame attention reads what it reads in an offline run of the same painted frames: the anchor is
the first painted frame, the bank the few painted before. With nothing dropped, frame k is painted
exactly as the offline img2img stage paints frame k with the same settings (batch 1).
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.diffusion.crossframe import references
from vid2vid.live.sources import Captured
from vid2vid.painting import still
from vid2vid.painting.frameplan import Unit
from vid2vid.temporal import fdc


def live_unit(mode: str, k: int, bank: int) -> Unit:
    """Painted frame k's unit: its references, whether a later frame reads it, what it leaves behind."""
    refs = references(mode, k, bank)
    later = set(references(mode, k + 1, bank))
    return Unit((k,), refs, keep=k in later or (mode != "none" and k == 1),
                release=tuple(r for r in refs if r not in later))


class LivePainter:
    """paint([captured, ...]) -> their painted frames at the canvas size (float32 HxWx3 in [0, 1]);
    more than one frame (the stream batch) are painted in one call, which needs independent frames."""

    def __init__(self, settings: config.Settings, job: Job, model=None, batch: int = 1):
        from vid2vid.painting.painters import image

        s = settings.img2img
        if s.flow_init > 0:
            raise BadInput("live painting does not take {img2img.flow_init} (it reads the previous output along the "
                           "source's motion of an offline run); set it to 0 for live")
        c = settings.correct
        if "depth" in (c.delta_mask, c.spatial_mask) or c.method != "stats":
            raise BadInput("live correction takes the stats method with motion or no masks (depth maps and the "
                           "flow pass need the whole video); change {correct.method}, {correct.delta_mask} or "
                           "{correct.spatial_mask}")
        if any(cn.control in ("depth", "folder") for cn in s.controlnet):
            raise BadInput("live ControlNets take the sources made from the frame itself (canny, softedge, lineart, "
                           "tile), not depth or a folder; change {img2img.controlnet}'s control source")
        if batch > 1 and s.cross_frame != "none":
            raise BadInput("a stream batch paints frames together, so they cannot read each other's attention; "
                           "set {live.batch} to 1 or {img2img.cross_frame} to none")
        self.s, self.c, self.k, self.still = s, c, 0, 0
        self.prev: tuple[np.ndarray, np.ndarray] | None = None      # (canvas, output as written) of the last frame
        self.references = None
        if s.ip_adapter:                 # the reference images embedded once, for every frame
            self.references = tempfile.TemporaryDirectory(prefix="vid2vid-live-")
            settings = replace(settings, img2img=replace(s, ip_adapter=live_references(settings, job,
                                                                                       Path(self.references.name))))
        self.session = image.load(settings, job, model)

    def warm_up(self) -> None:
        """One painting of a grey canvas that nothing reads or records, so the first live frame is not
        the one that pays for allocations and kernel choices."""
        s = self.s
        grey = np.full((s.height, s.width, 3), 0.5, np.float32)
        self.session.paint(Unit((0,)), [grey], None, self.controls([grey]))

    def controls(self, canvases: list[np.ndarray]) -> list[list[np.ndarray]] | None:
        """Each frame's ControlNet images, made from its canvas as the control stage makes them."""
        if not self.s.controlnet:
            return None
        from vid2vid.video.controlimages import control_image

        return [[imageops.to_float(control_image(cn.control, imageops.to_uint8(c), low=cn.low, high=cn.high,
                                                 blur=cn.blur)) for cn in self.s.controlnet] for c in canvases]

    def __call__(self, caps: list[Captured]) -> list[np.ndarray]:
        """Frames k+1.. painted (one call) and corrected in order as the offline stage does it:
        o_k = correct(g_k, o_(k-1), d_k); a frame whose source barely moved since the last shown frame
        ({img2img.skip_still}) shows the last output again, unpainted."""
        s, c = self.s, self.c
        canvases = [imageops.fit(cap.image, s.width, s.height, s.resize) for cap in caps]
        if (len(caps) == 1 and s.skip_still > 0 and self.prev is not None
                and still.difference(self.prev[0], canvases[0]) < s.skip_still):
            self.still += 1
            return [self.prev[1]]
        befores = [self.prev[0] if self.prev is not None else None] + canvases[:-1]
        deltas = [None if b is None else fdc.frame_delta(b, cur) for b, cur in zip(befores, canvases)]
        masks = self.session.canvas_masks([fdc.spatial_mask(c, d, None, s.height, s.width) for d in deltas])
        frames = tuple(range(self.k + 1, self.k + 1 + len(caps)))
        unit = live_unit(s.cross_frame, frames[0], s.cross_frame_bank) if len(caps) == 1 else Unit(frames)
        self.k += len(caps)
        outs = []
        for canvas, delta, generated in zip(canvases, deltas, self.session.paint(unit, canvases, masks,
                                                                                 self.controls(canvases))):
            out, _ = fdc.correct_frame(generated, None if self.prev is None else self.prev[1], delta, c)
            out = imageops.to_float(imageops.to_uint8(out))          # the next frame reads it as written
            self.prev = (canvas, out)
            outs.append(out)
        return outs

    def close(self) -> None:
        self.session.close()
        if self.references is not None:
            self.references.cleanup()


def live_references(settings: config.Settings, job: Job, root: Path) -> list:
    """The IP-Adapters with their references (image files or folders) embedded under `root`; a painted
    reference (first-painted, key:N) is an offline run's frame and is refused here."""
    from vid2vid.painting import references

    adapters = settings.img2img.ip_adapter
    painted = [ip.reference for ip in adapters if ip.reference == "first-painted" or ip.reference.startswith("key:")]
    if painted:
        raise BadInput(f"live takes image files or folders as references, not {painted[0]} (a painted frame of an "
                       "offline run); give {img2img.ip_adapter} a picture")
    references.check(adapters)
    return references.prepare(root, adapters, "live", lambda frames: [], job.say)
