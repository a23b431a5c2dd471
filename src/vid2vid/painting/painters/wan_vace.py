"""The Wan VACE painter: a video diffusion transformer repaints the clip in windows of 4n+1 frames.

It paints when `{img2img.video_model}` is set. Each window is guided by the control video
(`{img2img.video_control}`: depth, canny, soft edge, line art or the user's folder, made from
the source frames on the fly), optionally by a reference image (`{img2img.video_reference}`: an
image file, a folder of images, or `first-painted` = frame 1 painted first by the image painter
with `{img2img.model}` and the same prompt) and by the spatial masks (`{correct.spatial_mask}`;
white = repaint). Windows overlap and are blended at every step (`painting/wan_clip.py`, on the
machinery of `painting/windows.py`); the run is resumable step by step (`painting/wan_run.py`).

Window length: `{img2img.context_length}` / `{img2img.context_overlap}`, the AnimateDiff painter's
settings; left at their defaults (16 / 4, which do not fit Wan) they become 81 / 17 on a GPU and
17 / 5 on a CPU.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job

NAME = "wan-vace"
WINDOWED = True
GPU_CONTEXT, CPU_CONTEXT = (81, 17), (17, 5)
FIRST_PAINTED = "first-painted"


def applies(settings: config.Settings) -> bool:
    return bool(settings.img2img.video_model.strip())


def context(s: config.Img2ImgSettings, device_type: str) -> tuple[int, int]:
    """(window length, overlap) in frames: the settings, or Wan's defaults for the device when they are
    left at the AnimateDiff defaults."""
    defaults = config.Img2ImgSettings()
    if (s.context_length, s.context_overlap) == (defaults.context_length, defaults.context_overlap):
        return GPU_CONTEXT if device_type == "cuda" else CPU_CONTEXT
    return s.context_length, s.context_overlap


def check(settings: config.Settings) -> None:
    """The video model, the window length, the control folder and the reference exist and fit."""
    from vid2vid.core import devices
    from vid2vid.diffusion.wan_loading import check_video_model_spec
    from vid2vid.painting.wan_clip import check_context

    s = settings.img2img
    check_video_model_spec(s.video_model)
    check_context(*context(s, devices.pick(s.device, "{img2img.device}").type))
    if s.width % 16 or s.height % 16:
        raise BadInput(f"the Wan VAE and transformer need a canvas in multiples of 16; {{img2img.width}} x "
                       f"{{img2img.height}} is {s.width}x{s.height} (832x480 is Wan's own)")
    if s.video_control == "folder" and not Path(s.video_control_folder).expanduser().is_dir():
        raise BadInput(f"{{img2img.video_control_folder}} '{s.video_control_folder}' is not a folder; give the "
                       "folder with one control image per frame")
    ref = s.video_reference.strip()
    if ref == FIRST_PAINTED and not s.model.strip():
        raise BadInput("{img2img.video_reference} first-painted paints frame 1 with the image model first; give "
                       "{img2img.model} too, or a reference image file")
    if ref and ref != FIRST_PAINTED and not Path(ref).expanduser().exists():
        raise BadInput(f"{{img2img.video_reference}} '{ref}' does not exist; give an image file, a folder of "
                       f"images or {FIRST_PAINTED}")


def refuse(settings: config.Settings) -> None:
    """What belongs to image models (ControlNets, motion modules, cross-frame attention, flow init, UNet
    accelerators) and key frames or still frames (a video model paints every frame) is refused with the fix."""
    s = settings.img2img
    for on, what in ((bool(s.controlnet), "{img2img.controlnet} (ControlNets belong to image UNets; the video "
                                          "model's guide is {img2img.video_control})"),
                     (bool(s.motion_module.strip()), "{img2img.motion_module} (the AnimateDiff painter)"),
                     (s.cross_frame != "none", "{img2img.cross_frame}"),
                     (s.flow_init > 0, "{img2img.flow_init}"),
                     (s.skip_still > 0, "{img2img.skip_still} (the video model paints every frame)"),
                     (bool(s.accel), "{img2img.accel} (UNet accelerators)"),
                     (settings.propagate.on, "{propagate.keyframes} (the video model paints every frame)")):
        if on:
            raise BadInput(f"{{img2img.video_model}} does not go with {what}; drop one of them")


def key_params(settings: config.Settings) -> dict:
    """What the video model adds to the img2img stage key (absent without a video model)."""
    from vid2vid.core.fileid import spec_identity
    from vid2vid.diffusion.wan_loading import model_identity

    s = settings.img2img
    if not applies(settings):
        return {}
    ref = s.video_reference.strip()
    return {"video_model": model_identity(s.video_model),
            "video_reference": spec_identity(ref, ns=True) if ref and ref != FIRST_PAINTED else ref}


class WanSession:
    """A loaded video model: the parts, the prompts, the window length for its device."""

    windowed = True
    sequential = True

    def __init__(self, settings: config.Settings, job: Job):
        from vid2vid.diffusion.denoiser import Timings

        s = settings.img2img
        job.say(f"img2img: loading video model {s.video_model}")
        from vid2vid.painting.wan_run import load_parts, prompts_of

        self.parts = load_parts(settings)
        self.device = self.parts.device
        self.context = context(s, self.device.type)
        self.prompts = prompts_of(self.parts, s)
        self.timings = Timings(self.device)
        self.spec, self.settings = s.video_model, settings
        self.inputs = None
        self.refs: list[np.ndarray] = []
        job.say(f"img2img: Wan VACE on {self.device}, {str(self.parts.dtype).removeprefix('torch.')}, windows of "
                f"{self.context[0]} frames overlapping by {self.context[1]}, flow shift {s.flow_shift:g}")

    def references(self, ws, settings: config.Settings, job: Job, frames: list[Path]) -> list[np.ndarray]:
        """The reference images (canvas-sized float RGB), painting frame 1 first for first-painted."""
        from vid2vid.core import imageops
        from vid2vid.core.workspace import list_frames

        s = settings.img2img
        ref = s.video_reference.strip()
        if not ref:
            return []
        if ref == FIRST_PAINTED:
            return [first_painted(ws, settings, job, frames)]
        path = Path(ref).expanduser()
        files = list_frames(path) if path.is_dir() else [path]
        return [imageops.read_image(f) for f in files]

    def window_model(self, controls=None):
        """The window model over the clip set by `paint_workspace` (inputs and references)."""
        from vid2vid.painting.wan_run import window_model

        return window_model(self.parts, self.settings, self.inputs, self.prompts, self.refs)

    def factory(self):
        """What a Ray actor calls to build its window model (it loads the parts itself)."""
        from vid2vid.painting.wan_run import actor_window_model

        return partial(actor_window_model, self.settings, self.inputs, self.refs)

    def paint_workspace(self, ws, settings: config.Settings, job: Job, frames: list[Path], key: str, writer) -> None:
        from vid2vid.painting.wan_run import paint_workspace

        paint_workspace(ws, settings, job, self, frames, key, writer)

    def describe(self) -> dict:
        return {"painter": NAME, "video_model": self.spec, "device": str(self.device),
                "dtype": str(self.parts.dtype).removeprefix("torch."), "context": list(self.context)}

    def record(self) -> dict:
        return {}

    def close(self) -> None:
        self.parts = None


def first_painted(ws, settings: config.Settings, job: Job, frames: list[Path]) -> np.ndarray:
    """Frame 1 painted by the image painter with the same settings (written to img2img.reference/)."""
    from vid2vid.core import imageops
    from vid2vid.painting import single

    out = ws.path("img2img.reference", "first-painted.png")     # painted again each run: same bits
    plain = replace(settings, img2img=replace(settings.img2img, video_model="", single=1))
    job.say("img2img: painting frame 1 with the image model first (the video model's reference)")
    from vid2vid.painting.painters import image

    session = image.load(plain, job)
    try:
        generated, _ = single.paint_single(ws, plain, job, frames, session, single.plan_single(ws, plain, 1, [1], ()))
    finally:
        session.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    imageops.write_image(out, generated)
    return imageops.read_image(out)


def load(settings: config.Settings, job: Job, model=None) -> WanSession:
    """The painter's session (a loaded image model handed in is not used: the video model is loaded)."""
    return WanSession(settings, job)
