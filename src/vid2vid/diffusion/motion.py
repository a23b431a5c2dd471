"""AnimateDiff motion modules inside an SD UNet: temporal attention across the frames of a batch.

A motion module (diffusers' `MotionAdapter`) holds one temporal transformer per UNet layer:
down and up blocks have one after each layer (after the layer's cross-attention where the block
has it, else after its ResNet), the mid block one after its cross-attention. diffusers builds a
second UNet (`UNetMotionModel`) with the modules in place; here they are hooked onto the model's
own `UNet2DConditionModel` instead (`MotionLayers.install`), so the weights are not copied, LoRAs
and ControlNets apply as they do for single frames, and the image painter sharing the model sees
no change: the hooks act only inside `with layers.frames(n):` (per thread), where the batch is
n consecutive frames (or 2n with classifier-free guidance: uncond frames, then cond frames).

Each hooked layer's output h becomes h + scale * (M(h) - h), M the temporal transformer (which
returns h plus its own residual): scale 1 is AnimateDiff, 0 removes the motion layers, between
weakens them (the motion scale of AnimateDiff-Evolved).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

_state = threading.local()


def _frames() -> int | None:
    return getattr(_state, "frames", None)


def _slots(unet, adapter) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
    """(UNet layer whose output the module reads, motion module) in diffusers' `UNetMotionModel` order."""
    pairs = []
    ups = [(u, a) for u, a in zip(unet.down_blocks, adapter.down_blocks)]
    ups += [(u, a) for u, a in zip(unet.up_blocks, adapter.up_blocks)]
    for block, motion in ups:
        layers = getattr(block, "attentions", None) or block.resnets
        if len(layers) != len(motion.motion_modules):
            raise ValueError(f"the motion module has {len(motion.motion_modules)} layers where the UNet block "
                             f"has {len(layers)}")
        pairs += list(zip(layers, motion.motion_modules))
    if getattr(adapter, "mid_block", None) is not None:
        pairs += list(zip(unet.mid_block.attentions, adapter.mid_block.motion_modules))
    return pairs


class MotionLayers:
    """Motion modules hooked onto a UNet; `frames(n)` turns them on for the calls inside it."""

    def __init__(self, unet, adapter, scale: float = 1.0):
        self.unet, self.adapter, self.scale = unet, adapter, float(scale)
        p = next(unet.parameters())
        adapter.to(p.device, p.dtype).eval()
        self.handles = [layer.register_forward_hook(self._hook(module)) for layer, module in _slots(unet, adapter)]

    def _hook(self, module):
        def hook(layer, args, output):
            n = _frames()
            if n is None or self.scale == 0.0:
                return output
            h = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
            moved = module(h, num_frames=n)
            if self.scale != 1.0:
                moved = h + self.scale * (moved - h)
            if isinstance(output, tuple):
                return (moved, *output[1:])
            if hasattr(output, "sample"):
                output.sample = moved
                return output
            return moved

        return hook

    @contextmanager
    def frames(self, n: int):
        """UNet calls inside see batches of `n` consecutive frames (times the guidance halves)."""
        before = _frames()
        _state.frames = int(n)
        try:
            yield self
        finally:
            _state.frames = before

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def max_frames(adapter) -> int:
    """The longest window the module was trained for (its positional table's length)."""
    return int(adapter.config.get("motion_max_seq_length", 32))
