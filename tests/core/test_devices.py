"""Device settings: one parser, `auto` = CUDA then MPS then CPU, dtype defaults, every family routed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import vid2vid
from vid2vid.config import Settings
from vid2vid.core import devices
from vid2vid.core.errors import BadInput


@pytest.fixture
def machine(monkeypatch):
    """Set what this torch reports: machine(cuda=True, mps=False, count=2)."""
    def set_(cuda: bool = False, mps: bool = False, count: int = 1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_


@pytest.mark.parametrize("text, parsed", [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("cuda", ("cuda", None)),
                                          ("cuda:1", ("cuda", 1)), ("mps", ("mps", None)), (" MPS ", ("mps", None)),
                                          ("CUDA:0", ("cuda", 0))])
def test_parse_valid_names(text, parsed):
    assert devices.parse(text) == parsed


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps:0", "cpu:0", "", "vulkan", "metal"])
def test_unknown_names_are_refused_with_the_list(text):
    with pytest.raises(BadInput, match=re.escape("use auto, cpu, cuda, cuda:N or mps")):
        devices.parse(text)
    with pytest.raises(BadInput, match=r"^--ratio-device '"):
        devices.check_name(text, "--ratio-device")


def test_auto_picks_cuda_then_mps_then_cpu(machine):
    machine(cuda=True, mps=True)
    assert devices.pick("auto") == torch.device("cuda")
    machine(cuda=False, mps=True)
    assert devices.pick("auto") == torch.device("mps")
    assert devices.pick("mps") == torch.device("mps")
    machine(cuda=False, mps=False)
    assert devices.pick("auto") == torch.device("cpu")
    assert devices.pick("cpu") == torch.device("cpu")


def test_explicit_devices_are_checked_against_the_machine(machine):
    machine(cuda=True, mps=False, count=2)
    assert devices.pick("cuda:1") == torch.device("cuda:1")
    with pytest.raises(BadInput, match=r"has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        devices.pick("cuda:2")
    with pytest.raises(BadInput, match="no Apple GPU.*use device cuda or cpu"):
        devices.pick("mps")
    machine(cuda=False, mps=True)
    with pytest.raises(BadInput, match="no CUDA GPU; use device mps or cpu"):
        devices.pick("cuda")
    machine(cuda=False, mps=False)
    with pytest.raises(BadInput, match="no CUDA GPU; use device cpu$"):
        devices.pick("cuda:0")


def test_dtype_defaults_work_on_each_device():
    assert devices.resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert devices.resolve_dtype("auto", torch.device("cuda:1")) == torch.float16
    assert devices.resolve_dtype("auto", torch.device("mps")) == torch.float32
    assert devices.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert devices.resolve_dtype("float16", torch.device("mps")) == torch.float16
    assert devices.resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(BadInput, match="'float8' is not known; use auto, float32, float16 or bfloat16"):
        devices.resolve_dtype("float8", torch.device("cpu"))


def test_onnx_providers():
    cpu_only = ["CPUExecutionProvider"]
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    mac = ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert devices.onnx_providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert devices.onnx_providers("auto", cuda) == cuda
    assert devices.onnx_providers("auto", mac) == mac
    assert devices.onnx_providers("mps", mac) == mac
    assert devices.onnx_providers("cuda:0", cuda) == cuda
    assert devices.onnx_providers("cpu", cuda) == ["CPUExecutionProvider"]
    with pytest.raises(BadInput, match="onnxruntime-gpu"):
        devices.onnx_providers("cuda", cpu_only)
    with pytest.raises(BadInput, match="CoreML"):
        devices.onnx_providers("mps", cuda)


def test_vulkan_gpu_ids():
    assert [devices.vulkan_gpu_id(t) for t in ("cpu", "auto", "mps", "cuda", "cuda:2")] == [-1, None, None, 0, 2]


@pytest.mark.parametrize("section", ["img2img", "upscale", "interpolate"])
def test_settings_accept_mps_and_refuse_unknown_devices(section):
    s = Settings()
    getattr(s, section).device = "mps"
    getattr(s, section).validate()
    getattr(s, section).device = "gpu"
    wanted = re.escape("--device 'gpu' is not known; use auto, cpu, cuda, cuda:N or mps")
    with pytest.raises(BadInput, match=wanted) as e:
        getattr(s, section).validate()
    assert e.value.settings == [f"{section}.device"]


def test_model_families_take_their_device_from_devices_pick(machine, tmp_path):
    """RIFE (torch) and the tagger's onnxruntime providers answer an absent GPU as devices does."""
    from vid2vid.models.interpolators.rife import RifeInterpolator
    from vid2vid.models.taggers.onnx_tagger import providers

    machine(cuda=False, mps=False)
    with pytest.raises(BadInput, match="--device mps: this torch sees no Apple GPU.*; use --device cpu$") as e:
        RifeInterpolator(device="mps")
    assert e.value.settings == ["interpolate.device", "interpolate.device"]
    assert RifeInterpolator(device="auto").device == torch.device("cpu")
    import onnxruntime as ort

    assert providers("auto") == devices.onnx_providers("auto", ort.get_available_providers())


def test_device_strings_are_parsed_only_in_devices_py():
    """The knowledge of device names lives in devices.py: no other module tests a device setting's
    string (checks of a torch.device's `.type` are fine)."""
    pattern = re.compile(r"""startswith\(["'](cuda|mps)|\bdevice\s*[!=]=\s*["']|device\.partition""")
    src = Path(vid2vid.__file__).parent
    offenders = [f"{f.relative_to(src)}:{n}" for f in sorted(src.rglob("*.py")) if f.name != "devices.py"
                 for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_describe_this_machine():
    assert devices.describe(torch.device("cpu")).startswith("cpu (")
    assert devices.describe(torch.device("mps")) == "mps (Apple GPU)"
    if torch.cuda.is_available():
        assert re.match(r"cuda:0 \(.+, \d+ GiB\)$", devices.describe(torch.device("cuda")))
