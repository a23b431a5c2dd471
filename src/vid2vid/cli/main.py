"""The `vid2vid` command: one subcommand per stage, plus `run`, `demo` and helper tools.

Thin over the library: each handler (cli/commands.py) builds settings from the options and calls one
library function; the options come from the settings' own metadata (cli/options.py), so the command
line, the TOML file and the web page always agree; the parser (cli/parser.py) is built per command
group. Errors name settings by their flag in the command at hand, in one line. Exit codes: 0 done,
1 failed while working, 2 bad input or usage, 130 interrupted.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback

from vid2vid.cli.commands import base_settings  # noqa: F401  (the settings a command starts from)
from vid2vid.cli.options import add_settings_options, apply_options, flag_namer  # noqa: F401
from vid2vid.cli.parser import build_parser
from vid2vid.core.errors import Interrupted, Vid2VidError
from vid2vid.core.progress import ConsoleProgress, Job, stop_signals

# ---------------------------------------------------------------- entry point

def _install_signal_handlers(job: Job) -> None:
    """First Ctrl+C / Ctrl+Break / SIGTERM: stop after the current frame. Second: stop now."""

    def handler(signum, frame):
        if job.cancel.is_set():
            raise KeyboardInterrupt
        job.cancel.set()
        print("\nstopping after the current frame (press Ctrl+C again to stop now)", file=sys.stderr)

    for sig in stop_signals():
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("VID2VID_DEBUG") == "1"
    progress = ConsoleProgress()

    def say(text: str) -> None:               # a message on its own line, never glued to a live bar
        progress.end_line()
        print(text, file=sys.stderr)

    job = Job(on_progress=progress, log=say)
    _install_signal_handlers(job)
    try:
        args.handler(args, args.subparser, job)
        return 0
    except BrokenPipeError:          # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Interrupted, KeyboardInterrupt):
        say("interrupted: finished work is kept; run the same command again to resume")
        return 130
    except Vid2VidError as exc:
        if debug:
            traceback.print_exc()
        say(f"error: {exc.render(flag_namer(args.command))}")
        return exc.exit_code
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
        if debug:
            traceback.print_exc()
        say(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details and report it)")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
