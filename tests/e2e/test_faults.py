"""Crash and resume: `vid2vid run` killed with SIGKILL at seeded moments in every stage, then re-run.

Each chain is one workspace: the same command is started again and again, each time killed at
a later point (a frame reported, or just before / just after an atomic rename; see
fault_kill.py), and finally run to the end. The result must equal an uninterrupted run's,
byte for byte: every frame folder, the audio copy and the exported video. After every kill the
workspace must hold no broken file: every frame file that exists decodes completely. Before the
last run, a SIGTERM during export checks the polite stop: exit 130, no temp file, logged.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest
from PIL import Image

from vid2vid.core.workspace import TMP_PREFIX, list_frames

pytestmark = pytest.mark.slow

KILLER = Path(__file__).parents[1] / "fault_kill.py"
SEED = 20261125
STAGES = ("extract", "delta", "img2img", "upscale", "interpolate", "export")
# stage -> (its frame folder, frames it makes) for a 1 s clip at 8 fps, interpolation ratio 2
FOLDERS = {"extract": ("frames", 8), "delta": ("framedelta", 7), "img2img": ("img2img", 8),
           "upscale": ("resr", 8), "interpolate": ("rife", 16), "export": (None, 16)}
COMPARED = ("frames", "framedelta", "img2img", "motionmask", "resr", "rife")
OUTPUT = "synth-rife.mp4"
# kills per stage in each chain (24 in all)
CHAINS = [
    {"extract": 2, "delta": 1, "img2img": 2, "upscale": 1, "interpolate": 1, "export": 1},
    {"extract": 1, "delta": 1, "img2img": 2, "upscale": 1, "interpolate": 2, "export": 1},
    {"extract": 1, "delta": 1, "img2img": 2, "upscale": 1, "interpolate": 1, "export": 2},
]
EVENTS = ("advance", "before-replace", "after-replace")


def command(clip: Path, model: Path, ws: Path, *extra: str) -> list[str]:
    return [sys.executable, str(KILLER), "run", str(clip), "-w", str(ws), "--model", str(model),
            "--prompt", "(watercolor:1.2), shapes", "--width", "64", "--height", "64", "--steps", "4",
            "--fps", "8", "--audio", "--upscale-model", "lanczos-x2", "--ratio", "2", "--format", "mp4", *extra]


def launch(cmd: list[str], kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("VID2VID_KILL", None)
    if kill:
        env["VID2VID_KILL"] = kill
    return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A clip and a tiny model in folders whose names have spaces and non-ASCII letters."""
    from vid2vid.diffusion.tiny import make_tiny_model
    from vid2vid.video.democlip import make_clip

    d = tmp_path_factory.mktemp("faults")
    clip = make_clip(d / "clip ünï cödé.mp4", width=96, height=64, fps=8, seconds=1.0, audio=True)
    model = make_tiny_model(d / "tiny model é")
    return d, clip, model


@pytest.fixture(scope="module")
def reference(assets):
    """The uninterrupted run, started in the background (the chains run beside it): a future of its
    workspace."""
    d, clip, model = assets
    ws = d / "reference ws"

    def work() -> Path:
        proc = launch(command(clip, model, ws))
        assert proc.returncode == 0, proc.stderr[-3000:]
        return ws

    pool = ThreadPoolExecutor(max_workers=1)
    yield pool.submit(work)
    pool.shutdown(wait=True)


def remaining(ws: Path, stage: str) -> int:
    """How many frame files `stage` still has to write (what the next run will report or rename)."""
    folder, total = FOLDERS[stage]
    if stage in ("extract", "export"):
        return total          # extract reports every frame, written or not; export encodes them all
    return total - len(list_frames(ws / folder))


def pick_kill(rng: random.Random, ws: Path, stage: str) -> str:
    event = rng.choice(EVENTS)
    left = remaining(ws, stage)
    if stage == "export" and event != "advance":
        left = 2              # the video's rename, then the manifest's
    if left < 1:              # every frame written but not recorded: the manifest rename is left
        event, left = "before-replace", 1
    return f"{stage}:{event}:{rng.randint(1, left)}"


def broken_files(ws: Path) -> list[str]:
    """Frame files that exist but do not decode completely (there must be none, ever)."""
    bad = []
    for folder in COMPARED:
        for p in list_frames(ws / folder):
            try:
                with Image.open(p) as im:
                    im.load()
            except (OSError, SyntaxError) as exc:
                bad.append(f"{p}: {exc}")
    return bad


def leftovers(ws: Path) -> list[Path]:
    return [p for p in ws.rglob(f"{TMP_PREFIX}*")]


def decoded(video: Path) -> tuple[list[bytes], int]:
    """The video's frames as raw RGB bytes, and its number of audio packets."""
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24").tobytes() for f in c.decode(video=0)]
    with av.open(str(video)) as c:
        audio = sum(1 for p in c.demux(audio=0) if p.size)
    return frames, audio


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    """(pts, bytes) of every audio packet (Matroska headers hold a random segment id and a date)."""
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(audio=0) if p.size]


def run_chain(clip: Path, model: Path, ws: Path, plan: dict[str, int], seed: int) -> dict:
    """Kill the command once per planned point (in stage order), then run it to the end."""
    rng = random.Random(seed)
    kills, problems = [], []
    for stage in STAGES:
        for _ in range(plan[stage]):
            spec = pick_kill(rng, ws, stage)
            proc = launch(command(clip, model, ws), kill=spec)
            kills.append(spec)
            if proc.returncode != -signal.SIGKILL:
                problems.append(f"{spec}: exit {proc.returncode}, not killed\n{proc.stderr[-2000:]}")
                continue
            problems += [f"after {spec}: {b}" for b in broken_files(ws)]
    # SIGTERM while exporting: the command stops after the current frame, removes its half-written
    # video itself and says so (exit 130)
    term = f"export:advance:{rng.randint(1, FOLDERS['export'][1])}:TERM"
    stopped = launch(command(clip, model, ws), kill=term)
    if stopped.returncode != 130 or "interrupted" not in stopped.stderr or leftovers(ws):
        problems.append(f"{term}: exit {stopped.returncode}, left {leftovers(ws)}\n{stopped.stderr[-2000:]}")
    final = launch(command(clip, model, ws))
    return {"kills": kills, "problems": problems, "final": final}


def test_sigkill_anywhere_then_rerun_equals_an_uninterrupted_run(assets, reference):
    d, clip, model = assets
    with ThreadPoolExecutor(max_workers=2) as pool:      # with the reference, three processes on CI's two cores
        chains = [pool.submit(run_chain, clip, model, d / f"chain {i} ü", plan, SEED + i)
                  for i, plan in enumerate(CHAINS)]
        results = [c.result() for c in chains]
    ref_ws = reference.result()
    ref_frames = {f: {p.name: p.read_bytes() for p in list_frames(ref_ws / f)} for f in COMPARED}
    assert [len(ref_frames[f]) for f in ("frames", "framedelta", "img2img", "resr", "rife")] == [8, 7, 8, 8, 16]
    ref_video = decoded(ref_ws / OUTPUT)
    assert len(ref_video[0]) == 16 and ref_video[1] > 0

    all_kills = [k for r in results for k in r["kills"]]
    assert len(all_kills) >= 20
    assert {k.split(":")[0] for k in all_kills} == set(STAGES)
    for i, r in enumerate(results):
        ws = d / f"chain {i} ü"
        assert not r["problems"], "\n".join(r["problems"])
        assert r["final"].returncode == 0, r["final"].stderr[-3000:]
        # the same frames as the uninterrupted run, none missing, none doubled, byte for byte
        for f in COMPARED:
            got = {p.name: p.read_bytes() for p in list_frames(ws / f)}
            assert sorted(got) == sorted(ref_frames[f]), (f, r["kills"])
            changed = [n for n in got if got[n] != ref_frames[f][n]]
            assert not changed, (f, changed, r["kills"])
        assert audio_packets(ws / "audio.mka") == audio_packets(ref_ws / "audio.mka")
        # nothing half-written is left, and the video is complete and the same as the reference's
        assert leftovers(ws) == [], r["kills"]
        assert decoded(ws / OUTPUT) == ref_video, r["kills"]
        manifest = json.loads((ws / "manifest.json").read_text())
        assert all(manifest["stages"][s]["complete"] for s in STAGES if s != "export")
        # the run log says which runs did not finish: every killed run
        events = [json.loads(line) for line in (ws / "log.jsonl").read_text().splitlines()]
        starts = [e for e in events if e["event"] == "run"]
        ends = [e for e in events if e["event"] == "run-end"]
        unfinished = [e for e in events if e["event"] == "unfinished-run"]
        assert len(starts) == len(r["kills"]) + 2
        assert [(e["status"], e.get("stage")) for e in ends] == [("interrupted", "export"), ("ok", None)]
        assert len(unfinished) == len(r["kills"])
        assert [e["stage"] for e in events if e["event"] == "interrupted"] == ["export"]


def test_a_killed_export_never_replaces_a_good_one(assets, reference):
    """A finished export, then a new export (other --crf) killed while encoding: the old file stays whole.

    The video goes to -o outside the workspace, where the lock's clean-up does not reach: the next
    export removes what the killed one left. Works on a copy of the reference's finished workspace."""
    d, clip, model = assets
    ws = d / "export ws"
    shutil.copytree(reference.result(), ws)
    out = d / "out dir ü" / "final video.mp4"
    first = launch(command(clip, model, ws, "-o", str(out)))
    assert first.returncode == 0, first.stderr[-3000:]
    good = out.read_bytes()
    frames, audio = decoded(out)
    for n in (3, 16):                       # mid-encode, and with every frame encoded but not renamed
        killed = launch(command(clip, model, ws, "-o", str(out), "--crf", "35"), kill=f"export:advance:{n}")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        # the new video was being written beside the old one, which is untouched
        half = leftovers(out.parent)
        assert len(half) == 1 and half[0].name.endswith(out.name) and half[0].stat().st_size > 0
        assert out.read_bytes() == good
    again = launch(command(clip, model, ws, "-o", str(out), "--crf", "35"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert leftovers(out.parent) == [] and leftovers(ws) == []
    new = out.read_bytes()
    assert new != good
    new_frames, new_audio = decoded(out)
    assert len(new_frames) == len(frames) == 16 and new_audio == audio


def test_run_log_records_parameters_timings_errors_and_interruptions(assets, monkeypatch, tmp_path):
    """log.jsonl: each stage's parameters when it starts, its time when it ends, a failure's type and
    message, an interruption, and the end of every run that ended by itself."""
    import errno

    from vid2vid.config import Settings
    from vid2vid.core.errors import Interrupted, Vid2VidError
    from vid2vid.core.progress import Job
    from vid2vid.core.workspace import Workspace
    from vid2vid.pipeline.runner import run

    _, clip, model = assets
    s = Settings()
    s.extract.fps = 8.0
    s.img2img.model, s.img2img.prompt = str(model), "shapes"
    s.img2img.width, s.img2img.height, s.img2img.steps = 64, 48, 2
    s.upscale.model, s.run.interpolate = "lanczos-x2", False
    root = tmp_path / "ws"

    # 1. interrupted (the UI's button, Ctrl+C) after two generated frames
    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.stage.endswith("img2img") and ev.done >= 2 else None
    with pytest.raises(Interrupted):
        run(clip, s, workspace=root, job=job, measure=False)
    # 2. the disk fills up while upscaling
    real_replace = os.replace

    def full_in_resr(src, dst, *a, **kw):
        if Path(dst).parent.name == "resr":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", full_in_resr)
    with pytest.raises(Vid2VidError, match="disk is full"):
        run(clip, s, workspace=root, measure=False)
    monkeypatch.undo()
    # 3. the same settings again: finishes
    result = run(clip, s, workspace=root, measure=False)

    events = Workspace(root).events()
    kinds = [e["event"] for e in events]
    assert kinds.count("run") == 3 and "unfinished-run" not in kinds
    ends = [e for e in events if e["event"] == "run-end"]
    assert [e["status"] for e in ends] == ["interrupted", "failed", "ok"]
    assert ends[0]["stage"] == "img2img" and ends[1]["stage"] == "upscale"
    stopped = [e for e in events if e["event"] == "interrupted"]
    assert len(stopped) == 1 and stopped[0]["stage"] == "img2img" and stopped[0]["type"] == "Interrupted"
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1
    err = errors[0]
    assert err["stage"] == "upscale" and err["type"] == "Vid2VidError" and err["exit_code"] == 1
    assert "disk is full" in err["error"] and "resr" in err["error"]
    # every stage's parameters as the manifest records them, and its time when complete
    manifest = Workspace(root).manifest["stages"]
    for stage in ("extract", "delta", "img2img", "upscale"):
        fresh = [e for e in events if e["event"] == "stage" and e["stage"] == stage and e["state"] == "fresh"]
        assert fresh and json.loads(json.dumps(fresh[-1]["params"])) == manifest[stage]["params"]
        done = [e for e in events if e["event"] == "stage" and e["stage"] == stage and e["state"] == "complete"]
        assert len(done) == 1 and done[0]["seconds"] >= 0
    resumed = [e for e in events if e["event"] == "stage" and e["stage"] == "img2img" and e["state"] == "resume"]
    assert len(resumed) == 1                  # the second run resumed img2img after the interruption
    assert set(ends[2]["stages"]) == set(result.stages) and all(v >= 0 for v in ends[2]["stages"].values())
    assert ends[2]["output"] == str(result.output)
