"""The key-frame setting ({propagate.keyframes}): 'off', 'every:K' or 'motion:T', optionally followed by
'+fast' or '+fast:F' (every frame after a pair whose motion reaches F pixels is a key too), read in one place."""
from __future__ import annotations

import math
from dataclasses import dataclass

from vid2vid.core.errors import BadInput


@dataclass(frozen=True)
class KeySpec:
    """How key frames are chosen: mode "off", "every" (value = K frames) or "motion" (value = T pixels);
    fast > 0: also every frame after a source pair whose mean motion reaches `fast` pixels."""

    mode: str = "off"
    value: float = 0.0
    fast: float = 0.0

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def __str__(self) -> str:
        if self.mode == "off":
            return "off"
        return f"{self.mode}:{self.value:g}" + (f"+fast:{self.fast:g}" if self.fast else "")


FAST_MOTION = 6.0       # pixels of mean motion in one frame pair that make '+fast' add a key (at the frame size;
                        # on media/real-img2img-dev the 90th percentile of its pairs, the fast arm of frames 70-71)


def parse_keyframes(text: str) -> KeySpec:
    """'off', 'every:K' (an integer K >= 1) or 'motion:T' (T > 0 pixels), then optionally '+fast' (F =
    FAST_MOTION) or '+fast:F' (F > 0 pixels) -> KeySpec; BadInput otherwise."""
    spec = (text or "off").strip().lower()
    if spec == "off":
        return KeySpec()
    spec, plus, extra = spec.partition("+")
    base = _parse_base(spec, text)
    if not plus:
        return base
    name, sep, value = extra.strip().partition(":")
    if name != "fast":
        raise BadInput(f"{{propagate.keyframes}} '{text}': after '+' give fast or fast:F (F pixels of motion in "
                       f"one frame pair that make a key), e.g. every:4+fast")
    try:
        fast = float(value) if sep else FAST_MOTION
    except ValueError:
        fast = float("nan")
    if not (fast > 0 and math.isfinite(fast)):
        raise BadInput(f"{{propagate.keyframes}} '{text}': F in +fast:F must be a positive number of pixels")
    return KeySpec(base.mode, base.value, fast)


def _parse_base(spec: str, text: str) -> KeySpec:
    """'every:K' or 'motion:T' (lower case, stripped) -> KeySpec; `text`: the setting as given, for messages."""
    mode, sep, value = spec.strip().partition(":")
    if not sep or mode not in ("every", "motion"):
        raise BadInput(f"{{propagate.keyframes}} '{text}' is not known; use off, every:K (e.g. every:4) "
                       f"or motion:T (e.g. motion:24, pixels of motion between keys)")
    try:
        v = float(value)
    except ValueError:
        raise BadInput(f"{{propagate.keyframes}} '{text}' needs a number after '{mode}:'; "
                       f"e.g. every:4 or motion:24") from None
    if mode == "every" and (v != int(v) or v < 1):
        raise BadInput(f"{{propagate.keyframes}} '{text}': K must be a whole number of frames, 1 or more")
    if mode == "motion" and not (v > 0 and math.isfinite(v)):
        raise BadInput(f"{{propagate.keyframes}} '{text}': T must be a positive number of pixels")
    return KeySpec(mode, v)
