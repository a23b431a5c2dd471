"""The img2img stage's run of a windowed painter: the whole clip, step by step, then frame by frame out.

    1. the source frames fitted to the canvas and encoded one at a time (skipped when resuming steps)
    2. every sampling step over the whole clip (`windows.ClipSampling`): windows predicted locally or on
       Ray actors, blended, the sampler's update; after each step the latents and the sampler's carry
       go to `img2img/windows-latents.pt` and the progress to `img2img/windows-state.json`
    3. each frame decoded and handed to the frame writer (frame delta correction, atomic write, progress)
       before the next is decoded; frames written before a kill are not decoded again; when all are
       written the latents file goes (`windows-state.json` stays, saying every step is done)

The state's key is the stage's key, so a state left by other settings is not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.core import imageops
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.painting import controls as control_files
from vid2vid.painting import windows
from vid2vid.painting.inputs import canvases, frame_jobs
from vid2vid.painting.writer import FrameWriter


def control_reader(ws: Workspace, s: config.Img2ImgSettings):
    """controls(frames) -> the control stage's images [frame][net] of 0-based `frames`; None without nets."""
    if not s.controlnet:
        return None

    def controls(frames: range) -> list[list[np.ndarray]]:
        return [[imageops.read_image(control_files.image_path(ws, n, cn, i + 1))
                 for n, cn in enumerate(s.controlnet, 1)] for i in frames]

    return controls


def spread_for(settings: config.Settings, session, controls, job: Job, n_windows: int):
    """Where a step's windows run: Ray actors when asked, else this process on the model workers the
    frame loop would use for as many batches as there are windows (`loop.model_workers`)."""
    import torch

    if not settings.ray.enabled:
        from vid2vid.painting.loop import model_workers

        workers, threads = model_workers(settings.img2img.workers, session.device.type, n_windows,
                                         torch.get_num_threads())
        if workers > 1:
            job.say(f"img2img: windows on {workers} model workers, {threads} CPU thread(s) each")
        return windows.LocalSpread(session.window_model(controls), workers, threads)
    from vid2vid.painting.rayactors import connect
    from vid2vid.painting.windowray import RaySpread

    ray = connect(settings.ray)
    threads = settings.ray.threads or torch.get_num_threads()
    actors = settings.ray.actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    job.say(f"img2img: windows on {actors} Ray actor(s), {threads} CPU thread(s) each")
    return RaySpread(session.factory(), actors, threads, controls)


def paint_windowed(ws: Workspace, settings: config.Settings, job: Job, session, frames: list[Path], key: str,
                   writer: FrameWriter) -> None:
    """Steps 1-3 of the module docstring for every frame of the workspace."""
    s, n = settings.img2img, len(frames)
    sampling = session.sampling(n)
    store = windows.StepStore(ws.path("img2img"), key, sampling.steps_total,
                              {"painter": session.describe().get("painter", ""), "frames": n,
                               "windows": [[w.start + 1, w.stop] for w in sampling.windows]})
    state = store.load((n, *sampling.shape))
    done = 0 if state is None else int(state["steps_done"])
    steps = job.tracker("img2img steps", sampling.steps_total, done=done)
    job.say(f"img2img: {n} frames in {len(sampling.windows)} window(s) of {min(s.context_length, n)}, "
            f"{sampling.steps_total} step(s)" + (f", resuming after step {done}" if done else ""))
    source = iter(canvases(frames, s))
    spread = spread_for(settings, session, control_reader(ws, s), job, len(sampling.windows))
    try:
        x = sampling.run(spread, lambda: _encode_all(session, source, n), store, lambda i: steps.advance())
    finally:
        getattr(spread, "close", lambda: None)()
    for fj in frame_jobs(ws, frames, list(range(1, n + 1)), settings):
        if fj.index in writer.missing:
            writer.frame(fj, session.decode(x[fj.index - 1:fj.index]))
        job.check()
    store.clear()                     # every frame is written: the latents are not needed any more


def _encode_all(session, source, n: int):
    import torch

    return torch.cat([session.encode(next(source)) for _ in range(n)])
