"""Device settings in one place: which names are valid, which device `auto` means, default dtypes.

A device setting is one of ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (Apple's GPU).
`auto` picks CUDA, then MPS, then the CPU. The torch model families turn a setting into a
`torch.device` with `pick`; the onnxruntime taggers into execution providers with
`onnx_providers`; the ncnn upscalers into a Vulkan GPU index with `vulkan_gpu_id`. Checking a
name (`check_name`) needs no torch, so settings validation stays light.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from vid2vid.core.errors import BadInput

if TYPE_CHECKING:
    import torch

NAMES = "auto, cpu, cuda, cuda:N or mps"
DTYPES = ("auto", "float32", "float16", "bfloat16")
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def parse(text: str) -> tuple[str, int | None]:
    """('cuda', 1) for 'cuda:1', ('mps', None) for 'mps'; BadInput for anything else."""
    m = _PATTERN.match(str(text).strip().lower())
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise BadInput(f"device '{text}' is not known; use {NAMES}")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


def check_name(text: str, setting: str = "device") -> str:
    """`text` normalised (lower case) when it is a valid device name; BadInput naming `setting` else
    (a settings reference such as "{img2img.device}", which each interface words its own way)."""
    try:
        kind, index = parse(text)
    except BadInput:
        raise BadInput(f"{setting} '{text}' is not known; use {NAMES}") from None
    return kind if index is None else f"{kind}:{index}"


# ---------------------------------------------------------------- torch

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def auto_kind() -> str:
    """What `auto` means on this machine: 'cuda', then 'mps', then 'cpu'."""
    if cuda_available():
        return "cuda"
    if mps_available():
        return "mps"
    return "cpu"


def pick(text: str = "auto", setting: str = "device") -> torch.device:
    """The torch device for a device setting, checked against what this machine has."""
    import torch

    kind, index = parse(check_name(text, setting))
    if kind == "auto":
        return torch.device(auto_kind())
    if kind == "cuda":
        if not cuda_available():
            raise BadInput(f"{setting} {text}: this torch sees no CUDA GPU; use {_usable_hint(setting)}")
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise BadInput(f"{setting} {text}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda" if index is None else f"cuda:{index}")
    if kind == "mps":
        if not mps_available():
            raise BadInput(f"{setting} mps: this torch sees no Apple GPU (MPS needs Apple silicon, macOS 12.3+ "
                           f"and an arm64 Python); use {_usable_hint(setting)}")
        return torch.device("mps")
    return torch.device("cpu")


def _usable_hint(setting: str) -> str:
    kind = auto_kind()
    return f"{setting} cpu" if kind == "cpu" else f"{setting} {kind} or cpu"


def default_dtype(device: torch.device | str) -> torch.dtype:
    """float16 on CUDA; float32 on the CPU and on MPS (half-precision VAE decodes on MPS can come out
    black; diffusers' MPS guide loads in float32 too; float16 halves the memory)."""
    import torch

    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    return torch.float16 if kind == "cuda" else torch.float32


def resolve_dtype(text: str, device: torch.device, setting: str = "dtype") -> torch.dtype:
    """'auto' -> `default_dtype(device)`; or float32 / float16 / bfloat16 as given."""
    import torch

    if text == "auto":
        return default_dtype(device)
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if text not in table:
        raise BadInput(f"{setting} '{text}' is not known; use {', '.join(DTYPES[:-1])} or {DTYPES[-1]}")
    return table[text]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for timings); nothing on the CPU."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe(device: torch.device) -> str:
    """One line about a torch device: 'cuda:0 (NVIDIA H200, 140 GiB)', 'mps (Apple GPU)', 'cpu (16 cores)'."""
    import os

    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2 ** 30:.0f} GiB)"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({os.cpu_count() or 1} cores, {torch.get_num_threads()} torch threads)"


# ---------------------------------------------------------------- other runtimes

def onnx_providers(text: str, available: list[str]) -> list[str]:
    """onnxruntime execution providers for a device setting, given the providers this build has.
    cuda -> CUDA; mps -> CoreML (Apple's runtime); auto -> the first of those present; CPU always last."""
    kind, _ = parse(text)
    gpu = {"cuda": "CUDAExecutionProvider", "mps": "CoreMLExecutionProvider"}
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "auto":
        first = next((gpu[k] for k in ("cuda", "mps") if gpu[k] in available), None)
        return ([first] if first else []) + ["CPUExecutionProvider"]
    if gpu[kind] not in available:
        fix = "install onnxruntime-gpu" if kind == "cuda" else "install an onnxruntime with CoreML (the macOS wheel)"
        raise BadInput(f"device '{text}' was asked for but this onnxruntime has no {gpu[kind]}; {fix} or use cpu")
    return [gpu[kind], "CPUExecutionProvider"]


def vulkan_gpu_id(text: str) -> int | None:
    """ncnn's GPU index for a device setting: cpu -> -1, cuda:N -> N, auto and mps -> None (the first
    Vulkan GPU if any; on a Mac that is the Apple GPU through MoltenVK)."""
    kind, index = parse(text)
    if kind == "cpu":
        return -1
    if kind == "cuda":
        return index or 0
    return None
