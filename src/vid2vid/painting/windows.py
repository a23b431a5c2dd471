"""Windows of frames denoised together and blended at every step: the machinery of windowed painters.

A video model (an SD UNet with motion modules, a video DiT) denoises a window of consecutive
frames at once. A clip longer than a window is cut into overlapping windows (`plan_windows`);
at every sampling step each window is denoised and the predictions are blended with weights
that sum to 1 on every frame (`blend_weights`: flat, or pyramid = more weight towards a
window's middle), so no seam shows where windows meet. The sampler's update then runs once on
the whole clip: the samplers of `diffusion/samplers.py` (and `diffusion/fewstep.py`) in their
step form, with the blended prediction as their denoiser.

The interface a windowed painter supplies (everything model-specific; nothing here knows it):

    class MyWindowModel:                                  # the WindowModel protocol below
        def predict(self, x, sigma, frames, evaluation=0) -> denoised
                                # x: (F, C, h, w) latents of the frames `frames` (a range of clip frame
                                # numbers) at noise level sigma (a (F,) tensor); returns the predicted
                                # clean latents, same shape (the k-diffusion denoiser D(x, sigma) of one
                                # window); `evaluation` counts the clip denoiser's calls from the first
                                # step (a model that keeps features from call to call reads it)

and, to run it: `encode()` the clip into latents (N, C, h, w) frame by frame, the real sigmas,
the sampler step, then `sample_clip(...)` and decode frame by frame. Noise is per frame
(`frame_noise`): a frame's noise depends only on the seed and its number (FreeNoise's shuffled
noise as an option), so the same frame gets the same noise whatever the clip length or windows.

Resume: the unit is one step of the whole clip. After each step `StepStore` writes the clip's
latents together with the sampler's carry (DPM++ 2M's last prediction, LMS's derivatives) and
the state of the per-frame noise generators (ancestral samplers) to one file, atomically, then
`windows-state.json` (`steps_done`, `steps_total`, ...) for whoever watches. A killed run loses
at most the step in flight; resuming gives the same bits as an uninterrupted run. A window model
that keeps features from one evaluation to the next (deep-feature caching: a full evaluation every
`cycle`) makes only the steps after which a cycle starts resume points (`ClipSampling(cycle=...)`):
a resumed run starts with the evaluation that is full in an uninterrupted run too.

Spread: within a step the windows are independent. `LocalSpread` runs them on this process (on
`workers` threads, each with its share of the cores); `painting/windowray.py` runs them on Ray
actors. The blend adds the windows' predictions in window order on the caller, so the result is
the same bits however the windows were spread (with the same intra-op threads per window).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from vid2vid.config.choices import CONTEXT_WEIGHTINGS
from vid2vid.core import workspace as ws_mod
from vid2vid.core.errors import BadInput
from vid2vid.diffusion.samplers import BatchNoise, Carry, Step

WEIGHTINGS = CONTEXT_WEIGHTINGS
STATE_JSON = "windows-state.json"
STATE_FILE = "windows-latents.pt"
_INIT, _STEP = 0, 1                 # what a frame's seeded generator is for: initial noise, sampler noise


class WindowModel(Protocol):
    def predict(self, x: torch.Tensor, sigma: torch.Tensor, frames: range, evaluation: int = 0) -> torch.Tensor: ...


class Spread(Protocol):
    def predict_all(self, jobs: list[tuple[range, torch.Tensor]], sigma: torch.Tensor,
                    evaluation: int = 0) -> list[torch.Tensor]: ...


# ---------------------------------------------------------------- the plan

def check_context(length: int, overlap: int, trained: int | None = None, what: str = "the model") -> None:
    """BadInput unless 2 <= length <= trained (when known) and 0 <= overlap < length."""
    if length < 2:
        raise BadInput(f"{{img2img.context_length}} {length} is too short; a window needs at least 2 frames "
                       "(16 is the usual)")
    if trained is not None and length > trained:
        raise BadInput(f"{{img2img.context_length}} {length} is more than {what} was trained for ({trained} "
                       f"frames); use {trained} or fewer")
    if not 0 <= overlap < length:
        raise BadInput(f"{{img2img.context_overlap}} {overlap} must be from 0 to {length - 1} (below "
                       f"{{img2img.context_length}} {length}); 4 is the usual")


def plan_windows(frames: int, length: int, overlap: int) -> list[range]:
    """Windows of `length` consecutive frames, each starting `length - overlap` after the last; the
    last one ends on the last frame (so it may overlap its neighbour more). One window when the clip
    is no longer than `length`."""
    check_context(length, overlap)
    if frames <= length:
        return [range(0, frames)]
    stride = length - overlap
    starts = list(range(0, frames - length + 1, stride))
    if starts[-1] + length < frames:
        starts.append(frames - length)
    return [range(s, s + length) for s in starts]


def window_weights(length: int, weighting: str) -> np.ndarray:
    """One window's raw weights per frame: flat = 1 everywhere; pyramid = 1, 2, ... up to the
    middle and down again (FreeNoise's pyramid)."""
    if weighting == "flat":
        return np.ones(length)
    if weighting == "pyramid":
        i = np.arange(length)
        return np.minimum(i + 1, length - i).astype(np.float64)
    raise BadInput(f"{{img2img.context_weighting}} '{weighting}' is not known; use one of: {', '.join(WEIGHTINGS)}")


def blend_weights(windows: Sequence[range], frames: int, weighting: str) -> list[torch.Tensor]:
    """Per window, its frames' weights (float32) after normalising so they sum to 1 on every frame."""
    raw = [window_weights(len(w), weighting) for w in windows]
    total = np.zeros(frames)
    for w, r in zip(windows, raw):
        total[w.start:w.stop] += r
    if (total <= 0).any():
        raise ValueError("the windows do not cover every frame")
    return [torch.from_numpy(r / total[w.start:w.stop]).float() for w, r in zip(windows, raw)]


# ---------------------------------------------------------------- noise per frame

def frame_seed(seed: int, frame: int, purpose: int = _INIT) -> int:
    """A 63-bit seed made of (seed, frame number, purpose) only."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(frame), int(purpose)]).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) & 0x7FFFFFFFFFFFFFFF)


def noise_source(frame: int, length: int, overlap: int, seed: int) -> int:
    """FreeNoise's shuffled noise: the frame whose own noise frame `frame` reuses. The first window
    keeps its own; each later block of `length - overlap` frames takes the noise of the block
    `length` frames earlier in an order shuffled by (seed, block)."""
    stride = max(1, length - overlap)
    while frame >= length:
        block = (frame - length) // stride
        first = length + block * stride
        order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7, block]).permutation(stride)
        frame = first - length + int(order[frame - first])
    return frame


def frame_noise(seed: int, frames: int, shape: Sequence[int], shuffle: tuple[int, int] | None = None) -> torch.Tensor:
    """Initial noise (frames, *shape): frame f's from its own generator (seed, f); with `shuffle`
    = (context length, overlap) the FreeNoise reuse of `noise_source`."""
    out = []
    for f in range(frames):
        src = f if shuffle is None else noise_source(f, shuffle[0], shuffle[1], seed)
        g = torch.Generator("cpu").manual_seed(frame_seed(seed, src, _INIT))
        out.append(torch.randn(tuple(shape), generator=g, dtype=torch.float32))
    return torch.stack(out)


def step_noise(seed: int, frames: int, shape: Sequence[int], device: torch.device | str = "cpu") -> BatchNoise:
    """The fresh noise of stochastic samplers: one generator per frame, seeded by (seed, frame)."""
    return BatchNoise([frame_seed(seed, f, _STEP) for f in range(frames)], tuple(shape), device)


# ---------------------------------------------------------------- one step's prediction

class LocalSpread:
    """A step's windows predicted in this process, on `workers` threads (1 = inline)."""

    def __init__(self, model: WindowModel, workers: int = 1, threads: int | None = None):
        from vid2vid.core.threads import worker_pool

        self.model = model
        self.threads_before = torch.get_num_threads()
        self.pool = worker_pool(max(1, workers), threads or self.threads_before, "window")

    def predict_all(self, jobs: list[tuple[range, torch.Tensor]], sigma: torch.Tensor,
                    evaluation: int = 0) -> list[torch.Tensor]:
        futures = [self.pool.submit(self.model.predict, xw, sigma[:len(frames)], frames, evaluation)
                   for frames, xw in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.pool.shutdown()
        torch.set_num_threads(self.threads_before)     # the workers' threads set the process-wide count


class Blended:
    """The clip's denoiser D(x, sigma): every window predicted, then blended with its weights (in
    window order, so the bits do not depend on how the windows were spread). `evaluations` counts
    its calls from the clip's first step (`start`: those made before a resume)."""

    def __init__(self, spread: Spread, windows: Sequence[range], weights: Sequence[torch.Tensor], start: int = 0):
        self.spread, self.windows, self.weights, self.evaluations = spread, windows, weights, int(start)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        k, self.evaluations = self.evaluations, self.evaluations + 1
        outs = self.spread.predict_all([(w, x[w.start:w.stop]) for w in self.windows], sigma, k)
        total = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for w, wt, out in zip(self.windows, self.weights, outs):
            total[w.start:w.stop] += out.float().to(x.device) * wt.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        return total


# ---------------------------------------------------------------- the per-step state

class StepStore:
    """The clip's latents after the last finished step, with the sampler's carry and the noise
    generators' states, in `folder/windows-latents.pt`; progress in `folder/windows-state.json`.

    `key` names the settings the state belongs to: a state of other settings (or shape) is not used.
    """

    def __init__(self, folder: str | Path, key: str, steps_total: int, info: dict | None = None):
        self.folder, self.key, self.steps_total = Path(folder), str(key), int(steps_total)
        self.info = dict(info or {})

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    def load(self, shape: Sequence[int]) -> dict | None:
        """The saved state ({'steps_done', 'x', 'carry', 'noise', 'evaluations'}) if it fits; else None."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:                   # a torn or foreign file: start the steps again
            return None
        if (state.get("key") != self.key or tuple(state["x"].shape) != tuple(shape)
                or not 0 < int(state["steps_done"]) <= self.steps_total):
            return None
        return state

    def save(self, steps_done: int, x: torch.Tensor, carry: Carry, noise: BatchNoise | None,
             evaluations: int = 0) -> None:
        state = {"key": self.key, "steps_done": int(steps_done), "evaluations": int(evaluations),
                 "x": x.detach().cpu(),
                 "carry": _to_cpu(carry),
                 "noise": [] if noise is None else [g.get_state() for g in noise.generators]}
        with ws_mod.atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        self.write_json(steps_done)

    def write_json(self, steps_done: int, **extra) -> None:
        ws_mod.atomic_write_json(self.folder / STATE_JSON, {
            "steps_done": int(steps_done), "steps_total": self.steps_total, "key": self.key,
            **self.info, **extra})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _to_cpu(value):
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_cpu(v) for v in value]
    return value


def _to_device(value, device: torch.device):
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    return value


# ---------------------------------------------------------------- the loop over steps

class ClipSampling:
    """What one windowed run samples: the windows, their weights, the schedule, the step and the noise."""

    def __init__(self, frames: int, latent_shape: Sequence[int], sigmas: torch.Tensor, step: Step,
                 seed: int, length: int, overlap: int, weighting: str = "flat", init_noise: float = 1.0,
                 shuffle_noise: bool = False, device: torch.device | str = "cpu", cycle: int = 1):
        self.frames, self.shape = int(frames), tuple(latent_shape)
        self.sigmas, self.step, self.seed = sigmas, step, int(seed)
        self.windows = plan_windows(frames, length, overlap)
        self.weights = blend_weights(self.windows, frames, weighting)
        self.init_noise, self.device = float(init_noise), torch.device(device)
        self.shuffle = (length, overlap) if shuffle_noise else None
        self.cycle = max(1, int(cycle))     # a step is a resume point when the evaluations done are a multiple

    @property
    def steps_total(self) -> int:
        return len(self.sigmas) - 1

    def start(self, init: torch.Tensor) -> torch.Tensor:
        """x at the first sigma: init latents + init noise weight * noise * sigma_0."""
        noise = frame_noise(self.seed, self.frames, self.shape, self.shuffle).to(init.device)
        return init.float() + noise * (self.init_noise * float(self.sigmas[0]))

    def run(self, spread: Spread, encode: Callable[[], torch.Tensor], store: StepStore | None = None,
            on_step: Callable[[int], None] | None = None) -> torch.Tensor:
        """The sampled clip latents (N, C, h, w). `encode()` gives the init latents; it is not called
        when `store` holds a state of these settings (the run goes on after its last finished step)."""
        full = (self.frames, *self.shape)
        noise = step_noise(self.seed, self.frames, self.shape, self.device)
        state = None if store is None else store.load(full)
        if state is None:
            x, carry, done, evaluations = self.start(encode().to(self.device)), {}, 0, 0
        else:
            x, done = state["x"].to(self.device), int(state["steps_done"])
            evaluations = int(state.get("evaluations", 0))
            carry = _to_device(state["carry"], self.device)
            for g, s in zip(noise.generators, state["noise"]):
                g.set_state(s)
        denoise = Blended(spread, self.windows, self.weights, evaluations)
        sigmas = self.sigmas.to(self.device)
        with torch.no_grad():
            for i in range(done, self.steps_total):
                x, _ = self.step(denoise, x, sigmas, i, carry, noise)
                resumable = denoise.evaluations % self.cycle == 0 or i + 1 == self.steps_total
                if store is not None and resumable:
                    store.save(i + 1, x, carry, noise, denoise.evaluations)
                if on_step is not None:
                    on_step(i + 1)
        return x


def paint_clip(sampling: ClipSampling, spread: Spread, encode_frame: Callable[[int], torch.Tensor],
               decode_frame: Callable[[torch.Tensor], np.ndarray], write: Callable[[int, np.ndarray], None],
               store: StepStore | None = None, on_step: Callable[[int], None] | None = None,
               skip: Callable[[int], bool] = lambda i: False) -> torch.Tensor:
    """A whole clip through a model whose latents are one per frame: frames encoded one at a time,
    the steps (resumable through `store`), then each frame decoded and handed to `write(i, image)`
    before the next is decoded (frames that `skip(i)` says are written already are not decoded).
    Memory holds the clip's latents and the windows in flight, never all the frames' pixels."""
    x = sampling.run(spread, lambda: torch.cat([encode_frame(i) for i in range(sampling.frames)]), store,
                     on_step)
    for i in range(sampling.frames):
        if not skip(i):
            write(i, decode_frame(x[i:i + 1]))
    return x
