"""The live loop: capture on its own thread, paint the newest frame, show it on every target.

    capture thread   source.frames() -> LatestSlot (at most `batch` frames wait; newer push out older)
    this thread      slot.take_batch() -> paint -> each sink.show(captured, painted), frame by frame

With a stream batch of B frames, B consecutive frames are painted in one call: throughput for
latency, as the first of them waits for the other B - 1 to be captured (B - 1 frame periods more).

Latency is measured per shown frame from its capture to the moment every target has it; drops are
the frames the slot replaced (and so never painted). Stopping (`stop` set, Ctrl+C, the source's
end) joins the capture thread and closes every sink: nothing is left running.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vid2vid.core.progress import Job
from vid2vid.live.slot import LatestSlot
from vid2vid.live.sources import Captured


@dataclass
class LiveStats:
    """What a live run measured."""

    captured: int = 0
    shown: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)      # seconds, capture -> shown
    painter: list[float] = field(default_factory=list)        # seconds per painted frame
    max_waiting: int = 0                                        # frames ever waiting in the slot at once
    started: float = 0.0
    ended: float = 0.0

    def summary(self) -> dict:
        """fps shown, p50/p95 latency and the painter's time in ms, drops."""
        span = max(1e-9, self.ended - self.started)
        lat = np.asarray(self.latencies or [0.0]) * 1000
        return {"fps": round(self.shown / span, 2), "shown": self.shown, "captured": self.captured,
                "dropped": self.dropped, "p50_latency_ms": round(float(np.percentile(lat, 50)), 1),
                "p95_latency_ms": round(float(np.percentile(lat, 95)), 1),
                "painter_ms": round(1000 * float(np.mean(self.painter or [0.0])), 1), "max_waiting": self.max_waiting}

    def line(self) -> str:
        s = self.summary()
        return (f"live: {s['fps']:.1f} fps, p95 latency {s['p95_latency_ms']:.0f} ms, painter "
                f"{s['painter_ms']:.0f} ms/frame, {s['dropped']} dropped of {s['captured']}")


def _capture(source, slot: LatestSlot, stop: threading.Event, errors: list) -> None:
    try:
        for cap in source.frames(stop):
            slot.put(cap)
    except BaseException as exc:          # handed to the loop's thread, which re-raises it
        errors.append(exc)
    finally:
        slot.close()


def _paint_and_show(caps: list[Captured], paint, sinks: list, stats: LiveStats) -> None:
    """Paint consecutive frames in one call and show them in order, each with its latency."""
    t0 = time.perf_counter()
    outs = paint(caps)
    stats.painter.append((time.perf_counter() - t0) / len(caps))
    for cap, out in zip(caps, outs):
        for sink in sinks:
            sink.show(cap, out)
        stats.latencies.append(time.monotonic() - cap.at)
        stats.shown += 1


def run_live(source, paint: Callable[[list[Captured]], list[np.ndarray]], sinks: list, job: Job | None = None,
             stop: threading.Event | None = None, batch: int = 1) -> LiveStats:
    """Play `source` through `paint` (a list of consecutive frames -> their paintings) onto `sinks` until
    it ends or `stop` is set; the stats measured."""
    job = job or Job()
    stop = stop or threading.Event()
    slot: LatestSlot[Captured] = LatestSlot(batch)
    errors: list[BaseException] = []
    stats = LiveStats(started=time.monotonic())
    thread = threading.Thread(target=_capture, args=(source, slot, stop, errors), name="live-capture", daemon=True)
    thread.start()
    try:
        while not stop.is_set():
            caps = slot.take_batch(timeout=0.5)
            if not caps:
                if not thread.is_alive():
                    break
                continue
            job.check()
            _paint_and_show(caps, paint, sinks, stats)
            stats.max_waiting = max(stats.max_waiting, slot.held())
            if stats.shown % 10 < len(caps):
                job.say(stats.line())
    finally:
        stop.set()
        thread.join()
        stats.ended = time.monotonic()
        stats.captured, stats.dropped = slot.put_count, slot.dropped
        for sink in sinks:
            sink.close(stats)
    if errors:
        raise errors[0]
    return stats
