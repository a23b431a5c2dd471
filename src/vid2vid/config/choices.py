"""Allowed values of the choice settings (kebab-case tokens) and the seed's labels for them."""
from __future__ import annotations

from vid2vid.config.fields import Choices
from vid2vid.core import devices

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

# with img2img.seed); flow: the flow-guided pass over the sequence (temporal.py)
CORRECT_METHODS = Choices(("stats", "flow"), aliases={"seed": "stats"})
CONTROL_SOURCES = ("canny", "softedge", "lineart", "depth", "tile", "folder")   # control.py
KEY_FILLS = ("warp", "img2img")      # what fills what neither key frame sees (vid2vid.temporal.propagation)
DEINTERLACE_MODES = ("auto", "on", "off")
CROSS_FRAME_MODES = ("none", "anchor", "anchor-prev", "bank")   # diffusion/crossframe.py
CROSS_FRAME_BLOCKS = ("up", "all")
CONTEXT_WEIGHTINGS = ("flat", "pyramid")     # painting/windows.py: how overlapping windows blend

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
    "flat": "flat", "pyramid": "pyramid (more weight mid-window)",
    "anchor": "anchor (first frame)", "anchor-prev": "anchor + previous frame", "bank": "bank of earlier frames",
}


DEVICES_HELP = devices.NAMES
METRICS_MIN_SIDE = 16      # the smallest measuring size: DIS flow needs 12 pixels on a side

