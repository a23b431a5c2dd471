"""The live section: what only `vid2vid live` reads (the painting settings are img2img's)."""
from __future__ import annotations

from dataclasses import dataclass

from vid2vid.config.fields import Section, setting


@dataclass
class LiveSettings(Section):
    """Restyling a camera, a stream or a file as it plays (`vid2vid live`, the page's Live tab)."""

    NAME = "live"
    outputs: list[str] = setting([], "where the painted frames go, besides the page: a video file (.mp4, .mkv, .mov, "
                                     ".ts, .flv) or a stream URL (rtmp://, srt://, udp://...); repeatable",
                                 flag="--output", label="Outputs (files or stream URLs)")
    loop: bool = setting(False, "play a file source again and again until stopped (otherwise once)",
                         label="Loop a file source")
    record: str = setting("", "keep a recording as a workspace in this folder (source and painted frames, the "
                              "source's audio), for export, compare and metrics", label="Record into workspace")
    batch: int = setting(1, "stream batch: paint this many consecutive frames in one call (more frames per second "
                            "on a GPU for (batch - 1) frame periods more latency; needs cross-frame attention off)",
                         lo=1, hi=16, label="Stream batch (frames per call)")
