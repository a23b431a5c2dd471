"""Typed settings for every stage, with the seed's defaults, validation and TOML round trip.

Each stage has one dataclass; `Settings` holds them all and is what `vid2vid run`, the web UI
and the library API pass around. Choice values are kebab-case tokens (DESIGN §7); `LABELS`
maps them to the seed's wording for the UI. Every check raises `BadInput` with the fix.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vid2vid.errors import BadInput

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
CORRECT_METHODS = ("seed", "flow")   # seed: masks + statistics (fdc.py); flow: temporal.py

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
}


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInput(f"{name} '{value}' is not known; use one of: {', '.join(allowed)}")


def _range(name: str, value: float, lo: float | None = None, hi: float | None = None, fix: str = "") -> None:
    bad = (isinstance(value, float) and not math.isfinite(value)) or \
        (lo is not None and value < lo) or (hi is not None and value > hi)
    if bad:
        span = f"from {lo} to {hi}" if lo is not None and hi is not None else \
            (f"at least {lo}" if lo is not None else f"at most {hi}")
        raise BadInput(f"{name} {value} is out of range; it must be {span}{'; ' + fix if fix else ''}")


@dataclass
class ExtractSettings:
    """Frames out of the source video (stage `extract`)."""

    frames: str = "fps"        # fps | all | i | p | b
    fps: float = 12.0          # used when frames == "fps"
    format: str = "png"        # png | jpg | webp
    audio: bool = False        # keep the audio track for export
    max_pixels: int = 8192 * 8192  # refuse frames larger than this (width * height)

    def validate(self) -> None:
        _choice("--frames", self.frames, FRAME_MODES)
        _choice("--format", self.format, IMAGE_FORMATS)
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise BadInput(f"--fps {self.fps} is not a positive number; give e.g. --fps 12")
        _range("max_pixels", self.max_pixels, 1)


@dataclass
class CorrectSettings:
    """Frame delta correction (DESIGN §4): masks, then statistics."""

    fdc: str = "shift-std"
    delta_mask: str = "motion"
    spatial_mask: str = "none"
    motion_highext: int = 7
    motion_lowcut: int = 32
    depth_lowcut: int = -1
    method: str = "seed"       # seed (the statistics above) or flow (flow-guided, `vid2vid correct`)
    flow_strength: float = 0.75  # flow method: 0 = no correction, higher = steadier (memory 1/(1-s) frames)
    flow_mask: str = "none"    # flow method: change mask (white = let the generated frame through)

    def validate(self) -> None:
        _choice("--fdc", self.fdc, FDC_METHODS)
        _choice("--method", self.method, CORRECT_METHODS)
        _choice("--flow-mask", self.flow_mask, DELTA_MASKS)
        if not 0.0 <= self.flow_strength < 1.0:
            raise BadInput(f"--flow-strength {self.flow_strength} is out of range; use 0 to 0.99 (default 0.75)")
        _choice("--delta-mask", self.delta_mask, DELTA_MASKS)
        _choice("--spatial-mask", self.spatial_mask, SPATIAL_MASKS)
        _range("--motion-highext", self.motion_highext, 1, 15)
        if self.motion_highext % 2 != 1:
            raise BadInput(f"--motion-highext {self.motion_highext} must be odd (1, 3, ..., 15)")
        _range("--motion-lowcut", self.motion_lowcut, 0, 255)
        _range("--depth-lowcut", self.depth_lowcut, -1, 255, "-1 means no cut")


@dataclass
class DepthSettings:
    """Depth masks (stage `depth`)."""

    model: str = "dpt_hybrid"

    def validate(self) -> None:
        if not self.model:
            raise BadInput("--model for depth is empty; name a depth model, e.g. dpt_hybrid")


@dataclass
class TagsSettings:
    """Anime tags per frame (stage `tags`)."""

    model: str = "wd14-vit-v2"
    topk: int = 32
    threshold: float = 0.35

    def validate(self) -> None:
        _range("--topk", self.topk, 1, 1000)
        _range("--threshold", self.threshold, 0.0, 1.0)


@dataclass
class Img2ImgSettings:
    """Successive img2img with the sigma override (stage `img2img`)."""

    model: str = ""
    prompt: str = ""
    negative: str = ""
    sampler: str = "euler"
    steps: int = 20
    denoise: float = 0.75
    schedule: str = "exponential"
    sigma_min: float = 0.1
    sigma_max: float = 1.2
    init_noise: float = 1.0
    cfg: float = 7.0
    seed: int = 114514
    width: int = 832
    height: int = 448
    resize: str = "just"
    batch_size: int = 1
    workers: int = 0           # model workers running batches side by side on a CPU; 0 = automatic
    device: str = "auto"       # auto | cpu | cuda | cuda:N
    dtype: str = "auto"        # auto | float32 | float16 | bfloat16
    prediction: str = "auto"   # auto (what the model says) | epsilon | v_prediction
    loras: list[str] = field(default_factory=list)       # "path[:weight]"
    embeddings: list[str] = field(default_factory=list)  # textual inversion files
    single: int = 0            # debug: generate only this frame (1-based) into img2img.debug/; 0 = all
    # ---- issue 17 (the fast path); to become setting(...) fields once main has the metadata
    vae: str = ""              # separate VAE: .safetensors file, folder or hub id (TAESD too); "" = the model's own
    tcd_gamma: float = 0.3     # TCD's stochasticity (0 = deterministic, 1 = fully stochastic)
    skip_still: float = 0.0    # reuse the previous output when the source moved less than this (0 = off)
    compile: bool = False      # torch.compile the UNet and VAE (pays on long GPU runs)
    # ---- end issue 17

    def validate(self) -> None:
        _choice("--sampler", self.sampler, SAMPLERS)
        _choice("--schedule", self.schedule, SCHEDULES)
        _choice("--resize", self.resize, RESIZE_MODES)
        _range("--steps", self.steps, 1, 150)
        _range("--denoise", self.denoise, 0.0, 1.0)
        _range("--init-noise", self.init_noise, 0.0, 10.0)
        _range("--cfg", self.cfg, 0.0, 100.0)
        _range("--batch-size", self.batch_size, 1, 64)
        _range("--workers", self.workers, 0, 64, fix="give 0 (automatic) or the number of batches to run at once")
        _range("--single", self.single, 0, fix="give a frame number (1 = the first frame) or 0 for all")
        for name, v in (("--sigma-min", self.sigma_min), ("--sigma-max", self.sigma_max)):
            if not (v > 0 and math.isfinite(v)):
                raise BadInput(f"{name} {v} must be a positive number")
        if self.sigma_max < self.sigma_min:
            raise BadInput(f"--sigma-max {self.sigma_max} is below --sigma-min {self.sigma_min}; "
                           "swap them or raise --sigma-max")
        for name, v in (("--width", self.width), ("--height", self.height)):
            if v < 8 or v > 8192 or v % 8:
                raise BadInput(f"{name} {v} must be a multiple of 8 between 8 and 8192; "
                               f"try {max(8, round(v / 8) * 8)} (see `vid2vid size`)")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise BadInput(f"--device '{self.device}' is not known; use auto, cpu, cuda or cuda:N")
        _choice("--dtype", self.dtype, ("auto", "float32", "float16", "bfloat16"))
        _choice("--prediction", self.prediction, PREDICTION_TYPES)
        # issue 17
        _range("--tcd-gamma", self.tcd_gamma, 0.0, 1.0, "0.3 is TCD's default")
        _range("--skip-still", self.skip_still, 0.0, 1.0,
               "it is a mean absolute difference of the source frames (0.01 is about 2.5 levels of 255; 0 = off)")

    def prediction_type(self) -> str | None:
        """The prediction type to force on the model, or None to keep what the model says."""
        return None if self.prediction == "auto" else self.prediction


@dataclass
class UpscaleSettings:
    """Real-ESRGAN upscaling (stage `upscale`)."""

    model: str = "realesr-animevideov3-x2"   # a bundled name, lanczos-x2/x3/x4, or a .pth file
    tile: int = 0              # tile size in input pixels; 0 = automatic
    device: str = "auto"       # auto (Vulkan GPU / CUDA when present) | cpu | cuda | cuda:N

    def validate(self) -> None:
        _range("--tile", self.tile, 0, 4096)
        if 0 < self.tile < 32:
            raise BadInput(f"--tile {self.tile} is too small; use 0 (automatic) or 32 and more")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise BadInput(f"--device '{self.device}' is not known; use auto, cpu, cuda or cuda:N")


@dataclass
class InterpolateSettings:
    """RIFE frame interpolation (stage `interpolate`)."""

    model: str = "rife"        # rife (bundled), blend, or the path of RIFE v4.x weights
    ratio: float = 2.0
    scene_cut: float = 0.2     # colour-histogram change above which frames are repeated, not blended; 1 = off
    device: str = "auto"       # auto | cpu | cuda | cuda:N

    def validate(self) -> None:
        if not (0.5 <= self.ratio <= 4.0):
            raise BadInput(f"--ratio {self.ratio} is out of range; use 0.5 to 4 (2 doubles the frames)")
        _range("--scene-cut", self.scene_cut, 0.0, 1.0, "1 turns scene-cut detection off")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise BadInput(f"--device '{self.device}' is not known; use auto, cpu, cuda or cuda:N")


@dataclass
class ExportSettings:
    """Video out of a frame folder (stage `export`)."""

    source: str = "rife"       # frames | img2img | resr | rife  (CLI: --from)
    format: str = "mp4"
    audio: bool = False
    output: str = ""           # empty = synth-<source>.<format> inside the workspace
    crf: int = 20

    def validate(self) -> None:
        _choice("--from", self.source, EXPORT_SOURCES)
        _choice("--format", self.format, EXPORT_FORMATS)
        _range("--crf", self.crf, 0, 51)


@dataclass
class RunSettings:
    """What `vid2vid run` does beyond the stages' own settings."""

    cache: str = "vid2vid-cache"
    overwrite: bool = True     # False: keep results made with other parameters, and say so
    depth: bool = False        # run the optional stages?
    tags: bool = False
    upscale: bool = True
    interpolate: bool = True

    def validate(self) -> None:
        if not self.cache:
            raise BadInput("--cache is empty; name a folder for workspaces, e.g. ./vid2vid-cache")


@dataclass
class Settings:
    """All settings; one TOML table per field."""

    run: RunSettings = field(default_factory=RunSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    depth: DepthSettings = field(default_factory=DepthSettings)
    tags: TagsSettings = field(default_factory=TagsSettings)
    img2img: Img2ImgSettings = field(default_factory=Img2ImgSettings)
    correct: CorrectSettings = field(default_factory=CorrectSettings)
    upscale: UpscaleSettings = field(default_factory=UpscaleSettings)
    interpolate: InterpolateSettings = field(default_factory=InterpolateSettings)
    export: ExportSettings = field(default_factory=ExportSettings)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()


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
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise BadInput(f"setting [{key}] must be a table")
            kwargs[key] = from_dict(hint, value, key)
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
    from vid2vid.workspace import atomic_write_text

    atomic_write_text(Path(path), dumps_toml(settings))
