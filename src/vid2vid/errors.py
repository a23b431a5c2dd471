"""Errors that carry their exit code and a message that says how to fix the problem.

Exit codes (DESIGN §7): 0 done, 1 failed while working, 2 bad input or usage, 130 interrupted.
"""
from __future__ import annotations


class Vid2VidError(Exception):
    """Base class: a failure while working (exit code 1)."""

    exit_code = 1


class BadInput(Vid2VidError):
    """The input, an option or a path is wrong; the message names it and the fix (exit code 2)."""

    exit_code = 2


class WorkspaceBusy(BadInput):
    """Another run holds the workspace lock."""


class ModelNotFound(BadInput):
    """A model path, hub id or bundled weight file is missing."""


class Interrupted(Vid2VidError):
    """The user asked to stop (Ctrl+C, SIGTERM or the UI's Interrupt button)."""

    exit_code = 130
