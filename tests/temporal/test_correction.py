"""`vid2vid correct` / correct_folder, the delta stage and the fdc-debug command on small folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import moving_frames
from vid2vid.cli import main as cli
from vid2vid.config import CorrectSettings, Settings
from vid2vid.core.errors import BadInput, Interrupted
from vid2vid.core.imageops import read_image, to_float, to_uint8, write_image
from vid2vid.core.progress import Job
from vid2vid.core.workspace import Workspace
from vid2vid.stages import delta
from vid2vid.temporal import correction, fdc


def u8(img):
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_folder(folder: Path, frames, names=None) -> list[Path]:
    paths = []
    for i, f in enumerate(frames, 1):
        p = folder / (names[i - 1] if names else f"{i:05d}.png")
        write_image(p, f)
        paths.append(p)
    return paths


def fake_generated(frames, seed=0, scale=1):
    """Frames 'generated' from the source: repainted colours plus per-frame noise (the flicker)."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        g = np.clip(f[..., ::-1] * 0.8 + rng.uniform(0, 0.2, f.shape), 0, 1).astype(np.float32)
        if scale != 1:
            g = np.repeat(np.repeat(g, scale, axis=0), scale, axis=1)
        out.append(g)
    return out


def reference_chain(src, gen, settings, size=None):
    """Frame by frame with fdc.correct_frame, previous output = the 8-bit frame as written.

    size: (width, height) to bring the source delta to first (bicubic, as for growing).
    """
    import cv2

    outs, prev = [], None
    for i, g in enumerate(gen):
        d = (src[i] - src[i - 1]) if i else None
        if d is not None and size is not None:
            d = np.clip(cv2.resize(d, size, interpolation=cv2.INTER_CUBIC), -1, 1)
        out, _ = fdc.correct_frame(g, prev, d, settings)
        prev = to_float(to_uint8(out))
        outs.append(to_uint8(out))
    return outs


@pytest.fixture
def folders(tmp_path):
    src = [to_float(u8(f)) for f in moving_frames(6)]
    gen = [to_float(u8(g)) for g in fake_generated(src)]
    write_folder(tmp_path / "src", src)
    write_folder(tmp_path / "gen", gen)
    return tmp_path, src, gen


def test_correct_folder_matches_the_frame_by_frame_chain(folders):
    root, src, gen = folders
    s = CorrectSettings(fdc="shift-std", delta_mask="motion")
    info = correction.correct_folder(root / "src", root / "gen", root / "out", s, save_masks=root / "masks")
    assert info["frames"] == 6 and info["written"] == 6
    outs = sorted((root / "out").glob("*.png"))
    assert [p.name for p in outs] == [f"{i:05d}.png" for i in range(1, 7)]
    expected = reference_chain(src, gen, s)
    for p, e in zip(outs, expected):
        np.testing.assert_array_equal(np.asarray(Image.open(p)), e)
    np.testing.assert_array_equal(np.asarray(Image.open(outs[0])), u8(gen[0]))  # first frame unchanged
    assert sorted(p.name for p in (root / "masks").glob("*.png")) == [f"{i:05d}.png" for i in range(2, 7)]


def test_natural_order_pairs_frame_10_after_frame_9(tmp_path):
    src = [to_float(u8(f)) for f in moving_frames(11)]
    gen = [to_float(u8(g)) for g in fake_generated(src, seed=3)]
    names = [f"f{i}.png" for i in range(1, 12)]          # plain sort would put f10 before f2
    write_folder(tmp_path / "src", src, names)
    write_folder(tmp_path / "gen", gen, names)
    s = CorrectSettings(fdc="shift-mean-std", delta_mask="motion")
    correction.correct_folder(tmp_path / "src", tmp_path / "gen", tmp_path / "out", s)
    expected = reference_chain(src, gen, s)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / name)), expected[i])


def test_generated_frames_of_another_size(tmp_path):
    src = [to_float(u8(f)) for f in moving_frames(4)]
    gen = [to_float(u8(g)) for g in fake_generated(src, scale=2)]
    write_folder(tmp_path / "src", src)
    write_folder(tmp_path / "gen", gen)
    s = CorrectSettings()
    correction.correct_folder(tmp_path / "src", tmp_path / "gen", tmp_path / "out", s)
    out = read_image(tmp_path / "out" / "00003.png")
    assert out.shape == gen[0].shape
    # the source delta enters at the generated size
    expected = reference_chain(src, gen, s, size=(128, 96))
    for i in range(4):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i + 1:05d}.png")), expected[i])


def test_count_mismatch_names_the_missing_frames(folders):
    root, _, _ = folders
    (root / "gen" / "00005.png").unlink()
    with pytest.raises(BadInput, match="missing in generated: 00005.png"):
        correction.correct_folder(root / "src", root / "gen", root / "out", CorrectSettings())
    with pytest.raises(BadInput, match="does not exist"):
        correction.correct_folder(root / "nope", root / "gen", root / "out", CorrectSettings())
    with pytest.raises(BadInput, match="same folder"):
        write_image(root / "gen" / "00005.png", np.zeros((48, 64, 3), np.float32))
        correction.correct_folder(root / "src", root / "gen", root / "gen", CorrectSettings())


def test_resume_after_interrupt_gives_identical_frames(folders):
    root, _, _ = folders
    s = CorrectSettings(fdc="shift-mean-std", delta_mask="motion")
    correction.correct_folder(root / "src", root / "gen", root / "full", s)

    job = Job()
    seen = []

    def stop_after_three(ev):
        seen.append(ev.done)
        if ev.done == 3:
            job.cancel.set()

    job.on_progress = stop_after_three
    with pytest.raises(Interrupted):
        correction.correct_folder(root / "src", root / "gen", root / "part", s, job=job)
    assert len(list((root / "part").glob("*.png"))) == 3
    info = correction.correct_folder(root / "src", root / "gen", root / "part", s)
    assert info["written"] == 3 and info["skipped"] == 3
    for p in sorted((root / "full").glob("*.png")):
        assert (root / "part" / p.name).read_bytes() == p.read_bytes()


def test_other_settings_are_refused_then_overwritten(folders):
    root, src, gen = folders
    correction.correct_folder(root / "src", root / "gen", root / "out", CorrectSettings(fdc="shift-std"))
    before = (root / "out" / "00004.png").read_bytes()
    with pytest.raises(BadInput, match="--overwrite"):
        correction.correct_folder(root / "src", root / "gen", root / "out", CorrectSettings(fdc="clip"))
    assert (root / "out" / "00004.png").read_bytes() == before          # kept
    s = CorrectSettings(fdc="clip")
    info = correction.correct_folder(root / "src", root / "gen", root / "out", s, overwrite=True)
    assert info["written"] == 6
    np.testing.assert_array_equal(np.asarray(Image.open(root / "out" / "00004.png")), reference_chain(src, gen, s)[3])
    assert json.loads((root / "out" / correction.RECORD).read_text())["params"]["fdc"] == "clip"


def test_depth_delta_mask_from_a_folder(folders):
    root, src, gen = folders
    rng = np.random.default_rng(5)
    depths = [rng.uniform(0, 1, (48, 64)).astype(np.float32) for _ in src]
    (root / "depth").mkdir()
    for i, dm in enumerate(depths, 1):
        Image.fromarray(u8(dm), "L").save(root / "depth" / f"{i:05d}.png")
    s = CorrectSettings(fdc="none", delta_mask="depth", depth_lowcut=40)
    with pytest.raises(BadInput, match="--depth"):
        correction.correct_folder(root / "src", root / "gen", root / "out", s)
    correction.correct_folder(root / "src", root / "gen", root / "out", s, depth_dir=root / "depth")
    prev = to_float(u8(gen[0]))
    for i in range(1, 6):
        m = fdc.depth_mask(to_float(u8(depths[i]))[..., None], 40)
        expected = u8(gen[i] * m + prev * (1 - m))
        got = np.asarray(Image.open(root / "out" / f"{i + 1:05d}.png"))
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        prev = to_float(got)


def test_flow_method_dispatches_to_temporal(folders):
    temporal = pytest.importorskip("vid2vid.temporal.flowpass")
    root, src, gen = folders
    s = CorrectSettings(method="flow", delta_mask="none")
    correction.correct_folder(root / "src", root / "gen", root / "out", s)
    expected = temporal.flow_correct_sequence([u8(f) for f in src], [u8(g) for g in gen], change_masks=None)
    for i, e in enumerate(expected, 1):
        np.testing.assert_array_equal(np.asarray(Image.open(root / "out" / f"{i:05d}.png")), to_uint8(e))


def test_flow_method_uses_its_own_mask_and_strength(folders):
    temporal = pytest.importorskip("vid2vid.temporal.flowpass")
    root, src, gen = folders
    # the seed's delta mask does not leak into the flow method; flow_mask and flow_strength do
    s = CorrectSettings(method="flow", delta_mask="motion", flow_mask="motion", flow_strength=0.5)
    correction.correct_folder(root / "src", root / "gen", root / "out2", s)
    h, w = gen[0].shape[:2]
    masks = [None] + [fdc.motion_mask(fdc.fit_delta(fdc.frame_delta(to_float(u8(a)), to_float(u8(b))), h, w),
                                      s.motion_lowcut, s.motion_highext) for a, b in zip(src[:-1], src[1:])]
    expected = temporal.flow_correct_sequence([u8(f) for f in src], [u8(g) for g in gen], 0.5, change_masks=masks)
    for i, e in enumerate(expected, 1):
        got = np.asarray(Image.open(root / "out2" / f"{i:05d}.png")).astype(int)
        assert np.abs(got - to_uint8(e).astype(int)).max() <= 1
    with pytest.raises(BadInput, match="--flow-strength"):
        CorrectSettings(method="flow", flow_strength=1.0).validate()


# ---------------------------------------------------------------- delta stage

def test_delta_stage_writes_views_and_resumes(workspace_factory):
    ws = workspace_factory()
    frames = [read_image(p) for p in ws.frames()]
    info = delta.run(ws, Settings(), Job())
    views = sorted(ws.path("framedelta").glob("*.png"))
    assert info["deltas"] == 5 and [p.name for p in views] == [f"{i:05d}.png" for i in range(2, 7)]
    for i, p in enumerate(views, 1):
        level = ((frames[i].astype(np.float64) - frames[i - 1]) + 1) / 2 * 255
        view = np.asarray(Image.open(p)).astype(int)
        tie = np.abs(level - np.floor(level) - 0.5) < 1e-3       # odd differences: x.5, either way
        assert np.abs(view - np.rint(level)).max() <= 1
        np.testing.assert_array_equal(view[~tie], np.rint(level[~tie]))
    np.testing.assert_array_equal(delta.source_delta(ws.frames(), 2), frames[2] - frames[1])
    assert delta.source_delta(ws.frames(), 0) is None
    views[2].unlink()                                    # a lost view is redone on the next run
    ws.manifest["stages"]["delta"]["complete"] = False
    delta.run(ws, Settings(), Job())
    assert views[2].exists() and ws.is_complete("delta")


# ---------------------------------------------------------------- command line

def test_cli_correct_and_fdc_debug(folders, capsys):
    root, _, _ = folders
    rc = cli.main(["correct", "--source", str(root / "src"), "--generated", str(root / "gen"),
                   "--out", str(root / "out"), "--fdc", "shift-mean", "--motion-lowcut", "64"])
    assert rc == 0 and len(list((root / "out").glob("*.png"))) == 6
    assert json.loads((root / "out" / correction.RECORD).read_text())["params"]["motion_lowcut"] == 64
    rc = cli.main(["correct", "--source", str(root / "src"), "--generated", str(root / "nope"),
                   "--out", str(root / "out2")])
    assert rc == 2
    for sheet in ("fdc", "motion"):
        out = root / f"{sheet}.png"
        rc = cli.main(["fdc-debug", "--source", str(root / "src"), "--generated", str(root / "gen"),
                       "--frame", "3", "--sheet", sheet, "--tile-width", "32", "-o", str(out)])
        assert rc == 0 and Image.open(out).mode == "RGB"
    assert cli.main(["fdc-debug", "--source", str(root / "src"), "--frame", "1", "--sheet", "motion",
                     "-o", str(root / "x.png")]) == 2


def test_cli_delta_stage(workspace_factory):
    ws = workspace_factory()
    assert cli.main(["delta", "-w", str(ws.root)]) == 0
    assert len(list(ws.path("framedelta").glob("*.png"))) == 5
    assert Workspace(ws.root).is_complete("delta")              # a fresh read of the manifest
    assert cli.main(["delta", "-w", str(ws.root)]) == 0          # done: nothing to redo


def test_flow_method_in_segments_writes_the_same_files(folders, monkeypatch):
    temporal = pytest.importorskip("vid2vid.temporal.flowpass")
    root, src, gen = folders
    s = CorrectSettings(method="flow", flow_mask="motion")
    correction.correct_folder(root / "src", root / "gen", root / "whole", s)
    monkeypatch.setattr(temporal, "MEMORY_BUDGET", 1)          # forces segments of sqrt(6) -> 3 frames
    assert temporal.segment_length(6, *gen[0].shape[1::-1]) == 3
    correction.correct_folder(root / "src", root / "gen", root / "segmented", s)
    whole, parts = sorted((root / "whole").glob("*.png")), sorted((root / "segmented").glob("*.png"))
    assert [p.name for p in whole] == [p.name for p in parts] and len(whole) == 6
    for a, b in zip(whole, parts):
        assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.parametrize("method", ["stats", "flow"])
def test_resize_mode_fits_the_source_motion_like_the_generated_frames(tmp_path, method):
    """Generated frames cropped from the source: --resize crop gives what the cropped source gives."""
    from vid2vid.core.imageops import fit

    src = [to_float(u8(f)) for f in moving_frames(5, width=96, height=48)]
    gen = [to_float(u8(g)) for g in fake_generated([fit(f, 48, 48, "crop") for f in src])]
    write_folder(tmp_path / "src", src)
    write_folder(tmp_path / "src-cropped", [fit(f, 48, 48, "crop") for f in src])
    write_folder(tmp_path / "gen", gen)
    s = CorrectSettings(method=method, flow_mask="motion")
    correction.correct_folder(tmp_path / "src", tmp_path / "gen", tmp_path / "crop", s, resize="crop")
    correction.correct_folder(tmp_path / "src-cropped", tmp_path / "gen", tmp_path / "ref", s)
    correction.correct_folder(tmp_path / "src", tmp_path / "gen", tmp_path / "stretched", s)
    crop, ref = sorted((tmp_path / "crop").glob("*.png")), sorted((tmp_path / "ref").glob("*.png"))
    assert len(crop) == 5 and [a.read_bytes() for a in crop] == [b.read_bytes() for b in ref]
    stretched = sorted((tmp_path / "stretched").glob("*.png"))
    assert [a.read_bytes() for a in crop] != [b.read_bytes() for b in stretched]
    with pytest.raises(BadInput, match="--resize 'zoom'"):
        correction.correct_folder(tmp_path / "src", tmp_path / "gen", tmp_path / "bad", s, resize="zoom")


def test_the_flow_only_fields_do_not_move_the_key_of_another_method():
    """The stats method does not read flow strength or the flow mask: its key holds them at their first values,
    so the new default strength (or another value) redoes nothing; under the flow method they count."""
    from vid2vid import config
    from vid2vid.core.workspace import params_key
    from vid2vid.temporal.correction import FLOW_ONLY_FIRST, key_params

    stats = config.CorrectSettings()
    assert stats.method == "stats" and stats.flow_strength != FLOW_ONLY_FIRST["flow_strength"]
    first = {**config.to_dict(stats), **FLOW_ONLY_FIRST}              # what keys held before the default moved
    assert params_key(key_params(stats)) == params_key(first)
    other = config.CorrectSettings(flow_strength=0.3, flow_mask="motion")
    assert params_key(key_params(other)) == params_key(first)
    flow = config.CorrectSettings(method="flow")
    assert key_params(flow)["flow_strength"] == flow.flow_strength
    assert params_key(key_params(flow)) != params_key(key_params(config.CorrectSettings(method="flow",
                                                                                        flow_strength=0.75)))
