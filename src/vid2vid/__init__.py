"""vid2vid: a video re-painted by Stable Diffusion, frame by frame, kept temporally stable."""
from __future__ import annotations

__version__ = "0.1.0"
