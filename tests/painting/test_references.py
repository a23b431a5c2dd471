"""IP-Adapter references in whole img2img runs on the tiny model: first-painted, the embedding computed once and
stored, resume after an interruption, bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import make_workspace, moving_frames
from vid2vid.config import IPAdapterSettings, Settings
from vid2vid.core.errors import BadInput, Interrupted
from vid2vid.core.imageops import write_image
from vid2vid.core.progress import Job
from vid2vid.diffusion import image_encoder
from vid2vid.painting import references
from vid2vid.pipeline.runner import run_stage

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    rng = np.random.default_rng(9)
    path = tmp_path_factory.mktemp("ref") / "look.png"
    write_image(path, np.kron(rng.uniform(0, 1, (6, 5, 3)), np.ones((8, 8, 1))).astype(np.float32))
    return path


def settings_for(model, adapter=None, reference="", **kw) -> Settings:
    s = Settings()
    s.img2img.model, s.img2img.prompt, s.img2img.negative = str(model), "a red fox", "blurry"
    s.img2img.width, s.img2img.height, s.img2img.steps, s.img2img.batch_size = 64, 48, 4, 2
    for k, v in kw.items():
        setattr(s.img2img, k, v)
    if adapter is not None:
        s.img2img.ip_adapter = [IPAdapterSettings(model=str(adapter), reference=str(reference))]
    return s


def frames_of(ws) -> list[bytes]:
    return [p.read_bytes() for p in ws.frames("img2img")]


def counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = image_encoder.embed

    def embed(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(image_encoder, "embed", embed)
    return calls


def test_first_painted_equals_a_run_with_that_painting_as_its_reference(tmp_path, tiny_model, tiny_ip_adapter, picture,
                                                                       monkeypatch):
    src = moving_frames(4)
    calls = counting(monkeypatch)
    first = make_workspace(tmp_path / "first", src)
    run_stage("img2img", first, settings_for(tiny_model, tiny_ip_adapter, "first-painted"))
    assert len(calls) == 1
    painted = sorted((first.root / references.FOLDER).glob("painted-00001-*.png"))
    assert len(painted) == 1
    # the painting is frame 1 of a run without the adapter
    plain = make_workspace(tmp_path / "plain", src)
    run_stage("img2img", plain, settings_for(tiny_model))
    assert painted[0].read_bytes() == plain.frames("img2img")[0].read_bytes()
    assert frames_of(first) != frames_of(plain)                 # then every frame, frame 1 too, reads it
    assert first.frames("img2img")[0].read_bytes() != plain.frames("img2img")[0].read_bytes()
    # a run whose reference is that file gives the same frames
    copy = shutil.copy(painted[0], tmp_path / "frame1.png")
    by_file = make_workspace(tmp_path / "file", src)
    run_stage("img2img", by_file, settings_for(tiny_model, tiny_ip_adapter, copy))
    assert frames_of(by_file) == frames_of(first)
    # a fixed external reference gives other frames
    external = make_workspace(tmp_path / "external", src)
    run_stage("img2img", external, settings_for(tiny_model, tiny_ip_adapter, picture))
    assert frames_of(external) != frames_of(first)


@pytest.mark.parametrize("workers", [1, 2])
def test_embedding_computed_once_and_resume_gives_the_same_bits(tmp_path, tiny_model, tiny_ip_adapter, picture,
                                                                 monkeypatch, workers):
    src = moving_frames(6)
    st = settings_for(tiny_model, tiny_ip_adapter, picture, workers=workers)
    calls = counting(monkeypatch)
    full = make_workspace(tmp_path / "full", src)
    run_stage("img2img", full, st)
    assert len(calls) == 1
    stored = sorted((full.root / references.FOLDER).glob("ip-1-*.safetensors"))
    assert len(stored) == 1
    # interrupted after two frames, then resumed: the stored embedding is read, never recomputed
    cut = make_workspace(tmp_path / "cut", src)
    job = Job()
    job.on_progress = lambda ev: job.cancel.set() if ev.done >= 2 else None
    with pytest.raises(Interrupted):
        run_stage("img2img", cut, st, job)
    assert 2 <= len(cut.frames("img2img")) < 6 and len(calls) == 2
    run_stage("img2img", cut, st)
    assert len(calls) == 2
    assert frames_of(cut) == frames_of(full)
    # another scale: the embedding stays (it does not depend on the scale), the frames change
    other = settings_for(tiny_model, tiny_ip_adapter, picture, workers=workers)
    other.img2img.ip_adapter[0].scale = 0.5
    run_stage("img2img", cut, other)
    assert len(calls) == 3 and frames_of(cut) != frames_of(full)


def test_scale_zero_run_writes_the_frames_of_a_run_without_adapter(tmp_path, tiny_model, tiny_ip_adapter, picture):
    src = moving_frames(3)
    plain, zero = make_workspace(tmp_path / "plain", src), make_workspace(tmp_path / "zero", src)
    run_stage("img2img", plain, settings_for(tiny_model))
    st = settings_for(tiny_model, tiny_ip_adapter, picture)
    st.img2img.ip_adapter[0].scale = 0.0
    run_stage("img2img", zero, st)
    assert frames_of(plain) == frames_of(zero)


def test_bad_references_fail_before_anything_is_lost(tmp_path, tiny_model, tiny_ip_adapter, picture):
    ws = make_workspace(tmp_path / "ws", moving_frames(3))
    run_stage("img2img", ws, settings_for(tiny_model, tiny_ip_adapter, picture))
    before = frames_of(ws)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(BadInput, match=r"reference image .*broken.png cannot be read"):
        run_stage("img2img", ws, settings_for(tiny_model, tiny_ip_adapter, broken))
    with pytest.raises(BadInput, match="no such image file"):
        run_stage("img2img", ws, settings_for(tiny_model, tiny_ip_adapter, tmp_path / "missing.png"))
    with pytest.raises(BadInput, match="key:9 is beyond the clip's 3 frames"):
        run_stage("img2img", ws, settings_for(tiny_model, tiny_ip_adapter, "key:9"))
    st = settings_for(tiny_model, tiny_ip_adapter, picture)
    st.img2img.ip_adapter[0].scale = 3.0
    with pytest.raises(BadInput, match=r"scale 3 is out of range; it must be from 0 to 2"):
        run_stage("img2img", ws, st)
    assert frames_of(ws) == before


def test_key_reference_paints_that_frame_first(tmp_path, tiny_model, tiny_ip_adapter):
    src = moving_frames(3)
    ws, plain = make_workspace(tmp_path / "ws", src), make_workspace(tmp_path / "plain", src)
    run_stage("img2img", ws, settings_for(tiny_model, tiny_ip_adapter, "key:3"))
    run_stage("img2img", plain, settings_for(tiny_model, single=3))     # frame 3 as generated, before correction
    painted = sorted((ws.root / references.FOLDER).glob("painted-*.png"))
    assert [p.name[:13] for p in painted] == ["painted-00003"]
    assert painted[0].read_bytes() == (plain.root / "img2img.debug" / "00003.png").read_bytes()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_actors_read_the_stored_embedding_and_write_the_local_bits(tmp_path, tiny_model, tiny_ip_adapter, picture,
                                                                      monkeypatch):
    import torch

    ray = pytest.importorskip("ray")
    from vid2vid.painting import raypool

    src = moving_frames(6)
    local = make_workspace(tmp_path / "local", src)
    run_stage("img2img", local, settings_for(tiny_model, tiny_ip_adapter, picture, workers=1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        calls = counting(monkeypatch)
        remote = make_workspace(tmp_path / "ray", src)
        st = settings_for(tiny_model, tiny_ip_adapter, picture, workers=1)
        st.ray.enabled, st.ray.actors = True, 2
        info = run_stage("img2img", remote, st)
        assert info["ray_actors"] == 2 and len(calls) == 1          # embedded once, in the driver
    finally:
        raypool.close_pools()
        ray.shutdown()
        torch.set_num_threads(threads)
    assert frames_of(remote) == frames_of(local)
