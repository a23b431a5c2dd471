"""Issue 19: a real download of a hub model shows bytes and a rate through our own progress events
(console and page), for depth models and Stable Diffusion hub ids as for taggers.

No network here: `snapshot_download` is replaced by a fake that lays the files out in a hub cache
made in the test and drives the progress class it is given the way the hub client does (a bar of
files, two bars of bytes whose totals grow as files start); the libraries then load the model
from that cache through the real loading code.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest

from conftest import moving_frames
from vid2vid.core.progress import ProgressEvent, format_event
from vid2vid.models import hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_entry(cache: Path, repo: str) -> Path:
    entry = cache / ("models--" + repo.replace("/", "--"))
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text(COMMIT)
    return entry / "snapshots" / COMMIT


def drive_like_the_hub(tqdm_class, sizes: list[int], chunk: int = 4096) -> None:
    """What snapshot_download does with its tqdm_class: a bar of bytes received, one of bytes
    written (totals added as each file starts), and a bar of files."""
    received = tqdm_class(desc="Downloading bytes", total=0, initial=0, unit="B", unit_scale=True)
    written = tqdm_class(desc="Reconstructing", total=0, initial=0, unit="B", unit_scale=True)
    files = tqdm_class(total=len(sizes), desc=f"Fetching {len(sizes)} files")
    for size in sizes:
        received.total += size
        written.total += size
        left = size
        while left:
            n = min(chunk, left)
            written.update(n)
            received.update(n)
            left -= n
        files.update(1)
    for bar in (received, written, files):
        bar.close()


class FakeHub:
    """snapshot_download into `cache` from `source` (a local model folder), recording the calls."""

    def __init__(self, monkeypatch, cache: Path, repo: str, source: Path, extra: tuple[str, ...] = ()):
        self.cache, self.repo, self.source, self.calls = cache, repo, source, []
        self.files = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()) + list(extra)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(hub, "repo_files", self.repo_files)
        monkeypatch.setattr(hub, "_reach", {})

    def repo_files(self, repo):
        assert repo == self.repo
        return self.files

    def snapshot_download(self, repo, *, cache_dir=None, allow_patterns=None, tqdm_class=None, **kw):
        assert repo == self.repo and tqdm_class is not None
        self.calls.append(list(allow_patterns))
        snap = cache_entry(Path(cache_dir or self.cache), repo)
        for name in allow_patterns:
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.source / name, snap / name)
        drive_like_the_hub(tqdm_class, [(self.source / n).stat().st_size for n in allow_patterns])
        return str(snap)


# ---------------------------------------------------------------- the adapter

def test_the_hubs_three_bars_become_one_count_of_bytes():
    events: list[ProgressEvent] = []
    drive_like_the_hub(hub.byte_progress(events.append, "owner/model"), [10_000, 5_000], chunk=2_500)
    assert events and all(e.unit == "bytes" and e.stage == "download owner/model" for e in events)
    done = [e.done for e in events]
    assert done == sorted(done) and done[-1] == 15_000 and events[-1].total == 15_000
    assert len(events) == 2 * 6 + 1                      # each chunk on both byte bars, and the last file's end
    # finished only at the end: after the first file the second has not started (the totals grow)
    assert all(e.done < e.total for e in events[:-1]) and events[-1].done == events[-1].total
    line = format_event(events[-1])
    assert "15.0 KB of 15.0 KB" in line and "B/s" in line


def test_a_stopped_job_stops_its_download():
    from vid2vid.core.errors import Interrupted
    from vid2vid.core.progress import Job

    events: list[ProgressEvent] = []
    job = Job(on_progress=events.append)
    bar = hub.byte_progress(job.progress, "owner/model")(total=10_000, unit="B")
    bar.update(1_000)
    job.cancel.set()
    with pytest.raises(Interrupted):
        bar.update(1_000)
    assert [e.done for e in events] == [1_000, 2_000]


# ---------------------------------------------------------------- which files a load reads

SD15 = ["model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned-emaonly.safetensors", "README.md",
        "feature_extractor/preprocessor_config.json", "safety_checker/config.json",
        "safety_checker/model.safetensors", "safety_checker/pytorch_model.bin",
        "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors", "text_encoder/pytorch_model.bin",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.non_ema.bin",
        "unet/diffusion_pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.bin", "vae/diffusion_pytorch_model.bin"]
SD15_INDEX = {"_class_name": "StableDiffusionPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
              "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
              "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
              "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
              "vae": ["diffusers", "AutoencoderKL"]}


def test_a_pipeline_fetches_one_set_of_weights_per_part_and_no_checkpoints():
    got = hub.diffusers_files(SD15, SD15_INDEX, skip=("safety_checker", "feature_extractor"))
    assert got == ["model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                   "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
                   "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
                   "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                   "vae/diffusion_pytorch_model.safetensors"]
    # a repository with .bin weights only, sharded safetensors with their index
    assert hub.load_files(["config.json", "pytorch_model.bin", "flax_model.msgpack", "tf_model.h5"]) == \
        ["config.json", "pytorch_model.bin"]
    shards = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
              "model.safetensors.index.json", "onnx/model.onnx", "preprocessor_config.json"]
    assert hub.load_files(shards) == sorted(set(shards) - {"onnx/model.onnx"})


# ---------------------------------------------------------------- the loading paths

def test_a_depth_hub_id_downloads_through_our_progress_then_loads_from_the_cache(tmp_path, monkeypatch):
    """The depth stage, run as every interface runs it, gives the download's bytes to the job."""
    from test_depth import _tiny_dpt

    from conftest import make_workspace
    from vid2vid import config
    from vid2vid.core.progress import Job
    from vid2vid.models.depth import registry
    from vid2vid.pipeline import runner

    source = _tiny_dpt(tmp_path / "dpt")
    fake = FakeHub(monkeypatch, tmp_path / "cache", "someone/tiny-dpt", source, extra=("model.fp16.safetensors",))
    monkeypatch.setattr(registry, "offline_reason", lambda local=None: None)     # the hub can be reached
    ws = make_workspace(tmp_path / "ws", moving_frames(2, 40, 30))
    s = config.Settings()
    s.depth.model = "someone/tiny-dpt"
    events: list[ProgressEvent] = []
    runner.run_stage("depth", ws, s, Job(on_progress=events.append))
    assert fake.calls == [hub.load_files(fake.files)] and "model.fp16.safetensors" not in fake.calls[0]
    assert "model.safetensors" in fake.calls[0] and "config.json" in fake.calls[0]
    got = [e for e in events if e.unit == "bytes"]
    total = sum((source / n).stat().st_size for n in fake.calls[0])
    assert got[-1].done == got[-1].total == total and "someone/tiny-dpt" in got[-1].stage
    assert len(ws.frames("depthmask")) == 2                  # then loaded from the cache and used
    # cached now: loaded again without asking the hub anything
    monkeypatch.setattr(hub, "repo_files", lambda repo: pytest.fail("asked the hub for a cached model"))
    registry.load_depth_model("someone/tiny-dpt", device="cpu")
    assert len(fake.calls) == 1


def test_offline_the_depth_loader_never_prefetches(tmp_path, monkeypatch):
    from vid2vid.core.errors import ModelNotFound
    from vid2vid.models.depth import registry

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded offline"))
    with pytest.raises(ModelNotFound, match="hf download someone/absent"):
        registry.load_depth_model("someone/absent", device="cpu", cache_dir=tmp_path)   # HF_HUB_OFFLINE=1 here


def test_an_sd_hub_id_downloads_through_our_progress_then_loads_from_the_cache(tmp_path, monkeypatch, tiny_model):
    from vid2vid.diffusion import loading

    repo = "someone/tiny-sd"
    fake = FakeHub(monkeypatch, tmp_path / "cache", repo, tiny_model,
                   extra=("unet/diffusion_pytorch_model.fp16.safetensors",))
    snap = cache_entry(tmp_path / "cache", repo)           # the index is fetched first, on its own
    snap.mkdir(parents=True)
    shutil.copyfile(tiny_model / "model_index.json", snap / "model_index.json")
    monkeypatch.setattr(hub, "offline_reason", lambda local=None: None)     # the hub can be reached
    events: list[ProgressEvent] = []
    model = loading.load_model(repo, device="cpu", dtype="float32", progress=events.append)
    index = json.loads((tiny_model / "model_index.json").read_text())
    assert len(fake.calls) == 1
    assert fake.calls[0] == [f for f in hub.diffusers_files(fake.files, index, ("safety_checker", "feature_extractor",
                                                                                  "requires_safety_checker"))
                             if f != "model_index.json"]
    assert any(f.startswith("unet/") and f.endswith(".safetensors") for f in fake.calls[0])
    assert "unet/diffusion_pytorch_model.fp16.safetensors" not in fake.calls[0]
    assert events[-1].done == events[-1].total == sum((tiny_model / n).stat().st_size for n in fake.calls[0])
    assert model.kind == "diffusers" and model.spec == repo
