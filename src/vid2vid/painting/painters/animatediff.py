"""The AnimateDiff painter: an SD 1.5 model with a motion module paints windows of frames together.

The motion module's temporal attention (`diffusion/motion.py`) lets the frames of a window read
each other inside the UNet, so they agree by construction; overlapping windows are blended at
every step (`painting/windows.py`), so any length works without seams. Everything that applies
to one frame works as in the image painter, from the same engine (`diffusion/engine.py`): the
sigma override and truncation, init noise weight, the samplers (LCM for AnimateLCM), CFG, LoRAs,
ControlNets (each window with its frames' control images), IP-Adapters (the reference embedding
stored by `painting/references.py`, its tokens read by the UNet's own cross-attention layers, not
by the motion modules), a separate or tiny VAE; frame delta correction and the flow pass follow as
for any painter. A painted reference (first-painted, key:N) is painted by the image painter
(`image_settings`) before the windows run. The UNet accelerators `tome:R` and `cache:N` apply to
every window (`diffusion/motion_windows.py`: token merging in the spatial self-attention only, deep
features held per window); what reads frames one at a time or skips them (key frames, still frames,
flow init, cross-frame attention, the cache-frames accelerator, the debug frame) is refused.

The windowed session (the interface `painting/windowrun.py` drives):
    sampling(n) -> windows.ClipSampling      windows, schedule, sampler step and noise for n frames
    encode(canvas) -> (1, 4, h, w) latent    decode(latent) -> HxWx3 float32 image
    window_model(controls) -> WindowModel    controls(frames) -> control images [frame][net]
    factory() -> picklable callable building a window model elsewhere (Ray actors)
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.painting.painters import image

NAME = "animatediff"
WINDOWED = True


def applies(settings: config.Settings) -> bool:
    return bool(settings.img2img.motion_module.strip())


def check(settings: config.Settings) -> None:
    """The model and its parts exist (image painter's checks), the motion module exists, the windows fit."""
    from vid2vid.diffusion.motion_loading import check_spec
    from vid2vid.painting.windows import check_context

    image.check(settings)
    s = settings.img2img
    check_spec(s.motion_module)
    check_context(s.context_length, s.context_overlap)


_REFUSED = (
    (lambda st: st.propagate.on, "key frames paint frames apart, a motion module paints consecutive frames "
                                 "together; turn {propagate.keyframes} off or clear {img2img.motion_module}"),
    (lambda st: st.img2img.skip_still > 0, "a still frame is painted with its window (the window needs it); set "
                                           "{img2img.skip_still} to 0 or clear {img2img.motion_module}"),
    (lambda st: st.img2img.cross_frame != "none", "the motion module's temporal attention already links the "
                                                  "frames, cross-frame attention runs frame by frame; set "
                                                  "{img2img.cross_frame} to none or clear {img2img.motion_module}"),
    (lambda st: st.img2img.flow_init > 0, "flow init paints each frame from the previous output, a motion module "
                                          "paints a window at once; set {img2img.flow_init} to 0 or clear "
                                          "{img2img.motion_module}"),
    (lambda st: _cache_frames(st), "the cache-frames accelerator lends one frame's deep features to the next "
                                   "frames, a window samples its frames together in one call; drop cache-frames "
                                   "from {img2img.accel} (tome and cache:N apply) or clear {img2img.motion_module}"),
    (lambda st: st.img2img.single > 0, "a motion module paints windows, not one frame; run the stage without "
                                       "{img2img.single} (it resumes after the last finished step)"),
)


def _cache_frames(settings: config.Settings) -> bool:
    from vid2vid.config.accel import parse

    return parse(settings.img2img.accel).frames is not None


# The settings only this painter reads; at their defaults the image painter paints.
MOTION_FIELDS = ("motion_module", "context_length", "context_overlap", "context_weighting", "motion_scale",
                 "shuffle_noise")


def image_settings(settings: config.Settings) -> config.Settings:
    """The settings with the motion module's fields at their defaults: what the image painter paints (a painted
    IP-Adapter reference is one frame, painted as the image painter paints it)."""
    from dataclasses import replace

    defaults = config.Img2ImgSettings()
    return replace(settings, img2img=replace(settings.img2img,
                                             **{k: getattr(defaults, k) for k in MOTION_FIELDS}))


def refuse(settings: config.Settings) -> None:
    """Settings that read or skip frames one at a time: one line saying why."""
    for applies_to, why in _REFUSED:
        if applies_to(settings):
            raise BadInput(f"{{img2img.motion_module}}: {why}")


class MotionSession:
    """A loaded AnimateDiff painter: the image engine with the motion module hooked onto its UNet."""

    windowed = True
    sequential = False

    def __init__(self, settings: config.Settings, job: Job, model=None):
        from vid2vid.diffusion.motion import MotionLayers, max_frames
        from vid2vid.diffusion.motion_loading import check_family, load_adapter
        from vid2vid.painting.windows import check_context

        self.full = settings
        self.settings = s = settings.img2img
        job.say(f"img2img: loading motion module {s.motion_module}")
        adapter = load_adapter(s.motion_module)            # first: a bad file fails before the model loads
        self.trained = max_frames(adapter)
        check_context(s.context_length, s.context_overlap, self.trained, "this motion module")
        self.engine = image.load_engine(settings, job, model)
        check_family(adapter, self.engine.model.unet, s.model)
        self.layers = MotionLayers(self.engine.model.unet, adapter, s.motion_scale)
        self.device = self.engine.device
        self.timings = self.engine.timings

    def sampling(self, frames: int):
        from vid2vid.diffusion.motion_windows import sampler_step
        from vid2vid.painting.windows import ClipSampling

        s, e = self.settings, self.engine
        return ClipSampling(frames, (4, s.height // 8, s.width // 8),
                            torch.tensor(e.real_sigmas, dtype=torch.float32), sampler_step(e), s.seed,
                            s.context_length, s.context_overlap, s.context_weighting, s.init_noise,
                            s.shuffle_noise, self.device, cycle=e.accel.cache + 1)

    def encode(self, canvas: np.ndarray) -> torch.Tensor:
        return self.engine.encode([canvas])

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        return self.engine.decode(latent)[0]

    def window_model(self, controls=None):
        from vid2vid.diffusion.motion_windows import EngineWindows

        return EngineWindows(self.engine, self.layers, controls)

    def factory(self):
        return partial(window_model_for, self.full)

    def describe(self) -> dict:
        s = self.settings
        return {**self.engine.describe(), "painter": NAME, "motion_module": s.motion_module,
                "motion_trained_frames": self.trained, "context_length": s.context_length,
                "context_overlap": s.context_overlap, "context_weighting": s.context_weighting,
                "motion_scale": s.motion_scale, "shuffle_noise": s.shuffle_noise}

    def record(self) -> dict:
        return {}

    def close(self) -> None:
        self.layers.remove()
        self.engine.close()               # the IP-Adapters' cross-attention processors come off too


def window_model_for(settings: config.Settings):
    """A window model built from the settings alone (what a Ray actor runs)."""
    return MotionSession(settings, Job()).window_model()


def load(settings: config.Settings, job: Job, model=None) -> MotionSession:
    """The painter's session: the model (or the one given) with the motion module on its UNet."""
    return MotionSession(settings, job, model)
