"""vid2vid: a video re-painted by Stable Diffusion, frame by frame, kept temporally stable.

Library API (the same calls the command line and the web UI make)::

    from vid2vid import Settings, run
    result = run("input.mp4", settings)
"""
from __future__ import annotations

__version__ = "0.1.0"   # the one place the version is written; pyproject.toml reads it from here
__all__ = ["Settings", "run", "__version__"]


def __getattr__(name: str):
    # lazy, so that `import vid2vid` stays light (torch and diffusers load only when needed)
    if name == "Settings":
        from vid2vid.config import Settings

        return Settings
    if name == "run":
        from vid2vid.pipeline.runner import run

        return run
    raise AttributeError(f"module 'vid2vid' has no attribute {name!r}")
