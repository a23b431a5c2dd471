"""The img2img engine: images in, repainted images out, with the sigma override (steps below).

    engine = Img2ImgEngine(model, settings.img2img)        # prompts encoded, real sigmas fixed
    outs = engine.generate([img1, img2, img3])             # float32 HxWx3 [0, 1] each
    engine.real_sigmas                                     # what the sampler really ran over

Per call, for a batch of B frames (one UNet call per sampler step for all of them):
1. fit every image to width x height (resize mode just / crop / fill), to [-1, 1]
2. VAE encode (the latent distribution's mean; deterministic) and scale
3. x = init_latent + init_noise_weight * noise * real[0], noise from one seeded generator per
   frame (same seed for every frame by default), so a frame's result does not depend on B
4. sample over the real sigmas with a CFG denoiser (uncond and cond batched); with an
   inpainting mask the init latent is blended into every prediction where the mask is 0
5. VAE decode to [0, 1]; with a mask, the unmasked pixels are pasted back from the input

The model is a `vid2vid.diffusion.loading.LoadedModel`; this module reads its `unet`, `vae`,
`sigmas` (training sigmas), `prediction_type`, `vae_scaling_factor` and `device`, and encodes
prompts through `vid2vid.diffusion.prompts.encode_pair_pooled` unless embeddings are given.
SDXL base models also get each prompt's pooled embedding and the size conditioning (original
size = target size = the canvas, no crop), as diffusers' SDXL img2img pipeline gives them.
With `controlnets` (`diffusion.controlnet.ControlUnit`s) every frame comes with one
canvas-sized control image per net (`controls[frame][net]`), and step 4 adds the residuals of
the nets whose window holds the step to each UNet call.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vid2vid.config import Img2ImgSettings
from vid2vid.config.accel import parse as parse_accel
from vid2vid.core import imageops
from vid2vid.core.errors import BadInput
from vid2vid.diffusion import deepcache, fewstep, samplers, schedules, tome, tuning
from vid2vid.diffusion import vae as vae_parts
from vid2vid.diffusion.denoiser import CFGDenoiser, Timings


def real_sigmas_for(settings: Img2ImgSettings, training_sigmas=None) -> np.ndarray:
    """The truncated schedule the sampler runs over for these settings (float64, ends in 0)."""
    if fewstep.is_fewstep(settings.sampler):   # lcm / tcd run on their own timestep grid
        train = schedules.sd_training_sigmas() if training_sigmas is None else training_sigmas
        return fewstep.real_sigmas(settings.steps, settings.denoise, train)[1]
    return schedules.real_sigmas(settings.schedule, settings.steps, settings.denoise,
                                 settings.sigma_min, settings.sigma_max, training_sigmas)


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """List of float32 HxWx3 [0, 1] -> float32 (B, 3, H, W) in [-1, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) * 2.0 - 1.0


def tensor_to_images(x: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) in [-1, 1] -> list of float32 HxWx3 in [0, 1] (clipped)."""
    arr = ((x.float().clamp(-1, 1) + 1.0) * 0.5).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arr]


def latent_mask(masks: list[np.ndarray], h: int, w: int) -> torch.Tensor:
    """Pixel masks float32 HxWx1 [0, 1] -> (B, 1, h, w) at latent size (area average)."""
    small = [imageops.resize(np.asarray(m, dtype=np.float32).reshape(*m.shape[:2], 1), w, h) for m in masks]
    return torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).clamp(0, 1)


def sdxl_time_ids(unet_config, pooled_dim: int, width: int, height: int) -> torch.Tensor:
    """SDXL's size conditioning (1, 6): original size, crop top-left, target size as (h, w) pairs.

    The canvas is both the original and the target size, uncropped. The number of ids comes
    from the UNet's config; a refiner (5 ids with an aesthetic score) is refused.
    """
    per_id = unet_config.get("addition_time_embed_dim") or 0
    total = unet_config.get("projection_class_embeddings_input_dim") or 0
    if not per_id or (total - pooled_dim) != 6 * per_id:
        raise BadInput("this SDXL model's size conditioning is not the base model's (an SDXL refiner?); "
                       "use an SDXL base model")
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)


def fit_canvas_masks(s: Img2ImgSettings, masks: list[np.ndarray | None] | None) -> list[np.ndarray] | None:
    """Inpainting masks (HxWx1, 1 = may change) fitted to the canvas; None when no frame has one."""
    if masks is None or all(m is None for m in masks):
        return None
    return [np.ones((s.height, s.width, 1), np.float32) if m is None
            else imageops.fit(np.asarray(m, np.float32).reshape(*m.shape[:2], 1), s.width, s.height, s.resize)
            for m in masks]


@dataclass
class Img2ImgEngine:
    """img2img with fixed settings for many frames (prompts encoded once, sigmas computed once)."""

    model: Any                      # a LoadedModel (or anything with its attributes)
    settings: Img2ImgSettings
    # (cond, uncond), or for SDXL (cond, uncond, pooled cond, pooled uncond); None = encode the prompts
    embeddings: tuple[torch.Tensor, ...] | None = None
    controlnets: list | None = None          # ControlNet: controlnet.ControlUnit per net
    real_sigmas: np.ndarray = field(init=False)
    timings: Timings = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        s.validate()
        self.device = torch.device(self.model.device)
        self.timings = Timings(self.device)
        sdxl = bool(getattr(self.model, "is_sdxl", False))
        training = np.asarray(torch.as_tensor(self.model.sigmas).cpu(), dtype=np.float64)
        self.real_sigmas = real_sigmas_for(s, training)
        # few-step samplers are bound to their discrete timesteps (fewstep.py)
        self.timesteps = None
        if fewstep.is_fewstep(s.sampler):
            self.timesteps = fewstep.real_sigmas(s.steps, s.denoise, training)[0]
            self.sampler = fewstep.sampler_for(s.sampler, self.timesteps, training, s.tcd_gamma)
        else:
            self.sampler = samplers.get_sampler(s.sampler)
        tuning.prepare(self.model, compile=s.compile)       # GPU layout, optional torch.compile
        self.accel = parse_accel(s.accel)
        if self.accel.tome > 0:
            tome.install(self.model.unet)
        if self.accel.cache > 0 or self.accel.frames is not None:
            deepcache.install(self.model.unet)
        if self.embeddings is None:
            from vid2vid.diffusion.prompts import encode_pair_pooled

            with self.timings.measure("text_encoder"), torch.no_grad():
                self.embeddings = encode_pair_pooled(self.model, s.prompt, s.negative)
        cond, uncond, *rest = self.embeddings
        pooled = tuple(rest) if sdxl else None
        if pooled is not None and (len(pooled) != 2 or pooled[0] is None):
            raise ValueError("an SDXL model needs (cond, uncond, pooled cond, pooled uncond) embeddings")
        time_ids = None if pooled is None else sdxl_time_ids(self.model.unet.config, pooled[0].shape[-1], s.width,
                                                             s.height)
        self.denoiser = CFGDenoiser(self.model.unet, training, self.model.prediction_type,
                                    cond, uncond, s.cfg, self.timings, pooled=pooled, time_ids=time_ids,
                                    discrete=self.timesteps is not None)
        # -- ControlNet: the nets and their windows over the real schedule
        self.control = None
        if self.controlnets:
            from vid2vid.diffusion.controlnet import ControlGuide

            self.control = ControlGuide(self.controlnets, self.real_sigmas, self.model.unet, self.timings)
        # -- end ControlNet
        self.vae = self.model.vae
        self.vae_dtype = next(self.vae.parameters()).dtype
        if self.vae_dtype == torch.float16 and getattr(self.vae.config, "force_upcast", False):
            self.vae.to(torch.float32)       # SDXL's VAE overflows in float16 (diffusers upcasts it too)
            self.vae_dtype = torch.float32
        self.scaling = float(self.model.vae_scaling_factor)
        self.shift = float(getattr(self.vae.config, "shift_factor", None) or 0.0)
        # The VAE's full-resolution activations of a whole batch overflow CPU caches (batch 4 was
        # about 20 % slower per frame than one at a time); on a GPU the batch runs at once.
        self.vae_chunk = 1 if self.device.type == "cpu" else 64
        # oneDNN's convolutions run about 30 % faster on channels-last inputs (CPU, tiny VAE,
        # 256x256, 1 and 2 threads; the UNet gained nothing). The weights stay as loaded.
        self.vae_layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format

    # -- steps

    def fit(self, image: np.ndarray) -> np.ndarray:
        """Bring one float32 HxWx3 image to the canvas (width x height) with the resize mode."""
        s = self.settings
        return imageops.fit(np.asarray(image, dtype=np.float32), s.width, s.height, s.resize)

    @torch.no_grad()
    def encode(self, images: list[np.ndarray]) -> torch.Tensor:
        """Canvas-sized images -> scaled latents float32 (B, 4, H/8, W/8)."""
        x = images_to_tensor(images).to(self.device, self.vae_dtype)
        with self.timings.measure("vae_encode"):
            means = [vae_parts.latents_of(self.vae, part.contiguous(memory_format=self.vae_layout))
                     for part in x.split(self.vae_chunk)]
        return (torch.cat(means).float() - self.shift) * self.scaling

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list[np.ndarray]:
        """Scaled latents (B, 4, h, w) -> float32 HxWx3 [0, 1] images."""
        z = (latents / self.scaling + self.shift).to(self.vae_dtype)
        with self.timings.measure("vae_decode"):
            x = torch.cat([self.vae.decode(part.contiguous(memory_format=self.vae_layout), return_dict=False)[0]
                           for part in z.split(self.vae_chunk)])
        return tensor_to_images(x)

    def canvas_masks(self, masks: list[np.ndarray | None] | None) -> list[np.ndarray] | None:
        """Inpainting masks (HxWx1, 1 = may change) fitted to the canvas; None when no frame has one."""
        return fit_canvas_masks(self.settings, masks)

    @torch.no_grad()
    def sample(self, init: torch.Tensor, seeds: list[int] | None = None,
               masks: list[np.ndarray] | None = None, callback=None, control=None) -> torch.Tensor:
        """Init latents (B, 4, h, w) -> sampled latents: noise by seed, then the sampler over the real sigmas.

        masks: canvas-sized inpainting masks (see `canvas_masks`); where 0 the init latent is kept.
        control: the batch's ControlNet conditioning (`bind_control`), or None.
        """
        s = self.settings
        b, c, h, w = init.shape
        seeds = [s.seed] * b if seeds is None else list(seeds)
        if len(seeds) != b or (masks is not None and len(masks) != b):
            raise ValueError("latents, masks and seeds must have the same length")
        # initial noise, one generator per frame: x = init + init_noise * noise * real[0]
        noise = samplers.BatchNoise(seeds, (c, h, w), self.device, torch.float32)
        sigmas = torch.tensor(self.real_sigmas, dtype=torch.float32, device=self.device)
        x = init + noise() * (s.init_noise * float(self.real_sigmas[0]))
        denoise = self.denoiser.masked(None if masks is None else latent_mask(masks, h, w).to(self.device), init,
                                       control)
        with ExitStack() as accelerated:       # token merging and deep-feature caching, when asked for
            if self.accel.tome > 0:
                accelerated.enter_context(tome.merging(self.accel.tome, (h, w)))
            if self.accel.cache > 0 or self.accel.frames is not None:
                denoise = accelerated.enter_context(deepcache.caching(self.accel.cache))(denoise)
            return self.sampler(denoise, x, sigmas, noise, callback)

    def finish(self, latents: torch.Tensor, canvases: list[np.ndarray],
               masks: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Decode sampled latents; with masks, paste the canvas back where a mask is 0."""
        out = self.decode(latents)
        if masks is not None:
            out = [o * m + cv * (1.0 - m) for o, m, cv in zip(out, masks, canvases)]
        return out

    def generate(self, images: list[np.ndarray], masks: list[np.ndarray | None] | None = None,
                 seeds: list[int] | None = None, callback=None,
                 controls: list[list[np.ndarray]] | None = None) -> list[np.ndarray]:
        """Repaint a batch of frames; masks (HxWx1, 1 = may change, None = whole frame) are optional.

        controls[frame][net]: the control images (fitted to the canvas here) when the engine has
        ControlNets. Each frame's result is the same whatever else is in the batch. The stage fits
        the frames and their masks on its reader thread and calls `repaint` for the rest.
        """
        if not images:
            return []
        canvases = [self.fit(im) for im in images]           # 1. canvas size
        if controls is not None:
            controls = [[self.fit(imageops.to_float(c) if np.asarray(c).dtype == np.uint8 else c) for c in frame]
                        for frame in controls]
        return self.repaint(canvases, self.canvas_masks(masks), seeds, callback, controls)

    def repaint(self, canvases: list[np.ndarray], masks: list[np.ndarray] | None = None,
                seeds: list[int] | None = None, callback=None,
                controls: list[list[np.ndarray]] | None = None) -> list[np.ndarray]:
        """Canvas-sized frames (and canvas masks, see `canvas_masks`, and control images) -> repainted frames."""
        init = self.encode(canvases)                          # 2. encode
        control = self.bind_control(controls, len(canvases))
        x = self.sample(init, seeds, masks, callback, control)  # 3. noise + sampler
        return self.finish(x, canvases, masks)                # 4. decode, paste unmasked pixels

    def bind_control(self, controls: list[list[np.ndarray]] | None, frames: int):
        """ControlNet: the batch's conditioning from canvas-sized control images; None without nets."""
        if self.control is None:
            return None
        s = self.settings
        if controls is None or len(controls) != frames:
            raise ValueError(f"this engine has {len(self.control.units)} ControlNet(s): pass one control image "
                             "per frame and net")
        for frame in controls:
            for c in frame:
                if tuple(np.asarray(c).shape[:2]) != (s.height, s.width):
                    raise ValueError(f"control image of size {np.asarray(c).shape[:2]} is not the canvas "
                                     f"({s.height}, {s.width})")
        return self.control.bind(controls)

    def describe(self) -> dict:
        """What to record in the manifest about this engine."""
        fast = {} if self.timesteps is None else {"real_timesteps": [int(t) for t in self.timesteps]}
        return {**fast, "real_sigmas": [round(float(v), 6) for v in self.real_sigmas],
                "sampler_steps": len(self.real_sigmas) - 1,
                "model_calls_per_frame": samplers.model_calls(self.settings.sampler, len(self.real_sigmas)),
                "prediction_type": self.model.prediction_type,
                "unet_batch_halves": 1 if self.denoiser.uncond is None else 2,
                "seed": self.settings.seed,
                **({"accel": self.accel.specs()} if self.accel.any else {}),
                **({"controlnets": self.control.describe()} if self.control is not None else {})}

