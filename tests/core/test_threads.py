"""The thread helpers of pipelined stages: order kept, failures re-raised on the caller's thread."""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future

import pytest

from vid2vid.core.threads import InlineExecutor, SequentialWriter, hand_over_finished, prefetch


def test_prefetch_yields_in_order_on_another_thread_and_reraises():
    seen_on = set()

    def numbers():
        for i in range(5):
            seen_on.add(threading.current_thread().name)
            yield i
        raise KeyError("reader failed")

    got = []
    with pytest.raises(KeyError, match="reader failed"):
        for x in prefetch(numbers(), 2, name="test-reader"):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    assert seen_on == {"test-reader"}


def test_sequential_writer_keeps_order_and_stops_after_a_failure():
    done = []

    def handle(i):
        if i == 3:
            raise ValueError("bad item")
        done.append(i)

    w = SequentialWriter(handle, depth=1)
    for i in range(3):
        w.put(i)
    w.close()
    assert done == [0, 1, 2]

    done.clear()
    w = SequentialWriter(handle, depth=8)
    for i in range(6):
        w.q.put((i,))                        # handed in without the check, so all six reach the thread
    with pytest.raises(ValueError, match="bad item"):
        w.close()
    assert done == [0, 1, 2]                 # nothing after the failed item is handled


def test_hand_over_finished_stops_at_the_first_unfinished_batch():
    ex = InlineExecutor()
    ok, failed = ex.submit(lambda: "a"), ex.submit(lambda: 1 / 0)
    assert failed.exception() is not None
    pending = deque([("b1", ok), ("b2", failed), ("b3", ex.submit(lambda: "c"))])
    done = []
    w = SequentialWriter(lambda batch, result: done.append((batch, result)))
    hand_over_finished(pending, w)
    w.close()
    assert done == [("b1", "a")] and [b for b, _ in pending] == ["b2", "b3"]
    cancelled: Future = Future()
    cancelled.cancel()
    pending = deque([("x", cancelled)])
    w = SequentialWriter(lambda *a: None)
    hand_over_finished(pending, w)
    w.close()
    assert len(pending) == 1
