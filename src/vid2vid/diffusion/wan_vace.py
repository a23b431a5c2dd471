"""Wan VACE model parts for one window: prompt embeddings, VACE conditioning, one velocity, decode.

The arithmetic follows diffusers' `WanVACEPipeline` (tests/diffusion/test_wan_vace.py checks one
window against it to 1e-4), split so that a window loop can call each piece per step:

- latents are normalised per channel: `(z - latents_mean) / latents_std` (the VAE config's lists);
  the VAE is read at its mean (no sampling).
- the control branch input has `2 * z_dim + 64` channels: the VAE latents of the control video
  where the mask keeps it ("inactive", mask 0) and where it repaints ("reactive", mask 1), then the
  mask itself folded 8x8 into channels and resized in time to the latent frames (nearest).
- each reference image is letterboxed on white to the frame size, encoded as a one-frame video and
  put before the window's latent frames (its reactive half and mask zero); the noisy latents get one
  extra latent frame per reference, dropped before decoding.
- one step is a flow-matching Euler step `x += (sigma_next - sigma) * v`, with
  `v = v_neg + cfg * (v_pos - v_neg)` when cfg > 1.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

TEMPORAL = 4        # frames per latent frame (after the lone first one)
SPATIAL = 8         # pixels per latent pixel, each side


@dataclass
class WanVace:
    """The loaded parts; `dtype` is the transformer's compute dtype, `device` where it runs."""
    transformer: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype = torch.float32

    @property
    def z_dim(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def patch(self) -> int:
        return int(self.transformer.config.patch_size[1])


def latent_frames(frames: int) -> int:
    """Latent frames of a 4n+1-frame video: the lone first frame, then one per 4 frames."""
    return (frames - 1) // TEMPORAL + 1


def clean_prompt(text: str) -> str:
    """Whitespace and HTML entities cleaned the way Wan's prompt cleaner does (without ftfy)."""
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_prompt(parts: WanVace, text: str, max_len: int = 512) -> torch.Tensor:
    """UMT5 hidden states of `text`, [1, max_len, dim], zero past the prompt's own tokens."""
    ids = parts.tokenizer([clean_prompt(text)], padding="max_length", max_length=max_len, truncation=True,
                          add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    dev = next(parts.text_encoder.parameters()).device
    hidden = parts.text_encoder(ids.input_ids.to(dev), ids.attention_mask.to(dev)).last_hidden_state
    length = int(ids.attention_mask.sum())
    out = torch.zeros_like(hidden)
    out[:, :length] = hidden[:, :length]
    return out.to(device=parts.device, dtype=parts.dtype)


def frames_to_video(frames: list[np.ndarray]) -> torch.Tensor:
    """Frames (float HxWx3 in [0,1]) -> a [1, 3, F, H, W] video in [-1, 1]."""
    video = torch.from_numpy(np.stack([np.asarray(f, dtype=np.float32) for f in frames]))
    return (video.permute(3, 0, 1, 2)[None] * 2 - 1).contiguous()


def latent_stats(vae, device) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, int(vae.config.z_dim), 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=device).view(shape)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=device).view(shape)
    return mean, std


@torch.no_grad()
def encode(vae, video: torch.Tensor) -> torch.Tensor:
    """Normalised latents of a [1, 3, F, H, W] video in [-1, 1] (the posterior mean)."""
    dev = next(vae.parameters()).device        # an offload hook moves the VAE (and z) to the GPU itself
    z = vae.encode(video.to(dev, vae.dtype)).latent_dist.mode().float()
    mean, std = latent_stats(vae, z.device)
    return (z - mean) / std


@contextmanager
def vae_on(vae, device: torch.device | None):
    """The VAE's weights on `device` while its encoder or decoder is called directly (an offload
    hook only moves it when the VAE itself is called); back where they were afterwards."""
    home = next(vae.parameters()).device
    dev = home if device is None else torch.device(device)
    if dev != home:
        vae.to(dev)
    try:
        yield dev
    finally:
        vae.clear_cache()
        if dev != home:
            vae.to(home)


@torch.no_grad()
def encode_stream(vae, chunks: Iterable[torch.Tensor], device: torch.device | None = None) -> Iterator[torch.Tensor]:
    """Normalised latents [1, z, 1, h, w] of a video given as chunks [1, 3, f, H, W] in [-1, 1] of 1
    frame, then 4 frames each: the VAE's own encode (its causal cache carried from chunk to chunk),
    so memory holds one chunk's pixels, whatever the video's length."""
    with vae_on(vae, device) as dev:
        mean, std = latent_stats(vae, dev)
        vae.clear_cache()
        for chunk in chunks:
            vae._enc_conv_idx = [0]
            out = vae.encoder(chunk.to(dev, vae.dtype), feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx)
            z = vae.quant_conv(out)[:, :vae.config.z_dim].float()
            yield ((z - mean) / std).cpu()


@torch.no_grad()
def decode(vae, latents: torch.Tensor) -> list[np.ndarray]:
    """Normalised latents [1, C, T, h, w] -> frames (float32 HxWx3 in [0,1])."""
    dev = next(vae.parameters()).device
    mean, std = latent_stats(vae, dev)
    z = (latents.to(dev).float() * std + mean).to(vae.dtype)
    video = vae.decode(z, return_dict=False)[0].float().cpu()
    video = (video / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 3, 0).cpu().numpy()
    return [np.ascontiguousarray(f) for f in video]


@torch.no_grad()
def decode_stream(vae, latents: torch.Tensor, device: torch.device | None = None) -> Iterator[np.ndarray]:
    """Decoded frames of the clip latents (T, C, h, w), one latent frame at a time (flat memory).

    The same arithmetic as the VAE's own decode (its causal cache carried from frame to frame).
    """
    with vae_on(vae, device) as dev:
        mean, std = latent_stats(vae, dev)
        vae.clear_cache()
        z = vae.post_quant_conv((latents.permute(1, 0, 2, 3)[None].to(dev).float() * std + mean).to(vae.dtype))
        for i in range(z.shape[2]):
            vae._conv_idx = [0]
            out = vae.decoder(z[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                              first_chunk=(i == 0))
            video = (out.float().clamp(-1, 1) / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 3, 0).cpu().numpy()
            yield from (np.ascontiguousarray(f) for f in video)


def letterbox(image: np.ndarray, height: int, width: int) -> torch.Tensor:
    """A reference image fitted inside height x width (bilinear), centred on white: [3, H, W] in [-1, 1]."""
    img = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None] * 2 - 1
    scale = min(height / img.shape[-2], width / img.shape[-1])
    h, w = int(img.shape[-2] * scale), int(img.shape[-1] * scale)
    img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)[0]
    canvas = torch.ones(3, height, width)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[:, top:top + h, left:left + w] = img
    return canvas


def fold_mask(mask: torch.Tensor, patch: int) -> torch.Tensor:
    """A [F, H, W] mask in [0,1] -> [64, T, h, w]: each 8x8 pixel block in channels, T latent frames."""
    frames, height, width = mask.shape
    h = height // (SPATIAL * patch) * patch
    w = width // (SPATIAL * patch) * patch
    folded = mask.reshape(frames, h, SPATIAL, w, SPATIAL).permute(2, 4, 0, 1, 3).flatten(0, 1)
    return F.interpolate(folded[None], size=(latent_frames(frames), h, w), mode="nearest-exact")[0]


@torch.no_grad()
def conditioning(parts: WanVace, control: torch.Tensor, mask: torch.Tensor | None,
                 references: list[np.ndarray]) -> torch.Tensor:
    """The VACE branch input for one window: [1, 2*z + 64, refs + T, h, w].

    control: [1, 3, F, H, W] in [-1, 1]; mask: [F, H, W] in [0, 1] (1 = repaint) or None (all 1).
    """
    mask = torch.ones_like(control[0, 0]) if mask is None else mask.float()
    hard = (mask > 0.5).float()[None, None]
    inactive = encode(parts.vae, control * (1 - hard))
    reactive = encode(parts.vae, control * hard)
    cond = torch.cat([inactive, reactive], dim=1)
    folded = fold_mask(mask, parts.patch)[None].to(cond.device)
    height, width = control.shape[-2:]
    for image in references:
        ref = encode(parts.vae, letterbox(image, height, width)[None, :, None])
        cond = torch.cat([torch.cat([ref, torch.zeros_like(ref)], dim=1), cond], dim=2)
        folded = torch.cat([torch.zeros_like(folded[:, :, :1]), folded], dim=2)
    return torch.cat([cond, folded], dim=1).to(parts.device, parts.dtype)


def flow_schedule(steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps, sigmas) of diffusers' FlowMatchEulerDiscreteScheduler with `shift`; sigmas end at 0."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    return sched.timesteps.float(), sched.sigmas.float()


@torch.no_grad()
def velocity(parts: WanVace, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
             embeds: torch.Tensor, negative: torch.Tensor | None, cfg: float,
             control_scale: float = 1.0) -> torch.Tensor:
    """The guided flow velocity for one window's noisy latents [1, C, T, h, w] at timestep t (float32)."""
    layers = len(parts.transformer.config.vace_layers)
    scale = torch.full((layers,), float(control_scale), device=parts.device, dtype=parts.dtype)
    x = latents.to(parts.device, parts.dtype)
    step = t.reshape(1).to(parts.device)

    def run(text: torch.Tensor) -> torch.Tensor:
        return parts.transformer(hidden_states=x, timestep=step, encoder_hidden_states=text,
                                 control_hidden_states=cond, control_hidden_states_scale=scale,
                                 return_dict=False)[0]
    v = run(embeds)
    if cfg > 1.0 and negative is not None:
        v_neg = run(negative)
        v = v_neg + cfg * (v - v_neg)
    return v.float()


def euler_step(latents: torch.Tensor, v: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One flow-matching Euler step."""
    return latents + (sigma_next - sigma) * v.to(latents.dtype)


def noised(clean: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """Flow-matching interpolation between clean latents (sigma 0) and noise (sigma 1)."""
    return (1 - sigma) * clean + sigma * noise


@torch.no_grad()
def denoise(parts: WanVace, noise: torch.Tensor, cond: torch.Tensor, embeds: torch.Tensor,
            negative: torch.Tensor | None, steps: int, shift: float, cfg: float,
            control_scale: float = 1.0, start: int = 0, clean: torch.Tensor | None = None) -> torch.Tensor:
    """One window from noise (or from `clean` latents noised to step `start`) to clean latents.

    noise and clean cover the reference slots too ([1, C, refs + T, h, w]); the result does as well.
    """
    timesteps, sigmas = flow_schedule(steps, shift)
    x = noise.float() if clean is None else noised(clean.float(), noise.float(), float(sigmas[start]))
    for i in range(start, steps):
        v = velocity(parts, x, timesteps[i], cond, embeds, negative, cfg, control_scale)
        x = euler_step(x, v, float(sigmas[i]), float(sigmas[i + 1]))
    return x
