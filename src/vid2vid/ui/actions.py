"""What each button of the page does: checked paths in, one library call, plain results out.

No gradio here (the page's layout is in `app.py`), so every action runs the same in tests.
Each action takes the cache folder (resolved), the workspace name the page shows, `Settings`
built by `form.settings_from_form`, and a `progress.Job`; it holds the workspace lock while
the library works, exactly as the CLI does.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from vid2vid import config
from vid2vid.config import stagetable
from vid2vid.core.errors import BadInput
from vid2vid.core.fileid import FileId, file_id
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.pipeline import runner
from vid2vid.ui import paths

# ---------------------------------------------------------------- tab 1

def take_upload(root: Path, uploaded: str | Path, original: str | None = None) -> tuple[str, str]:
    """Store an uploaded video in uploads/ and probe it -> (its path as the page shows it, the probe
    text). An upload that is not a readable video is removed again and its error raised."""
    stored = paths.store_upload(root, uploaded, original)
    rel = paths.relative(root, stored)
    try:
        return rel, probe_text(root, rel)
    except BadInput as exc:
        stored.unlink(missing_ok=True)
        raise BadInput(f"{exc.args[0]} (the upload {rel} was removed)") from exc


def probe_text(root: Path, video: str) -> str:
    """The probe summary of a video inside the cache folder."""
    from vid2vid.video.probe import format_probe, probe

    p = paths.existing_file(root, video, "video")
    return format_probe(probe(p))


def extract(root: Path, video: str, settings: config.Settings, job: Job) -> dict:
    """Extract frames of a video inside the cache into its workspace; info + the workspace name."""
    p = paths.existing_file(root, video, "video")
    ws = Workspace.for_video(p, root)
    if ws.root.exists():
        paths.check_no_links(root, ws.root, f"workspace '{ws.root.name}'")
    info = runner.run_stage("extract", ws, settings, job, video=p)
    return {**info, "workspace": ws.root.name}


# ---------------------------------------------------------------- stages on a workspace

def run_stage(root: Path, ws_name: str, stage: str, settings: config.Settings, job: Job, **extra) -> dict:
    """Run one stage of the table on a workspace of the cache, as the command line does."""
    if stage not in stagetable.BY_NAME or stagetable.stage(stage).needs_video:
        raise BadInput(f"stage '{stage}' is not known; use one of: "
                       f"{', '.join(r.name for r in stagetable.STAGES if not r.needs_video)}")
    return runner.run_stage(stage, paths.workspace(root, ws_name), settings, job, **extra)


def top_tags(root: Path, ws_name: str, k: int) -> list[tuple[str, float]]:
    """The k tags most present over the video (as the tags stage ranks them), with their scores."""
    import json

    from vid2vid.models.taggers import rank_tags
    from vid2vid.stages.tags import SUMMARY

    ws = paths.workspace(root, ws_name)
    p = ws.path(SUMMARY)
    if not p.is_file():
        return []
    per_frame = json.loads(p.read_text(encoding="utf-8"))
    return rank_tags(per_frame.values(), k)


# ---------------------------------------------------------------- tab 3

class ModelCache:
    """Keeps the last loaded Stable Diffusion model, so that repeated debug frames skip loading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._model: Any = None

    def get(self, s: config.Img2ImgSettings, job: Job):
        from vid2vid.diffusion.loading import load_model

        key = (s.model, s.device, s.dtype, s.prediction, tuple(s.loras), tuple(s.embeddings), _stamp(s.model),
               s.vae, _stamp(s.vae) if s.vae else ())                                     # issue 17: --vae
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


def img2img(root: Path, ws_name: str, settings: config.Settings, job: Job, models: ModelCache | None = None,
            single: int = 0) -> dict:
    """Batch img2img over every frame (single=0), or the debug mode: frame `single` alone.

    The debug result has `output` (the image) and `real_sigmas` (the truncated schedule used).
    With the flow-guided correction method the flow pass runs after the batch.
    """
    from vid2vid.stages import img2img as stage

    ws = paths.workspace(root, ws_name)
    s = replace(settings, img2img=replace(settings.img2img, single=int(single)))
    s.img2img.validate()
    stage.check(s)
    frames = ws.frames()
    if not frames:
        raise BadInput(f"workspace {ws_name} has no frames; extract a video first (tab 1)")
    if single:
        if single > len(frames):
            raise BadInput(f"debug frame {single} is past the last frame; the workspace has {len(frames)} frames")
        model = models.get(s.img2img, job) if models else None
        with ws.locked():
            return stage.run_single(ws, s, job, frames, model)
    # the control images (the page has no control button) are made first by run_stage, as on the command line
    return run_stage(root, ws_name, "img2img", s, job, model=preloaded_model(models, s, job))


def preloaded_model(models: ModelCache | None, settings: config.Settings, job: Job):
    """The page's loaded model for a batch run, or None: a Ray run loads the model on its actors (the
    stage uses Ray only when it is handed no model), so it must not get the page's local one."""
    if models is None or settings.ray.enabled:
        return None
    return models.get(settings.img2img, job)


def export(root: Path, ws_name: str, settings: config.Settings, job: Job) -> dict:
    """Encode a frame folder of the workspace into synth-<source>.<format> inside it."""
    s = replace(settings, export=replace(settings.export, output=""))
    info = run_stage(root, ws_name, "export", s, job)
    out = Path(info["output"]).resolve()
    if not out.is_relative_to(root):          # the default output is inside the workspace
        raise BadInput(f"export wrote {out} outside the cache folder")
    return info


def compare(root: Path, ws_name: str, job: Job) -> dict:
    """The side-by-side video of the workspace's stages, written as compare.mp4 inside it."""
    from vid2vid.temporal.compare import make_comparison

    ws = paths.workspace(root, ws_name)
    with ws.locked():
        return make_comparison(ws, job=job)


# ---------------------------------------------------------------- previews

def frame_strip(root: Path, ws_name: str, folder: str, count: int = 8) -> list[Path]:
    """Up to `count` frames of a workspace folder, evenly spread from first to last."""
    return frame_strip_counted(root, ws_name, folder, count)[0]


def frame_strip_counted(root: Path, ws_name: str, folder: str, count: int = 8) -> tuple[list[Path], int]:
    """`frame_strip` and the number of frames in the folder."""
    ws = paths.workspace(root, ws_name)
    files = ws.frames(folder)
    if len(files) <= count:
        return files, len(files)
    picks = sorted({round(i * (len(files) - 1) / (count - 1)) for i in range(count)})
    return [files[i] for i in picks], len(files)


def strip_label(title: str, shown: int, total: int) -> str:
    """A strip's title with its count: "img2img frames: 8 of 24 frames"."""
    return f"{title}: {shown} of {total} frame{'' if total == 1 else 's'}"


def mask_grid(root: Path, ws_name: str, frame: int, correct: config.CorrectSettings, tile_width: int = 160) -> Any:
    """The motion-mask grid (low-cut 0..255) of source frame `frame` (2 or later) -> uint8 sheet."""
    from vid2vid.core.imageops import read_image
    from vid2vid.temporal import fdc, fdc_debug

    ws = paths.workspace(root, ws_name)
    files = ws.frames()
    if not 2 <= frame <= len(files):
        raise BadInput(f"mask grid frame {frame} must be from 2 to {len(files)} (frame 1 has no delta)")
    delta = fdc.frame_delta(read_image(files[frame - 2]), read_image(files[frame - 1]))
    return fdc_debug.motion_mask_grid(delta, correct.motion_highext, tile_width=tile_width)


def fdc_sheet(root: Path, ws_name: str, frame: int, settings: config.Settings, tile_width: int = 256) -> Any:
    """The FDC debugger sheet of frame `frame` (2 or later) from the generated frames -> uint8 sheet.

    The generated frame is img2img/ (already corrected, as `vid2vid fdc-debug` reads it); the
    source delta is taken at the canvas size the img2img stage used.
    """
    from vid2vid.core import imageops
    from vid2vid.temporal import fdc, fdc_debug

    ws = paths.workspace(root, ws_name)
    src, gen = ws.frames(), ws.frames("img2img")
    if len(gen) < 2:
        raise BadInput("the FDC debugger needs at least two generated frames; run batch img2img first")
    if not 2 <= frame <= min(len(src), len(gen)):
        raise BadInput(f"FDC debugger frame {frame} must be from 2 to {min(len(src), len(gen))}")
    s = settings.img2img
    fit = [imageops.fit(imageops.read_image(p), s.width, s.height, s.resize) for p in src[frame - 2:frame]]
    delta = fdc.frame_delta(fit[0], fit[1])
    depth = None
    if settings.correct.delta_mask == "depth":
        from vid2vid.painting.inputs import read_depth
        depth = read_depth(ws, src[frame - 1], s.width, s.height, s.resize)
    return fdc_debug.fdc_sheet(imageops.read_image(gen[frame - 2]), imageops.read_image(gen[frame - 1]), delta,
                               settings.correct, depth=depth, tile_width=tile_width)


def sigma_views(root: Path, values: dict[str, Any]) -> tuple[Any, str]:
    """The live sigma preview (plot, real sigmas text) from one snapshot of the schedule fields (settings
    key -> widget value). A bad value gives a plot that says so and the message, never the old curves."""
    from vid2vid.core.errors import Vid2VidError
    from vid2vid.diffusion.plot import message_figure
    from vid2vid.ui import form

    try:
        s = form.settings_from_form(values, root, sections=("img2img",)).img2img
        return sigma_plot(s), real_sigmas_text(s)
    except Vid2VidError as exc:
        text = f"Error: {form.error_text(exc).strip()}"
        return message_figure(f"No preview: {form.error_text(exc).strip()}"), text


def sigma_plot(settings: config.Img2ImgSettings):
    """The live sigma plot (a matplotlib Figure) for the schedule widgets."""
    from vid2vid.diffusion.plot import plot_sigmas

    return plot_sigmas(settings.steps, settings.denoise, settings.sigma_min, settings.sigma_max, width=7, height=3.6)


def real_sigmas_text(settings: config.Img2ImgSettings) -> str:
    """The real (truncated) sigmas for these settings, before any model is loaded.

    "(use default)" needs the model's own training schedule; SD 1.x/2.x's is used as the preview.
    """
    from vid2vid.diffusion import fewstep, schedules

    if fewstep.is_fewstep(settings.sampler):        # issue 17: lcm / tcd show their timestep grid
        ts, sig = fewstep.real_sigmas(settings.steps, settings.denoise, schedules.sd_training_sigmas())
        return f"{schedules.format_sigmas(sig)} at timesteps {ts.tolist()}"
    train = schedules.sd_training_sigmas() if settings.schedule == "default" else None
    return schedules.format_sigmas(schedules.real_sigmas(settings.schedule, settings.steps, settings.denoise,
                                                         settings.sigma_min, settings.sigma_max, train))
