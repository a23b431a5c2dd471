"""IP-Adapter inside our own sampling loop: image tokens read by every cross-attention layer (DESIGN §10.3).

For a cross-attention layer with query Q (from the latent) and text keys/values K, V, each
active adapter n adds the attention over its image tokens c_n, scaled:

    out = softmax(Q K^T / sqrt(d)) V + sum_n scale_n * softmax(Q K_n^T / sqrt(d)) V_n,
    K_n = c_n W_k,n,   V_n = c_n W_v,n

before the layer's output projection (the order of diffusers' `IPAdapterAttnProcessor2_0`, so the
weights mean the same). The tokens c_n = projection_n(embedding) are computed once per run
(`IPGuide`): the reference does not change from frame to frame. With guidance the uncond half of
the batch reads the tokens of the unconditional embedding, as diffusers' pipelines do.

Window: adapter n takes part in step i of the N steps actually run when start_n <= i/N and
(i + 1)/N <= end_n, the rule ControlNets follow (`controlnet.window`). Outside it, or with scale
0, it is not computed at all; when no adapter is active the layer's own processor runs, so the
output is then exactly the model's without an adapter.

How a UNet call gets its tokens: the denoiser passes them as the cross-attention argument
`ip_hidden_states` (a list, one entry per adapter: None or (tokens (rows, n, dim), scale)); diffusers
hands it only to processors that take it (ours, on the `attn2` layers) and quietly drops it for
the rest. Nothing is kept between calls, so model workers may share the UNet. Only the `attn2`
processors are replaced, and `close` puts back only those: the self-attention processors of
cross-frame attention (`crossframe.py`) stay as they are, before, during and after.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vid2vid.diffusion.controlnet import step_index, window
from vid2vid.diffusion.ip_adapter import (
    AdapterFile,
    check_fits,
    cross_attention_layers,
    image_projection,
    layer_weights,
)

KWARG = "ip_hidden_states"


class IPAttnProcessor(torch.nn.Module):
    """A cross-attention processor with the image tokens of the active adapters added (see the module doc).

    `inner` is the layer's own processor; it runs unchanged when no adapter is active.
    """

    def __init__(self, inner, pairs: list[tuple[torch.nn.Linear, torch.nn.Linear]]):
        super().__init__()
        self.inner = inner
        self.to_k_ip = torch.nn.ModuleList([k for k, _ in pairs])
        self.to_v_ip = torch.nn.ModuleList([v for _, v in pairs])

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 ip_hidden_states: list | None = None):
        if encoder_hidden_states is None or not ip_hidden_states or all(e is None for e in ip_hidden_states):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, tokens, _ = encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        text = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        heads = lambda x: x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)  # noqa: E731
        q = heads(query)
        out = F.scaled_dot_product_attention(q, heads(attn.to_k(text)), heads(attn.to_v(text)),
                                             attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, query.shape[-1]).to(query.dtype)
        for entry, to_k, to_v in zip(ip_hidden_states, self.to_k_ip, self.to_v_ip):
            if entry is None:
                continue
            image, scale = entry
            extra = F.scaled_dot_product_attention(q, heads(to_k(image)), heads(to_v(image)),
                                                   dropout_p=0.0, is_causal=False)
            out = out + scale * extra.transpose(1, 2).reshape(batch, -1, query.shape[-1]).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@dataclass
class IPUnit:
    """One adapter of a run: its weights, the reference's (cond, uncond) embeddings, scale and window."""

    adapter: AdapterFile
    cond: torch.Tensor              # (1, D) or (1, T, D): see image_encoder.embed
    uncond: torch.Tensor
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    name: str = ""


class IPGuide:
    """The IP-Adapters of a run on one UNet: processors installed on `attn2`, tokens projected once.

    `hidden_states(sigma, rows)` gives a UNet call's `ip_hidden_states` (None when no adapter is
    active at that sigma); `close()` puts the layers' own processors back.
    """

    def __init__(self, units: list[IPUnit], real_sigmas, unet: torch.nn.Module):
        self.units = list(units)
        self.unet = unet
        self.real_sigmas = np.asarray(real_sigmas, dtype=np.float64)
        steps = len(self.real_sigmas) - 1
        self.windows = [window(steps, u.start, u.end) if u.scale > 0 else [False] * steps for u in self.units]
        p = next(unet.parameters())
        self.tokens: list[tuple[torch.Tensor, torch.Tensor]] = []
        per_layer: dict[str, list] = {name: [] for name in cross_attention_layers(unet)}
        for u in self.units:
            check_fits(u.adapter, unet)
            proj = image_projection(u.adapter, unet)
            with torch.no_grad():
                pair = tuple(proj(e.float()).to(p.device, p.dtype) for e in (u.cond, u.uncond))
            self.tokens.append((pair[0], pair[1]))
            for name, (k, v) in layer_weights(u.adapter, unet).items():
                per_layer[name].append((k.to(p.device, p.dtype), v.to(p.device, p.dtype)))
        current = unet.attn_processors
        # an engine that was never closed (a failed run on a model kept loaded) left its processors: unwrap
        current.update({k: p.inner for k, p in current.items() if isinstance(p, IPAttnProcessor)})
        self._saved = {name: current[name] for name in per_layer}
        current.update({name: IPAttnProcessor(current[name], pairs) for name, pairs in per_layer.items()})
        unet.set_attn_processor(current)

    def active(self, sigma: float) -> list[int]:
        i = step_index(sigma, self.real_sigmas)
        return [n for n, w in enumerate(self.windows) if w[i]]

    def hidden_states(self, sigma: torch.Tensor, rows: list[tuple[bool, int]]) -> list | None:
        """The call's `ip_hidden_states`: rows = [(cond?, count), ...] in batch order ([uncond B, cond B] with
        guidance in one call); None when no adapter is active."""
        active = self.active(float(sigma.reshape(-1)[0]))
        if not active:
            return None
        out: list = [None] * len(self.units)
        for n in active:
            cond, uncond = self.tokens[n]
            parts = [(cond if is_cond else uncond).expand(count, -1, -1) for is_cond, count in rows]
            out[n] = (torch.cat(parts) if len(parts) > 1 else parts[0], float(self.units[n].scale))
        return out

    def close(self) -> None:
        """Put the cross-attention layers' own processors back (self-attention processors are left alone)."""
        if self._saved:
            current = self.unet.attn_processors
            current.update(self._saved)
            self.unet.set_attn_processor(current)
            self._saved = {}

    def describe(self) -> list[dict]:
        return [{"model": u.name, "scale": u.scale, "start": u.start, "end": u.end,
                 "tokens": int(t[0].shape[1]), "steps": [i for i, on in enumerate(w) if on]}
                for u, w, t in zip(self.units, self.windows, self.tokens)]
