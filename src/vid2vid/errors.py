"""Errors that carry their exit code and a message that says how to fix the problem.

Exit codes: 0 done, 1 failed while working, 2 bad input or usage, 130 interrupted.

A message names the settings it concerns as `{section.field}` (e.g. "{img2img.sigma_max} 0.05
is below {img2img.sigma_min} 0.1"), so each interface can word them its own way:
`exc.render(name)` replaces each with `name("section.field")` (the command line gives the flag,
the page the field's label). `str(exc)` uses the default namer, which `vid2vid.config`
installs (the generic command-line flag).
"""
from __future__ import annotations

import re
from collections.abc import Callable

SETTING_REF = re.compile(r"\{([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\}")

_default_namer: Callable[[str], str] = lambda key: key  # noqa: E731 (replaced by vid2vid.config)


def set_default_namer(namer: Callable[[str], str]) -> None:
    """How `str(exc)` words a setting; vid2vid.config sets its command-line flag namer."""
    global _default_namer
    _default_namer = namer


def render_settings(text: str, namer: Callable[[str], str] | None = None) -> str:
    """`text` with every `{section.field}` replaced by `namer("section.field")`."""
    name = namer or _default_namer
    return SETTING_REF.sub(lambda m: name(m.group(1)), text)


class Vid2VidError(Exception):
    """Base class: a failure while working (exit code 1)."""

    exit_code = 1

    @property
    def template(self) -> str:
        """The message with its `{section.field}` references unrendered."""
        return super().__str__()

    @property
    def settings(self) -> list[str]:
        """The settings the message names ("img2img.sigma_max", ...), in order."""
        return SETTING_REF.findall(self.template)

    def render(self, namer: Callable[[str], str] | None = None) -> str:
        return render_settings(self.template, namer)

    def __str__(self) -> str:
        return self.render()


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
