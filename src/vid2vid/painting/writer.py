"""The in-order end of the unit loop: correct each painted frame against the previous output, write
it atomically, count it, and copy the still frames that follow it.

    o_t, m_t  = fdc.correct_frame(g_t, o_(t-1), d_t, ...)   (stats method, every frame painted;
                                                               the flow method and key frames correct later)
    img2img/t.png <- o_t, motionmask/t.png <- the motion mask used

The previous output is always taken as written (8-bit PNG), so a run resumed after a crash reads
o_(t-1) back from disk and produces exactly the frames an uninterrupted run would. A still frame's
output is a byte copy of the output before it (`painting/still.py`).
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.core import imageops
from vid2vid.core.errors import Interrupted
from vid2vid.core.workspace import frame_name
from vid2vid.painting import still
from vid2vid.painting.inputs import FrameJob
from vid2vid.temporal import fdc


class InlineWriter:
    """The writer of a run whose next frame reads the previous output: handles each item at once."""

    def __init__(self, handle: Callable[..., None]):
        self.handle = handle

    def put(self, *item) -> None:
        self.handle(*item)

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FrameWriter:
    """Writes painted frames of one run in frame order (see the module docstring)."""

    settings: config.Settings
    targets: dict[int, Path]                 # frame -> its output file
    mask_dir: Path
    missing: set[int]                        # frames this run must still write
    tracker: object                          # job.tracker: advance() per frame written
    keyed: bool = False                      # key frames only: no correction between them
    still_plan: dict[int, tuple[int, float]] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def __post_init__(self) -> None:
        self.prev_out: dict[int, np.ndarray] = {}
        self.follow = still.painted_before(self.still_plan, max(self.targets, default=0))
        self.out_dir = self.targets[min(self.targets)].parent if self.targets else self.mask_dir

    def copy_earlier_stills(self) -> None:
        """Still frames whose previous output a former run wrote."""
        for t in sorted(self.still_plan):
            if t in self.missing and self.targets[t - 1].exists():
                self.copy_still(t)

    def copy_still(self, t: int) -> None:
        if t not in self.missing:
            return
        still.copy_output(self.targets[t - 1], self.targets[t])
        still.record(self.out_dir, t, *self.still_plan[t])
        self.missing.discard(t)
        if t - 1 in self.prev_out:
            self.prev_out[t] = self.prev_out.pop(t - 1)
        self._advance()

    def previous(self, i: int) -> np.ndarray | None:
        """o_(i-1) as written: from this run's memory, or read back from disk after a resume."""
        if i == 1:
            return None
        if i - 1 in self.prev_out:
            return self.prev_out.pop(i - 1)
        return imageops.read_image(self.targets[i - 1])

    def previous_output(self, i: int) -> np.ndarray:
        """o_(i-1) as written, kept for the next frame (flow init reads it before the writer does)."""
        return self.prev_out[i - 1] if i - 1 in self.prev_out else imageops.read_image(self.targets[i - 1])

    def frame(self, fj: FrameJob, generated: np.ndarray) -> None:
        """Correct and write one frame (a frame painted only to keep its batch whole is skipped)."""
        if fj.index not in self.missing:
            return
        c = self.settings.correct
        t0 = time.perf_counter()
        if c.method == "stats" and not self.keyed:
            out, mask = fdc.correct_frame(generated, self.previous(fj.index), fj.delta, c, depth=fj.depth)
        else:             # a sequence-level method (flow) corrects later, in its own stage
            out, mask = generated, None
        if mask is None and c.spatial_mask == "motion":
            mask = fj.spatial
        out8 = imageops.to_uint8(out)
        t1 = time.perf_counter()
        if mask is not None and (c.delta_mask == "motion" or c.spatial_mask == "motion"):
            imageops.write_mask(self.mask_dir / frame_name(fj.index), mask)
        imageops.write_image(self.targets[fj.index], out8)
        if not self.keyed:
            self.prev_out[fj.index] = imageops.to_float(out8)
        self.times["correct"] += t1 - t0
        self.times["write"] += time.perf_counter() - t1
        self.missing.discard(fj.index)
        self._advance()
        for t in self.follow.get(fj.index, ()):
            self.copy_still(t)

    def batch(self, batch: list[FrameJob], generated: list[np.ndarray]) -> None:
        for fj, g in zip(batch, generated):
            self.frame(fj, g)

    def _advance(self) -> None:
        try:
            self.tracker.advance()       # type: ignore[attr-defined]
        except Interrupted:
            pass          # the loop stops before the next unit; frames already painted are kept

