"""Live: restyle a camera, a stream or a file as it plays (`vid2vid live`, the page's Live tab).

    stats = live.run(settings, "/dev/video0", job)      # until the source ends or the job is stopped

Steps: 1. check the targets and the settings (nothing opened); 2. open the source; 3. load the
painter (the image painter, one frame at a time); 4. open the targets; 5. the live loop
(`live/session.py`: latest frame wins); 6. close everything, whatever happened.
"""
from __future__ import annotations

import threading
from pathlib import Path

from vid2vid import config
from vid2vid.core.progress import Job
from vid2vid.live.session import LiveStats, run_live
from vid2vid.live.sinks import LiveView, RecordSink, VideoSink, container_of
from vid2vid.live.sources import open_source

__all__ = ["LiveStats", "LiveView", "run"]


def check(settings: config.Settings) -> None:
    """Targets and painting settings that cannot work, refused before anything opens."""
    from vid2vid.painting.painters import image

    settings.img2img.validate()
    for target in settings.live.outputs:
        container_of(target)
    image.check(settings)


def run(settings: config.Settings, source_spec: str, job: Job | None = None, stop: threading.Event | None = None,
        view: LiveView | None = None, model=None) -> LiveStats:
    """Play `source_spec` through the painter onto the settings' outputs (and `view`); the stats measured."""
    from vid2vid.live.painter import LivePainter

    job = job or Job()
    check(settings)
    source = open_source(source_spec, loop=settings.live.loop)
    painter, sinks = None, []
    try:
        painter = LivePainter(settings, job, model, batch=settings.live.batch)
        painter.warm_up()
        sinks = _open_sinks(settings, source, source_spec, view)
        targets = settings.live.outputs + ([settings.live.record] if settings.live.record else [])
        job.say(f"live: {source_spec} at {float(source.fps):.2f} fps -> {', '.join(targets) or 'the page'}")
        stats = run_live(source, painter, sinks, job, stop, batch=settings.live.batch)   # closes the sinks
        job.say(stats.line())
        return stats
    finally:
        if painter is not None:
            painter.close()
        source.close()


def _open_sinks(settings: config.Settings, source, source_spec: str, view: LiveView | None) -> list:
    """The targets opened in order; those already open are closed again when a later one fails."""
    s = settings.img2img
    sinks: list = []
    try:
        for target in settings.live.outputs:
            sinks.append(VideoSink(target, source.fps, (s.width, s.height)))
        if settings.live.record:
            audio = source_spec if source.realtime_file and source.has_audio else None
            sinks.append(RecordSink(Path(settings.live.record).expanduser(), source_spec, source.fps, audio))
    except BaseException:
        for sink in sinks:
            sink.close(None)
        raise
    return sinks + ([view] if view is not None else [])
