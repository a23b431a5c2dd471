"""Typed settings for every stage, with the seed's defaults, validation and TOML round trip.

Each stage has one dataclass; `Settings` holds them all and is what `vid2vid run`, the web UI
and the library API pass around. Every field carries its own metadata (`setting(...)`: help,
choices, range, command-line flag, the page's label), from which the command line, the TOML
file, validation and the page's widgets are all derived. Choice values are kebab-case tokens;
`LABELS` maps them to the seed's wording for the page. Every check raises `BadInput` naming the
setting as `{section.field}` (see `vid2vid.core.errors`), with the fix.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from vid2vid.core import devices, errors
from vid2vid.core.errors import BadInput

FRAME_MODES = ("fps", "all", "i", "p", "b")
IMAGE_FORMATS = ("png", "jpg", "webp")
EXPORT_FORMATS = ("mp4", "webm", "gif", "avi")
EXPORT_SOURCES = ("frames", "img2img", "resr", "rife")
SAMPLERS = ("euler", "euler-a", "dpm++-2m", "dpm++-2m-sde", "heun", "lms", "ddim", "lcm", "tcd")
SCHEDULES = ("default", "karras", "exponential", "poly-exponential", "vp", "linear")
RESIZE_MODES = ("just", "crop", "fill")
PREDICTION_TYPES = ("auto", "epsilon", "v_prediction")
FDC_METHODS = ("none", "clip", "shift-mean", "shift-std", "shift-mean-std")
DELTA_MASKS = ("none", "motion", "depth")
SPATIAL_MASKS = ("none", "motion", "depth")


class Choices(tuple):
    """A setting's tokens in order; `in` also accepts the older names in `aliases` (old -> new).

    Iterating gives only the current tokens (help, the page's choices, error messages); argparse
    takes any container as `choices`, so an old name passes its check as well.
    """

    aliases: dict[str, str]

    def __new__(cls, tokens: tuple[str, ...], aliases: dict[str, str] | None = None) -> Choices:
        self = super().__new__(cls, tokens)
        self.aliases = dict(aliases or {})
        return self

    def __contains__(self, value: object) -> bool:
        return tuple.__contains__(self, value) or value in self.aliases

    def canonical(self, value: Any) -> Any:
        """The current token for `value` (an old name becomes its new one; anything else is kept)."""
        return self.aliases.get(value, value) if isinstance(value, str) else value


# stats: the seed's masks + statistics per frame (fdc.py), formerly named "seed" (the old name collided
# with img2img.seed); flow: the flow-guided pass over the sequence (temporal.py)
CORRECT_METHODS = Choices(("stats", "flow"), aliases={"seed": "stats"})
CONTROL_SOURCES = ("canny", "softedge", "lineart", "depth", "tile", "folder")   # control.py
KEY_FILLS = ("warp", "img2img")      # what fills what neither key frame sees (vid2vid.temporal.propagation)
DEINTERLACE_MODES = ("auto", "on", "off")
CROSS_FRAME_MODES = ("none", "anchor", "anchor-prev", "bank")   # diffusion/crossframe.py
CROSS_FRAME_BLOCKS = ("up", "all")

# The seed's labels, shown by the web UI next to our tokens.
LABELS = {
    "fps": "Fixed FPS", "all": "All frames", "i": "I-frames only", "p": "P-frames only", "b": "B-frames only",
    "euler": "Euler", "euler-a": "Euler a", "dpm++-2m": "DPM++ 2M", "dpm++-2m-sde": "DPM++ 2M SDE",
    "heun": "Heun", "lms": "LMS", "ddim": "DDIM", "lcm": "LCM", "tcd": "TCD",
    "default": "(use default)", "karras": "karras", "exponential": "exponential",
    "poly-exponential": "poly-exponential", "vp": "vp", "linear": "linear",
    "just": "Just resize", "crop": "Crop and resize", "fill": "Resize and fill",
    "none": "none", "clip": "clip", "shift-mean": "shift mean", "shift-std": "shift std",
    "shift-mean-std": "shift mean & std", "motion": "motion mask", "depth": "depth mask",
    "canny": "canny", "softedge": "soft edges", "lineart": "line art", "tile": "tile (the frame)",
    "folder": "my own images (folder)",
    "anchor": "anchor (first frame)", "anchor-prev": "anchor + previous frame", "bank": "bank of earlier frames",
}


DEVICES_HELP = devices.NAMES
METRICS_MIN_SIDE = 16      # the smallest measuring size: DIS flow needs 12 pixels on a side


# ---------------------------------------------------------------- field metadata

@dataclass(frozen=True)
class Meta:
    """What a settings field says about itself (read with `meta(section, name)`)."""

    help: str
    label: str = ""                      # the page's field label ("" = the field is not on the page)
    choices: tuple[str, ...] | None = None
    lo: float | None = None              # inclusive range
    hi: float | None = None
    flag: str = ""                       # command-line flag when it is not --field-name
    run_flag: str = ""                   # the flag in `vid2vid run` when it differs (shared or clashing names)
    fix: str = ""                        # appended to a range error
    cli: bool = True                     # an option of the commands that take this section
    run_only: bool = False               # only `vid2vid run` has it (the switches of optional stages)
    item: type | None = None             # list of tables: the dataclass of one table


def setting(default: Any, help: str, *, label: str = "", choices: tuple[str, ...] | None = None,
            lo: float | None = None, hi: float | None = None, flag: str = "", run_flag: str = "",
            fix: str = "", cli: bool = True, run_only: bool = False, item: type | None = None) -> Any:
    """A settings field with its metadata; a list default becomes a default factory."""
    md = {"v2v": Meta(help=help, label=label, choices=choices, lo=lo, hi=hi, flag=flag, run_flag=run_flag,
                      fix=fix, cli=cli, run_only=run_only, item=item)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=md)
    return field(default=default, metadata=md)


def fields_of(obj_or_cls: Any) -> list[tuple[dataclasses.Field, Meta]]:
    """(field, metadata) of a settings section, in order."""
    return [(f, f.metadata["v2v"]) for f in dataclasses.fields(obj_or_cls) if "v2v" in f.metadata]


def meta(key: str) -> Meta:
    """The metadata of the setting "section.field"."""
    section, name = key.split(".")
    for f, m in fields_of(SECTIONS[section]):
        if f.name == name:
            return m
    raise KeyError(f"no setting {key}")


def field_type(key: str) -> Any:
    """The annotated type of "section.field" (int, float, str, bool, list[str], ...)."""
    section, name = key.split(".")
    return typing.get_type_hints(SECTIONS[section])[name]


def all_keys() -> list[str]:
    """Every settings key "section.field", sections and fields in order."""
    return [f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f, _ in fields_of(cls)]


def cli_flags(key: str, command: str = "") -> list[str]:
    """The command-line flags of a setting in `command` ("run" may differ)."""
    m = meta(key)
    name = key.split(".")[1]
    flag = (m.run_flag if command == "run" and m.run_flag else "") or m.flag or "--" + name.replace("_", "-")
    return ["-o", "--output"] if flag == "--output" else [flag]


def cli_name(key: str) -> str:
    """How the command line names a setting in messages: its flag (--sigma-max)."""
    try:
        return cli_flags(key)[-1]
    except KeyError:
        return key


errors.set_default_namer(cli_name)


def _span(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"from {lo:g} to {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def check_field(section: str, name: str, value: Any, m: Meta) -> None:
    """The checks a field's metadata implies: its choices and its range."""
    ref = "{%s.%s}" % (section, name)
    if m.choices is not None and value not in m.choices:
        raise BadInput(f"{ref} '{value}' is not known; use one of: {', '.join(m.choices)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{ref} {value} is not a finite number")
        if (m.lo is not None and value < m.lo) or (m.hi is not None and value > m.hi):
            raise BadInput(f"{ref} {value:g} is out of range; it must be {_span(m.lo, m.hi)}"
                           f"{'; ' + m.fix if m.fix else ''}")


class Section:
    """A settings section: `validate()` runs the metadata checks of every field, then `check()`."""

    NAME = ""

    def validate(self) -> None:
        for f, m in fields_of(self):
            value = getattr(self, f.name)
            if m.item is not None:
                for item in value:
                    item.validate()
            else:
                check_field(self.NAME, f.name, value, m)
        self.check()

    def check(self) -> None:
        """Checks between fields (the field-by-field ones come from the metadata)."""


def _check_device(section: str, value: str) -> None:
    devices.check_name(value, "{%s.device}" % section)


# ---------------------------------------------------------------- sections

@dataclass
class ExtractSettings(Section):
    """Frames out of the source video (stage `extract`)."""

    NAME = "extract"
    frames: str = setting("fps", "which frames: a fixed fps, all, or only I / P / B frames", choices=FRAME_MODES,
                          label="Frames to extract")
    fps: float = setting(12.0, "frames per second to extract (with --frames fps)", label="FPS")
    format: str = setting("png", "frame file format", choices=IMAGE_FORMATS, run_flag="--frame-format",
                          label="Frame format")
    audio: bool = setting(False, "keep the source audio (extract) / put it back (export)", run_flag="--audio",
                          label="Process audio")
    max_pixels: int = setting(8192 * 8192, "refuse videos whose width x height is larger", lo=1)
    deinterlace: str = setting("auto", "remove interlacing combs with bwdif: auto = when the stream says it is "
                               "interlaced", choices=DEINTERLACE_MODES, label="Deinterlace")

    def check(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise BadInput(f"{{extract.fps}} {self.fps:g} is not a positive number; give e.g. 12")


@dataclass
class CorrectSettings(Section):
    """Frame delta correction: masks, then statistics; or the flow-guided pass."""

    NAME = "correct"
    fdc: str = setting("shift-std", "statistical correction of each frame's change", choices=FDC_METHODS,
                       label="Frame delta correction")
    delta_mask: str = setting("motion", "mask applied to each frame's change", choices=DELTA_MASKS,
                              label="Delta mask")
    spatial_mask: str = setting("none", "inpainting mask given to img2img (white = may change)",
                                choices=SPATIAL_MASKS, label="Spatial mask")
    motion_highext: int = setting(7, "motion mask high-ext: odd dilation window 1..15", lo=1, hi=15,
                                  label="Motion high-ext")
    motion_lowcut: int = setting(32, "motion mask low-cut 0..255", lo=0, hi=255, label="Motion low-cut")
    depth_lowcut: int = setting(-1, "depth mask low-cut 0..255 (-1 = none)", lo=-1, hi=255, fix="-1 means no cut",
                                label="Depth low-cut")
    method: str = setting("stats", "correction method: stats (masks + statistics per frame; old name seed), or "
                          "flow (flow-guided over the sequence)", choices=CORRECT_METHODS, label="Correction method")
    flow_strength: float = setting(0.75, "flow method: 0 = none, higher = steadier (0..0.99)", lo=0.0, hi=0.99,
                                   fix="0.75 is the default", label="Flow strength (flow method)")
    flow_mask: str = setting("none", "flow method: change mask (white = keep the generated frame there)",
                             choices=DELTA_MASKS, label="Flow change mask (flow method)")

    def __setattr__(self, name: str, value: Any) -> None:
        # an old method name is stored as the new one, however it is set (TOML, CLI, page, code)
        super().__setattr__(name, CORRECT_METHODS.canonical(value) if name == "method" else value)

    def check(self) -> None:
        if self.motion_highext % 2 != 1:
            raise BadInput(f"{{correct.motion_highext}} {self.motion_highext} must be odd (1, 3, ..., 15)")


@dataclass
class DepthSettings(Section):
    """Depth masks (stage `depth`)."""

    NAME = "depth"
    model: str = setting("dpt_hybrid", "depth model: a registered name, hub id or folder", run_flag="--depth-model",
                         label="Depth model")

    def check(self) -> None:
        if not self.model:
            raise BadInput("{depth.model} is empty; name a depth model, e.g. dpt_hybrid")


@dataclass
class TagsSettings(Section):
    """Anime tags per frame (stage `tags`)."""

    NAME = "tags"
    model: str = setting("wd14-vit-v2", "tagger model: a registered name, hub id or folder", run_flag="--tags-model",
                         label="Tagger model")
    topk: int = setting(32, "how many tags to keep", lo=1, hi=1000, label="Top-k tags")
    threshold: float = setting(0.35, "tag probability threshold 0..1", lo=0.0, hi=1.0, run_flag="--tags-threshold",
                               label="Tag threshold")


@dataclass
class ControlNetSettings(Section):
    """One ControlNet of img2img: a `[[img2img.controlnet]]` table (issue 14).

    Errors name the list (`{img2img.controlnet}`, the command line's --controlnet), the
    ControlNet by its model, then the table's own key (scale, start, ...).
    """

    NAME = "img2img"
    model: str = setting("", "ControlNet: a .safetensors/.pth file, a diffusers folder or a hub id",
                         label="ControlNet model")
    control: str = setting("canny", "control image source", choices=CONTROL_SOURCES, label="Control image")
    scale: float = setting(1.0, "how strongly it steers (0 = not at all)", lo=0.0, hi=2.0, label="Control weight")
    start: float = setting(0.0, "where it starts, as a fraction of the schedule actually run", lo=0.0, hi=1.0,
                           label="Starting control step")
    end: float = setting(1.0, "where it ends, as a fraction of the schedule actually run", lo=0.0, hi=1.0,
                         label="Ending control step")
    low: int = setting(100, "canny: low threshold (grey levels)", lo=0, hi=255, label="Canny low threshold")
    high: int = setting(200, "canny: high threshold (grey levels)", lo=0, hi=255, label="Canny high threshold")
    blur: float = setting(1.0, "soft edges and line art: blur in pixels", lo=0.1, hi=20.0, label="Edge blur")
    folder: str = setting("", "folder source: a folder with one control image per frame", label="Image folder")

    def validate(self) -> None:
        where = "{img2img.controlnet} '%s'" % self.model
        for f, m in fields_of(self):
            value = getattr(self, f.name)
            if m.choices is not None and value not in m.choices:
                raise BadInput(f"{where}: control source '{value}' is not known; use one of: "
                               f"{', '.join(c for c in m.choices if c != 'folder')}, or a folder of images")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    not math.isfinite(value) or (m.lo is not None and value < m.lo)
                    or (m.hi is not None and value > m.hi)):
                raise BadInput(f"{where}: {f.name} {value:g} is out of range; it must be {_span(m.lo, m.hi)}")
        if not self.model.strip():
            raise BadInput(f"{where}: no model; give the ControlNet's file, diffusers folder or hub id")
        if self.start >= self.end:
            raise BadInput(f"{where}: start {self.start:g} is not below end {self.end:g}; the ControlNet steers "
                           "from start to end of the schedule (0 and 1 = all of it)")
        if self.low > self.high:
            raise BadInput(f"{where}: canny low threshold {self.low} is above the high one {self.high}; swap them")
        if self.control == "folder" and not self.folder.strip():
            raise BadInput(f"{where}: the folder source needs the folder of control images")


@dataclass
class Img2ImgSettings(Section):
    """Successive img2img with the sigma override (stage `img2img`)."""

    NAME = "img2img"
    model: str = setting("", "Stable Diffusion model: a .safetensors/.ckpt file, a diffusers folder or a hub id",
                         label="Model")
    prompt: str = setting("", "prompt (A1111 syntax: (word:1.3), [word])", label="Prompt")
    negative: str = setting("", "negative prompt", label="Negative prompt")
    sampler: str = setting("euler", "sampler (lcm, tcd: for few-step models such as LCM, TCD, Hyper-SD; they run "
                                    "on their own timestep grid, steps = UNet evaluations, and the sigma schedule "
                                    "options do not apply)", choices=SAMPLERS, label="Sampler")
    steps: int = setting(20, "sampling steps of the full schedule (1..150)", lo=1, hi=150, label="Sampling steps")
    denoise: float = setting(0.75, "denoising strength 0..1 (truncates the schedule)", lo=0.0, hi=1.0,
                             label="Denoising strength")
    schedule: str = setting("exponential", "sigma schedule; default = the model's own (not used by lcm and tcd)",
                            choices=SCHEDULES,
                            label="Sigma schedule")
    sigma_min: float = setting(0.1, "smallest sigma of the overridden schedule (not lcm/tcd)", label="Sigma min")
    sigma_max: float = setting(1.2, "largest sigma of the overridden schedule (not lcm/tcd)", label="Sigma max")
    init_noise: float = setting(1.0, "init noise weight (0 = no noise on the init latent)", lo=0.0, hi=10.0,
                                label="Init noise weight")
    cfg: float = setting(7.0, "classifier-free guidance scale", lo=0.0, hi=100.0, label="CFG scale")
    seed: int = setting(114514, "seed, the same for every frame", label="Seed")
    width: int = setting(832, "output width (multiple of 8, 64 or more for SD)", lo=8, hi=8192, label="Width")
    height: int = setting(448, "output height (multiple of 8, 64 or more for SD)", lo=8, hi=8192, label="Height")
    resize: str = setting("just", "how a frame is fitted to width x height", choices=RESIZE_MODES,
                          label="Resize mode")
    batch_size: int = setting(1, "frames per UNet call", lo=1, hi=64, label="Frames per model call")
    workers: int = setting(0, "CPU only: batches run side by side, each on its share of the cores (0 = automatic: "
                              "2 when there are 2+ cores and 4+ batches, else 1; CUDA always 1)", lo=0, hi=64,
                           fix="give 0 (automatic) or the number of batches to run at once",
                           label="CPU model workers (0 = automatic)")
    device: str = setting("auto", f"device: {DEVICES_HELP}")
    dtype: str = setting("auto", "weights' dtype (auto: float16 on CUDA, float32 on MPS and the CPU)",
                        choices=devices.DTYPES)
    prediction: str = setting("auto", "what the UNet predicts: auto (from the model; SD 2.x single files: v), "
                                      "epsilon (SD 2.x 512-base) or v_prediction (SD 2.x 768-v)",
                              choices=PREDICTION_TYPES)
    loras: list[str] = setting([], "LoRA file, optionally PATH:WEIGHT (repeatable)", flag="--lora",
                               label="LoRA files (one per line, PATH[:WEIGHT])")
    embeddings: list[str] = setting([], "textual inversion file (repeatable)", flag="--embedding",
                                    label="Textual inversion files (one per line)")
    single: int = setting(0, "debug: generate only this frame (1-based) into img2img.debug/ and print the real "
                             "sigmas", lo=0, fix="give a frame number (1 = the first frame) or 0 for all",
                          label="Debug frame")
    controlnet: list[ControlNetSettings] = setting(
        [], "ControlNets, MODEL[:SCALE] each with its --control SOURCE (repeatable, paired in order)",
        item=ControlNetSettings, label="ControlNets")

    # cross-frame attention and flow-guided init (issue 15: diffusion/crossframe.py, flowinit.py)
    cross_frame: str = setting("none", "cross-frame attention: each frame's self-attention also reads the anchor "
                                       "(the first frame; with key frames the first key of its shot), the anchor "
                                       "and the previous frame, or a bank of earlier frames; anchor keeps frames "
                                       "independent (batches, workers, Ray); anchor-prev and bank make img2img "
                                       "sequential (batch 1, one model worker, no Ray); the img2img key fill "
                                       "reads its nearest key", choices=CROSS_FRAME_MODES,
                               label="Cross-frame attention")
    cross_frame_blocks: str = setting("up", "UNet blocks with cross-frame attention: up (as Rerender) or all",
                                      choices=CROSS_FRAME_BLOCKS, label="Cross-frame blocks")
    cross_frame_bank: int = setting(4, "bank mode: how many earlier frames each frame reads", lo=1, hi=16,
                                    label="Cross-frame bank size")
    flow_init: float = setting(0.0, "flow-guided init: the previous output warped along the source flow into the "
                                    "init image where the motion is trusted (0 = off; above 0 img2img is "
                                    "sequential)", lo=0.0, hi=1.0, fix="0 turns flow-guided init off",
                               label="Flow-guided init strength")
    # ---- issue 17: the fast path
    vae: str = setting("", "separate VAE: a .safetensors file (e.g. vae-ft-mse-840000), a folder or a hub id; "
                           "TAESD/TAESDXL tiny VAEs (diffusers folder, or the original taesd_encoder/decoder.pth) "
                           "for speed; empty = the model's own", label="VAE (empty = the model's own)")
    tcd_gamma: float = setting(0.3, "TCD sampler's stochasticity (0 = deterministic, 1 = fully stochastic)",
                               lo=0.0, hi=1.0, fix="0.3 is TCD's default", label="TCD gamma")
    skip_still: float = setting(0.0, "reuse the previous output for a source frame that differs from the last "
                                     "painted one by less than this mean absolute difference (0.01 = about 2.5 "
                                     "of 255; 0 = off)", lo=0.0, hi=1.0, label="Skip still frames below")
    compile: bool = setting(False, "torch.compile the UNet and VAE (first frames slower; pays on long GPU runs)",
                            label="torch.compile")

    def check(self) -> None:
        for name, v in (("sigma_min", self.sigma_min), ("sigma_max", self.sigma_max)):
            if not (v > 0 and math.isfinite(v)):
                raise BadInput(f"{{img2img.{name}}} {v:g} must be a positive number")
        if self.sigma_max < self.sigma_min:
            raise BadInput(f"{{img2img.sigma_max}} {self.sigma_max:g} is below {{img2img.sigma_min}} "
                           f"{self.sigma_min:g}; swap them or raise {{img2img.sigma_max}}")
        from vid2vid.config.canvas import CanvasRules, check_canvas

        # any SD-like model's rules here (multiples of 8, the canvas limit); the model's own in img2img.check
        check_canvas(self.width, self.height, CanvasRules(min_side=8, model="Stable Diffusion models"))
        _check_device("img2img", self.device)

    def prediction_type(self) -> str | None:
        """The prediction type to force on the model, or None to keep what the model says."""
        return None if self.prediction == "auto" else self.prediction


@dataclass
class UpscaleSettings(Section):
    """Real-ESRGAN upscaling (stage `upscale`)."""

    NAME = "upscale"
    model: str = setting("realesr-animevideov3-x2", "upscaler: a bundled name, lanczos-x2/x3/x4, or a .pth file",
                         run_flag="--upscale-model", label="Upscaler")
    tile: int = setting(0, "tile size in input pixels (0 = automatic)", lo=0, hi=4096, run_flag="--upscale-tile",
                        label="Tile size (0 = automatic)")
    device: str = setting("auto", f"device: {DEVICES_HELP} (auto: the first Vulkan GPU when present)")

    def check(self) -> None:
        if 0 < self.tile < 32:
            raise BadInput(f"{{upscale.tile}} {self.tile} is too small; use 0 (automatic) or 32 and more")
        _check_device("upscale", self.device)


@dataclass
class InterpolateSettings(Section):
    """RIFE frame interpolation (stage `interpolate`)."""

    NAME = "interpolate"
    model: str = setting("rife", "interpolator: rife (bundled), blend, or the path of RIFE v4.x weights",
                         run_flag="--interpolate-model", label="Interpolator")
    ratio: float = setting(2.0, "interpolation ratio 0.5..4 (2 doubles the frames)", lo=0.5, hi=4.0,
                           fix="2 doubles the frames", label="Frame ratio")
    scene_cut: float = setting(0.2, "scene-cut threshold 0..1: a colour-histogram change above it repeats frames "
                                    "instead of blending (1 = never cut)", lo=0.0, hi=1.0,
                               fix="1 turns scene-cut detection off", label="Scene-cut threshold")
    device: str = setting("auto", f"device: {DEVICES_HELP}")

    def check(self) -> None:
        _check_device("interpolate", self.device)


@dataclass
class ExportSettings(Section):
    """Video out of a frame folder (stage `export`)."""

    NAME = "export"
    source: str = setting("rife", "frame folder to export", choices=EXPORT_SOURCES, flag="--from",
                          label="Frame source")
    format: str = setting("mp4", "video format", choices=EXPORT_FORMATS, label="Video format")
    audio: bool = setting(False, "put the source audio back", run_flag="--audio", label="Put the audio back")
    output: str = setting("", "output video path (empty = synth-<source>.<format> inside the workspace)",
                          flag="--output")
    crf: int = setting(20, "H.264 quality (lower is better, 0..51)", lo=0, hi=51,
                       label="Quality (CRF, lower is better)")
    allow_partial: bool = setting(False, "export a folder whose stage is unfinished or out of date anyway "
                                  "(says how many frames are missing)", label="Allow a partial export")


@dataclass
class PropagateSettings(Section):
    """Key frames: img2img paints only them, stage `propagate` carries them to the other frames."""

    NAME = "propagate"
    keyframes: str = setting("off", "paint only key frames: off, every:K (every K-th frame) or motion:T (a new key "
                             "after T pixels of motion); scene cuts always start a key", label="Key frames")
    fill: str = setting("warp", "what fills what neither key sees: the nearer key's warp, or a light img2img of "
                        "just that region", choices=KEY_FILLS, flag="--key-fill", label="Fill disocclusions")
    fill_denoise: float = setting(0.35, "denoising strength of the img2img fill", lo=0.0, hi=1.0,
                                  flag="--key-fill-denoise", label="Fill denoise")
    steady_keys: bool = setting(True, "steady each key with the two keys on each side (along the source's motion) "
                                "before carrying it, so the keys' own flicker does not jump at every key",
                                label="Steady the keys")

    def check(self) -> None:
        from vid2vid.temporal.propagation import parse_keyframes  # the one reader of the key-frame spec

        parse_keyframes(self.keyframes)

    @property
    def on(self) -> bool:
        return self.keyframes.strip().lower() != "off"


@dataclass
class RunSettings(Section):
    """What `vid2vid run` does beyond the stages' own settings."""

    NAME = "run"
    cache: str = setting("vid2vid-cache", "folder that holds one workspace per video")
    overwrite: bool = setting(True, "replace results made with other settings (off: keep them and stop)",
                              label="Allow overwrite")
    depth: bool = setting(False, "run the depth stage (also runs when a depth mask is chosen)", run_only=True)
    tags: bool = setting(False, "run the tagger stage", run_only=True)
    upscale: bool = setting(True, "run the Real-ESRGAN stage", run_only=True)
    interpolate: bool = setting(True, "run the RIFE stage", run_only=True)
    compare: bool = setting(False, "also write compare.mp4: the source, img2img, flow and final frames side by "
                                   "side (see `vid2vid compare`)", run_only=True)
    metrics_size: int = setting(0, "measure the run's closing figures at this longer side in pixels (0 = the "
                                "output's size; e.g. 256 for long or large videos)", lo=0, run_only=True)
    metrics_every: int = setting(1, "measure the run's closing figures on every N-th frame pair (1 = all)",
                                 lo=1, run_only=True)

    def check(self) -> None:
        if not self.cache:
            raise BadInput("{run.cache} is empty; name a folder for workspaces, e.g. ./vid2vid-cache")
        if 0 < self.metrics_size < METRICS_MIN_SIDE:
            raise BadInput("{run.metrics_size} %d is too small; give 0 (the output's size) or at least %d pixels"
                           % (self.metrics_size, METRICS_MIN_SIDE))


@dataclass
class RaySettings(Section):
    """img2img on Ray actors (one per GPU or per share of CPU cores), see `vid2vid.painting.raypool`."""

    NAME = "ray"
    enabled: bool = setting(False, "run img2img on Ray actors (needs `bash install.sh --ray`)", flag="--ray",
                            label="Run img2img on Ray actors")
    address: str = setting("", "Ray cluster to join: auto, ray://HOST:PORT or HOST:PORT (empty = start a local "
                               "Ray on this machine)", flag="--ray-address", label="Ray cluster address")
    actors: int = setting(0, "how many actors (0 = one per GPU, or one per share of CPU cores, at most one per "
                             "block of frames)", lo=0, hi=4096, flag="--ray-actors", label="Ray actors (0 = automatic)")
    threads: int = setting(0, "CPU threads per actor (0 = what a local run here gives each model worker, so the "
                              "frames are the same bits)", lo=0, hi=1024, flag="--ray-threads",
                           label="CPU threads per Ray actor (0 = automatic)")

    def check(self) -> None:
        if self.enabled:
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise BadInput("{ray.enabled} needs Ray, which is not installed; install it with "
                               "`bash install.sh --ray` (or `pip install ray==2.60.0`), or run without it")


@dataclass
class Settings:
    """All settings; one TOML table per field."""

    run: RunSettings = field(default_factory=RunSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    depth: DepthSettings = field(default_factory=DepthSettings)
    tags: TagsSettings = field(default_factory=TagsSettings)
    img2img: Img2ImgSettings = field(default_factory=Img2ImgSettings)
    correct: CorrectSettings = field(default_factory=CorrectSettings)
    propagate: PropagateSettings = field(default_factory=PropagateSettings)
    upscale: UpscaleSettings = field(default_factory=UpscaleSettings)
    interpolate: InterpolateSettings = field(default_factory=InterpolateSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    ray: RaySettings = field(default_factory=RaySettings)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()


# Section name -> its dataclass, in the order of `Settings`.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Settings)}  # type: ignore[misc]


def to_dict(obj: Any) -> dict:
    """A settings dataclass as plain data (for JSON, TOML and manifests)."""
    return dataclasses.asdict(obj)


def _coerce(table: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    elif origin in (typing.Union, types.UnionType):
        return value
    raise BadInput(f"setting [{table}] {key} = {value!r} has the wrong type; "
                   f"expected {getattr(hint, '__name__', hint)}")


def from_dict(cls: type, data: dict, table: str = "") -> Any:
    """Build a settings dataclass from plain data; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadInput(f"unknown setting(s) in [{table or cls.__name__}]: {', '.join(unknown)}; "
                       f"known: {', '.join(sorted(names))}")
    items = {f.name: m.item for f, m in fields_of(cls) if m.item is not None}
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise BadInput(f"setting [{key}] must be a table")
            kwargs[key] = from_dict(cast(type, hint), value, key)
        elif key in items:                  # a list of tables: [[section.key]]
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise BadInput(f"setting [{table}] {key} must be a list of tables ([[{table}.{key}]])")
            kwargs[key] = [from_dict(items[key], v, f"{table}.{key}") for v in value]
        else:
            kwargs[key] = _coerce(table, key, value, hint)
    return cls(**kwargs)


def dumps_toml(settings: Settings) -> str:
    """All settings as TOML text (what `vid2vid config --dump` prints)."""
    import tomli_w

    return tomli_w.dumps(to_dict(settings))


def load_toml(path: str | Path) -> Settings:
    """Read a settings file; missing keys keep their defaults."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"settings file {p} does not exist; write one with `vid2vid config --dump > {p.name}`")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"settings file {p} is not valid TOML ({exc}); fix it or dump fresh defaults "
                       "with `vid2vid config --dump`") from exc
    return from_dict(Settings, data, "settings")


def save_toml(settings: Settings, path: str | Path) -> None:
    from vid2vid.core.workspace import atomic_write_text

    atomic_write_text(Path(path), dumps_toml(settings))
