"""`vid2vid grid`: settings sweeps on the tiny model, checked against the single-frame debug paintings,
`vid2vid metrics`, a second call, and a run killed with SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_workspace, moving_frames
from vid2vid.cli.main import main
from vid2vid.pipeline import grid_draw

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KILLER = Path(__file__).resolve().parents[1] / "fault_kill.py"
W, H = 64, 48


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):
    """A 6-frame workspace and a settings file naming the tiny model at a 64x48 canvas, 4 steps."""
    root = tmp_path_factory.mktemp("grid")
    cfg = root / "settings.toml"
    cfg.write_text(f'[img2img]\nmodel = "{tiny_model}"\nprompt = "a cat"\nwidth = {W}\nheight = {H}\nsteps = 4\n')
    return root, cfg


def new_ws(root: Path, name: str) -> Path:
    make_workspace(root / name, moving_frames(6))
    return root / name


def grid_cli(ws: Path, cfg: Path, *args: str, capsys=None) -> str:
    assert main(["grid", "-w", str(ws), "--config", str(cfg), *args]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1] if capsys else ""


def u8(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def frame_grid(setup):
    """A 2x2 grid of frame 3 (denoise x cfg), and the four debug paintings `img2img --single 3` makes."""
    root, cfg = setup
    ws = new_ws(root, "frame")
    assert main(["grid", "-w", str(ws), "--config", str(cfg), "--x", "denoise=0.5,0.75", "--y", "cfg=5,7",
                 "--at", "3"]) == 0
    manifest = json.loads((ws / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["extract"]                     # the workspace's own results untouched
    assert sorted(p.name for p in ws.iterdir() if p.is_dir()) == ["frames", "grid"]
    debug = {}
    for cfg_v in ("5", "7"):
        for den in ("0.5", "0.75"):
            assert main(["img2img", "-w", str(ws), "--config", str(cfg), "--single", "3", "--denoise", den,
                         "--cfg", cfg_v]) == 0
            debug[(den, cfg_v)] = u8(ws / "img2img.debug" / "00003.png")
    return ws, cfg, debug


def test_a_2x2_grid_holds_the_four_debug_paintings_pixel_for_pixel_with_labels_around(frame_grid):
    ws, _, debug = frame_grid
    folder = ws / "grid" / "denoise-cfg-f3"
    sheet_img = u8(folder / "grid.png")
    sheet = grid_draw.plan_sheet((W, H), ["denoise: 0.5", "denoise: 0.75"], ["cfg: 5", "cfg: 7"])
    assert sheet_img.shape == (sheet.height, sheet.width, 3)
    covered = np.zeros(sheet_img.shape[:2], bool)
    for r, cfg_v in enumerate(("5", "7")):
        for c, den in enumerate(("0.5", "0.75")):
            x, y = grid_draw.origin(sheet, r, c)
            np.testing.assert_array_equal(sheet_img[y:y + H, x:x + W], debug[(den, cfg_v)])
            covered[y:y + H, x:x + W] = True
    assert len({v.tobytes() for v in debug.values()}) == 4          # the settings changed the paintings
    margin = sheet_img[~covered]
    assert (margin == 255).all(axis=1).mean() > 0.8                  # the margins are white ...
    ink = (sheet_img.min(axis=2) < 128) & ~covered
    x0, y0 = grid_draw.origin(sheet, 0, 0)
    x1, _ = grid_draw.origin(sheet, 0, 1)
    assert ink[:y0, x0:x0 + W].sum() > 20 and ink[:y0, x1:x1 + W].sum() > 20     # ... with column headers
    assert ink[y0:y0 + H, :x0].sum() > 20                                          # and row headers
    record = json.loads((folder / "grid.json").read_text())
    assert record["axes"] == {"x": {"setting": "img2img.denoise", "values": [0.5, 0.75]},
                              "y": {"setting": "img2img.cfg", "values": [5.0, 7.0]}}
    assert record["frames"] == 3
    assert [c["settings"] for c in record["cells"]] == [
        {"img2img.denoise": d, "img2img.cfg": g} for g in (5.0, 7.0) for d in (0.5, 0.75)]
    assert all(c["painted"] for c in record["cells"]) and "figures" not in record["cells"][0]


def test_a_second_identical_call_paints_nothing(frame_grid, capsys):
    ws, cfg, _ = frame_grid
    folder = ws / "grid" / "denoise-cfg-f3"
    before = {p: p.stat().st_mtime_ns for p in folder.glob("cells/*/img2img.debug/*.png")}
    picture = (folder / "grid.png").read_bytes()
    capsys.readouterr()
    line = grid_cli(ws, cfg, "--x", "img2img.denoise=0.5,0.75", "--y", "cfg=5,7", "--at", "3", capsys=capsys)
    assert line == f"grid: 4 cells (0 painted, 4 reused) -> {folder / 'grid.png'}"
    assert len(before) == 4 and {p: p.stat().st_mtime_ns for p in before} == before
    assert not any(c["painted"] for c in json.loads((folder / "grid.json").read_text())["cells"])
    assert (folder / "grid.png").read_bytes() == picture


def test_a_z_axis_gives_one_picture_per_value(frame_grid, capsys):
    ws, cfg, debug = frame_grid
    capsys.readouterr()
    line = grid_cli(ws, cfg, "--x", "denoise=0.5", "--y", "seed=114514", "--z", "cfg=5,7", "--at", "3",
                    "--name", "zz", capsys=capsys)
    assert line == f"grid: 2 cells (2 painted, 0 reused) -> {ws / 'grid' / 'zz'}"
    for k, cfg_v in enumerate(("5", "7"), 1):
        sheet = grid_draw.plan_sheet((W, H), ["denoise: 0.5"], ["seed: 114514"], title=f"cfg: {cfg_v}")
        x, y = grid_draw.origin(sheet, 0, 0)
        img = u8(ws / "grid" / "zz" / f"grid-z{k}.png")
        np.testing.assert_array_equal(img[y:y + H, x:x + W], debug[("0.5", cfg_v)])
        assert (img[:y, x:].min(axis=2) < 128).sum() > 40             # title and header


def range_command(ws: Path, cfg: Path) -> list[str]:
    return ["grid", "-w", str(ws), "--config", str(cfg), "--x", "denoise=0.5,0.75", "--at", "2-5"]


def launch(args: list[str], kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("VID2VID_KILL", None)
    if kill:
        env["VID2VID_KILL"] = kill
    return subprocess.run([sys.executable, str(KILLER), *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def range_grid(setup):
    """A range grid (frames 2-5, two cells) run whole, and the same grid killed in its second cell, rerun."""
    root, cfg = setup
    whole, killed = new_ws(root, "whole"), new_ws(root, "killed")
    done = launch(range_command(whole, cfg))
    assert done.returncode == 0, done.stderr[-2000:]
    first = launch(range_command(killed, cfg), kill="img2img:advance:6")       # cell 2, its 2nd frame
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    again = launch(range_command(killed, cfg))
    assert again.returncode == 0, again.stderr[-2000:]
    return whole, killed, done.stdout.strip().splitlines()[-1], again.stdout.strip().splitlines()[-1]


def test_a_killed_range_grid_resumes_to_the_same_bytes(range_grid):
    whole, killed, line_whole, line_again = range_grid
    folder = "grid/denoise-f2-5"
    assert line_whole == f"grid: 2 cells (2 painted, 0 reused) -> {whole / folder / 'grid.mp4'}"
    assert line_again == f"grid: 2 cells (1 painted, 1 reused) -> {killed / folder / 'grid.mp4'}"
    for name in ("grid.png", "grid.mp4", "grid.csv"):
        assert (whole / folder / name).read_bytes() == (killed / folder / name).read_bytes(), name
    rec = json.loads((killed / folder / "grid.json").read_text())
    assert [c["painted"] for c in rec["cells"]] == [False, True]
    assert not list((killed / folder).rglob(".tmp-*"))


def test_range_figures_equal_vid2vid_metrics_on_the_cells_frames(range_grid, capsys):
    whole = range_grid[0]
    folder = whole / "grid" / "denoise-f2-5"
    rec = json.loads((folder / "grid.json").read_text())
    assert rec["frames"] == [2, 5]
    seen = set()
    for cell in rec["cells"]:
        cf = folder / cell["folder"]
        assert len(list((cf / "img2img").glob("*.png"))) == 4           # the range only, not the video
        capsys.readouterr()
        assert main(["metrics", "--source", str(cf / "frames"), str(cf / "img2img"), "--ref",
                     str(cf / "source"), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert cell["figures"] == {k: report[k] for k in ("warping_error", "flicker", "psnr")}
        seen.add(cell["figures"]["psnr"])
    assert len(seen) == 2
    with Image.open(folder / "grid.png") as im:          # the source column, then the two cells
        assert im.size[0] > 3 * W


@pytest.mark.parametrize("args, says", [
    (["--x", "denoize=0.5"], "did you mean denoise"),
    (["--x", "denoise=1.5"], "--denoise 1.5 is out of range"),
    (["--x", "denoise=0:1:0.1", "--y", "cfg=1:7:1"], "more than 64; confirm it (--yes)"),
    (["--x", "denoise=0.5", "--at", "4-9"], "frames 4-9 are outside the video"),
    (["--x", "upscale.tile=64"], "is not a setting of the painting stages"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_is_made(setup, capsys, args, says):
    root, cfg = setup
    ws = root / "bad"
    if not ws.exists():
        new_ws(root, "bad")
    full = ["grid", "-w", str(ws), "--config", str(cfg), *args]
    if "--at" not in args:
        full += ["--at", "3"]
    capsys.readouterr()
    assert main(full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not (ws / "grid").exists()


def test_a_list_setting_is_an_axis_each_value_one_list(setup, tmp_path, capsys):
    """--lora as an axis: `none` and one LoRA at half weight; the LoRA's cell is what `--single` paints with it."""
    from test_loading import _kohya_lora

    root, cfg = setup
    lora = tmp_path / "style.safetensors"
    _kohya_lora(lora)
    ws = new_ws(root, "lora")
    capsys.readouterr()
    line = grid_cli(ws, cfg, "--x", f"lora=none,{lora}:0.5", "--at", "2", capsys=capsys)
    assert line.startswith("grid: 2 cells (2 painted, 0 reused)")
    rec = json.loads((ws / "grid" / "loras-f2" / "grid.json").read_text())
    assert rec["axes"]["x"] == {"setting": "img2img.loras", "values": [[], [f"{lora}:0.5"]]}
    assert [c["settings"] for c in rec["cells"]] == [{"img2img.loras": []}, {"img2img.loras": [f"{lora}:0.5"]}]
    assert main(["img2img", "-w", str(ws), "--config", str(cfg), "--single", "2", "--lora", f"{lora}:0.5"]) == 0
    sheet = grid_draw.plan_sheet((W, H), ["loras: none", f"loras: {lora}:0.5"], [])
    picture = u8(ws / "grid" / "loras-f2" / "grid.png")
    x0, y0 = grid_draw.origin(sheet, 0, 0)
    x1, y1 = grid_draw.origin(sheet, 0, 1)
    np.testing.assert_array_equal(picture[y1:y1 + H, x1:x1 + W], u8(ws / "img2img.debug" / "00002.png"))
    assert not np.array_equal(picture[y0:y0 + H, x0:x0 + W], picture[y1:y1 + H, x1:x1 + W])


def test_cells_painted_side_by_side_in_worker_processes_give_the_same_grid(frame_grid, setup, capsys):
    ws_one = frame_grid[0]
    root, cfg = setup
    ws = new_ws(root, "parallel")
    capsys.readouterr()
    line = grid_cli(ws, cfg, "--x", "denoise=0.5,0.75", "--y", "cfg=5,7", "--at", "3", "--parallel", "2",
                    capsys=capsys)
    assert line.startswith("grid: 4 cells (4 painted, 0 reused)")
    name = "grid/denoise-cfg-f3/grid.png"
    assert (ws / name).read_bytes() == (ws_one / name).read_bytes()


def test_the_accelerators_list_is_an_axis(setup, capsys):
    """--accel none,tome:0.5: the token-merging cell is what `--single` paints with it, the cells differ."""
    root, cfg = setup
    ws = new_ws(root, "accel")
    capsys.readouterr()
    line = grid_cli(ws, cfg, "--x", "accel=none,tome:0.5", "--at", "3", capsys=capsys)
    assert line.startswith("grid: 2 cells (2 painted, 0 reused)")
    rec = json.loads((ws / "grid" / "accel-f3" / "grid.json").read_text())
    assert rec["axes"]["x"] == {"setting": "img2img.accel", "values": [[], ["tome:0.5"]]}
    assert main(["img2img", "-w", str(ws), "--config", str(cfg), "--single", "3", "--accel", "tome:0.5"]) == 0
    picture = u8(ws / "grid" / "accel-f3" / "grid.png")
    (x0, y0, w, h), (x1, y1, _, _) = (c["box"] for c in rec["cells"])
    np.testing.assert_array_equal(picture[y1:y1 + h, x1:x1 + w], u8(ws / "img2img.debug" / "00003.png"))
    assert not np.array_equal(picture[y0:y0 + h, x0:x0 + w], picture[y1:y1 + h, x1:x1 + w])
    assert main(["grid", "-w", str(ws), "--config", str(cfg), "--x", "accel=tome:9", "--at", "3"]) == 2
