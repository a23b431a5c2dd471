"""ControlNet (issue 14) end to end: control sources, the `control` stage, img2img with ControlNets,
the command line (paired flags, TOML tables, bad input), --single and bit-identical resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vid2vid import config
from vid2vid.cli.main import main
from vid2vid.core.errors import BadInput
from vid2vid.core.progress import Job
from vid2vid.video import controlimages

W = H = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")     # tiny tensors: one thread is fastest


@pytest.fixture(scope="module")
def cn(tmp_path_factory):
    from vid2vid.diffusion.tiny_controlnet import make_tiny_controlnet

    root = tmp_path_factory.mktemp("stage-cn")
    return {"folder": make_tiny_controlnet(root / "cn"), "file": make_tiny_controlnet(root, single_file=True),
            "xl": make_tiny_controlnet(root / "xl", config="tiny-sdxl")}


def settings(model, *nets: config.ControlNetSettings, **kw) -> config.Settings:
    s = config.Settings()
    base = dict(model=str(model), prompt="a red fox", negative="blurry", steps=4, width=W, height=H,
                batch_size=2, controlnet=list(nets))
    base.update(kw)
    for k, v in base.items():
        setattr(s.img2img, k, v)
    return s


def frames_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


# ---------------------------------------------------------------- control sources (hand-made cases)

def square(size: int = 48, lo: int = 0, hi: int = 255) -> np.ndarray:
    img = np.full((size, size, 3), lo, np.uint8)
    img[12:36, 12:36] = hi
    return img


def test_canny_marks_only_the_border_of_a_square():
    out = controlimages.canny(square(), 100, 200)
    assert out.dtype == np.uint8 and out.shape == (48, 48, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    edge = out[..., 0] > 0
    assert not edge[16:32, 16:32].any() and not edge[:8].any() and not edge[:, 42:].any()
    assert edge[10:38, 10:14].any(axis=1).sum() >= 20              # the left side, top to bottom
    assert not controlimages.canny(square(lo=100, hi=120), 100, 200).any()   # a weak edge under both thresholds


def test_soft_edges_follow_the_gradient_and_are_zero_on_flat_areas():
    flat = np.full((40, 40, 3), 90, np.uint8)
    assert not controlimages.softedge(flat).any()
    e = controlimages.softedge(square())[..., 0].astype(int)
    assert e[24, 12] > 200 and e[24, 24] == 0 and e[2, 2] == 0       # at the edge strong, inside / outside none
    assert e[24, 12] >= e[24, 15] >= e[24, 18]                        # falls off away from the edge
    weak = controlimages.softedge(square(lo=100, hi=130))[..., 0].astype(int)
    assert 0 < weak[24, 12] < e[24, 12]                               # weaker edges are softer (no normalising)


def test_line_art_turns_dark_strokes_into_white_lines():
    img = np.full((40, 40, 3), 230, np.uint8)
    img[:, 19:21] = 20                                                # a dark vertical stroke on paper
    out = controlimages.lineart(img)[..., 0].astype(int)
    assert out[20, 19] > 200 and out[20, 2] == 0 and out[20, 37] == 0
    bright = np.full((40, 40, 3), 20, np.uint8)
    bright[:, 19:21] = 230                                            # a bright stroke is not a line
    assert controlimages.lineart(bright)[:, 19:21].max() == 0


def test_tile_depth_folder_and_unknown_sources():
    img = square()
    assert np.array_equal(controlimages.control_image("tile", img), img)
    depth = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48, 1)
    d = controlimages.control_image("depth", img, depth=depth)
    assert np.array_equal(d[..., 2], np.rint(depth[..., 0] * 255).astype(np.uint8))
    user = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    assert np.array_equal(controlimages.control_image("folder", img, user=user), user)
    with pytest.raises(BadInput, match="control source 'hed' is not known"):
        controlimages.control_image("hed", img)


# ---------------------------------------------------------------- the control stage

def test_control_stage_writes_caches_resumes_and_invalidates(workspace_factory, tiny_model, cn, tmp_path):
    from conftest import moving_frames
    from vid2vid.core.imageops import read_image, write_image, write_mask
    from vid2vid.stages import control as stage

    ws = workspace_factory(moving_frames(3))
    ws.begin_stage("depth", {"fake": True}, inputs=("extract",), outputs=("depthmask",))
    for i in (1, 2, 3):                                            # a depth stage's maps, 16-bit
        write_mask(ws.path("depthmask", f"{i:05d}.png"), np.full((48, 64, 1), i / 4, np.float32), bits=16)
    ws.complete_stage("depth")
    user = tmp_path / "mine"
    for i in (1, 2, 3):
        write_image(user / f"img{i}.png", np.full((48, 64, 3), i / 5, np.float32))
    nets = [config.ControlNetSettings(model=str(cn["folder"]), control="canny", low=20, high=60),
            config.ControlNetSettings(model=str(cn["folder"]), control="depth"),
            config.ControlNetSettings(model=str(cn["folder"]), control="folder", folder=str(user))]
    s = settings(tiny_model, *nets)
    info = stage.run(ws, s, Job())
    names = ["1-canny", "2-depth", "3-folder"]
    assert [Path(f).name for f in info["folders"]] == names
    for name in names:
        assert sorted(p.name for p in (ws.root / "control" / name).iterdir()) == ["00001.png", "00002.png", "00003.png"]
    canvas_src = read_image(ws.root / "frames" / "00002.png")
    assert read_image(ws.root / "control" / "1-canny" / "00002.png").shape == (H, W, 3)
    assert np.allclose(read_image(ws.root / "control" / "2-depth" / "00002.png"), 0.5, atol=1 / 255)
    assert np.allclose(read_image(ws.root / "control" / "3-folder" / "00003.png"), 0.6, atol=1 / 255)
    assert canvas_src.shape == (48, 64, 3)                          # fitted from 64x48 to the 64x64 canvas
    # cached: nothing rewritten
    stamp = {p: p.stat().st_mtime_ns for p in (ws.root / "control").rglob("*.png")}
    stage.run(ws, s, Job())
    assert {p: p.stat().st_mtime_ns for p in (ws.root / "control").rglob("*.png")} == stamp
    # resumed: one lost file is made again, the others are kept
    lost = ws.root / "control" / "1-canny" / "00002.png"
    want = lost.read_bytes()
    lost.unlink()
    ws.manifest["stages"]["control"]["complete"] = False
    ws.save_manifest()
    stage.run(ws, s, Job())
    assert lost.read_bytes() == want
    assert (ws.root / "control" / "2-depth" / "00001.png").stat().st_mtime_ns == \
        stamp[ws.root / "control" / "2-depth" / "00001.png"]
    key = ws.stage_record("control")["key"]
    # a scale or window changes nothing here; a threshold, a user image or the canvas does
    s.img2img.controlnet[0].scale, s.img2img.controlnet[0].end = 0.5, 0.6
    stage.run(ws, s, Job())
    assert ws.stage_record("control")["key"] == key
    write_image(user / "img2.png", np.full((48, 64, 3), 0.9, np.float32))
    stage.run(ws, s, Job())
    assert ws.stage_record("control")["key"] != key
    assert np.allclose(read_image(ws.root / "control" / "3-folder" / "00002.png"), 0.9, atol=1 / 255)
    # a folder with too few images: refused before anything is removed
    (user / "img3.png").unlink()
    before = frames_bytes(ws.root / "control" / "1-canny")
    with pytest.raises(BadInput, match="has 2 images for 3 frames"):
        stage.run(ws, s, Job())
    assert frames_bytes(ws.root / "control" / "1-canny") == before


# ---------------------------------------------------------------- img2img with ControlNets

def test_stage_with_workers_single_frame_and_resume_after_lost_frames(workspace_factory, tiny_model, cn):
    import shutil

    from conftest import moving_frames
    from vid2vid.core.imageops import read_image
    from vid2vid.pipeline.runner import run_stage
    from vid2vid.stages.img2img import stage_params

    full_ws = workspace_factory(moving_frames(4), "full")
    torch.set_num_threads(2)                                      # two model workers, one thread each
    try:
        s = settings(tiny_model, config.ControlNetSettings(model=str(cn["folder"]), control="canny", low=20,
                                                           high=60), workers=2, batch_size=1)
        s.correct.spatial_mask = "motion"                         # masks keep working with a ControlNet
        with pytest.raises(BadInput, match="vid2vid control"):
            run_stage("img2img", full_ws, s, Job(), follow=False)  # alone (as `run` calls it): control first
        info = run_stage("img2img", full_ws, s, Job())            # a stage command makes them on the way
        assert full_ws.is_complete("control")
        assert info["model_workers"] == 2
        assert info["controlnets"][0]["steps"] == list(range(len(info["real_sigmas"]) - 1))
        full = frames_bytes(full_ws.root / "img2img")
        # lose frames 3 and 4 of the finished run (a copy): the rerun writes exactly the same bytes
        cut = full_ws.root.with_name("cut")
        shutil.copytree(full_ws.root, cut)
        from vid2vid.core.workspace import Workspace

        cut_ws = Workspace(cut)
        for name in ("00003.png", "00004.png"):
            (cut / "img2img" / name).unlink()
        cut_ws.manifest["stages"]["img2img"]["complete"] = False
        cut_ws.save_manifest()
        run_stage("img2img", cut_ws, s, Job())
        assert frames_bytes(cut / "img2img") == full
    finally:
        torch.set_num_threads(1)
    # other control images than the ones made are refused before anything is touched
    other = settings(tiny_model, config.ControlNetSettings(model=str(cn["folder"]), control="lineart"))
    with pytest.raises(BadInput, match="made for other ControlNet sources"):
        run_stage("img2img", full_ws, other, Job(), follow=False)
    assert frames_bytes(full_ws.root / "img2img") == full
    # --single 1: the raw frame 1 (frame 1 is never corrected), with its control image beside it
    single = settings(tiny_model, *s.img2img.controlnet, single=1)
    run_stage("img2img", full_ws, single, Job())
    debug = full_ws.root / "img2img.debug"
    # (one thread here, against a worker's: rounding may differ by a grey level, no more)
    assert np.abs(read_image(debug / "00001.png") - read_image(full_ws.root / "img2img" / "00001.png")).max() \
        <= 1 / 255 + 1e-6
    assert (debug / "00001-control-1-canny.png").read_bytes() == \
        (full_ws.root / "control" / "1-canny" / "00001.png").read_bytes()
    # scale, window and the ControlNet file are part of img2img's key
    keys = {str(stage_params(s))}
    for change in ({"scale": 0.3}, {"start": 0.2}, {"model": str(cn["file"])}):
        other = settings(tiny_model, config.ControlNetSettings(**{**config.to_dict(s.img2img.controlnet[0]),
                                                                   **change}))
        keys.add(str(stage_params(other)))
    assert len(keys) == 4


def test_key_frames_and_their_img2img_fill_are_steered_too(workspace_factory, tiny_model, cn):
    """With key frames, img2img paints the keys with the ControlNet and the fill of disocclusions
    (a light img2img of the hole) gets the frame's control images as well."""
    from conftest import moving_frames
    from vid2vid.pipeline.runner import run_stage

    ws = workspace_factory(moving_frames(5), "keys")
    s = settings(tiny_model, config.ControlNetSettings(model=str(cn["file"]), control="canny", low=20, high=60))
    s.propagate.keyframes, s.propagate.fill = "every:2", "img2img"
    s.propagate.fill_budget = 1.0          # 3 keys of 5 frames are over the default budget: it would leave no fill
    run_stage("control", ws, s, Job())
    info = run_stage("img2img", ws, s, Job())
    assert info["propagate"]["filled"] >= 1                      # the fill ran (and had its control images)
    assert len(frames_bytes(ws.root / "propagate")) == 5


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(workspace_factory, tiny_model, cn, tmp_path):
    """`vid2vid img2img` with a ControlNet SIGKILLed after its second frame, then run again."""
    from conftest import moving_frames

    src = moving_frames(3)
    ref, cut = workspace_factory(src, "ref"), workspace_factory(src, "killed")
    args = ["--model", str(tiny_model), "--prompt", "a fox", "--steps", "4", "--width", str(W), "--height",
            str(H), "--batch-size", "1", "--controlnet", f"{cn['file']}:0.8", "--control", "softedge"]
    for ws in (ref, cut):
        assert main(["control", "-w", str(ws.root), *args]) == 0
    assert main(["img2img", "-w", str(ref.root), *args]) == 0
    killer = Path(__file__).parents[1] / "fault_kill.py"
    env = dict(os.environ, VID2VID_KILL="img2img:advance:2",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(killer), "img2img", "-w", str(cut.root), *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert 1 <= len(frames_bytes(cut.root / "img2img")) < 3
    assert main(["img2img", "-w", str(cut.root), *args]) == 0
    assert frames_bytes(cut.root / "img2img") == frames_bytes(ref.root / "img2img")


# ---------------------------------------------------------------- command line and settings file

def test_toml_tables_and_paired_flags(tmp_path, cn):
    from vid2vid.cli.main import apply_options, build_parser

    toml = tmp_path / "s.toml"
    toml.write_text('[img2img]\nmodel = "m"\n\n[[img2img.controlnet]]\nmodel = "a.pth"\ncontrol = "lineart"\n'
                    'scale = 0.6\nstart = 0.1\nend = 0.7\nblur = 2.0\n\n[[img2img.controlnet]]\nmodel = "b"\n'
                    'control = "depth"\n')
    s = config.load_toml(toml)
    assert [(c.model, c.control, c.scale, c.start, c.end, c.blur) for c in s.img2img.controlnet] == \
        [("a.pth", "lineart", 0.6, 0.1, 0.7, 2.0), ("b", "depth", 1.0, 0.0, 1.0, 1.0)]
    assert config.from_dict(config.Settings, __import__("tomllib").loads(config.dumps_toml(s)), "s") == s
    parser = build_parser()
    args = parser.parse_args(["img2img", "-w", "x", "--config", str(toml), "--controlnet", "c.safetensors:0.5",
                              "--control", "canny", "--controlnet", "owner/cn", "--control", str(tmp_path)])
    got = apply_options(config.load_toml(toml), args, args.subparser).img2img.controlnet
    assert [(c.model, c.control, c.scale, c.start, c.end, c.folder) for c in got] == \
        [("c.safetensors", "canny", 0.5, 0.0, 1.0, ""), ("owner/cn", "folder", 1.0, 0.0, 1.0, str(tmp_path))]
    args = parser.parse_args(["img2img", "-w", "x", "--config", str(toml)])
    assert apply_options(config.load_toml(toml), args, args.subparser).img2img.controlnet == s.img2img.controlnet


def test_make_tiny_model_controlnet_command(tmp_path, capsys):
    assert main(["make-tiny-model", str(tmp_path / "cn"), "--controlnet"]) == 0
    assert (tmp_path / "cn" / "config.json").is_file() and not (tmp_path / "cn" / "model_index.json").exists()
    assert main(["make-tiny-model", str(tmp_path), "--controlnet", "--single-file"]) == 0
    assert (tmp_path / "tiny-controlnet-sd1.safetensors").is_file()


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("log.jsonl", ".lock")}


@pytest.mark.parametrize("extra, needle", [
    (["--controlnet", "{cn}", "--control", "sobel"], "control source 'sobel' is not known"),
    (["--controlnet", "{cn}:5", "--control", "canny"], "scale 5 is out of range"),
    (["--controlnet", "{cn}", "--control", "canny", "--controlnet", "{cn}"], "2 --controlnet and 1 --control"),
    (["--controlnet", "{missing}", "--control", "canny"], "not found"),
    (["--controlnet", "{model}", "--control", "canny"], "Stable Diffusion model folder, not a ControlNet"),
    (["--controlnet", "{xl}", "--control", "canny"], "made for SDXL (tiny test model), but the model is SD 1.x"),
    (["--config", "{window}"], "start 0.6 is not below end 0.4"),
])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(workspace_factory, tiny_model, cn, tmp_path, capsys,
                                                        extra, needle):
    from conftest import moving_frames

    ws = workspace_factory(moving_frames(2), "bad")
    base = ["--model", str(tiny_model), "--steps", "2", "--width", str(W), "--height", str(H)]
    assert main(["img2img", "-w", str(ws.root), *base]) == 0
    assert main(["control", "-w", str(ws.root), *base, "--controlnet", str(cn["file"]), "--control", "canny"]) == 0
    before = _snapshot(ws.root)
    window = tmp_path / "window.toml"
    window.write_text(f'[[img2img.controlnet]]\nmodel = "{cn["file"]}"\ncontrol = "canny"\nstart = 0.6\nend = 0.4\n')
    fill = {"cn": str(cn["file"]), "xl": str(cn["xl"]), "missing": str(tmp_path / "nope.pth"),
            "model": str(tiny_model), "window": str(window)}
    args = [a.format(**fill) for a in extra]
    capsys.readouterr()
    code = main(["img2img", "-w", str(ws.root), *base, *args])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines()
           if not ln.startswith(("[", "img2img:", "control:", "warning:"))]
    assert code == 2 and len(err) == 1, err
    assert needle.lower() in err[0].lower(), err[0]
    assert "Traceback" not in err[0]
    assert _snapshot(ws.root) == before


# ---------------------------------------------------------------- the page's section (no browser)

def test_page_slots_become_settings_and_preview_shows_the_stage_images(tmp_path):
    from conftest import make_workspace, moving_frames
    from vid2vid.stages import control as stage
    from vid2vid.ui import controlnet_section as ui
    from vid2vid.ui import form, paths

    root = paths.cache_root(tmp_path / "cache")
    (root / "cn").mkdir()
    make_workspace(root / "ws", moving_frames(2))
    slot1 = [True, "cn", "lineart", 0.8, 0.1, 0.9, 100.0, 200.0, 2.0, ""]
    slot2 = [False, "", "canny", 1.0, 0.0, 1.0, 100.0, 200.0, 1.0, ""]
    text = ui.to_json(*slot1, *slot2)
    s = form.settings_from_form({"img2img.controlnet": text, "img2img.width": 64.0, "img2img.height": 64.0}, root,
                                sections=("img2img",))
    assert [(c.model, c.control, c.scale, c.start, c.end, c.blur, c.low) for c in s.img2img.controlnet] == \
        [(str(root / "cn"), "lineart", 0.8, 0.1, 0.9, 2.0, 100)]
    assert isinstance(s.img2img.controlnet[0].low, int)
    assert form.form_values(s, [ui.KEY])[ui.KEY].startswith('[{"model": ')
    with pytest.raises(BadInput, match="outside the cache"):
        form.settings_from_form({"img2img.controlnet": ui.to_json(True, "/etc/x.pth", *slot1[2:], *slot2)}, root,
                                sections=("img2img",))
    with pytest.raises(BadInput, match="start 0.9 is not below end 0.1"):
        bad = [True, "cn", "canny", 1.0, 0.9, 0.1, 100.0, 200.0, 1.0, ""]
        form.settings_from_form({"img2img.controlnet": ui.to_json(*bad, *slot2)}, root, sections=("img2img",))
    preview = ui.control_preview(root, "ws", s, 2)
    assert [cap for _, cap in preview] == ["1-lineart"]
    ws = paths.workspace(root, "ws")
    stage.run(ws, s, Job())
    from vid2vid.core.imageops import read_image, to_float

    assert np.array_equal(to_float(preview[0][0]), read_image(ws.root / "control" / "1-lineart" / "00002.png"))
    with pytest.raises(BadInput, match="not a frame"):
        ui.control_preview(root, "ws", s, 9)
