"""The whole job as one library call: extract -> delta -> (depth) -> (tags) -> img2img -> (upscale)
-> (interpolate) -> export, resumable, cancellable, reporting progress per stage and overall.

    from vid2vid import Settings, run
    s = Settings()
    s.img2img.model, s.img2img.prompt = "path/to/model.safetensors", "(masterpiece:1.3), 1girl"
    result = run("input.mp4", s)
    print(result.output, result.metrics)

The CLI's `vid2vid run`, the demo and the web UI all call `run`. Each stage decides from the
workspace manifest whether it starts fresh, resumes after its last finished frame or is done.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from vid2vid import config
from vid2vid.config import Settings
from vid2vid.errors import BadInput
from vid2vid.progress import Job, ProgressEvent
from vid2vid.workspace import Workspace

SETTINGS_FILE = "settings.toml"


@dataclass
class Step:
    """One stage of the pipeline: its name, whether it runs under these settings, and its module."""

    name: str
    module: str
    wanted: Callable[[Settings], bool]


def _needs_depth(s: Settings) -> bool:
    c = s.correct
    masks = (c.flow_mask,) if c.method == "flow" else (c.delta_mask,)
    return s.run.depth or c.spatial_mask == "depth" or "depth" in masks


STEPS = [
    Step("extract", "extract", lambda s: True),
    Step("delta", "delta", lambda s: True),
    Step("depth", "depth", _needs_depth),
    Step("tags", "tags", lambda s: s.run.tags),
    Step("img2img", "img2img", lambda s: True),
    Step("flow", "flow", lambda s: s.correct.method == "flow"),
    Step("upscale", "upscale", lambda s: s.run.upscale),
    Step("interpolate", "interpolate", lambda s: s.run.interpolate),
    Step("export", "export", lambda s: True),
]


@dataclass
class RunResult:
    """What a run produced: the workspace, the video, each stage's info and the consistency figures."""

    workspace: Path
    output: Path
    stages: dict[str, dict] = field(default_factory=dict)
    metrics: dict | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"output:    {self.output}", f"workspace: {self.workspace}",
                 f"time:      {self.seconds:.1f} s ({', '.join(self.stages)})"]
        if self.metrics:
            m = self.metrics
            lines.append("temporal consistency (lower is steadier; source = the input's own motion):")
            lines.append(f"  warping error  output {m['warp_error']:.4f}   source {m['source_warp_error']:.4f}")
            lines.append(f"  flicker        output {m['flicker']:.4f}   source {m['source_flicker']:.4f}")
        return "\n".join(lines)


def export_source(s: Settings) -> str:
    """The last frame folder the enabled stages make: rife, resr or img2img."""
    if s.run.interpolate:
        return "rife"
    if s.run.upscale:
        return "resr"
    return "img2img"


def check_settings(s: Settings) -> None:
    """Validate everything before any work starts (bad input never costs a half-done run)."""
    s.validate()
    if not s.img2img.model:
        raise BadInput("no Stable Diffusion model given; pass --model (a .safetensors file, a diffusers folder "
                       "or a hub id), or try `vid2vid demo`")


def check_models(s: Settings) -> None:
    """Every model the enabled stages name exists and is complete (nothing is loaded)."""
    from vid2vid.diffusion.loading import check_model_spec

    check_model_spec(s.img2img.model)
    if s.run.upscale:
        from vid2vid.models.upscalers import check_upscaler

        check_upscaler(s.upscale.model)
    if s.run.interpolate:
        from vid2vid.models.interpolators import check_interpolator

        check_interpolator(s.interpolate.model)


def stage_settings(stage: str, s: Settings) -> Settings:
    """With the flow-guided method, img2img generates without the seed's correction (the flow
    stage corrects the whole sequence afterwards, with `flow_mask` as its change mask)."""
    if stage == "img2img" and s.correct.method == "flow":
        return replace(s, correct=replace(s.correct, fdc="none", delta_mask="none"))
    return s


def _overall(job: Job, index: int, total: int) -> Job:
    """A view of `job` whose progress events name the stage's place in the run (3/8 img2img)."""

    def forward(ev: ProgressEvent) -> None:
        if job.on_progress is not None:
            job.on_progress(replace(ev, stage=f"{index}/{total} {ev.stage}"))

    return Job(on_progress=forward, cancel=job.cancel, log=job.log)


def run(video: str | Path, settings: Settings, workspace: str | Path | None = None,
        job: Job | None = None, measure: bool = True) -> RunResult:
    """Run every enabled stage on `video`; returns the output path, stage infos and metrics."""
    job = job or Job()
    t0 = time.monotonic()
    # 1. check inputs before touching anything (a bad video, size or model never costs a half-done run)
    check_settings(settings)
    check_models(settings)
    from vid2vid.stages.extract import check_source

    check_source(video, settings.extract)
    ws = Workspace(workspace) if workspace else Workspace.for_video(video, settings.run.cache)
    # 2. export reads the last folder the enabled stages write; with the flow-guided method,
    #    img2img generates without the seed's statistics and the flow stage corrects afterwards
    settings = replace(settings, export=replace(settings.export, source=export_source(settings)))
    steps = [st for st in STEPS if st.wanted(settings)]
    result = RunResult(workspace=ws.root, output=Path())
    with ws.ensure().locked():
        ws.log_unfinished_run()
        config.save_toml(settings, ws.path(SETTINGS_FILE))
        ws.log("run", video=str(video), settings=config.to_dict(settings))
        # 3. the stages, in order; each resumes or skips on its own
        for i, st in enumerate(steps, 1):
            job.check()
            job.say(f"[{i}/{len(steps)}] {st.name}")
            module = importlib.import_module(f"vid2vid.stages.{st.module}")
            sub = _overall(job, i, len(steps))
            t = time.monotonic()
            try:
                if st.name == "extract":
                    info = module.run(ws, video, settings, sub)
                else:
                    info = module.run(ws, stage_settings(st.name, settings), sub)
            except BaseException as exc:      # logged (error with its type, or interrupted), then re-raised
                status = ws.log_failure(st.name, exc)
                ws.log("run-end", status=status, stage=st.name, seconds=round(time.monotonic() - t0, 3))
                raise
            info = dict(info or {})
            info["seconds"] = round(time.monotonic() - t, 3)
            result.stages[st.name] = info
        result.output = Path(result.stages["export"]["output"])
        # 4. how steady is it? (source frames vs the exported frames)
        if measure:
            result.metrics = _measure(ws, settings)
            ws.update_stage_info("img2img", metrics=result.metrics)
        ws.log("run-end", status="ok", seconds=round(time.monotonic() - t0, 3), output=str(result.output),
               stages={name: info.get("seconds") for name, info in result.stages.items()})
    result.seconds = time.monotonic() - t0
    return result


def _measure(ws: Workspace, settings: Settings) -> dict | None:
    """Warping error and flicker of the generated frames next to the source's own (DESIGN §6),
    read and measured frame pair by frame pair (memory does not grow with the video's length);
    at a reduced size or on every N-th pair when `run.metrics_size` / `run.metrics_every` say so."""
    from functools import partial

    from vid2vid import metrics
    from vid2vid.imageops import read_image

    from vid2vid.stages.flow import generated_source

    gen = ws.frames(generated_source(ws)[1])
    src = ws.frames("frames")[: len(gen)]
    if len(gen) < 2 or len(src) != len(gen):
        return None
    rs = settings.run
    report = metrics.consistency_report((partial(read_image, p) for p in src), (partial(read_image, p) for p in gen),
                                        max_side=rs.metrics_size, every=rs.metrics_every)
    out = {"warp_error": report["warping_error"], "flicker": report["flicker"],
           "source_warp_error": report["source_warping_error"], "source_flicker": report["source_flicker"]}
    note = metrics.measured_note(report)
    if note:
        out["measured"] = note
    return out
