"""Shared test helpers: small workspaces and clips made in code."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# One thread per process: tests run tiny models, where a second thread buys little and, on a busy
# machine, thread spinning can make small torch ops many times slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests must never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests mirror the source (tests/<package>/test_<module>.py) and some share helpers across folders
# (`from test_metrics import translating`): every test folder is importable by module name.
sys.path[1:1] = [str(d) for d in sorted(Path(__file__).parent.iterdir()) if d.is_dir() and d.name[0].isalpha()
                 and any(d.glob("test_*.py"))]


def moving_frames(n: int = 6, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    """`n` float32 RGB frames in [0, 1]: a gradient background with a square moving right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.0 * xx], axis=2)
    tint = rng.uniform(0.2, 0.9, size=3).astype(np.float32)
    frames = []
    for i in range(n):
        img = base.copy()
        x0 = 4 + 3 * i
        img[10:26, x0:x0 + 16] = tint
        frames.append(img.astype(np.float32))
    return frames


def make_workspace(root: Path, frames: list[np.ndarray], fps: float = 12.0):
    """A workspace whose `extract` stage is complete with `frames` (as 00001.png ...)."""
    from vid2vid.core.imageops import write_image
    from vid2vid.core.workspace import Workspace, frame_name

    ws = Workspace(root).ensure()
    for i, f in enumerate(frames, 1):
        write_image(ws.path("frames", frame_name(i)), f)
    h, w = frames[0].shape[:2]
    ws.manifest["video"] = {"path": "synthetic", "width": w, "height": h, "fps": str(fps),
                            "duration": len(frames) / fps, "frames": len(frames), "has_audio": False}
    ws.begin_stage("extract", {"synthetic": True, "n": len(frames)}, outputs=())
    ws.complete_stage("extract", frames=len(frames), width=w, height=h)
    return ws


@pytest.fixture
def workspace_factory(tmp_path):
    def factory(frames=None, name="ws"):
        return make_workspace(tmp_path / name, frames if frames is not None else moving_frames())
    return factory


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: tiny networks crawl with two threads on a busy 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    """`tiny_model` loaded through the real loading code, once per test module (a module may hook its UNet;
    modules that need another tiny model define their own `tiny`)."""
    from vid2vid.diffusion.loading import load_model

    return load_model(str(tiny_model), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_ip_adapter(tmp_path_factory) -> Path:
    """A tiny IP-Adapter with its image encoder that fit `tiny_model`, written once per test session."""
    from vid2vid.diffusion.tiny_ip_adapter import make_tiny_ip_adapter

    return make_tiny_ip_adapter(tmp_path_factory.mktemp("session-ipa") / "ipa")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random SD 1.x diffusers folder, written once per test session. Read-only: a test
    that changes a model copies it first."""
    from vid2vid.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("session-tiny") / "tiny")
