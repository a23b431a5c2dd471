"""The page's Generate on Ray actors (opt-in like the other Ray tests: -m ray): the page's Interrupt
stops the actors after the block each holds, as Ctrl+C does, and the run never used the page's
preloaded local model."""
from __future__ import annotations

import time

import pytest

from conftest import make_workspace, moving_frames
from vid2vid import distributed
from vid2vid.config import Settings
from vid2vid.errors import Interrupted
from vid2vid.ui import actions, paths
from vid2vid.ui.runner import Runner

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_the_pages_interrupt_stops_ray_actors_after_their_block(tmp_path, tiny_model):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        root = paths.cache_root(tmp_path / "cache")
        ws = make_workspace(root / "ws", moving_frames(8))
        s = Settings()
        s.img2img.model, s.img2img.prompt = str(tiny_model), "shapes"
        s.img2img.width, s.img2img.height, s.img2img.steps, s.img2img.batch_size = 64, 48, 30, 2
        s.img2img.workers = 1
        s.ray.enabled, s.ray.actors = True, 1
        runner, models = Runner(), actions.ModelCache()
        task = runner.start("img2img", lambda job: actions.img2img(root, "ws", s, job, models))
        end = time.monotonic() + 300
        while not (task.event is not None and task.event.done >= 2) and not task.done.is_set():
            assert time.monotonic() < end, task.status()
            time.sleep(0.1)
        assert not task.done.is_set(), task.final()
        runner.interrupt()
        assert task.done.wait(300)
        assert isinstance(task.error, Interrupted), task.final()
        assert "after Interrupt" in task.final()
        kept = len(ws.frames("img2img"))
        assert 2 <= kept < 8 and kept % 2 == 0          # whole blocks of 2, written before the actors stopped
        assert models._model is None                     # the page's local model was never loaded
        assert distributed.current_pool() is not None    # the frames came from the actors
    finally:
        distributed.close_pools()
        ray.shutdown()
