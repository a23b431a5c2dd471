"""Latest frames win: the one place between capture and painting, holding at most `size` frames.

When painting falls behind, a new frame pushes out the oldest waiting one (counted as dropped)
instead of queueing behind it, so latency stays bounded by one painting whatever the painter's
speed. `size` is 1, or the stream batch: that many consecutive frames are painted in one call.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A slot of `size` items: `put` adds (pushing out the oldest, a drop), `take` waits for the newest."""

    def __init__(self, size: int = 1) -> None:
        self._cond = threading.Condition()
        self._items: deque[T] = deque()
        self._size = max(1, size)
        self._closed = False
        self.dropped = 0           # items pushed out before anyone took them
        self.put_count = 0

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) == self._size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()

    def take_batch(self, timeout: float | None = None) -> list[T]:
        """`size` consecutive items (fewer once the slot is closed), oldest first; [] when closed and
        empty or on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._items) >= self._size or self._closed, timeout)
            if len(self._items) < self._size and not self._closed:
                return []
            items = list(self._items)
            self._items.clear()
            return items

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item of a slot of one (removed); None once closed and empty, or on timeout."""
        items = self.take_batch(timeout)
        return items[-1] if items else None

    def held(self) -> int:
        """How many items wait now (at most `size`: the bound a test checks)."""
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
