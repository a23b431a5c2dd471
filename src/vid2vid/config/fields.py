"""The metadata every setting carries (help, choices, range, flag, page label) and the checks it implies."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vid2vid.core import devices
from vid2vid.core.errors import BadInput


class Choices(tuple):
    """A setting's tokens in order; `in` also accepts the older names in `aliases` (old -> new).

    Iterating gives only the current tokens (help, the page's choices, error messages); argparse
    takes any container as `choices`, so an old name passes its check as well.
    """

    aliases: dict[str, str]

    def __new__(cls, tokens: tuple[str, ...], aliases: dict[str, str] | None = None) -> Choices:
        self = super().__new__(cls, tokens)
        self.aliases = dict(aliases or {})
        return self

    def __contains__(self, value: object) -> bool:
        return tuple.__contains__(self, value) or value in self.aliases

    def canonical(self, value: Any) -> Any:
        """The current token for `value` (an old name becomes its new one; anything else is kept)."""
        return self.aliases.get(value, value) if isinstance(value, str) else value


# stats: the seed's masks + statistics per frame (fdc.py), formerly named "seed" (the old name collided


@dataclass(frozen=True)
class Meta:
    """What a settings field says about itself (read with `meta(section, name)`)."""

    help: str
    label: str = ""                      # the page's field label ("" = the field is not on the page)
    choices: tuple[str, ...] | None = None
    lo: float | None = None              # inclusive range
    hi: float | None = None
    flag: str = ""                       # command-line flag when it is not --field-name
    run_flag: str = ""                   # the flag in `vid2vid run` when it differs (shared or clashing names)
    fix: str = ""                        # appended to a range error
    cli: bool = True                     # an option of the commands that take this section
    run_only: bool = False               # only `vid2vid run` has it (the switches of optional stages)
    item: type | None = None             # list of tables: the dataclass of one table
    remember: bool = True                # a stage command on a workspace starts from its saved value


def setting(default: Any, help: str, *, label: str = "", choices: tuple[str, ...] | None = None,
            lo: float | None = None, hi: float | None = None, flag: str = "", run_flag: str = "",
            fix: str = "", cli: bool = True, run_only: bool = False, item: type | None = None,
            remember: bool = True) -> Any:
    """A settings field with its metadata; a list default becomes a default factory. `remember=False`:
    a one-off (a debug frame, the overwrite switch) that a later command on the workspace does not inherit."""
    md = {"v2v": Meta(help=help, label=label, choices=choices, lo=lo, hi=hi, flag=flag, run_flag=run_flag,
                      fix=fix, cli=cli, run_only=run_only, item=item, remember=remember)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=md)
    return field(default=default, metadata=md)


def fields_of(obj_or_cls: Any) -> list[tuple[dataclasses.Field, Meta]]:
    """(field, metadata) of a settings section, in order."""
    return [(f, f.metadata["v2v"]) for f in dataclasses.fields(obj_or_cls) if "v2v" in f.metadata]



def _span(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"from {lo:g} to {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def check_field(section: str, name: str, value: Any, m: Meta) -> None:
    """The checks a field's metadata implies: its choices and its range."""
    ref = "{%s.%s}" % (section, name)
    if m.choices is not None and value not in m.choices:
        raise BadInput(f"{ref} '{value}' is not known; use one of: {', '.join(m.choices)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{ref} {value} is not a finite number")
        if (m.lo is not None and value < m.lo) or (m.hi is not None and value > m.hi):
            raise BadInput(f"{ref} {value:g} is out of range; it must be {_span(m.lo, m.hi)}"
                           f"{'; ' + m.fix if m.fix else ''}")


class Section:
    """A settings section: `validate()` runs the metadata checks of every field, then `check()`."""

    NAME = ""

    def validate(self) -> None:
        for f, m in fields_of(self):
            value = getattr(self, f.name)
            if m.item is not None:
                for item in value:
                    item.validate()
            else:
                check_field(self.NAME, f.name, value, m)
        self.check()

    def check(self) -> None:
        """Checks between fields (the field-by-field ones come from the metadata)."""

    def notes(self) -> list[str]:
        """Warnings about valid but likely unintended values, with `{section.field}` references."""
        return []


def _check_device(section: str, value: str) -> None:
    devices.check_name(value, "{%s.device}" % section)


