"""Several videos in one call: `vid2vid run a.mp4 b.mp4 ...` or a folder of videos.

Each video gets its own workspace under the cache folder (as a single `vid2vid run` would) and,
when an output folder is named, its video `<folder>/<stem>.<format>` there. The videos run one
after the other with the same settings, so with Ray they share one pool of actors (the model is
loaded once per actor, see `vid2vid.painting.raypool`). A video that fails is recorded and the
others still run; an interruption stops the whole call (finished work is kept, as always).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vid2vid.config import Settings
from vid2vid.core.errors import BadInput, Interrupted, Vid2VidError
from vid2vid.core.progress import Job
from vid2vid.pipeline import runner
from vid2vid.video import VIDEO_SUFFIXES


class SomeFailed(Vid2VidError):
    """At least one video of a multi-video run failed (exit code 1); the others finished."""


@dataclass
class Outcome:
    """One video's result: `result` when it finished, else `error`."""

    video: Path
    result: runner.RunResult | None = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """The videos named: files as given (a bad one is reported when its turn comes), folders as
    their video files (by name ending, sorted, not recursive)."""
    videos: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise BadInput(f"folder {p} holds no videos (files ending in {', '.join(VIDEO_SUFFIXES)})")
            videos.extend(found)
        else:
            videos.append(p)
    return videos


def output_names(videos: list[Path], folder: Path, fmt: str) -> list[Path]:
    """`<folder>/<stem>.<fmt>` per video; a stem seen before gets `-2`, `-3`, ..."""
    seen: dict[str, int] = {}
    names = []
    for v in videos:
        n = seen[v.stem] = seen.get(v.stem, 0) + 1
        names.append(folder / (f"{v.stem}.{fmt}" if n == 1 else f"{v.stem}-{n}.{fmt}"))
    return names


def run_many(videos: list[Path], settings: Settings, output_dir: str | Path | None = None,
             job: Job | None = None) -> list[Outcome]:
    """Run the whole pipeline on each video; failures are recorded per video, never raised
    (an interruption is: it stops the call)."""
    job = job or Job()
    settings.validate()
    outputs = output_names(videos, Path(output_dir), settings.export.format) if output_dir else [None] * len(videos)
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    outcomes = []
    for i, (video, out) in enumerate(zip(videos, outputs), 1):
        job.check()
        job.say(f"== video {i}/{len(videos)}: {video}")
        s = copy.deepcopy(settings)
        if out is not None:
            s.export.output = str(out)
        t0 = time.monotonic()
        try:
            result = runner.run(video, s, job=job)
            outcomes.append(Outcome(video, result=result, seconds=time.monotonic() - t0))
        except (Interrupted, KeyboardInterrupt):
            raise
        except Exception as exc:            # recorded for the summary; the next video still runs
            outcomes.append(Outcome(video, error=exc, seconds=time.monotonic() - t0))
            job.say(f"== video {i}/{len(videos)} failed: {describe_error(exc)}")
    return outcomes


def describe_error(exc: BaseException, namer: Callable[[str], str] | None = None) -> str:
    if isinstance(exc, Vid2VidError):
        return exc.render(namer)
    return f"unexpected {type(exc).__name__}: {exc}"


def summary(outcomes: list[Outcome], namer: Callable[[str], str] | None = None) -> str:
    """A table: video, status, seconds, output (or the error)."""
    rows = [("video", "status", "seconds", "output / error")]
    for o in outcomes:
        if o.error is not None:
            what = describe_error(o.error, namer)
        else:
            what = str(o.result.output) if o.result is not None else ""
        rows.append((str(o.video), "ok" if o.ok else "FAILED", f"{o.seconds:.1f}", what))
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    lines = ["  ".join(r[c].ljust(widths[c]) for c in range(3)) + "  " + r[3] for r in rows]
    failed = sum(not o.ok for o in outcomes)
    lines.append(f"{len(outcomes) - failed} of {len(outcomes)} videos done" + (f", {failed} failed" if failed else ""))
    return "\n".join(lines)


def check_failures(outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SomeFailed(f"{len(failed)} of {len(outcomes)} videos failed (see the table above); "
                         "fix them and run the same command again: finished videos are skipped")
