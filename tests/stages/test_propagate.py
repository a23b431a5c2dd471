"""Key frames in the pipeline and `vid2vid propagate` on folders (issue 16)."""
from __future__ import annotations

import numpy as np
import pytest
from test_pipeline import assets, small_settings  # noqa: F401  (the module-scoped clip and tiny model)
from test_propagation import paint, panning

from vid2vid.cli.main import main
from vid2vid.config import stagetable
from vid2vid.core.imageops import read_image, write_image
from vid2vid.core.workspace import Workspace, frame_name
from vid2vid.pipeline.runner import run

pytestmark = pytest.mark.slow


def test_keys_only_are_painted_and_propagate_holds_the_sequence(tmp_path, assets):  # noqa: F811
    clip, model = assets
    s = small_settings(model, run__upscale=False, run__interpolate=False, propagate__keyframes="every:3",
                       propagate__steady_keys=False)
    result = run(clip, s, workspace=tmp_path / "ws")
    ws = Workspace(result.workspace)
    keys = ws.stage_record("img2img")["info"]["keys"]
    assert keys[0] == 1 and keys[-1] == 6 and 4 in keys                   # 1, 4, 6 (+ any scene cut)
    assert [p.name for p in ws.frames("img2img")] == [frame_name(k) for k in keys]
    assert len(ws.frames("propagate")) == 6 and "propagate" in result.stages
    assert stagetable.generated(ws).name == "propagate"
    for k in keys:                                          # not steadied, the keys pass through unchanged
        key = frame_name(k)
        assert np.array_equal(read_image(ws.path("propagate", key)), read_image(ws.path("img2img", key)))
    assert result.output == ws.path("synth-img2img.mp4")
    m = result.metrics
    assert m["reference_frames"] == len(keys) and m["psnr"] == float("inf")   # fidelity on the keys only
    assert "painted img2img frames" in result.summary()
    # with the flow pass it runs over the propagated sequence, and export takes flow/
    s.correct.method = "flow"
    result = run(clip, s, workspace=tmp_path / "ws")
    ws = Workspace(result.workspace)                        # (a fresh look at the manifest)
    assert ws.stage_record("flow")["inputs"].get("propagate") == ws.stage_record("propagate")["key"]
    assert stagetable.generated(ws).name == "flow" and result.output == ws.path("synth-img2img.mp4")
    # steadied keys (the default): propagate is redone, the keys change a little, img2img is kept
    painted = {k: read_image(ws.path("img2img", frame_name(k))) for k in keys}
    mtimes = {k: ws.path("img2img", frame_name(k)).stat().st_mtime_ns for k in keys}
    s.propagate.steady_keys = True
    result = run(clip, s, workspace=tmp_path / "ws")
    ws = Workspace(result.workspace)
    assert all(ws.path("img2img", frame_name(k)).stat().st_mtime_ns == mtimes[k] for k in keys)
    assert ws.stage_record("propagate")["params"]["steady_keys"] is True
    changes = [np.abs(read_image(ws.path("propagate", frame_name(k))) - painted[k]).mean() for k in keys]
    assert max(changes) < 0.05 and max(changes) > 0
    # key frames off again: every frame painted, propagate/ no longer current
    s.propagate.keyframes, s.correct.method = "off", "seed"
    run(clip, s, workspace=tmp_path / "ws")
    assert len(ws.frames("img2img")) == 6 and stagetable.generated(Workspace(ws.root)).name == "img2img"


def _folders(tmp_path, n=7, keys=(0, 3, 6)):
    frames = panning(n, dx=2)
    src, kd = tmp_path / "src", tmp_path / "keys"
    for t, f in enumerate(frames):
        write_image(src / f"shot_{t + 1}.png", f)
    for k in keys:
        write_image(kd / f"shot_{k + 1}.png", paint(frames[k]))
    return frames, src, kd


def test_cli_propagate_folders(tmp_path, capsys):
    frames, src, kd = _folders(tmp_path)
    out = tmp_path / "out"
    assert main(["propagate", "--source", str(src), "--keys", str(kd), "--out", str(out)]) == 0
    assert "7 frames" in capsys.readouterr().out
    got = read_image(out / "shot_3.png")
    assert np.abs(got - paint(frames[2]))[8:-8, 16:-16].mean() < 0.01
    # again: nothing rewritten
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert main(["propagate", "--source", str(src), "--keys", str(kd), "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == before


def test_cli_propagate_bad_input(tmp_path, capsys):
    frames, src, kd = _folders(tmp_path, keys=(0, 3))
    assert main(["propagate", "--source", str(src), "--keys", str(kd), "--out", str(tmp_path / "o")]) == 2
    assert "shot_7.png" in capsys.readouterr().err
    write_image(kd / "other.png", paint(frames[0]))
    assert main(["propagate", "--source", str(src), "--keys", str(kd), "--out", str(tmp_path / "o")]) == 2
    assert "other.png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["propagate"])
    assert exc.value.code == 2
    assert main(["img2img", "-w", str(tmp_path / "nows"), "--keyframes", "every:0"]) == 2
    assert "--keyframes" in capsys.readouterr().err



@pytest.mark.parametrize("option", [["--key-fill-budget", "3"], ["--key-fill-denoise", "5"]])
def test_cli_propagate_folders_checks_its_options(tmp_path, capsys, option):
    """Out-of-range propagate options are refused by the folder command too (it once ignored them)."""
    _, src, kd = _folders(tmp_path)
    out = tmp_path / "out"
    assert main(["propagate", "--source", str(src), "--keys", str(kd), "--out", str(out), *option]) == 2
    err = capsys.readouterr().err.strip()
    assert option[0] in err and "out of range" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_the_fill_budget_enters_the_key_only_where_it_can_change_the_frames(tmp_path):
    from vid2vid import config
    from vid2vid.stages import propagate as pstage

    ws = Workspace(tmp_path / "ws").ensure()
    for dep in pstage.INPUTS:
        ws.begin_stage(dep, {}, outputs=())
        ws.complete_stage(dep)
    s = config.Settings()
    s.propagate.keyframes = "every:4"
    assert "fill_budget" not in pstage.stage_params(ws, s, 81, 27)            # fill "warp": no model, no budget
    s.propagate.fill = "img2img"
    s.propagate.fill_budget = 1.0
    unlimited = pstage.stage_params(ws, s, 81, 27)
    assert "fill_budget" not in unlimited and unlimited["fill_min"] == pstage.prop.FILL_MIN
    s.propagate.fill_budget = 0.35
    assert pstage.stage_params(ws, s, 81, 27) == unlimited | {"fill_budget": 0.35}     # a fresh workspace
    # a stage finished before the budget existed (its key: no budget) is kept when it filled no more
    # frames than the budget allows (81 frames, 18 keys: 10), and redone when it filled more
    for filled, kept in ((10, True), (11, False)):
        ws.begin_stage(pstage.STAGE, unlimited, inputs=pstage.INPUTS, outputs=())
        ws.complete_stage(pstage.STAGE, filled=filled)
        assert (pstage.stage_params(ws, s, 81, 18) == unlimited) is kept
