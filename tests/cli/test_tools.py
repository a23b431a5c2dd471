"""`vid2vid make-tiny-model`: the random model and the demo's pass-through one, written quietly."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from vid2vid.cli.main import main


def _roundtrip_correlation(folder) -> float:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    img = np.stack([xx / 64, yy / 64, (xx + yy) / 128], axis=0) * 2 - 1
    x = torch.from_numpy(img)[None]
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
    return float(np.corrcoef(x.flatten().numpy(), y.flatten().numpy())[0, 1])


def test_passthrough_model_shows_the_picture_and_no_torchvision_notice(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vid2vid", "make-tiny-model", str(tmp_path / "pt"), "--passthrough"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "torchvision" not in out.stderr and "pass-through" in out.stderr
    assert _roundtrip_correlation(tmp_path / "pt") > 0.8           # 0.89 here; a random VAE: near 0


def test_random_model_paints_noise(tmp_path):
    assert main(["make-tiny-model", str(tmp_path / "rnd")]) == 0
    assert abs(_roundtrip_correlation(tmp_path / "rnd")) < 0.5


def test_passthrough_refuses_single_file(tmp_path, capsys):
    assert main(["make-tiny-model", str(tmp_path / "x"), "--passthrough", "--single-file"]) == 2
    assert "leave out --single-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["make-tiny-model", str(tmp_path / "x"), "--passthrough", "--tiny-vae"])
