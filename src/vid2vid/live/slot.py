"""Latest frame wins: the one place between capture and painting, holding at most one frame.

When painting falls behind, a new frame replaces the waiting one (counted as dropped) instead of
queueing behind it, so latency stays bounded by one painting whatever the painter's speed.
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A slot of one item: `put` replaces (and counts a drop), `take` waits for the newest item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0           # items replaced before anyone took them
        self.put_count = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item (removed from the slot); None once the slot is closed and empty, or on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def held(self) -> int:
        """How many items wait now (0 or 1: the bound a test checks)."""
        with self._cond:
            return int(self._item is not None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
