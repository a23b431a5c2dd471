"""Cached deep UNet features (DeepCache: Ma, Fang & Wang 2024), within a frame and across frames.

A UNet's deep blocks change little between adjacent sampler evaluations. The shallow path of a
diffusers UNet is `conv_in`, the first down block, the last up block and the output layers; the
last up block reads the deep path only through its main input, the output of the next-to-last
up block (its skip connections come from `conv_in` and the first down block). So:
- a full call runs everything and keeps that output (the "deep feature");
- a shallow call runs the shallow path and hands the last up block a kept deep feature; the
  deep modules (down blocks 2.., the mid block, up blocks ..n-2) return placeholders of their
  usual shapes (zeros, broadcast, no memory) that nothing reads, and the next-to-last up block
  returns the deep feature.

`cache:N`: evaluation k of a sampling (one denoiser call; with guidance in two UNet calls, each
call is a slot of its own) is full when k % (N + 1) == 0, else shallow with the feature of the
last full evaluation: ceil(K / (N + 1)) full evaluations of K (N = 0: every one full). A kept
feature is reused only by a call with the same IP-Adapters and ControlNets in force (`conditioning`,
`note_controls`): where an adapter's or a net's start/end window opens or shuts, that call is full, so
the deep blocks never carry an adapter or a net's residuals into the steps outside its window, nor
leave them out of those inside (one more full evaluation per window edge).
`cache-frames`: inside `frame_features(read=rec)` a sampling runs every evaluation shallow with
the features `rec` kept of another frame's sampling at the same evaluation and slot (row r of a
batch of B frames reads row r // B of the recorded batch of one, as cross-frame attention does);
inside `frame_features(record=rec)` it keeps the feature each evaluation used.
With windows of frames (`painting/windows.py`), `WindowFeatures` holds the features per window across
the clip's evaluations: `with wf.evaluation(window, k):` around one window's denoiser call, k the
clip's evaluation (the same rule, k % (N + 1) == 0 is full), so each window reads only the features
of its own last full call (slot = (window, UNet call within the evaluation)).

The module hooks are installed once per UNet and are idle outside `caching(...)` in the calling
thread, so a model shared with other code or other threads is unaffected. `counts(unet)` says
how many full and shallow UNet calls ran (the deep blocks run exactly `full` times).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from vid2vid.diffusion.crossframe import KeptFrames
from vid2vid.diffusion.ip_attention import KWARG

MARK = "_vid2vid_deepcache"
_local = threading.local()


@dataclass
class Recording:
    """The deep feature each evaluation of one frame's sampling used: (evaluation, slot) -> tensor."""

    features: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.features.values())


@dataclass
class _Sampling:
    interval: int                       # N of cache:N (0: every evaluation full unless `read`)
    read: Recording | None = None
    record: Recording | None = None
    evaluation: int = -1
    slot: int = 0
    held: dict[int, tuple[torch.Tensor, tuple]] = field(default_factory=dict)   # slot -> (feature, conditioning)
                                                                                 # of the last full call
    feature: torch.Tensor | None = None  # the current call's deep feature when it is shallow
    key: tuple[int, int] = (0, 0)       # the current call's latent size
    rows: int = 0                       # and its batch rows
    conditioning: tuple = ()            # and what it reads beside the text (`conditioning`)
    controls: tuple[int, ...] = ()      # the ControlNets the next call reads (`note_controls`)


@dataclass
class _Hooks:
    skipped: list[torch.nn.Module]
    last_deep: torch.nn.Module          # the next-to-last up block: its output is the deep feature
    templates: dict = field(default_factory=dict)   # (module index, latent h, w) -> output structure
    full: int = 0
    shallow: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def deep_modules(unet: torch.nn.Module) -> tuple[list[torch.nn.Module], torch.nn.Module]:
    """(the modules a shallow call skips, the module whose output is the deep feature) of a diffusers UNet."""
    downs, ups = list(getattr(unet, "down_blocks", [])), list(getattr(unet, "up_blocks", []))
    mid = getattr(unet, "mid_block", None)
    if len(downs) < 2 or len(ups) < 2:
        raise ValueError("deep-feature caching needs a UNet with at least two down and two up blocks")
    return downs[1:] + ([mid] if mid is not None else []) + ups[:-2], ups[-2]


def _shape_of(value):
    if torch.is_tensor(value):
        return ("t", tuple(value.shape[1:]), value.dtype, value.device)
    if isinstance(value, (tuple, list)):
        return ("s", type(value), [_shape_of(v) for v in value])
    return ("v", value)


def _placeholder(template, rows: int):
    if template[0] == "t":
        _, shape, dtype, device = template
        return torch.zeros((), dtype=dtype, device=device).expand(rows, *shape)
    if template[0] == "s":
        return template[1](_placeholder(t, rows) for t in template[2])
    return template[1]


def _wrap(module: torch.nn.Module, index: int, hooks: _Hooks, is_feature: bool) -> None:
    inner = module.forward

    def forward(*args, **kwargs):
        state: _Sampling | None = getattr(_local, "state", None)
        if state is None:
            return inner(*args, **kwargs)
        if state.feature is not None:                        # a shallow call
            if is_feature:
                return state.feature
            try:
                return _placeholder(hooks.templates[(index, *state.key)], state.rows)
            except KeyError:
                raise RuntimeError("a shallow UNet call came before any full call at this latent size") from None
        out = inner(*args, **kwargs)
        hooks.templates[(index, *state.key)] = _shape_of(out)
        if is_feature:
            state.held[state.slot - 1] = (out, state.conditioning)
            if state.record is not None:
                state.record.features[(state.evaluation, state.slot - 1)] = out
        return out

    module.forward = forward


def install(unet: torch.nn.Module) -> _Hooks:
    """Hook the deep modules of `unet` once (idle outside `caching`); returns the hooks."""
    hooks = getattr(unet, MARK, None)
    if hooks is None:
        skipped, last_deep = deep_modules(unet)
        hooks = _Hooks(skipped, last_deep)
        for i, m in enumerate(skipped):
            _wrap(m, i, hooks, False)
        _wrap(last_deep, len(skipped), hooks, True)
        unet.register_forward_pre_hook(lambda module, args, kwargs: _begin_call(hooks, args, kwargs),
                                       with_kwargs=True)
        setattr(unet, MARK, hooks)
    return hooks


def _expanded(feature: torch.Tensor, rows: int) -> torch.Tensor:
    if rows == feature.shape[0]:
        return feature
    if rows % feature.shape[0]:
        raise ValueError(f"a batch of {rows} rows cannot read deep features of {feature.shape[0]} rows")
    return feature.repeat_interleave(rows // feature.shape[0], dim=0)


def conditioning(kwargs: dict) -> tuple:
    """What a UNet call reads beside the text that switches on and off along the schedule: which IP-Adapters
    are in force (their image tokens, `ip_attention.KWARG`, None where an adapter is out of its window)."""
    tokens = (kwargs.get("cross_attention_kwargs") or {}).get(KWARG)
    return tuple(i for i, entry in enumerate(tokens or ()) if entry is not None)


def note_controls(active: tuple[int, ...]) -> None:
    """Which ControlNets feed the next UNet call in this thread (their summed residuals do not say which):
    a kept deep feature is reused only by a call with the same nets in force."""
    state: _Sampling | None = getattr(_local, "state", None)
    if state is not None:
        state.controls = tuple(active)


def _begin_call(hooks: _Hooks, args, kwargs) -> None:
    """Before each UNet call in a `caching` thread: full or shallow, and with which feature."""
    state: _Sampling | None = getattr(_local, "state", None)
    if state is None:
        return
    sample = args[0] if args else kwargs["sample"]
    state.key = (int(sample.shape[-2]), int(sample.shape[-1]))
    state.rows = int(sample.shape[0])
    state.conditioning = (conditioning(kwargs), state.controls)
    state.controls = ()
    slot, k = state.slot, state.evaluation
    state.slot += 1
    state.feature = None
    if state.read is not None:
        try:
            state.feature = _expanded(state.read.features[(k, slot)], sample.shape[0])
        except KeyError:
            raise RuntimeError(f"no deep feature recorded for UNet evaluation {k + 1}: the frame that holds them "
                               "was sampled with other settings") from None
    elif state.interval > 0 and k % (state.interval + 1) != 0 and slot in state.held:
        feature, kept_for = state.held[slot]
        state.feature = feature if kept_for == state.conditioning else None
    if state.feature is not None and state.record is not None:
        state.record.features[(k, slot)] = state.feature
    with hooks.lock:
        if state.feature is None:
            hooks.full += 1
        else:
            hooks.shallow += 1


class _Evaluations:
    """A denoiser wrapped so that each call starts a new evaluation (slots count UNet calls within it)."""

    def __init__(self, denoise, state: _Sampling):
        self.denoise, self.state = denoise, state

    def __call__(self, *args, **kwargs):
        self.state.evaluation += 1
        self.state.slot = 0
        return self.denoise(*args, **kwargs)


@contextmanager
def frame_features(read: Recording | None = None, record: Recording | None = None):
    """Within this block (this thread only), samplings read deep features from `read` / keep them in `record`."""
    before = getattr(_local, "frame", None)
    _local.frame = (read, record)
    try:
        yield
    finally:
        _local.frame = before


@contextmanager
def caching(interval: int):
    """Within this block (this thread only) one sampling caches deep features; yields `wrap(denoise)`.

    The sampler must be given the wrapped denoiser, which counts the evaluations."""
    read, record = getattr(_local, "frame", None) or (None, None)
    before = getattr(_local, "state", None)
    _local.state = state = _Sampling(int(interval), read, record)
    try:
        yield lambda denoise: _Evaluations(denoise, state)
    finally:
        _local.state = before


def counts(unet: torch.nn.Module) -> dict[str, int]:
    """UNet calls so far on this UNet under `caching`: full (the deep blocks ran) and shallow."""
    hooks = getattr(unet, MARK, None)
    return {"full": hooks.full, "shallow": hooks.shallow} if hooks is not None else {"full": 0, "shallow": 0}


def full_evaluations(evaluations: int, interval: int) -> int:
    """How many of `evaluations` are full with cache:interval (the formula the tests check against)."""
    return -(-evaluations // (interval + 1))


class WindowFeatures:
    """cache:N for windowed painters: the features each window held at its last full evaluation.

    The clip's sampler calls every window once per evaluation k (counted from the clip's first step);
    `evaluation(window, k)` makes the UNet calls inside it (this thread) full or shallow by the rule
    above, with that window's own held features. A window whose features are missing at a shallow
    evaluation (a process that did not see its last full one) runs full.
    """

    def __init__(self, interval: int):
        self.interval = int(interval)
        self.windows: dict[tuple[int, int], _Sampling] = {}
        self.lock = threading.Lock()

    @contextmanager
    def evaluation(self, window: range, k: int):
        with self.lock:
            state = self.windows.setdefault((window.start, window.stop), _Sampling(self.interval))
        state.evaluation, state.slot = int(k), 0
        before = getattr(_local, "state", None)
        _local.state = state
        try:
            yield state
        finally:
            state.feature = None
            _local.state = before


class FrameCache(KeptFrames):
    """Deep features kept across frames for one stage run (`cache-frames`), with cross-frame
    attention's interface (`crossframe.KeptFrames`), so the stage's plan drives both alike:

        fc.run(1, (), True, engine.repaint, [canvas_1])            # frame 1 records its features
        fc.run(None, (1,), False, engine.repaint, [c2, c3])        # frames 2, 3 read them
        fc.release([1])

    A unit reads the features of its one reference (its holder: the stage's plan decides which
    frames hold them).
    """

    def _new_record(self) -> Recording:
        return Recording()

    def _reading(self, refs: list, record):
        if len(refs) > 1:
            raise ValueError(f"a frame reads the deep features of one frame, not of {len(refs)}")
        return frame_features(refs[0] if refs else None, record)

    def close(self) -> None:
        self.recorded.clear()
