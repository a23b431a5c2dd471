"""The key-frame setting ({propagate.keyframes}): 'off', 'every:K' or 'motion:T', read in one place."""
from __future__ import annotations

import math
from dataclasses import dataclass

from vid2vid.core.errors import BadInput


@dataclass(frozen=True)
class KeySpec:
    """How key frames are chosen: mode "off", "every" (value = K frames) or "motion" (value = T pixels)."""

    mode: str = "off"
    value: float = 0.0

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def __str__(self) -> str:
        return "off" if self.mode == "off" else f"{self.mode}:{self.value:g}"


def parse_keyframes(text: str) -> KeySpec:
    """'off', 'every:K' (an integer K >= 1) or 'motion:T' (T > 0 pixels) -> KeySpec; BadInput otherwise."""
    spec = (text or "off").strip().lower()
    if spec == "off":
        return KeySpec()
    mode, sep, value = spec.partition(":")
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
