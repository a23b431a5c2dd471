"""Token merging in self-attention (ToMe for Stable Diffusion: Bolya & Hoffman 2023).

Before a self-attention layer the B x N tokens of each row are merged by bipartite soft matching:
the tokens are cut into a grid of 2x2 cells; one token of each cell (its top-left, so the choice
is deterministic) is a destination, the others are sources. Each source is paired with its most
similar destination (cosine similarity of the layer's input); the r = floor(N * ratio) sources
with the most similar partners are averaged into their destination, so attention runs over
N - r tokens. After attention every merged source takes its destination's output again
("unmerge"), so the layer's output has N tokens as before. r is at most the number of sources
(3/4 of the tokens on an even grid).

`TomeProcessor` wraps a layer's own processor (the stock one or cross-frame attention's, see
`crossframe.py`: cross-frame attention installs itself inside a wrapper, so merged tokens are
what it records and joins). It merges only inside `merging(ratio, latent_hw)` in the calling
thread, and only at the UNet's full latent resolution (as tomesd's default, `max_downsample` 1,
where the attention is most expensive); elsewhere, or with r = 0, it calls the wrapped
processor unchanged, so ratio 0 gives the same bits as no token merging.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch

_local = threading.local()


# ---------------------------------------------------------------- the matching (pure)

@dataclass
class Merge:
    """Where each token goes: indices (B, k) into the N input tokens, and the merged tokens' partners."""

    unm: torch.Tensor          # (B, S - r) unmerged sources, as positions in the input
    src: torch.Tensor          # (B, r) merged sources, as positions in the input
    dst_of_src: torch.Tensor   # (B, r) the destination (0..D-1) each merged source joins
    dst: torch.Tensor          # (D,) destination positions in the input (the same for every row)

    @property
    def removed(self) -> int:
        return self.src.shape[1]


def destinations(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(destination positions, source positions) of an h x w token grid: the top-left token of every
    whole 2x2 cell is a destination; every other token (odd rows/columns) is a source."""
    rows = torch.arange(h).view(-1, 1).expand(h, w)
    cols = torch.arange(w).view(1, -1).expand(h, w)
    is_dst = ((rows % 2 == 0) & (cols % 2 == 0) & (rows + 1 < h) & (cols + 1 < w)).reshape(-1)
    pos = torch.arange(h * w)
    return pos[is_dst], pos[~is_dst]


def tokens_removed(n: int, h: int, w: int, ratio: float) -> int:
    """r: how many tokens a layer of n = h * w tokens loses at this ratio."""
    dst, src = destinations(h, w)
    return min(int(math.floor(n * ratio)), len(src))


def match(x: torch.Tensor, h: int, w: int, ratio: float) -> Merge:
    """Bipartite soft matching of x (B, N, C), N = h * w, removing `tokens_removed` tokens."""
    b, n, _ = x.shape
    dst_pos, src_pos = destinations(h, w)
    dst_pos, src_pos = dst_pos.to(x.device), src_pos.to(x.device)
    r = tokens_removed(n, h, w, ratio)
    metric = x.float() / x.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scores = metric[:, src_pos] @ metric[:, dst_pos].transpose(1, 2)          # (B, S, D)
    best, partner = scores.max(dim=-1)                                       # (B, S)
    order = torch.sort(best, dim=-1, descending=True, stable=True).indices   # most similar first
    src_rank, unm_rank = order[:, :r], order[:, r:]
    return Merge(unm=src_pos[unm_rank], src=src_pos[src_rank], dst_of_src=partner.gather(1, src_rank), dst=dst_pos)


def merge(x: torch.Tensor, m: Merge) -> torch.Tensor:
    """(B, N, C) -> (B, N - r, C): the unmerged sources, then each destination averaged with its sources."""
    b, _, c = x.shape
    take = lambda idx: x.gather(1, idx.unsqueeze(-1).expand(-1, -1, c))     # noqa: E731
    dst = x[:, m.dst].clone()
    if m.removed:
        dst = dst.scatter_reduce(1, m.dst_of_src.unsqueeze(-1).expand(-1, -1, c), take(m.src), reduce="mean",
                                 include_self=True)
    return torch.cat([take(m.unm), dst], dim=1)


def unmerge(y: torch.Tensor, m: Merge, n: int) -> torch.Tensor:
    """(B, N - r, C) -> (B, N, C): every token back at its place, a merged source with its destination's value."""
    b, _, c = y.shape
    k = m.unm.shape[1]
    unm, dst = y[:, :k], y[:, k:]
    out = y.new_empty(b, n, c)
    out[:, m.dst] = dst
    out.scatter_(1, m.unm.unsqueeze(-1).expand(-1, -1, c), unm)
    if m.removed:
        out.scatter_(1, m.src.unsqueeze(-1).expand(-1, -1, c), dst.gather(1, m.dst_of_src.unsqueeze(-1)
                                                                             .expand(-1, -1, c)))
    return out


# ---------------------------------------------------------------- the processor

@dataclass
class _Merging:
    ratio: float
    latent_hw: tuple[int, int]
    removed: int = 0            # tokens removed so far in this thread (a count the tests and the bench read)


@contextmanager
def merging(ratio: float, latent_hw: tuple[int, int]):
    """Within this block (this thread only), installed processors merge `ratio` of the full-resolution tokens.

    Yields the state; its `removed` counts the tokens taken out of attention calls."""
    before = getattr(_local, "state", None)
    _local.state = state = _Merging(float(ratio), (int(latent_hw[0]), int(latent_hw[1])))
    try:
        yield state
    finally:
        _local.state = before


class TomeProcessor:
    """Wraps a self-attention processor: merge the tokens, run it on the N - r tokens, unmerge its output."""

    def __init__(self, inner):
        self.inner = inner

    def with_inner(self, inner) -> TomeProcessor:
        """The same wrapper around another processor (cross-frame attention goes inside)."""
        return TomeProcessor(inner)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        state = getattr(_local, "state", None)
        h, w = state.latent_hw if state is not None else (0, 0)
        if (state is None or encoder_hidden_states is not None or attention_mask is not None
                or hidden_states.ndim != 3 or hidden_states.shape[1] != h * w
                or tokens_removed(h * w, h, w, state.ratio) == 0):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        m = match(hidden_states, h, w, state.ratio)
        state.removed += m.removed * hidden_states.shape[0]
        out = self.inner(attn, merge(hidden_states, m), None, None, temb, *args, **kwargs)
        return unmerge(out, m, h * w)


def self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Processor names of every spatial self-attention layer of a diffusers UNet. The temporal attention of
    motion modules (`motion_modules` inside a `UNetMotionModel`'s blocks) attends over frames, not over the
    latent grid, and is left out; motion modules hooked on from outside (`diffusion/motion.py`) are not the
    UNet's submodules at all."""
    names = []
    for name in unet.attn_processors:
        module = unet.get_submodule(name.rsplit(".", 1)[0])
        if "motion_modules" in name.split("."):
            continue
        if name.endswith("attn1.processor") and not getattr(module, "is_cross_attention", True):
            names.append(name)
    return names


def install(unet: torch.nn.Module) -> int:
    """Wrap every self-attention processor of `unet` once (idle outside `merging`); returns how many."""
    current = unet.attn_processors
    layers = set(self_attention_layers(unet))
    if any(isinstance(p, TomeProcessor) for p in current.values()):
        return sum(isinstance(p, TomeProcessor) for p in current.values())
    unet.set_attn_processor({n: TomeProcessor(p) if n in layers else p for n, p in current.items()})
    return len(layers)
