"""The last loaded Stable Diffusion model, kept for the next img2img run that names the same model.

The page keeps one between clicks; a settings grid hands it to each cell it paints. The stage takes it as
`run_stage("img2img", ..., model=preloaded_model(cache, settings, job))`.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.core.fileid import FileId, file_id
from vid2vid.core.progress import Job


class ModelCache:
    """Keeps the last loaded Stable Diffusion model, so that repeated debug frames and grid cells skip loading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._model: Any = None

    def get(self, s: config.Img2ImgSettings, job: Job):
        from vid2vid.diffusion.loading import load_model

        key = (s.model, s.device, s.dtype, s.prediction, tuple(s.loras), tuple(s.embeddings), _stamp(s.model),
               s.vae, _stamp(s.vae) if s.vae else ())                                     # a separate VAE too
        with self._lock:
            if key != self._key:
                self._model, self._key = None, None
                job.say(f"img2img: loading model {s.model}")
                self._model = load_model(s.model, device=s.device, dtype=s.dtype, loras=s.loras,
                                         embeddings=s.embeddings, prediction_type=s.prediction_type(),
                                         vae=s.vae, progress=job.progress)
                self._key = key
            return self._model


def _stamp(spec: str) -> FileId | None:
    """Size and time of a model file or folder, so a replaced model is loaded again."""
    p = Path(spec)
    return file_id(p) if p.exists() else None


def preloaded_model(models: ModelCache | None, settings: config.Settings, job: Job):
    """The cache's loaded model for an img2img run, or None: a Ray run loads the model on its actors (the
    stage uses Ray only when it is handed no model), so it must not get a local one."""
    if models is None or settings.ray.enabled:
        return None
    return models.get(settings.img2img, job)
