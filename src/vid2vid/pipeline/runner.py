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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from vid2vid import config
from vid2vid.config import Settings, stagetable
from vid2vid.core.errors import BadInput, OtherSettings, render_settings
from vid2vid.core.progress import Job, ProgressEvent
from vid2vid.core.workspace import Workspace, failure_status, refusal
from vid2vid.pipeline import saved
from vid2vid.pipeline.saved import SETTINGS_FILE  # noqa: F401  (runner.SETTINGS_FILE: where they are)


@dataclass
class RunResult:
    """What a run produced: the workspace, the video, each stage's info and the consistency figures."""

    workspace: Path
    output: Path
    stages: dict[str, dict] = field(default_factory=dict)
    metrics: dict | None = None
    seconds: float = 0.0
    comparison: Path | None = None

    def summary(self) -> str:
        lines = [f"output:    {self.output}", f"workspace: {self.workspace}"]
        if self.comparison:
            lines.append(f"compare:   {self.comparison}")
        lines.append(f"time:      {self.seconds:.1f} s ({', '.join(self.stages)})")
        if self.metrics:
            m = self.metrics
            lines.append("temporal consistency (lower is steadier; source = the input's own motion):")
            lines.append(f"  warping error  output {m['warp_error']:.4f}   source {m['source_warp_error']:.4f}")
            lines.append(f"  flicker        output {m['flicker']:.4f}   source {m['source_flicker']:.4f}")
            if m.get("psnr") is not None:
                from vid2vid.temporal.metrics import WORST_SHARE

                moving, worst, sharp = m.get("moving_psnr"), m.get("moving_psnr_worst"), m.get("sharpness")
                lines.append(f"fidelity against the {m['reference_frames']} painted img2img frames: PSNR "
                             f"{m['psnr']:.2f} dB, where things move "
                             f"{'-' if moving is None else f'{moving:.2f}'} dB (worst {WORST_SHARE}% of frames "
                             f"{'-' if worst is None else f'{worst:.2f}'} dB: tears, ghosts), sharpness "
                             f"{'-' if sharp is None else f'{sharp:.3f}'}")
        return "\n".join(lines)


def check_settings(s: Settings) -> None:
    """Validate everything before any work starts (bad input never costs a half-done run)."""
    s.validate()


def _module(row: stagetable.Stage):
    return importlib.import_module(row.module)


def check_models(s: Settings, rows: Iterable[stagetable.Stage] | None = None) -> None:
    """Every model the stages name exists and is complete (nothing is loaded); each stage module's
    own `check(settings)` says what that means for it. Default: the stages `run` would run."""
    for row in (rows if rows is not None else [r for r in stagetable.STAGES if r.wanted(s)]):
        check = getattr(_module(row), "check", None)
        if check is not None:
            check(row.adjust(s))


def check_space(module, ws: Workspace, s: Settings) -> None:
    """Refuse (BadInput, before the stage changes anything) when what the stage will write does not
    fit in the free space; a stage that writes frames says how much with `space_need(ws, settings)`
    (None: nothing left to write, or no input to estimate from: the stage then says what is missing).
    Extract and img2img check inside `run`, where their frame plans are made."""
    need = getattr(module, "space_need", None)
    estimate = need(ws, s) if need is not None else None
    if estimate is not None:
        from vid2vid.core import diskspace

        diskspace.check_space(estimate, ws.root)


def _placed(job: Job, place: tuple[int, int] | None) -> Job:
    """A view of `job` whose progress events name the stage's place in the run (3/8 img2img)."""
    if place is None:
        return job
    index, total = place

    def forward(ev: ProgressEvent) -> None:
        if job.on_progress is not None:
            job.on_progress(replace(ev, stage=f"{index}/{total} {ev.stage}"))

    return Job(on_progress=forward, cancel=job.cancel, log=job.log)


def _prepared(row: stagetable.Stage, settings: Settings, ws: Workspace, job: Job, video: str | Path | None,
              checked: bool) -> Settings:
    """Steps 1 and 2 of `run_stage` up to the lock: the row's settings, checked, their warnings said,
    the video checked and the workspace there."""
    s = row.adjust(settings)
    if not checked:
        for section in ("run", *row.sections):
            getattr(s, section).validate()
        check_models(s, [row])
    if row.name in row.sections:                    # a section's warnings, said by the stage of its name
        for note in getattr(s, row.name).notes():
            job.say(render_settings(note))
    if not row.needs_video:
        ws.require()
        return s
    if video is None:
        raise BadInput(f"stage '{row.name}' needs the video to read")
    if not checked:
        from vid2vid.stages.extract import check_source

        check_source(video, s.extract)
    ws.ensure()
    return s


def run_stage(name: str, ws: Workspace, settings: Settings, job: Job | None = None, *,
              video: str | Path | None = None, place: tuple[int, int] | None = None,
              follow: bool = True, checked: bool = False, **extra) -> dict:
    """Run one stage on a workspace: the one way every interface runs a stage.

    1. the row's settings adjustment, then validation of the sections it reads and its model check
    2. the workspace lock (extract creates the workspace; the others need one made by extract)
    3. the settings written into the workspace (`saved.SETTINGS_FILE`; put back as they were when the
       stage refuses to replace results made with others, a refusal that then names the changed ones)
    4. the disk space the stage will write (its module's `space_need`) against the free space, then
       the stage, with a failure or an interruption written to the workspace's run log
    5. with `follow`, the stages the row names in `then` that the settings want (img2img -> flow), after
       those it names in `first` (img2img's control images: made or resumed before it, unless the
       stage module's `current(ws, settings)` finds them complete for these settings)
    `extra` goes to the stage's `run` (the page passes an already loaded model to img2img).
    `checked`: the caller already validated everything and checked the video and models (`run`).
    """
    job = job or Job()
    row = stagetable.stage(name)
    s = _prepared(row, settings, ws, job, video, checked)
    module = _module(row)
    sub = _placed(job, place)
    for dep in row.first if follow else ():        # img2img's control images, made on the way
        first = stagetable.stage(dep)
        if first.wanted(settings) and not getattr(_module(first), "current", lambda *a: False)(ws, settings):
            run_stage(dep, ws, settings, job, place=place, follow=False, checked=checked)
    with ws.locked():
        before = saved.read_file(ws)
        try:
            saved.save_settings(ws, settings)
            check_space(module, ws, s)
            info = module.run(ws, video, s, sub) if row.needs_video else module.run(ws, s, sub, **extra)
        except BadInput as exc:           # bad input changes nothing: the saved settings are put back
            ws.log_failure(name, exc)
            saved.put_back(ws, before)
            if isinstance(exc, OtherSettings):
                raise _refused(ws, exc, before, settings, row) from None
            raise
        except BaseException as exc:      # logged (error with its type, or interrupted), then re-raised
            ws.log_failure(name, exc)
            raise
        info = dict(info or {})
        for nxt in row.then if follow else ():
            if stagetable.stage(nxt).wanted(settings):
                info[nxt] = run_stage(nxt, ws, settings, job, place=place, checked=checked)
    return info


def _refused(ws: Workspace, exc: OtherSettings, before: bytes | None, settings: Settings,
             row: stagetable.Stage) -> OtherSettings:
    """The refusal naming the settings that changed since the workspace's saved ones (when it has them)."""
    old = saved.parse(before)
    changed = saved.changes(old, settings, row.sections) if old is not None else []
    return OtherSettings(refusal(exc.stage, ws.root, ", ".join(changed)), exc.stage) if changed else exc


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
    if settings.export.output:            # where the video goes, before any work (not after it)
        from vid2vid.core.outputpath import check_output

        check_output(settings.export.output, Path(video).stat().st_size)
    ws = Workspace(workspace) if workspace else Workspace.for_video(video, settings.run.cache)
    # 2. export reads the last folder the enabled stages write
    settings = replace(settings, export=replace(settings.export, source=stagetable.export_source(settings)))
    rows = [row for row in stagetable.STAGES if row.wanted(settings)]
    result = RunResult(workspace=ws.root, output=Path())
    with ws.ensure().locked():
        ws.log_unfinished_run()
        ws.log("run", video=str(video), settings=config.to_dict(settings))
        # 3. the stages, in order; each resumes or skips on its own
        for i, row in enumerate(rows, 1):
            job.check()
            job.say(f"[{i}/{len(rows)}] {row.name}")
            t = time.monotonic()
            try:
                info = run_stage(row.name, ws, settings, job, video=video, place=(i, len(rows)), follow=False,
                                 checked=True)
            except BaseException as exc:
                ws.log("run-end", status=failure_status(exc), stage=row.name, seconds=round(time.monotonic() - t0, 3))
                raise
            info["seconds"] = round(time.monotonic() - t, 3)
            result.stages[row.name] = info
        result.output = Path(result.stages["export"]["output"])
        # 4. the side-by-side video, when asked for
        if settings.run.compare:
            from vid2vid.temporal.compare import make_comparison

            job.say("compare: writing the side-by-side video")
            result.comparison = Path(make_comparison(ws, job=job)["output"])
        # 5. how steady is it? (source frames vs the exported frames)
        if measure:
            result.metrics = _measure(ws, settings)
            ws.update_stage_info("img2img", metrics=result.metrics)
        ws.log("run-end", status="ok", seconds=round(time.monotonic() - t0, 3), output=str(result.output),
               stages={name: info.get("seconds") for name, info in result.stages.items()})
    result.seconds = time.monotonic() - t0
    return result


def _measure(ws: Workspace, settings: Settings) -> dict | None:
    """Warping error and flicker of the generated frames next to the source's own warping error (its floor),
    read and measured frame pair by frame pair (memory does not grow with the video's length);
    at a reduced size or on every N-th pair when `run.metrics_size` / `run.metrics_every` say so."""
    from functools import partial

    from vid2vid.core.imageops import read_image
    from vid2vid.temporal import metrics, reporting

    row = stagetable.generated(ws)
    gen = ws.frames(row.folder)
    src = ws.frames("frames")[: len(gen)]
    if len(gen) < 2 or len(src) != len(gen):
        return None
    rs = settings.run
    report = metrics.consistency_report((partial(read_image, p) for p in src), (partial(read_image, p) for p in gen),
                                        max_side=rs.metrics_size, every=rs.metrics_every)
    out = {"warp_error": report["warping_error"], "flicker": report["flicker"],
           "source_warp_error": report["source_warping_error"], "source_flicker": report["source_flicker"]}
    note = reporting.measured_note(report)
    if note:
        out["measured"] = note
    if row.name != "img2img":
        out.update(_fidelity(ws, src, gen))
    return out


def _fidelity(ws: Workspace, src: list[Path], gen: list[Path]) -> dict:
    """PSNR, moving-pixel PSNR and sharpness of the final frames against the img2img frames, over
    the frames that have one (the key frames in key mode), read frame by frame."""
    from vid2vid.core.imageops import read_image
    from vid2vid.temporal import metrics

    detail = metrics.DetailSums()
    errs: list[float] = []
    prev = None
    for s_path, g_path in zip(src, gen):
        g = read_image(g_path)
        cur = metrics.resize_to(read_image(s_path), g.shape[1], g.shape[0])
        ref_path = ws.path(stagetable.stage("img2img").folder, g_path.name)
        if ref_path.is_file():
            r = read_image(ref_path)
            errs.append(metrics.mse(g, r))
            detail.add(g, r, prev, cur)
        prev = cur
    if not errs:
        return {}
    return {"psnr": metrics.psnr_from_mse(float(sum(errs) / len(errs))), "moving_psnr": detail.moving_psnr,
            "moving_psnr_worst": detail.moving_psnr_worst, "sharpness": detail.sharpness,
            "reference_frames": len(errs)}
