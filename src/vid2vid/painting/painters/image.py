"""The image painter: Stable Diffusion img2img (SD 1.x / 2.x / SDXL), one frame per unit.

Frames agree through what surrounds the painting (frame delta correction, the flow pass,
propagation) and, inside the UNet, through cross-frame attention (`diffusion/crossframe.py`):
anchor mode keeps frames independent; anchor-prev, bank and flow init read earlier frames, so
the loop runs them one at a time in order (`painting/frameplan.py` says which). ControlNets steer
each frame with its control images. The UNet accelerators (`[img2img] accel`: token merging,
cached deep features, `diffusion/tome.py`, `diffusion/deepcache.py`) run inside the engine; the
cache-frames one reads another frame's features through the same plan as anchor mode.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.painting import frameplan

NAME = "image"
WINDOWED = False


def applies(settings: config.Settings) -> bool:
    """The image painter paints whatever no other painter claims."""
    return True


def check(settings: config.Settings) -> None:
    """The model, VAE and ControlNets the settings name exist and are complete, the model takes the
    canvas and the few-step grid fits the steps (nothing is loaded)."""
    from vid2vid.config.canvas import check_canvas
    from vid2vid.diffusion import fewstep
    from vid2vid.diffusion.checkpoints import canvas_rules
    from vid2vid.diffusion.controlnet import check_controlnet_spec
    from vid2vid.diffusion.loading import check_model_spec

    s = settings.img2img
    check_model_spec(s.model)
    check_canvas(s.width, s.height, canvas_rules(s.model))
    for cn in s.controlnet:
        check_controlnet_spec(cn.model)
    if s.vae:
        from vid2vid.diffusion.vae import check_vae_spec

        check_vae_spec(s.vae)
    if fewstep.is_fewstep(s.sampler):
        fewstep.timesteps(s.steps, s.denoise)


def refuse(settings: config.Settings) -> None:
    """Flow init reads the previous frame's output, which a key-frame run does not paint."""
    if settings.img2img.flow_init > 0 and settings.propagate.on:
        raise BadInput("flow init reads the previous frame's output, which key frames leave unpainted; set "
                       "{img2img.flow_init} to 0 or turn {propagate.keyframes} off")


def load_engine(settings: config.Settings, job: Job, model=None):
    """The img2img engine of the settings (loading the model unless one is given), its real sigmas said."""
    from vid2vid.core.devices import describe
    from vid2vid.diffusion import fewstep
    from vid2vid.diffusion.controlnet import load_units
    from vid2vid.diffusion.engine import Img2ImgEngine
    from vid2vid.diffusion.loading import load_model
    from vid2vid.diffusion.schedules import format_sigmas

    s = settings.img2img
    if model is None:
        check(settings)
        job.say(f"img2img: loading model {s.model}")
        model = load_model(s.model, device=s.device, dtype=s.dtype, loras=s.loras, embeddings=s.embeddings,
                           prediction_type=s.prediction_type(), vae=s.vae, progress=job.progress)
    job.say(f"img2img: device {describe(model.device)}, {str(model.dtype).removeprefix('torch.')}")
    engine = Img2ImgEngine(model, s, controlnets=load_units(s.controlnet, model, job.say) or None)
    for warning in fewstep.warnings_for(s, model):
        job.say(f"img2img: warning: {warning}")
    grid = "" if engine.timesteps is None else f" at timesteps {[int(t) for t in engine.timesteps]}"
    job.say(f"img2img: real sigmas {format_sigmas(engine.real_sigmas)}{grid}, sampler {s.sampler}, seed {s.seed}")
    return engine


def cross_frame(engine, s: config.Img2ImgSettings):
    """The run's CrossFrame on the engine's UNet; without cross-frame attention the cache-frames
    accelerator's FrameCache (the same interface: the plan's anchors hold deep features), or None."""
    if s.cross_frame == "none":
        from vid2vid.config.accel import parse
        from vid2vid.diffusion.deepcache import FrameCache

        return FrameCache() if parse(s.accel).frames is not None else None
    from vid2vid.diffusion.crossframe import CrossFrame

    return CrossFrame(engine.model.unet, s.cross_frame, s.cross_frame_blocks, s.cross_frame_bank)


class ImageSession:
    """A loaded image painter: `paint(unit, canvases, masks, controls)` repaints one unit's frames,
    reading (and with unit.keep recording) cross-frame K/V."""

    windowed = False

    def __init__(self, settings: config.Settings, job: Job, model=None):
        self.settings = settings.img2img
        self.engine = load_engine(settings, job, model)
        self.xf = cross_frame(self.engine, self.settings)
        self.sequential = frameplan.sequential(self.settings)
        self.device = self.engine.device
        self.timings = self.engine.timings

    def canvas_masks(self, masks):
        return self.engine.canvas_masks(masks)

    def paint(self, unit: frameplan.Unit, canvases: list[np.ndarray], masks,
              controls: list[list[np.ndarray]] | None = None) -> list[np.ndarray]:
        repaint = partial(self.engine.repaint, controls=controls) if controls else self.engine.repaint
        if self.xf is None:
            return repaint(canvases, masks)
        out = self.xf.run(unit.frames[0] if unit.keep else None, unit.refs, unit.keep, repaint, canvases, masks)
        self.xf.release(unit.release)
        return out

    def describe(self) -> dict:
        return self.engine.describe()

    def record(self) -> dict:
        """What the stage records about the painting beyond the engine's description."""
        peak = "cross_frame_peak_mb" if self.settings.cross_frame != "none" else "deep_feature_cache_peak_mb"
        return {} if self.xf is None else {peak: round(self.xf.peak_bytes / 2 ** 20, 1)}

    def close(self) -> None:
        if self.xf is not None:
            self.xf.close()               # the model's own attention processors are back


def load(settings: config.Settings, job: Job, model=None) -> ImageSession:
    """The painter's session: the model loaded once (or the one given), with its attention set up."""
    return ImageSession(settings, job, model)
