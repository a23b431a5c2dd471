"""The painters: what turns a unit of work into painted frames, and the one line each takes here.

A painter is one module in this package. It defines:

    NAME: str                    the painter's name in messages and records
    WINDOWED: bool               False: a unit is one frame (or a batch of frames painted alike);
                                 True: windows of consecutive frames blended at every step (painting/windows.py)
    applies(settings) -> bool    whether the settings ask for this painter
    check(settings)              the models exist and fit, nothing loaded (BadInput with {section.field})
    refuse(settings)             settings that do not apply to this painter: one BadInput saying why
    load(settings, job, model=None) -> session

A frame painter's session has `paint(unit, canvases, masks, controls) -> list[np.ndarray]`,
`canvas_masks(masks)`, `sequential`, `device`, `timings`, `describe()`, `record()` and `close()`;
the unit loop (`painting/loop.py`) owns everything around it: order, resume, in-order atomic
writes, progress, interrupt, workers and Ray actors.

To add a painter: write `painting/painters/<name>.py` with the names above, and add its module
name to `PAINTERS` before the image painter (the first painter whose `applies` is true paints).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from vid2vid import config

# In order of precedence: the first whose `applies(settings)` is true paints; the image painter last.
PAINTERS: tuple[str, ...] = (
    "vid2vid.painting.painters.wan_vace",
    "vid2vid.painting.painters.animatediff",
    "vid2vid.painting.painters.image",
)


def choose(settings: config.Settings) -> ModuleType:
    """The painter module that paints under these settings."""
    for name in PAINTERS:
        module = importlib.import_module(name)
        if module.applies(settings):
            return module
    raise RuntimeError("no painter applies; the image painter must be last in PAINTERS")
