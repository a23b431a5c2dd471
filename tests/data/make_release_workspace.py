"""Writes tests/data/release-0.1.0/: a workspace and a `vid2vid correct` folder as release 0.1.0 made them.

Run it with the release's code first on the path (not today's), from the repository root:

    git archive f0d6e05 src | tar -x -C /tmp/v2v-0.1.0
    PYTHONPATH=/tmp/v2v-0.1.0/src:tests python tests/data/make_release_workspace.py tests/data/release-0.1.0

`test_release_compat.py` then runs today's code on copies of it and checks that nothing is redone.
The settings name the model by a relative path (tiny-sd); the model itself is not kept.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from conftest import make_workspace, moving_frames
from vid2vid import config
from vid2vid.core.progress import Job
from vid2vid.diffusion.tiny import make_tiny_model
from vid2vid.stages import img2img
from vid2vid.temporal.correction import correct_folder

SETTINGS = """\
[img2img]
model = "tiny-sd"
prompt = "a red square"
steps = 4
denoise = 0.5
width = 32
height = 32
seed = 7

[correct]
method = "seed"
"""


def main(out: Path) -> None:
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        make_tiny_model("tiny-sd")
        Path("settings.toml").write_text(SETTINGS)
        s = config.load_toml("settings.toml")
        ws = make_workspace(Path("ws"), moving_frames(3, width=32, height=32))
        img2img.run(ws, s, Job())
        correct_folder(ws.path("frames"), ws.path("img2img"), "corrected", s.correct)
        for name in ("ws", "corrected", "settings.toml"):
            (shutil.copytree if Path(name).is_dir() else shutil.copy)(name, out / name)
    (out / "ws" / ".lock").unlink(missing_ok=True)
    (out / "ws" / "log.jsonl").unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
