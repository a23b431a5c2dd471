"""The settings sections of every stage but img2img, and `Settings`, which holds them all."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vid2vid.config.choices import (
    CORRECT_METHODS,
    DEINTERLACE_MODES,
    DELTA_MASKS,
    DEVICES_HELP,
    EXPORT_FORMATS,
    EXPORT_SOURCES,
    FDC_METHODS,
    FRAME_MODES,
    IMAGE_FORMATS,
    KEY_FILLS,
    METRICS_MIN_SIDE,
    SPATIAL_MASKS,
)
from vid2vid.config.fields import Section, _check_device, setting
from vid2vid.config.img2img import Img2ImgSettings
from vid2vid.config.live import LiveSettings
from vid2vid.core.errors import BadInput


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
    flow_strength: float = setting(0.95, "flow method: 0 = none, higher = steadier (0..0.99)", lo=0.0, hi=0.99,
                                   fix="0.95 is the default", label="Flow strength (flow method)")
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
    source: str = setting("rife", "frame folder to export (`vid2vid export`: the last one the workspace has)",
                          choices=EXPORT_SOURCES, flag="--from", label="Frame source", remember=False)
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
                             "after T pixels of motion), +fast or +fast:F after either for a key after each frame pair "
                             "moving F pixels (e.g. every:4+fast); scene cuts always start a key", label="Key frames")
    fill: str = setting("warp", "what fills what neither key's warp can be trusted for: a redraw in the keys' "
                        "colours on the source's shape, or a light img2img of just that region", choices=KEY_FILLS,
                        flag="--key-fill", label="Fill disocclusions")
    fill_denoise: float = setting(0.35, "denoising strength of the img2img fill", lo=0.0, hi=1.0,
                                  flag="--key-fill-denoise", label="Fill denoise")
    fill_budget: float = setting(0.35, "the share of the frames the model may paint, keys included (1: no limit): the "
                                 "img2img fill repaints the frames with the largest holes first, in what the keys "
                                 "leave", lo=0.0, hi=1.0, flag="--key-fill-budget", label="Fill budget")
    steady_keys: bool = setting(True, "steady each key with the two keys on each side (along the source's motion) "
                                "before carrying it, so the keys' own flicker does not jump at every key",
                                label="Steady the keys")

    def check(self) -> None:
        from vid2vid.config.keyframes import parse_keyframes  # the one reader of the key-frame spec

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
                              label="Allow overwrite", remember=False)
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
    models: list[str] = setting([], "read-only model folders the web page lists and reads models from: A1111 or "
                                "ComfyUI install folders or their models/ (`vid2vid ui --models`)", cli=False)

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
    live: LiveSettings = field(default_factory=LiveSettings)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()


# Section name -> its dataclass, in the order of `Settings`.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Settings)}  # type: ignore[misc]


