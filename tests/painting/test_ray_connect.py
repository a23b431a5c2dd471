"""Which Ray `connect` joins, without starting one: an empty address must start a Ray of our own,
never silently join a cluster that `ray start` left running on the machine."""
from __future__ import annotations

import sys
import types

import pytest

from vid2vid import config
from vid2vid.core.errors import BadInput
from vid2vid.painting import rayactors, raypool


class FakeRay(types.ModuleType):
    def __init__(self, fail: bool = False):
        super().__init__("ray")
        self.calls: list[dict] = []
        self.fail = fail

    def is_initialized(self) -> bool:
        return bool(self.calls) and not self.fail

    def init(self, **kwargs):
        self.calls.append(kwargs)
        if self.fail:
            raise ConnectionError("no head there")


@pytest.mark.parametrize("address, expected", [("", "local"), ("auto", "auto"), ("ray://head:10001", "ray://head:10001")])
def test_connect_address(monkeypatch, address, expected):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    rayactors.connect(config.RaySettings(enabled=True, address=address))
    rayactors.connect(config.RaySettings(enabled=True, address=address))  # connected: not again
    assert [c["address"] for c in fake.calls] == [expected]


def test_unreachable_cluster_is_one_line_naming_the_setting(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", FakeRay(fail=True))
    with pytest.raises(BadInput) as err:
        rayactors.connect(config.RaySettings(enabled=True, address="10.0.0.9:6379"))
    text = str(err.value)
    assert "10.0.0.9:6379" in text and "ray start --head" in text and "\n" not in text


@pytest.mark.parametrize("asked, cpus, threads, want",
                         [(2, 2, 2, 1), (2, 2, 1, 2), (0, 4, 2, 2), (8, 16, 1, 4), (0, 1, 2, 1)])
def test_the_layout_never_asks_for_more_actors_than_the_cluster_holds(asked, cpus, threads, want):
    """Two actors of two CPUs each on a 2-CPU cluster: the second would stay pending forever (and the
    pool waits for every actor's model) - the full suite hung on exactly this."""
    s = config.Settings()
    s.img2img.workers = 1
    layout = raypool.plan(config.RaySettings(enabled=True, actors=asked, threads=threads), s.img2img,
                              batches=4, resources={"CPU": cpus}, local_threads=threads)
    assert (layout.actors, layout.threads, layout.gpus) == (want, threads, 0)
