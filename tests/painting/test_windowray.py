"""A step's windows on Ray actors: the same bits as the local run (tiny model and motion module)."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import moving_frames
from vid2vid.config import Img2ImgSettings, Settings
from vid2vid.core.progress import Job
from vid2vid.diffusion.tiny_motion import make_tiny_motion_module
from vid2vid.stages import img2img as stage

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def local_ray():
    import torch

    ray = pytest.importorskip("ray")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)               # the local side's threads = each actor's
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    torch.set_num_threads(threads)


def test_windows_on_ray_actors_give_the_local_bits(local_ray, workspace_factory, tiny_model, tmp_path):
    mm = make_tiny_motion_module(tmp_path / "mm.safetensors", single_file=True)
    st = Settings()
    st.img2img = Img2ImgSettings(model=str(tiny_model), motion_module=str(mm), prompt="a red fox", steps=3,
                                 width=64, height=64, sampler="euler-a", context_length=4, context_overlap=2)
    local = workspace_factory(moving_frames(6), "local")
    stage.run(local, st, Job())
    st.ray = dataclasses.replace(st.ray, enabled=True, actors=2, threads=1)
    said: list[str] = []
    remote = workspace_factory(moving_frames(6), "ray")
    stage.run(remote, st, Job(log=said.append))
    assert any("2 Ray actor(s)" in line for line in said)
    ours = [p.read_bytes() for p in local.frames("img2img")]
    assert len(ours) == 6 and ours == [p.read_bytes() for p in remote.frames("img2img")]


def test_accelerated_windows_on_ray_actors_give_the_local_bits(local_ray, workspace_factory, tiny_model, tmp_path):
    """cache:1 keeps each window's deep features on the actor that ran it: three windows on two actors (window i
    on actor i mod 2) give the local run's bytes."""
    mm = make_tiny_motion_module(tmp_path / "mm.safetensors", single_file=True)
    st = Settings()
    st.img2img = Img2ImgSettings(model=str(tiny_model), motion_module=str(mm), prompt="a red fox", steps=4,
                                 width=64, height=64, sampler="euler-a", context_length=4, context_overlap=2,
                                 accel=["tome:0.5", "cache:1"])
    local = workspace_factory(moving_frames(7), "local")
    stage.run(local, st, Job())
    st.ray = dataclasses.replace(st.ray, enabled=True, actors=2, threads=1)
    remote = workspace_factory(moving_frames(7), "ray")
    info = stage.run(remote, st, Job())
    assert info["accel"] == ["tome:0.5", "cache:1"]
    ours = [p.read_bytes() for p in local.frames("img2img")]
    assert len(ours) == 7 and ours == [p.read_bytes() for p in remote.frames("img2img")]
