"""A clip painted by Wan VACE in overlapping windows of 4n+1 frames, on the window machinery.

The clip's state is one latent grid: frame 0 alone in latent 0, then frames 4k-3..4k in latent k
(the Wan VAE's own layout for the whole clip, padded at the end to 4m+1 frames by repeating the
last frame). A window of `context_length` = 4n+1 frames starting at frame 4j covers latents
j..j+n: its latents 1..n are exactly the clip's, and its lone first latent (frame 4j alone, in the
window's own view) is read from the clip latent j, which holds frames 4j-3..4j. Because of that
mismatch the lone first latent of every window but the first gets blend weight 0: it is context
the window reads, and the window before it (which sees latent j as a full 4-frame latent) alone
paints it. `context_length - context_overlap` must be a multiple of 4 so that windows start on
latent boundaries; the rest of the blend (flat or pyramid) is `painting/windows.py`'s.

The sampler is Euler on the flow-matching sigmas (`diffusion/wan_vace.py: flow_schedule`), written
as a k-diffusion denoiser: D(x, sigma) = x - sigma * v, so the machinery's Euler step is the flow
step x += (sigma_next - sigma) * v.

Reference images: VACE puts each reference before a window's latents as an extra latent frame.
Here every window reads the same reference slot, pinned at each step to the reference latent
noised to that step's sigma with one fixed noise (seeded), so all windows see one reference.
`diffusion/wan_vace.py: denoise` instead samples the slot freely (as diffusers does), for one window.

Masks (white = repaint): VACE keeps its input video where the mask is 0, so the window's input is
the source frame outside the mask and the control image inside it.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from vid2vid.core.errors import BadInput
from vid2vid.diffusion import wan_vace as wv
from vid2vid.painting import windows as win

REF_PURPOSE = 2          # frame_seed purpose of the reference slots' fixed noise
FrameReader = Callable[[Sequence[int]], list[np.ndarray]]


def check_context(length: int, overlap: int) -> None:
    """BadInput unless the window is 4n+1 frames and windows start 4k frames apart."""
    if length < 5 or (length - 1) % wv.TEMPORAL:
        raise BadInput(f"{{img2img.context_length}} {length} does not fit the Wan VAE: a window must be 4n+1 "
                       "frames (17, 33, 49, 65, 81)")
    if not 1 <= overlap < length or (length - overlap) % wv.TEMPORAL:
        raise BadInput(f"{{img2img.context_overlap}} {overlap} does not fit {{img2img.context_length}} {length}: "
                       "the length minus the overlap must be a multiple of 4 (overlap 1, 5, 9, 13 ...)")


def padded_frames(frames: int) -> int:
    """The clip length rounded up to 4m+1 (the Wan VAE's length)."""
    return frames if frames <= 1 else (frames - 1 + wv.TEMPORAL - 1) // wv.TEMPORAL * wv.TEMPORAL + 1


def lone_first_weights(windows: Sequence[range], latents: int, weighting: str) -> list[torch.Tensor]:
    """Blend weights per window that sum to 1 on each latent; a later window's first latent gets 0."""
    raw = [win.window_weights(len(w), weighting) for w in windows]
    for w, r in zip(windows, raw):
        if w.start > 0:
            r[0] = 0.0
    total = np.zeros(latents)
    for w, r in zip(windows, raw):
        total[w.start:w.stop] += r
    return [torch.from_numpy(r / total[w.start:w.stop]).float() for w, r in zip(windows, raw)]


def pixel_frames(latents: range, frames: int) -> list[int]:
    """The clip frames (indices, clamped to the clip) that a window over `latents` reads."""
    first = latents.start * wv.TEMPORAL
    return [min(f, frames - 1) for f in range(first, first + (len(latents) - 1) * wv.TEMPORAL + 1)]


class WanWindows:
    """The WindowModel of `painting/windows.py` for Wan VACE: D(x, sigma) of one window.

    control(indices) / source(indices) / mask(indices) read clip frames (float HxWx3 / HxW in [0,1]);
    the window's VACE input is encoded on first use and kept (32 latent channels per latent frame).
    """

    def __init__(self, parts: wv.WanVace, frames: int, control: FrameReader, embeds: torch.Tensor,
                 negative: torch.Tensor | None, cfg: float, control_scale: float = 1.0,
                 references: Sequence[np.ndarray] = (), mask: FrameReader | None = None,
                 source: FrameReader | None = None, seed: int = 0):
        self.parts, self.frames, self.control, self.mask, self.source = parts, frames, control, mask, source
        self.embeds, self.negative, self.cfg, self.scale = embeds, negative, cfg, control_scale
        self.references, self.seed = list(references), seed
        self._cond: dict[int, torch.Tensor] = {}
        self._refs: torch.Tensor | None = None
        self._vae = threading.Lock()           # the Wan VAE keeps its causal cache on itself: one caller at a time

    def conditioning(self, latents: range) -> torch.Tensor:
        with self._vae:
            return self._conditioning(latents)

    def _conditioning(self, latents: range) -> torch.Tensor:
        if latents.start not in self._cond:
            idx = pixel_frames(latents, self.frames)
            video = wv.frames_to_video(self.control(idx))
            mask = None
            if self.mask is not None:
                mask = torch.from_numpy(np.stack(self.mask(idx)).astype(np.float32))
                if self.source is not None:
                    keep = (mask <= 0.5).float()[None, None]
                    video = video * (1 - keep) + wv.frames_to_video(self.source(idx)) * keep
            self._cond[latents.start] = wv.conditioning(self.parts, video, mask, self.references)
        return self._cond[latents.start]

    def reference_latents(self, shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean, noise) of the reference slots, [1, C, refs, h, w] each."""
        with self._vae:
            return self._reference_latents(shape)

    def _reference_latents(self, shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self._refs is None:
            cond = next(iter(self._cond.values()))
            clean = cond[:, :self.parts.z_dim, :len(self.references)].float()
            noise = torch.stack([torch.randn(tuple(shape), generator=torch.Generator().manual_seed(
                win.frame_seed(self.seed, k, REF_PURPOSE))) for k in range(len(self.references))], dim=1)[None]
            self._refs = torch.cat([clean, noise.to(clean.device)])
        return self._refs[:1], self._refs[1:]

    def predict(self, x: torch.Tensor, sigma: torch.Tensor, frames: range, evaluation: int = 0) -> torch.Tensor:
        cond = self.conditioning(frames)
        s = float(sigma[0])
        xw = x.permute(1, 0, 2, 3)[None].float()                 # (F, C, h, w) -> (1, C, F, h, w)
        r = len(self.references)
        if r:
            clean, noise = self.reference_latents(x.shape[1:])
            xw = torch.cat([wv.noised(clean, noise, s).to(xw.device), xw], dim=2)
        t = torch.tensor(s * 1000.0)
        v = wv.velocity(self.parts, xw, t, cond, self.embeds, self.negative, self.cfg, self.scale)
        denoised = xw - s * v.to(xw.device)
        return denoised[0, :, r:].permute(1, 0, 2, 3)


def sampling(frames: int, latent_shape: Sequence[int], steps: int, shift: float, seed: int,
             length: int, overlap: int, weighting: str = "flat", strength: float = 1.0) -> win.ClipSampling:
    """The machinery's ClipSampling over the clip's latent frames, with the lone-first-latent weights.

    strength < 1 skips the first steps (the init latents must then be `start_latents`'s).
    """
    check_context(length, overlap)
    latents = wv.latent_frames(padded_frames(frames))
    _, sigmas = wv.flow_schedule(steps, shift)
    sigmas = sigmas[steps - max(1, min(steps, round(steps * strength))):]
    from vid2vid.diffusion.samplers import euler_step

    run = win.ClipSampling(latents, latent_shape, sigmas, euler_step, seed, wv.latent_frames(length),
                           (overlap - 1) // wv.TEMPORAL + 1, weighting)
    run.weights = lone_first_weights(run.windows, latents, weighting)
    return run


def start_latents(parts: wv.WanVace, source: FrameReader, frames: int, sigma0: float) -> torch.Tensor:
    """The init the machinery adds sigma0 * noise to: (1 - sigma0) * the source clip's latents
    (flow matching's interpolation). The clip is encoded a latent frame's pixels at a time."""
    if sigma0 >= 1.0:
        raise ValueError("full denoise starts from zeros")
    last = frames - 1
    chunks = (wv.frames_to_video(source([min(f, last) for f in range(max(0, 4 * k - 3), 4 * k + 1)]))
              for k in range(wv.latent_frames(padded_frames(frames))))
    clean = torch.cat(list(wv.encode_stream(parts.vae, chunks, parts.device)), dim=2)[0].permute(1, 0, 2, 3)
    return (1 - sigma0) * clean


def paint_clip(parts: wv.WanVace, model: WanWindows, run: win.ClipSampling, spread: win.Spread,
               store: win.StepStore | None = None, source: FrameReader | None = None,
               on_step: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """The clip's frames in order: the steps (resumable through `store`), then a streamed decode."""
    sigma0 = float(run.sigmas[0])

    def init() -> torch.Tensor:
        if sigma0 >= 1.0:
            return torch.zeros((run.frames, *run.shape))
        if source is None:
            raise ValueError("a denoise strength below 1 starts from the source frames: pass `source`")
        return start_latents(parts, source, model.frames, sigma0)

    x = run.run(spread, init, store, on_step)
    return itertools.islice(wv.decode_stream(parts.vae, x, parts.device), model.frames)
