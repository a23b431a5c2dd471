"""Repeatable flags paired in order (--controlnet with --control, --ip-adapter with --reference)."""
from __future__ import annotations

import argparse


def add_paired(parser: argparse.ArgumentParser, first: tuple[str, str, str], second: tuple[str, str, str]) -> None:
    """Two repeatable flags, each (flag, metavar, help), gathered under `cli.<name>` in the order given."""
    for flag, metavar, help_ in (first, second):
        parser.add_argument(flag, action="append", dest="cli." + flag.lstrip("-").replace("-", "_"),
                            default=argparse.SUPPRESS, metavar=metavar, help=help_)
