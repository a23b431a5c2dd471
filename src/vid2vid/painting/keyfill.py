"""The img2img fill of propagation (`--key-fill img2img`) reading its nearest key's attention.

With cross-frame attention on, the fill of a propagated frame joins the K/V of its nearest key
(`diffusion/crossframe.nearest_key`), recorded by sampling the key's painted output once per key.
"""
from __future__ import annotations

import time

import numpy as np

from vid2vid import config
from vid2vid.core.progress import Job


class KeyFillAttention:
    """`--key-fill img2img` with cross-frame attention (anchor, anchor-prev or bank): the fill of
    frame t (0-based) joins the K/V of its nearest key (`crossframe.nearest_key`; between two keys,
    in the frame's own shot). The key's K/V are recorded by sampling the key's painted output with
    the fill's own engine (the fill's schedule and seed rule, the whole frame, a batch of one, with
    the key's ControlNet images) once per key, and kept while the frames near it are filled; the
    frames come in order, so each key is sampled at most once a run. Extra cost: one light
    sampling per key that some fill reads (`record()` says how many and how long).

    fill(t, frame, hole) is the plain fill; key_input(k) gives key k's painting and control images.
    """

    def __init__(self, engine, s: config.Img2ImgSettings, keys: list[int], fill, job: Job, key_input):
        from vid2vid.diffusion.crossframe import CrossFrame

        self.engine, self.keys, self.fill, self.job, self.key_input = engine, sorted(keys), fill, job, key_input
        self.xf = CrossFrame(engine.model.unet, "anchor", s.cross_frame_blocks, s.cross_frame_bank)
        self.key_samplings, self.key_seconds, self.fill_seconds = 0, 0.0, 0.0
        self.read: list[tuple[int, int]] = []        # (frame, key) of each fill, in order
        job.say(f"propagate: the img2img fill reads its nearest key's attention (cross-frame {s.cross_frame}); "
                "one light sampling per key it reads")

    def __call__(self, t: int, frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
        from vid2vid.diffusion.crossframe import nearest_key

        k = nearest_key(t, self.keys)
        if k not in self.xf.recorded:
            self.xf.release(list(self.xf.recorded))          # the frames before are done with their key
            image, controls = self.key_input(k)
            t0 = time.perf_counter()
            self.xf.run(k, (), True, self.engine.generate, [image], controls=controls)
            self.key_seconds += time.perf_counter() - t0
            self.key_samplings += 1
        t0 = time.perf_counter()
        out = self.xf.run(None, (k,), False, self.fill, t, frame, hole)
        self.fill_seconds += time.perf_counter() - t0
        self.read.append((t, k))
        return out

    def record(self) -> dict:
        """What the stage records: key samplings, their seconds and the fills' seconds."""
        return {"fill_key_samplings": self.key_samplings, "fill_key_seconds": round(self.key_seconds, 3),
                "fill_seconds": round(self.fill_seconds, 3),
                "fill_cross_frame_peak_mb": round(self.xf.peak_bytes / 2 ** 20, 1)}

    def close(self) -> None:
        self.xf.close()
