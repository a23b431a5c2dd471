"""The stages, in pipeline order: one row each, read by `vid2vid run`, the CLI stage commands,
the web page and the stages themselves.

A row says what a stage is called (name, the page's label), where its code is (the module with
`run(ws, settings, job) -> dict`; extract's takes the video too), which settings sections it
reads (validated before it runs), which workspace folders and files it owns (removed when it
starts over), the frame folder it produces, whether `run` includes it under given settings, and
the per-stage adjustment of the settings (the same on every interface, so the same settings give
the same stage key everywhere). `vid2vid.pipeline.runner.run_stage` runs a row.

Adding a stage: write `stages/<name>.py` with `run(...)`, add a row here; the command line gets
a `vid2vid <name>` command with the options of its sections, `run` includes it when `wanted`.
A stage that writes frames also defines `space_need(ws, settings) -> diskspace.SpaceNeed | None`
(how many files of what size it still writes); `run_stage` compares it with the free space first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vid2vid.config import CorrectSettings, Settings
    from vid2vid.core.workspace import Workspace


def _same(s: Settings) -> Settings:
    return s


def _always(s: Settings) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline."""

    name: str
    label: str                              # the page's wording
    help: str                               # one line for `vid2vid --help`
    sections: tuple[str, ...]               # settings sections it reads (validated before it runs)
    outputs: tuple[str, ...]                # folders / files it owns in the workspace
    frames: str | None = None               # the frame folder it makes, if any
    wanted: Callable[[Settings], bool] = _always   # does `vid2vid run` include it
    adjust: Callable[[Settings], Settings] = _same  # per-stage settings adjustment
    needs_video: bool = False               # extract reads the video; the others a workspace
    then: tuple[str, ...] = ()              # stages that follow it when wanted (img2img -> flow)
    first: tuple[str, ...] = ()             # stages a stage command runs (resumes) first when wanted (control)

    @property
    def module(self) -> str:
        return f"vid2vid.stages.{self.name}"

    @property
    def folder(self) -> str:
        """The workspace folder its frames are in: its frame folder, else its first output (framedelta/,
        depthmask/, control/), else its name."""
        return self.frames or (self.outputs[0] if self.outputs else self.name)


def img2img_reads_depth(c: CorrectSettings) -> bool:
    """img2img reads depth masks: its delta mask or its spatial mask is a depth mask."""
    return c.delta_mask == "depth" or c.spatial_mask == "depth"


def control_reads_depth(s: Settings) -> bool:
    """The control stage reads depth maps: a ControlNet's control source is depth."""
    return any(cn.control == "depth" for cn in s.img2img.controlnet)


def needs_depth(s: Settings) -> bool:
    """`run` makes depth maps when asked for, or when a mask of the chosen correction is a depth mask."""
    c = s.correct
    masks = (c.flow_mask,) if c.method == "flow" else (c.delta_mask,)
    return s.run.depth or c.spatial_mask == "depth" or "depth" in masks


def img2img_settings(s: Settings) -> Settings:
    """With the flow-guided method, img2img generates without the per-frame statistics and masks
    (the flow stage corrects the whole sequence afterwards, with `flow_mask` as its change mask).
    With key frames too: the frame delta correction compares a frame with the previous one, and
    keys lie several frames apart (propagation makes the frames between them agree instead)."""
    if s.correct.method == "flow" or s.propagate.on:
        return replace(s, correct=replace(s.correct, fdc="none", delta_mask="none"))
    return s


def propagate_wanted(s: Settings) -> bool:
    """Propagation runs with key frames on, after a batch (not after a --single debug frame)."""
    return s.propagate.on and not s.img2img.single


def flow_wanted(s: Settings) -> bool:
    """The flow pass runs with the flow method, after a batch (not after a --single debug frame)."""
    return s.correct.method == "flow" and not s.img2img.single


STAGES: tuple[Stage, ...] = (
    Stage("extract", "Extract frames", "extract frames (and audio) into a workspace",
          ("extract",), ("frames", "audio.mka"), frames="frames", needs_video=True),
    Stage("delta", "Frame delta", "compute frame deltas of the extracted frames",
          ("correct",), ("framedelta",)),
    Stage("depth", "Depth masks", "make depth masks of the extracted frames",
          ("depth",), ("depthmask",), wanted=needs_depth),
    Stage("tags", "Tags", "tag the extracted frames (anime taggers)",
          ("tags",), ("tags", "tags.json", "tags-topk.txt"), wanted=lambda s: s.run.tags),
    Stage("control", "ControlNet images", "make the control images of img2img's ControlNets from the frames",
          ("img2img",), ("control",), wanted=lambda s: bool(s.img2img.controlnet) and not s.img2img.single),
    Stage("img2img", "Batch img2img", "successive img2img with sigma override and frame delta correction",
          ("img2img", "correct", "propagate", "ray"), ("img2img", "motionmask"), frames="img2img",
          adjust=img2img_settings,
          then=("propagate", "flow"), first=("control",)),
    Stage("propagate", "Key frame propagation", "make every frame from the painted key frames along the "
          "source's motion (with --keyframes)", ("img2img", "propagate"), ("propagate",), frames="propagate",
          wanted=propagate_wanted),
    Stage("flow", "Flow correction", "flow-guided correction of the img2img frames (with --method flow)",
          ("correct",), ("flow",), frames="flow", wanted=flow_wanted),
    Stage("upscale", "Upscale", "upscale the generated frames (Real-ESRGAN)",
          ("upscale",), ("resr",), frames="resr", wanted=lambda s: s.run.upscale),
    Stage("interpolate", "Interpolate", "interpolate frames (RIFE)",
          ("interpolate",), ("rife",), frames="rife", wanted=lambda s: s.run.interpolate),
    Stage("export", "Export", "encode a frame folder into a video (with the original audio)",
          ("export",), (), wanted=_always),
)

BY_NAME: dict[str, Stage] = {st.name: st for st in STAGES}


def stage(name: str) -> Stage:
    """The row of stage `name` (KeyError for an unknown name: a bug, not a user's mistake)."""
    return BY_NAME[name]


def outputs() -> dict[str, tuple[str, ...]]:
    """Stage name -> the folders and files it owns."""
    return {st.name: st.outputs for st in STAGES}


def _made_from(ws: Workspace, name: str, source: str) -> bool:
    """Stage `name` is complete and was made from the current results of stage `source`."""
    rec = ws.stage_record(name)
    return bool(ws.is_complete(name) and rec and rec.get("inputs", {}).get(source) ==
                (ws.stage_record(source) or {}).get("key"))


def painted(ws: Workspace) -> Stage:
    """The stage whose folder holds the whole painted sequence: propagate/ while key-frame
    propagation is complete and made from the current img2img frames (the keys), else img2img/."""
    prop = BY_NAME["propagate"]
    return prop if _made_from(ws, prop.name, "img2img") else BY_NAME["img2img"]


def generated(ws: Workspace) -> Stage:
    """The stage whose folder holds the current generated frames: flow/ while that pass is complete
    and made from the current painted sequence (img2img/ or propagate/), else that sequence."""
    base = painted(ws)
    flow = BY_NAME["flow"]
    return flow if _made_from(ws, flow.name, base.name) else base


def after_generation(ws: Workspace) -> Stage:
    """The latest frames before interpolation: resr/ when upscaling is complete, else the generated frames."""
    return BY_NAME["upscale"] if ws.is_complete("upscale") else generated(ws)


def export_source(s: Settings) -> str:
    """The frame folder (the --from token) of the last stage `run` makes: rife, resr or img2img."""
    for name in ("interpolate", "upscale"):
        st = BY_NAME[name]
        if st.wanted(s):
            return st.frames or ""
    return "img2img"


def last_frames(ws: Workspace) -> str:
    """The export token (--from) of the last frame folder the workspace has: rife, resr, img2img or frames."""
    for name in ("interpolate", "upscale"):
        if ws.stage_record(name) is not None:
            return BY_NAME[name].frames or ""
    return "img2img" if ws.stage_record("img2img") is not None else "frames"


def by_frames(folder: str) -> Stage:
    """The stage that makes frame folder `folder` (the tokens of export's --from)."""
    for st in STAGES:
        if st.frames == folder:
            return st
    raise KeyError(folder)
