"""Cross-frame attention: a frame's self-attention also looks at reference frames.

In the chosen UNet blocks (`up`, as Rerender-A-Video, or `all`) every self-attention layer
joins the keys and values of reference frames to the current frame's own:

    out = softmax(Q [K; K_1; ...; K_r]^T / sqrt(d)) [V; V_1; ...; V_r]

where K_j, V_j are the layer's own projections of what that layer saw in reference frame j's
sampling at the same UNet call (call k of frame t reads call k of each reference; a sampler
that calls the UNet twice a step, like Heun, has twice the calls, and both are kept). What is
kept of a reference is the layer's input (one tensor per layer and call, in the model's dtype,
on its device); its K and V are projected again by each frame that reads it (half the memory of
keeping K and V; the projection is small next to the attention itself).

Reference modes (`references`):
- none:        no references; the stock processors run.
- anchor:      the anchor frame (the first, or the latest key frame at or before the frame).
               Every other frame reads only the anchor, so frames stay independent of each other.
- anchor-prev: the anchor and the previous frame (Rerender): frames become sequential.
- bank:        the `bank` frames before the current one (StreamV2V's bank of earlier frames).
A frame never reads itself or a later frame; the anchor itself runs with the stock processors.

Rows: a UNet call holds G groups of B frames ([uncond 1..B, cond 1..B] with guidance in one call,
G = 2); a reference is always recorded alone (B = 1), so it has G rows, and row r of the current
batch reads reference row r // B: each CFG half reads the reference's same half. The shared
text-free prefix (`shared_prefix`) halves both alike.

State is per thread (model workers share one UNet): `attending(refs, record)` sets what this
thread's UNet calls read and record; outside it the installed processors call the stock ones
unchanged, and `CrossFrame.close()` (or leaving `with CrossFrame(...)`) puts the model's own
processors back (through diffusers' `set_attn_processor`).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from vid2vid.config.choices import CROSS_FRAME_BLOCKS, CROSS_FRAME_MODES
from vid2vid.core.errors import BadInput

MODES = CROSS_FRAME_MODES                       # the settings' allowed values, declared once in config
BLOCKS = CROSS_FRAME_BLOCKS
SEQUENTIAL_MODES = ("anchor-prev", "bank")     # they read the previous frame's sampling


# ---------------------------------------------------------------- which frames read which (pure)

def anchor_of(t: int, keyframes: tuple[int, ...] = ()) -> int:
    """The anchor of frame t (1-based): the latest of `keyframes` (the frames that start a shot) at
    or before t, else frame 1."""
    earlier = [k for k in keyframes if k <= t]
    return max(earlier) if earlier else 1


def references(mode: str, t: int, bank: int = 4, keyframes: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The earlier frames whose K/V frame t joins to its own, ascending (never t, never later, and
    never before t's anchor: with `keyframes` the frames that start the shots, nothing is read across
    a scene cut)."""
    if mode == "none":
        return ()
    a = anchor_of(t, keyframes)
    if mode == "anchor":
        refs = {a}
    elif mode == "anchor-prev":
        refs = {a, t - 1}
    elif mode == "bank":
        refs = set(range(max(1, t - bank), t))
    else:
        raise BadInput(f"cross-frame mode '{mode}' is not known; use one of: {', '.join(MODES)}")
    return tuple(sorted(r for r in refs if a <= r < t))


def nearest_key(t: int, keys: tuple[int, ...] | list[int]) -> int:
    """The key nearest to frame t (ties: the earlier key)."""
    if not keys:
        raise ValueError("no key frames")
    return min(keys, key=lambda k: (abs(k - t), k))


def needed_before(mode: str, t: int, bank: int = 4, keyframes: tuple[int, ...] = ()) -> set[int]:
    """Every frame whose sampling must run before frame t can be sampled (its references, theirs, ...)."""
    need: set[int] = set()
    todo = list(references(mode, t, bank, keyframes))
    while todo:
        f = todo.pop()
        if f not in need:
            need.add(f)
            todo.extend(references(mode, f, bank, keyframes))
    return need


# ---------------------------------------------------------------- recorded references

@dataclass
class Recording:
    """What each chosen self-attention layer saw during one frame's sampling: (layer, call) -> input."""

    inputs: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.inputs.values())

    def get(self, layer: str, call: int) -> torch.Tensor:
        try:
            return self.inputs[(layer, call)]
        except KeyError:
            raise RuntimeError(f"no reference recorded for {layer} at UNet call {call + 1}: the reference "
                               "frame was sampled with other settings") from None


@dataclass
class _Frame:
    refs: list[Recording]
    record: Recording | None
    calls: dict[str, int] = field(default_factory=dict)


_local = threading.local()


@contextmanager
def attending(refs: list[Recording], record: Recording | None = None):
    """Within this block (this thread only), UNet calls join `refs` and record into `record`."""
    before = getattr(_local, "frame", None)
    _local.frame = _Frame(list(refs), record)
    try:
        yield
    finally:
        _local.frame = before


# ---------------------------------------------------------------- the processor

class CrossFrameProcessor:
    """A self-attention processor (diffusers' AttnProcessor2_0 pattern) with reference K/V joined.

    `inner` is the layer's own processor: it runs, unchanged, outside `attending`, and inside it
    when there is nothing to join (the anchor's own sampling), so those outputs are the stock ones.
    """

    def __init__(self, layer: str, inner):
        self.layer = layer
        self.inner = inner

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        frame = getattr(_local, "frame", None)
        if frame is None or encoder_hidden_states is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        call = frame.calls.get(self.layer, 0)
        frame.calls[self.layer] = call + 1
        if not frame.refs:
            if frame.record is not None:
                frame.record.inputs[(self.layer, call)] = _prepared(attn, hidden_states, temb).clone()
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if attention_mask is not None:
            raise ValueError("cross-frame attention takes no self-attention mask")
        refs = [r.get(self.layer, call) for r in frame.refs]
        return self._joined(attn, hidden_states, refs, temb, frame.record, call)

    def _joined(self, attn, hidden_states, refs, temb, record, call):
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
        x = _prepared(attn, hidden_states, temb)
        if record is not None:
            record.inputs[(self.layer, call)] = x.clone()
        batch_size = x.shape[0]
        query = attn.to_q(x)
        keys, values = [attn.to_k(x)], [attn.to_v(x)]
        for r in refs:
            if batch_size % r.shape[0]:
                raise ValueError(f"a batch of {batch_size} rows cannot read a reference of {r.shape[0]} rows")
            per = batch_size // r.shape[0]          # rows [g*B .. (g+1)*B) read reference row g
            keys.append(attn.to_k(r).repeat_interleave(per, dim=0))
            values.append(attn.to_v(r).repeat_interleave(per, dim=0))
        key, value = torch.cat(keys, dim=1), torch.cat(values, dim=1)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _prepared(attn, hidden_states: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
    """The layer's input as its key/value projections see it (B, tokens, channels)."""
    x = hidden_states
    if attn.spatial_norm is not None:
        x = attn.spatial_norm(x, temb)
    if x.ndim == 4:
        b, c, h, w = x.shape
        x = x.view(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
    return x


# ---------------------------------------------------------------- installing on a UNet

def chosen_layers(unet: torch.nn.Module, blocks: str) -> list[str]:
    """Processor names of the self-attention layers cross-frame attention uses (`up` or `all` blocks)."""
    if blocks not in BLOCKS:
        raise BadInput(f"cross-frame blocks '{blocks}' is not known; use one of: {', '.join(BLOCKS)}")
    names = []
    for name in unet.attn_processors:
        module = unet.get_submodule(name.rsplit(".", 1)[0])
        if not name.endswith("attn1.processor") or getattr(module, "is_cross_attention", True):
            continue
        if blocks == "all" or name.startswith("up_blocks."):
            names.append(name)
    return names


def _innermost(processor):
    """The processor inside any wrappers (`with_inner`, e.g. token merging's)."""
    while hasattr(processor, "with_inner"):
        processor = processor.inner
    return processor


def _inside(processor, make):
    """`make(p)` installed inside the wrappers of `processor`: a wrapper that merges tokens stays
    outermost, so cross-frame attention records and joins what the wrapper hands it."""
    if hasattr(processor, "with_inner"):
        return processor.with_inner(_inside(processor.inner, make))
    return make(processor)


class KeptFrames:
    """What earlier frames' samplings left for later frames, kept while they read it (cross-frame
    attention's K/V inputs here, deep features in `deepcache.FrameCache`).

    `run` samples one batch reading the recordings of `refs` and, with keep, records the batch's one
    frame for later frames; `release(frames)` drops recordings no later frame reads. Several
    threads may `run` at once. A subclass gives `_new_record()` and `_reading(refs, record)`, the
    context in which a sampling reads `refs` and fills `record`.
    """

    def __init__(self) -> None:
        self.recorded: dict[int, Any] = {}
        self.peak_bytes = 0
        self._lock = threading.Lock()

    def _new_record(self):
        raise NotImplementedError

    def _reading(self, refs: list, record):
        raise NotImplementedError

    def run(self, frame: int | None, refs: tuple[int, ...], keep: bool, fn, *args, **kwargs):
        """fn(*args, **kwargs) (one sampling) reading what `refs` left; with keep, the sampling (of
        `frame`, a batch of one) is recorded for later frames."""
        with self._lock:
            recs = [self.recorded[r] for r in refs]
        record = self._new_record() if keep else None
        with self._reading(recs, record):
            out = fn(*args, **kwargs)
        if keep:
            assert frame is not None and record is not None      # a kept frame names itself
            with self._lock:
                self.recorded[frame] = record
                self.peak_bytes = max(self.peak_bytes, self.nbytes())
        return out

    def release(self, frames) -> None:
        with self._lock:
            for f in frames:
                self.recorded.pop(f, None)

    def nbytes(self) -> int:
        return sum(r.nbytes() for r in self.recorded.values())


class CrossFrame(KeptFrames):
    """Cross-frame attention on one UNet for one stage run: processors installed, references kept.

        with CrossFrame(unet, "anchor") as xf:
            out = xf.run(1, (), True, engine.repaint, canvases, None)      # frame 1, kept
            out = xf.run(None, (1,), False, engine.repaint, ...)           # frames 2, 3 read frame 1

    `run` samples one batch reading the recordings of `refs` (`references(mode, t)` says which a
    frame reads) and, with keep, records the batch's one frame for later frames.
    `release(frames)` drops recordings no later frame reads. Several threads may `run` at once.
    """

    def __init__(self, unet: torch.nn.Module, mode: str = "anchor", blocks: str = "up", bank: int = 4):
        if mode not in MODES or mode == "none":
            raise BadInput(f"cross-frame mode '{mode}' is not known here; use one of: {', '.join(MODES[1:])}")
        if bank < 1:
            raise BadInput(f"cross-frame bank {bank} must be at least 1")
        self.unet, self.mode, self.blocks, self.bank = unet, mode, blocks, bank
        self.layers = chosen_layers(unet, blocks)
        if not self.layers:
            raise BadInput(f"this UNet has no self-attention in the '{blocks}' blocks; use cross-frame blocks all")
        super().__init__()
        current = unet.attn_processors
        if any(isinstance(_innermost(p), CrossFrameProcessor) for p in current.values()):
            raise RuntimeError("cross-frame attention is already installed on this UNet")
        self._saved: dict | None = dict(current)
        unet.set_attn_processor({name: _inside(p, lambda inner, n=name: CrossFrameProcessor(n, inner))
                                 if name in self.layers else p for name, p in current.items()})

    def _new_record(self) -> Recording:
        return Recording()

    def _reading(self, refs: list, record):
        return attending(refs, record)

    def close(self) -> None:
        """Put the model's own processors back and drop every recording."""
        if self._saved is not None:
            self.unet.set_attn_processor(self._saved)
            self._saved = None
        self.recorded.clear()

    def __enter__(self) -> CrossFrame:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
