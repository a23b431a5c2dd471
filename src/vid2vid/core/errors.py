"""Errors that carry their exit code and a message that says how to fix the problem.

Exit codes: 0 done, 1 failed while working, 2 bad input or usage, 130 interrupted.

A message names the settings it concerns as `{section.field}` (e.g. "{img2img.sigma_max} 0.05
is below {img2img.sigma_min} 0.1"), so each interface can word them its own way:
`exc.render(name)` replaces each with `name("section.field")` (the command line gives the flag,
the page the field's label). `str(exc)` uses the default namer, which `vid2vid.config`
installs (the generic command-line flag).

A message that tells the user to run a stage first names it as `{stage:NAME}` or
`{stage:NAME|WORKSPACE}` (write it with `stage_ref`): the command line shows the command
("`vid2vid depth -w WS`"), the page the button and its tab ("Depth masks (tab 2)").
"""
from __future__ import annotations

import re
from collections.abc import Callable

SETTING_REF = re.compile(r"\{([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\}")
STAGE_REF = re.compile(r"\{stage:([a-z0-9_]+)(?:\|([^{}|]*))?\}")
STAGE_ARGS = {"extract": " VIDEO"}       # what a stage command needs before its -w on the command line


def stage_ref(name: str, workspace: object = None) -> str:
    """The reference to stage `name` (run on `workspace`) for a message; see the module docstring."""
    return f"{{stage:{name}|{workspace}}}" if workspace is not None else f"{{stage:{name}}}"


def command_of(name: str, workspace: str | None) -> str:
    """How the command line words a stage reference: the command to run."""
    ws = f" -w {workspace}" if workspace else ""
    return f"`vid2vid {name}{STAGE_ARGS.get(name, '')}{ws}`"

_default_namer: Callable[[str], str] = lambda key: key  # noqa: E731 (replaced by vid2vid.config)


def set_default_namer(namer: Callable[[str], str]) -> None:
    """How `str(exc)` words a setting; vid2vid.config sets its command-line flag namer."""
    global _default_namer
    _default_namer = namer


def render_settings(text: str, namer: Callable[[str], str] | None = None,
                    stage_namer: Callable[[str, str | None], str] | None = None) -> str:
    """`text` with every `{section.field}` replaced by `namer("section.field")` and every stage
    reference by `stage_namer(name, workspace or None)` (default: the command line's command)."""
    name = namer or _default_namer
    stage = stage_namer or command_of
    text = STAGE_REF.sub(lambda m: stage(m.group(1), m.group(2) or None), text)
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

    @property
    def stages(self) -> list[str]:
        """The stages the message tells the user to run ("depth", ...), in order."""
        return [m.group(1) for m in STAGE_REF.finditer(self.template)]

    def render(self, namer: Callable[[str], str] | None = None,
               stage_namer: Callable[[str, str | None], str] | None = None) -> str:
        return render_settings(self.template, namer, stage_namer)

    def __str__(self) -> str:
        return self.render()


class BadInput(Vid2VidError):
    """The input, an option or a path is wrong; the message names it and the fix (exit code 2)."""

    exit_code = 2


class WorkspaceBusy(BadInput):
    """Another run holds the workspace lock."""


class OtherSettings(BadInput):
    """A stage's results were made with other settings and may not be replaced ({run.overwrite} off)."""

    def __init__(self, message: str, stage: str = ""):
        super().__init__(message)
        self.stage = stage


class ModelNotFound(BadInput):
    """A model path, hub id or bundled weight file is missing."""


class Interrupted(Vid2VidError):
    """The user asked to stop (Ctrl+C, SIGTERM or the UI's Interrupt button)."""

    exit_code = 130
