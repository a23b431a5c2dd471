"""`--ip-adapter FILE|DIR[:SCALE]` with `--reference SOURCE` and `make-tiny-model --ip-adapter` on the command line:
a run that works, and bad input as one line, exit 2, the workspace left as it was."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import make_workspace, moving_frames
from vid2vid.cli.main import main
from vid2vid.core.errors import BadInput
from vid2vid.core.imageops import write_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_model):
    from vid2vid.diffusion.tiny_ip_adapter import make_tiny_ip_adapter

    root = tmp_path_factory.mktemp("ipcli")
    assert main(["make-tiny-model", str(root / "ipa"), "--ip-adapter"]) == 0
    pic = root / "look.png"
    write_image(pic, np.kron(np.random.default_rng(2).uniform(0, 1, (4, 4, 3)), np.ones((8, 8, 1))).astype("f4"))
    bad = root / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    lone = root / "lone"
    lone.mkdir()
    shutil.copy(root / "ipa" / "ip-adapter_tiny-sd1.safetensors", lone)
    return {"model": tiny_model, "ipa": root / "ipa", "pic": pic, "bad": bad, "lone": lone,
            "xl": make_tiny_ip_adapter(root / "xl", config="tiny-sdxl")}


def args(ws, parts, *extra):
    return ["img2img", "-w", str(ws), "--model", str(parts["model"]), "--prompt", "fox", "--width", "64",
            "--height", "48", "--steps", "2", *extra]


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("log.jsonl", ".lock")}


def test_make_tiny_model_lays_out_adapter_and_encoder(parts):
    assert (parts["ipa"] / "ip-adapter_tiny-sd1.safetensors").is_file()
    assert (parts["ipa"] / "image_encoder" / "config.json").is_file()


def test_a_run_with_an_adapter_and_its_scale(tmp_path, parts):
    ws = make_workspace(tmp_path / "ws", moving_frames(2))
    assert main(args(ws.root, parts, "--ip-adapter", f"{parts['ipa']}:0.7", "--reference", str(parts["pic"]))) == 0
    from vid2vid.core.workspace import Workspace

    ws = Workspace(ws.root)                  # as written by the command
    rec = ws.stage_record("img2img")
    assert rec["params"]["img2img"]["ip_adapter"][0]["scale"] == 0.7
    assert rec["info"]["ip_adapters"][0]["scale"] == 0.7 and len(ws.frames("img2img")) == 2


@pytest.mark.parametrize("case, extra, needles", [
    ("scale-out-of-range", lambda p: ["--ip-adapter", f"{p['ipa']}:3", "--reference", str(p["pic"])],
     ["--ip-adapter", "scale 3 is out of range", "0 to 2"]),
    ("another-family", lambda p: ["--ip-adapter", str(p["xl"]), "--reference", str(p["pic"])],
     ["made for SDXL", "the model is SD 1.x"]),
    ("no-image-encoder", lambda p: ["--ip-adapter", str(p["lone"]), "--reference", str(p["pic"])],
     ["no CLIP image encoder", "looked in", "lone/image_encoder"]),
    ("unreadable-reference", lambda p: ["--ip-adapter", str(p["ipa"]), "--reference", str(p["bad"])],
     ["bad.png cannot be read"]),
    ("unpaired", lambda p: ["--ip-adapter", str(p["ipa"])], ["1 --ip-adapter and 0 --reference"]),
    ("bad-key", lambda p: ["--ip-adapter", str(p["ipa"]), "--reference", "key:0"], ["key:N", "1 or more"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, parts, capsys, case, extra, needles):
    ws = make_workspace(tmp_path / "ws", moving_frames(2))
    assert main(args(ws.root, parts)) == 0
    before = snapshot(ws.root)
    capsys.readouterr()
    assert main(args(ws.root, parts, *extra(parts))) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and all(n in line[0] for n in needles), line
    assert snapshot(ws.root) == before


def test_settings_file_tables_carry_window_and_encoder(tmp_path, parts):
    from vid2vid import config

    path = tmp_path / "s.toml"
    path.write_text(f'''[[img2img.ip_adapter]]
model = "{parts['ipa']}"
reference = "first-painted"
scale = 0.6
start = 0.2
end = 0.9
image_encoder = "{parts['ipa'] / 'image_encoder'}"
''')
    s = config.load_toml(str(path))
    ip = s.img2img.ip_adapter[0]
    assert (ip.scale, ip.start, ip.end, ip.reference) == (0.6, 0.2, 0.9, "first-painted")
    s.img2img.validate()
    path.write_text(path.read_text().replace("end = 0.9", "end = 0.1"))
    with pytest.raises(BadInput, match="start 0.2 is not below end 0.1"):
        config.load_toml(str(path)).img2img.validate()


def test_one_reference_with_a_video_model_is_the_video_models_reference():
    """`--video-model M --reference SOURCE` without --ip-adapter feeds VACE's own reference input."""
    from vid2vid import config
    from vid2vid.cli.options import apply_options
    from vid2vid.cli.parser import build_parser

    args = build_parser().parse_args(["img2img", "-w", "ws", "--video-model", "m", "--reference", "first-painted"])
    s = apply_options(config.Settings(), args, args.subparser)
    assert s.img2img.video_reference == "first-painted" and s.img2img.ip_adapter == []
    args = build_parser().parse_args(["img2img", "-w", "ws", "--reference", "first-painted"])
    with pytest.raises(Exception, match="--ip-adapter"):
        apply_options(config.Settings(), args, args.subparser)
