"""The img2img stage's Wan VACE run: a workspace's frames through `painting/wan_clip.py`.

    1. the window inputs are read from the workspace when a window first needs them (the source
       frames fitted to the canvas, the control image of `{img2img.video_control}` made from each,
       the spatial masks of `{correct.spatial_mask}` when set): memory holds one window's pixels
    2. every sampling step over the whole clip's latents (`windows.ClipSampling`): windows on this
       process or on Ray actors (`painting/windowrun.py: spread_for`), blended; after each step the latents go to
       `img2img/windows-latents.pt` and the progress to `img2img/windows-state.json`
    3. the latents decoded one latent frame at a time, each frame handed to the frame writer (frame
       delta correction, atomic write, progress); frames written before a kill are decoded again (the
       decode is causal) but not written again; when all are written the latents file goes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vid2vid import config
from vid2vid.core import imageops
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.painting import wan_clip, windows
from vid2vid.painting.inputs import frame_jobs, read_depth
from vid2vid.painting.windowrun import spread_for


class ClipInputs:
    """A workspace's window inputs, read on demand (picklable: Ray actors read them where they run)."""

    def __init__(self, root: str | Path, frames: list[Path], settings: config.Settings):
        self.root, self.frames, self.settings = str(root), list(frames), settings
        s = settings.img2img
        self.users = None
        if s.video_control == "folder":
            from vid2vid.video.controlimages import user_images

            self.users = user_images(s.video_control_folder, len(frames))

    def source(self, idx) -> list[np.ndarray]:
        s = self.settings.img2img
        return [imageops.fit(imageops.read_image(self.frames[i]), s.width, s.height, s.resize) for i in idx]

    def control(self, idx) -> list[np.ndarray]:
        from vid2vid.video.controlimages import control_image

        s, out = self.settings.img2img, []
        for i, canvas in zip(idx, self.source(idx)):
            depth = read_depth(Workspace(self.root), self.frames[i], s.width, s.height, s.resize) \
                if s.video_control == "depth" else None
            user = None if self.users is None else \
                imageops.fit(imageops.read_image(self.users[i]), s.width, s.height, s.resize)
            image = control_image(s.video_control, imageops.to_uint8(canvas), depth=depth, user=user)
            out.append(image.astype(np.float32) / 255.0)
        return out

    def mask(self, idx) -> list[np.ndarray]:
        """White = repaint; frame 1 of a motion mask (no change before it) repaints everything."""
        s = self.settings.img2img
        wanted = sorted(set(i + 1 for i in idx))
        masks = {fj.index: fj.spatial for fj in frame_jobs(Workspace(self.root), self.frames, wanted, self.settings)}
        full = np.ones((s.height, s.width), np.float32)
        out = []
        for i in idx:
            m = masks[i + 1]
            out.append(full if m is None else m[..., 0])
        return out


def window_model(parts, settings: config.Settings, inputs: ClipInputs, prompts, references) -> wan_clip.WanWindows:
    s = settings.img2img
    masked = settings.correct.spatial_mask != "none"
    return wan_clip.WanWindows(parts, len(inputs.frames), inputs.control, prompts[0], prompts[1], s.cfg,
                               s.video_control_scale, references, inputs.mask if masked else None,
                               inputs.source, s.seed)


def load_parts(settings: config.Settings):
    from vid2vid.diffusion.wan_loading import load_video_model

    s = settings.img2img
    return load_video_model(s.video_model, s.device, s.dtype)


def prompts_of(parts, s: config.Img2ImgSettings):
    """(prompt embeddings, negative ones or None when CFG is off)."""
    from vid2vid.diffusion.wan_vace import encode_prompt

    return encode_prompt(parts, s.prompt), (encode_prompt(parts, s.negative) if s.cfg > 1 else None)


def actor_window_model(settings: config.Settings, inputs: ClipInputs, references) -> wan_clip.WanWindows:
    """What a Ray actor builds: the parts loaded there, the prompts encoded there."""
    parts = load_parts(settings)
    return window_model(parts, settings, inputs, prompts_of(parts, settings.img2img), references)


def paint_workspace(ws: Workspace, settings: config.Settings, job: Job, session, frames: list[Path], key: str,
                    writer) -> None:
    """Steps 1-3 of the module docstring for every frame of the workspace."""
    s, n = settings.img2img, len(frames)
    length, overlap = session.context
    run = wan_clip.sampling(n, (session.parts.z_dim, s.height // 8, s.width // 8), s.steps, s.flow_shift, s.seed,
                            length, overlap, s.context_weighting, s.denoise)
    store = windows.StepStore(ws.path("img2img"), key, run.steps_total,
                              {"painter": "wan-vace", "frames": n, "latent_frames": run.frames,
                               "windows": [[w.start * 4 + 1, min(n, (w.stop - 1) * 4 + 1)] for w in run.windows]})
    state = store.load((run.frames, *run.shape))
    done = 0 if state is None else int(state["steps_done"])
    steps = job.tracker("img2img steps", run.steps_total, done=done)
    job.say(f"img2img: {n} frames in {len(run.windows)} window(s) of {length} frames (overlap {overlap}), "
            f"{run.steps_total} step(s)" + (f", resuming after step {done}" if done else ""))
    session.inputs = ClipInputs(ws.root, frames, settings)
    session.refs = session.references(ws, settings, job, frames)
    model = session.window_model()
    spread = spread_for(settings, session, None, job, len(run.windows))
    try:
        painted = wan_clip.paint_clip(session.parts, model, run, spread, store, session.inputs.source,
                                      lambda i: steps.advance())
        for fj, image in zip(frame_jobs(ws, frames, list(range(1, n + 1)), settings), painted):
            if fj.index in writer.missing:
                writer.frame(fj, image)
            job.check()
    finally:
        getattr(spread, "close", lambda: None)()
    store.clear()
