"""Ray for the painters: the connection, and a set of identical actors lent out one at a time.

Both ways of painting on Ray use it: `painting/raypool.py` (blocks of frames for the image painter)
and `painting/windowray.py` (windows of a step for the window painters). An `ActorSet` starts its
actors together, waits until each has built its model (so a model that cannot load fails the stage
at once, in one line), and lends a free actor to each call. A lost actor is restarted by Ray and the
call it held sent again (`RESTARTS`).
"""
from __future__ import annotations

import queue
from collections.abc import Sequence

from vid2vid import config
from vid2vid.core.errors import BadInput, Vid2VidError

# How often Ray restarts a lost actor and re-sends the call it held, before the stage fails.
RESTARTS = 4
INSTALL_HINT = "install it with `bash install.sh --ray` (or `pip install ray==2.60.0`)"


def require_ray():
    """The `ray` module, or BadInput saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise BadInput(f"{{ray.enabled}} needs Ray, which is not installed; {INSTALL_HINT}, "
                       "or run without it") from exc
    return ray


def connect(rs: config.RaySettings):
    """Join the cluster the settings name (or start a local Ray) unless this process is connected."""
    ray = require_ray()
    if not ray.is_initialized():
        try:
            # no address: a new Ray of our own ("local"); a plain ray.init() would join whatever
            # cluster `ray start` last left running on this machine (or RAY_ADDRESS) without a word
            ray.init(address=rs.address or "local", include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise BadInput(f"cannot reach the Ray cluster at {rs.address!r} ({exc}); start its head with "
                           "`ray start --head` or fix {ray.address}") from exc
    return ray


def cause(exc: BaseException) -> str:
    """The last line of a Ray error: the remote exception's own message."""
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class ActorSet:
    """`count` actors of class `cls`, built with `args`, each reserving `threads` CPUs and `gpus` GPUs.

    `probe` names a method every actor answers once it is built; its answers are kept in `infos`."""

    def __init__(self, cls: type, args: Sequence, count: int, threads: int, gpus: int, probe: str):
        ray = require_ray()
        self.ray = ray
        remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=RESTARTS,
                            max_task_retries=RESTARTS)(cls)
        self.actors = [remote.remote(*args) for _ in range(max(1, count))]
        try:
            self.infos = ray.get([getattr(a, probe).remote() for a in self.actors])
        except ray.exceptions.RayError as exc:
            self.close()
            raise Vid2VidError(f"the Ray actors could not load the model: {cause(exc)}") from exc
        self.free: queue.Queue = queue.Queue()
        for a in self.actors:
            self.free.put(a)

    def call(self, what: str, method: str, *args):
        """`method(*args)` on a free actor, waiting for one; `what` names the work in a failure's line."""
        actor = self.free.get()
        try:
            return self._run(actor, what, method, *args)
        finally:
            self.free.put(actor)

    def call_at(self, index: int, what: str, method: str, *args):
        """`method(*args)` on actor `index` (modulo their number), whether or not it is busy: work that
        must meet the state an earlier call left there (Ray runs an actor's calls one at a time)."""
        return self._run(self.actors[index % len(self.actors)], what, method, *args)

    def _run(self, actor, what: str, method: str, *args):
        try:
            return self.ray.get(getattr(actor, method).remote(*args))
        except self.ray.exceptions.RayError as exc:
            raise Vid2VidError(f"{what} on Ray failed: {cause(exc)}") from exc

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
