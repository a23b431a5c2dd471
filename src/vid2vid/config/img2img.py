"""The img2img section (and its ControlNet tables): what paints the frames."""
from __future__ import annotations

import math
from dataclasses import dataclass

from vid2vid.config.choices import (
    CONTEXT_WEIGHTINGS,
    CONTROL_SOURCES,
    CROSS_FRAME_BLOCKS,
    CROSS_FRAME_MODES,
    DEVICES_HELP,
    PREDICTION_TYPES,
    RESIZE_MODES,
    SAMPLERS,
    SCHEDULES,
)
from vid2vid.config.fields import Section, _check_device, _span, fields_of, setting
from vid2vid.config.reference import parse_reference
from vid2vid.core import devices
from vid2vid.core.errors import BadInput


def _check_table(table, where: str, model: str, what: str) -> None:
    """The checks a steering table shares (ControlNet, IP-Adapter): numbers in range, a model, start < end."""
    for f, m in fields_of(table):
        value = getattr(table, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                not math.isfinite(value) or (m.lo is not None and value < m.lo) or (m.hi is not None and value > m.hi)):
            raise BadInput(f"{where}: {f.name} {value:g} is out of range; it must be {_span(m.lo, m.hi)}")
    if not table.model.strip():
        raise BadInput(f"{where}: no model; give {model}")
    if table.start >= table.end:
        raise BadInput(f"{where}: start {table.start:g} is not below end {table.end:g}; {what} steers "
                       "from start to end of the schedule (0 and 1 = all of it)")


@dataclass
class ControlNetSettings(Section):
    """One ControlNet of img2img: a `[[img2img.controlnet]]` table.

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
        _check_table(self, where, "the ControlNet's file, diffusers folder or hub id", "the ControlNet")
        if self.low > self.high:
            raise BadInput(f"{where}: canny low threshold {self.low} is above the high one {self.high}; swap them")
        if self.control == "folder" and not self.folder.strip():
            raise BadInput(f"{where}: the folder source needs the folder of control images")


@dataclass
class IPAdapterSettings(Section):
    """One IP-Adapter of img2img with its reference picture: a `[[img2img.ip_adapter]]` table.

    Errors name the list (`{img2img.ip_adapter}`, the command line's --ip-adapter), the adapter
    by its file, then the table's own key.
    """

    NAME = "img2img"
    model: str = setting("", "IP-Adapter: a .safetensors/.bin file (ip-adapter_sd15, ip-adapter-plus_sd15, "
                             "ip-adapter-plus-face_sd15, ip-adapter_sdxl_vit-h, ...) or a folder holding one",
                         label="IP-Adapter model")
    reference: str = setting("", "reference picture: an image file, a folder of images (averaged), "
                                 "first-painted (frame 1 painted without the adapter) or key:N (painted frame N)",
                             label="Reference image")
    scale: float = setting(1.0, "how strongly the reference steers (0 = not at all)", lo=0.0, hi=2.0,
                           label="IP-Adapter weight")
    start: float = setting(0.0, "where it starts, as a fraction of the schedule actually run", lo=0.0, hi=1.0,
                           label="Starting step")
    end: float = setting(1.0, "where it ends, as a fraction of the schedule actually run", lo=0.0, hi=1.0,
                         label="Ending step")
    image_encoder: str = setting("", "its CLIP image encoder: a folder, a file or a hub id (empty = found beside "
                                     "the adapter: image_encoder/, ../image_encoder/, ComfyUI's clip_vision/)",
                                 label="Image encoder (empty = beside the adapter)")
    embedding: str = setting("", "the reference's stored embedding (.safetensors with cond and uncond); the run "
                                 "fills it in from img2img.reference/ so that workers and Ray actors use the one "
                                 "computed once", cli=False)

    def validate(self) -> None:
        where = "{img2img.ip_adapter} '%s'" % self.model
        _check_table(self, where, "the IP-Adapter file or its folder", "the adapter")
        parse_reference(self.reference, where + " reference")


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
                          label="Debug frame", remember=False)
    controlnet: list[ControlNetSettings] = setting(
        [], "ControlNets, MODEL[:SCALE] each with its --control SOURCE (repeatable, paired in order)",
        item=ControlNetSettings, label="ControlNets")
    ip_adapter: list[IPAdapterSettings] = setting(
        [], "IP-Adapters, FILE|DIR[:SCALE] each with its --reference SOURCE (repeatable, paired in order)",
        item=IPAdapterSettings, label="IP-Adapters")

    # cross-frame attention and flow-guided init (diffusion/crossframe.py, flowinit.py)
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
    # ---- the fast path
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
    accel: list[str] = setting([], "cheaper UNet calls (repeatable): tome:RATIO merges that share of the "
                                   "full-resolution self-attention tokens (0..0.75), cache:N reuses the deep "
                                   "features of a full UNet call for the next N calls, cache-frames[:THRESHOLD] "
                                   "reuses a still frame's deep features from the frame before (mean source "
                                   "difference below THRESHOLD, default 0.02); they trade picture for speed (README)",
                               flag="--accel", label="Accelerators (one per line: tome:0.5, cache:2, cache-frames)")

    # ---- motion modules: a video model paints windows of frames (painting/windows.py)
    motion_module: str = setting("", "AnimateDiff motion module: a .ckpt/.safetensors file (mm_sd15_v2, "
                                     "v3_sd15_mm, AnimateLCM_sd15_t2v), a diffusers MotionAdapter folder or a hub "
                                     "id; when set, windows of frames are painted together (SD 1.5 models)",
                                 label="Motion module (AnimateDiff)")
    context_length: int = setting(16, "motion module: frames painted together in one window (at most what the "
                                      "module was trained for: 32 for v2/v3, 24 for v1)", lo=2, hi=256,
                                  label="Context length (frames)")
    context_overlap: int = setting(4, "motion module: frames shared by neighbouring windows (below the context "
                                      "length)", lo=0, hi=255, label="Context overlap (frames)")
    context_weighting: str = setting("pyramid", "motion module: how overlapping windows are blended on the frames "
                                                "they share (pyramid: more weight to a window's middle)",
                                     choices=CONTEXT_WEIGHTINGS, label="Context blending")
    motion_scale: float = setting(1.0, "motion module: strength of the motion layers (0 = none, 1 = as trained)",
                                  lo=0.0, hi=2.0, label="Motion scale")
    shuffle_noise: bool = setting(False, "motion module: FreeNoise's noise, later windows reuse the first "
                                         "window's noise in shuffled order (else every frame its own noise)",
                                  label="FreeNoise shuffled noise")

    # ---- the video model: Wan VACE paints windows of 4n+1 frames (painting/painters/wan_vace.py)
    video_model: str = setting("", "Wan 2.1 VACE video model: a diffusers folder or hub id, or ComfyUI's split files "
                                   "(the VACE transformer file from models/diffusion_models/, with the UMT5 text "
                                   "encoder and Wan VAE found beside it or in models/text_encoders/ and models/vae/; "
                                   "or a folder of the three); when set it paints the clip in windows of 4n+1 frames "
                                   "guided by a control video",
                               label="Video model (Wan VACE)")
    video_control: str = setting("softedge", "video model: the control video, made from the source frames (or a folder "
                                          "with one image per frame)", choices=CONTROL_SOURCES,
                                 label="Video model control")
    video_control_folder: str = setting("", "video model: the folder of control images (the folder source)",
                                        label="Video control folder")
    video_control_scale: float = setting(1.0, "video model: how strongly the control video and the reference image "
                                              "steer (0 = not at all)", lo=0.0, hi=2.0, label="Video control scale")
    video_reference: str = setting("", "video model: reference image fed to VACE: an image file, a folder of "
                                       "images, or first-painted (frame 1 painted first by the image painter)",
                                   label="Video reference image")
    flow_shift: float = setting(3.0, "video model: the flow-matching schedule's shift (3 for 480p, 5 for 720p)",
                                lo=0.1, hi=20.0, label="Flow shift")

    def notes(self) -> list[str]:
        if self.model and not self.prompt.strip():
            return ["warning: {img2img.prompt} is empty: the model repaints from the picture alone; give a prompt "
                    "to steer it"]
        return []

    def check(self) -> None:
        if self.motion_module.strip() and self.context_overlap >= self.context_length:
            raise BadInput(f"{{img2img.context_overlap}} {self.context_overlap} is not below "
                           f"{{img2img.context_length}} {self.context_length}; windows must advance (4 of 16 "
                           "is the usual)")
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
        from vid2vid.config.accel import parse

        accel = parse(self.accel)
        if accel.frames is not None and self.cross_frame != "none":
            raise BadInput("{img2img.accel} cache-frames and {img2img.cross_frame} both decide which earlier frame "
                           "each frame reads; set {img2img.cross_frame} to none or drop cache-frames")
        if accel.any and self.compile:
            raise BadInput("{img2img.accel} and {img2img.compile} do not combine (the accelerators switch parts of "
                           "the UNet per call, which a compiled UNet cannot); turn one of them off")

    def prediction_type(self) -> str | None:
        """The prediction type to force on the model, or None to keep what the model says."""
        return None if self.prediction == "auto" else self.prediction


