"""A diffusers UNet as a k-diffusion denoiser D(x, sigma) with classifier-free guidance.

The UNet was trained on the discrete variance-preserving process z_t = sqrt(a_t) x0 +
sqrt(1 - a_t) eps. In sigma space (x = x0 + sigma * eps, sigma_t = sqrt((1 - a_t) / a_t)) the
UNet sees z = x * c_in with c_in = 1 / sqrt(sigma^2 + 1) at the fractional timestep whose log
sigma matches (linear interpolation over the training log sigmas), and
- eps prediction: D = x - sigma * eps_hat;
- v prediction:   D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) * v_hat.
Guidance runs uncond and cond in one UNet call (batch 2B) when both prompts have the same
token length, else in two calls: D = D_u + scale * (D_c - D_u). In the one call the UNet's
text-free start runs once for both halves (`shared_prefix`).
SDXL's UNet also takes each prompt's pooled embedding and the size "time ids"
(`pooled=(cond, uncond)`, `time_ids` (1, n)), passed along with the matching half.
`masked(mask, init)` wraps it with a latent mask (1 = may change) that blends the init latent
back into the prediction: D' = D * m + init * (1 - m) (A1111's inpainting blend, every step).
ControlNet: `control`, a `diffusion.controlnet.Conditioning` for the batch, adds the
summed residuals of the ControlNets active at that sigma to every UNet call (see controlnet.py).
IP-Adapter: with `ip` (an `ip_attention.IPGuide`) each UNet call also gets the image tokens of the
adapters active at that sigma, the uncond rows those of the unconditional embedding.
The denoiser holds no per-batch state, so several threads may sample with it at once.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict

import numpy as np
import torch

from vid2vid.core import devices
from vid2vid.core.errors import BadInput
from vid2vid.diffusion import deepcache, shared_prefix
from vid2vid.diffusion.schedules import sigma_to_timestep


class Timings:
    """Seconds spent per part (text encoder, UNet, VAE, ...), synchronising the GPU for honest numbers."""

    def __init__(self, device: torch.device):
        self.seconds: dict[str, float] = defaultdict(float)
        self.device = torch.device(device)
        self.sync = self.device.type != "cpu"
        self.lock = threading.Lock()       # model workers add their seconds from several threads

    def measure(self, part: str):
        timings = self

        class _Ctx:
            def __enter__(self):
                if timings.sync:
                    devices.synchronize(timings.device)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                if timings.sync:
                    devices.synchronize(timings.device)
                elapsed = time.perf_counter() - self.t0
                with timings.lock:
                    timings.seconds[part] += elapsed

        return _Ctx()


class CFGDenoiser:
    """D(x, sigma) for a batch of latents (B, 4, h, w) with guidance and optional inpainting blend.

    `cond` / `uncond`: text embeddings (1 or B, tokens, dim); `prediction_type`: "epsilon" or
    "v_prediction"; `training_sigmas`: (T,) noise levels of the training timesteps.
    """

    def __init__(self, unet: torch.nn.Module, training_sigmas, prediction_type: str,
                 cond: torch.Tensor, uncond: torch.Tensor | None, cfg_scale: float,
                 timings: Timings | None = None, pooled: tuple[torch.Tensor, torch.Tensor] | None = None,
                 time_ids: torch.Tensor | None = None, discrete: bool = False):
        if prediction_type not in ("epsilon", "v_prediction"):
            raise BadInput(f"model prediction type '{prediction_type}' is not supported; "
                           "use a model that predicts epsilon or v")
        self.unet = unet
        p = next(unet.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.log_sigmas = torch.as_tensor(np.log(np.asarray(training_sigmas, dtype=np.float64)),
                                          dtype=torch.float32, device=self.device)
        self.prediction_type = prediction_type
        self.cond, self.uncond = cond.to(self.device, self.dtype), None
        if uncond is not None and cfg_scale != 1.0:
            self.uncond = uncond.to(self.device, self.dtype)
        self.cfg_scale = float(cfg_scale)
        self.pooled_cond = self.pooled_uncond = self.time_ids = None
        if pooled is not None:
            if time_ids is None:
                raise ValueError("pooled text embeddings come with time ids (SDXL)")
            self.pooled_cond, self.pooled_uncond = (p.to(self.device, self.dtype) for p in pooled)
            self.time_ids = time_ids.to(self.device, self.dtype)
        self.timings = timings
        self.calls = 0
        self.ip = None              # an ip_attention.IPGuide, set by the engine when it has IP-Adapters
        # few-step samplers (fewstep.py) evaluate at training sigmas only; rounding the
        # timestep recovered from them gives the UNet exactly the integer timestep they were trained on
        self.discrete = discrete
        shared_prefix.install(unet)

    def masked(self, mask: torch.Tensor | None, init_latent: torch.Tensor | None, control=None):
        """D(x, sigma) that keeps init_latent where mask (B, 1, h, w) is 0; the plain denoiser when mask is None.

        control: the batch's ControlNet conditioning (controlnet.Conditioning) or None.
        """
        if mask is None and control is None:
            return self
        if mask is None:
            return lambda x, sigma: self(x, sigma, control)

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return self(x, sigma, control) * mask + init_latent * (1 - mask)

        return denoise

    def _embeddings(self, emb: torch.Tensor, batch: int) -> torch.Tensor:
        return emb if emb.shape[0] == batch else emb.expand(batch, *emb.shape[1:])

    def _unet(self, z: torch.Tensor, t: torch.Tensor, emb: torch.Tensor,
              pooled: torch.Tensor | None = None, control=None, sigma: torch.Tensor | None = None,
              rows: tuple[tuple[bool, int], ...] = ()) -> torch.Tensor:
        self.calls += 1
        extra: dict = {}
        if self.ip is not None and sigma is not None:
            tokens = self.ip.hidden_states(sigma, list(rows) or [(True, z.shape[0])])
            if tokens is not None:
                extra["cross_attention_kwargs"] = {"ip_hidden_states": tokens}
        if pooled is not None:
            time_ids = self.time_ids
            assert time_ids is not None             # set with the pooled embeddings (SDXL)
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids.expand(z.shape[0], -1)}
        # -- ControlNet: the active nets' residuals join the UNet's arguments
        if control is not None:
            assert sigma is not None                # the nets' windows are read at the call's sigma
            deepcache.note_controls(tuple(control.guide.active(float(sigma.reshape(-1)[0]))))
            if self.timings is None:
                extra.update(control.residuals(z, t, emb, extra.get("added_cond_kwargs"), sigma))
            else:
                with self.timings.measure("controlnet"):
                    extra.update(control.residuals(z, t, emb, extra.get("added_cond_kwargs"), sigma))
        # -- end ControlNet
        if self.timings is None:
            return self.unet(z, t, encoder_hidden_states=emb, return_dict=False, **extra)[0]
        with self.timings.measure("unet"):
            return self.unet(z, t, encoder_hidden_states=emb, return_dict=False, **extra)[0]

    def model_output(self, x: torch.Tensor, sigma: torch.Tensor, control=None) -> torch.Tensor:
        """Guided UNet output (eps or v) for x (B, 4, h, w) at sigma (B,); control: see `masked`."""
        b = x.shape[0]
        c_in = (sigma.float() ** 2 + 1).rsqrt().view(-1, 1, 1, 1)
        z = (x.float() * c_in).to(self.dtype)
        t = sigma_to_timestep(sigma.to(self.device), self.log_sigmas)
        if self.discrete:  # (see __init__)
            t = t.round()
        cond = self._embeddings(self.cond, b)
        pc = None if self.pooled_cond is None else self._embeddings(self.pooled_cond, b)
        if self.uncond is None:
            return self._unet(z, t, cond, pc, control, sigma, ((True, b),)).float()
        uncond = self._embeddings(self.uncond, b)
        pu = None if self.pooled_uncond is None else self._embeddings(self.pooled_uncond, b)
        if uncond.shape[1:] == cond.shape[1:]:
            with shared_prefix.active():
                out = self._unet(torch.cat([z, z]), torch.cat([t, t]), torch.cat([uncond, cond]),
                                 None if pc is None else torch.cat([pu, pc]), control, sigma,
                                 ((False, b), (True, b))).float()
            out_u, out_c = out[:b], out[b:]
        else:
            out_u = self._unet(z, t, uncond, pu, control, sigma, ((False, b),)).float()
            out_c = self._unet(z, t, cond, pc, control, sigma, ((True, b),)).float()
        return out_u + (out_c - out_u) * self.cfg_scale

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, control=None) -> torch.Tensor:
        out = self.model_output(x, sigma, control)
        s = sigma.float().view(-1, 1, 1, 1)
        xf = x.float()
        if self.prediction_type == "epsilon":
            return xf - s * out
        return xf / (s ** 2 + 1) - s * (s ** 2 + 1).rsqrt() * out
