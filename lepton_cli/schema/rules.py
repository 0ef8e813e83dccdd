"""The rules a schema field carries as `Annotated` metadata (a `Range` or a `Choice`), the common
ones by name (POSITIVE, FRACTION, ...), and the one generic function that checks a schema's
fields against their rules."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lepton_cli.errors import LeptonError

MAX_BATCH_SIZE = 65536


@dataclass(frozen=True)
class Range:
    """A valid range for a number, named as the error message says it (e.g. `> 0`, `in [0, 1]`)."""

    text: str
    ok: Callable[[float], bool]
    words: tuple[str, ...] = ()  # non-numeric values also accepted, e.g. ("auto",)
    integer: bool = False        # for fields typed Any (a number or a word): whole numbers only
    at_most: float | None = None  # a sanity bound above the range, refused with `why`
    why: str = ""

    def error(self, key: str, value: Any) -> str | None:
        """The message for `key=value`, or None when the value is fine."""
        if value is None or (isinstance(value, str) and value in self.words):
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (self.integer and isinstance(value, float)):
            kind = "a whole number" if self.integer else "a number"
            choices = "".join(f" or {word}" for word in self.words)
            return f"{key} expects {kind}{choices}, got {value!r}; set {key}=NUMBER ({self.text})"
        if not self.ok(value):
            return f"{key} must be {self.text}, got {value}; set {key}=VALUE with a value {self.text}"
        if self.at_most is not None and value > self.at_most:
            return f"{key} must be at most {self.at_most:g}, got {value} ({self.why}); set {key}=VALUE with a smaller value"
        return None


POSITIVE = Range("> 0", lambda v: v > 0)
NON_NEGATIVE = Range(">= 0", lambda v: v >= 0)
AT_LEAST_ONE = Range(">= 1", lambda v: v >= 1)
FRACTION = Range("in [0, 1]", lambda v: 0 <= v <= 1)
FRACTION_BELOW_ONE = Range("in [0, 1)", lambda v: 0 <= v < 1)
BATCH_SIZE = dataclasses.replace(POSITIVE, at_most=MAX_BATCH_SIZE, why="no device holds such a batch")
SEED = Range("in [0, 2**32 - 1]", lambda v: 0 <= v <= 2**32 - 1)  # numpy's seed range; Lightning replaces others at random


@dataclass(frozen=True)
class Choice:
    """One of a few words (or values); `text` says what they mean where the words alone do not."""

    values: tuple[Any, ...]
    text: str = ""

    def error(self, key: str, value: Any) -> str | None:
        if any(type(value) is type(choice) and value == choice for choice in self.values):  # 1 is not true here
            return None
        names = [str(v).lower() if isinstance(v, bool) else str(v) for v in self.values]
        spelled = f"{', '.join(names[:-1])} or {names[-1]}"
        return f"{key} must be {self.text or spelled}, got {value!r}; set {key}={spelled}"


Rule = Range | Choice


def check_fields(schema: type, values: Any, prefix: str) -> None:
    """Each field's rule (its `Annotated` metadata) against its value; nested schemas and
    `WHEN_PRESENT` keys too."""
    if not isinstance(values, dict):
        return
    hints = typing.get_type_hints(schema, include_extras=True)
    for spec in dataclasses.fields(schema):
        for rule in getattr(hints[spec.name], "__metadata__", ()):
            if isinstance(rule, type):  # a schema class: an untyped node checked like one
                check_fields(rule, values.get(spec.name), f"{prefix}{spec.name}.")
                continue
            message = rule.error(prefix + spec.name, values.get(spec.name))
            if message:
                raise LeptonError(message)
        if dataclasses.is_dataclass(spec.default_factory):
            check_fields(spec.default_factory, values.get(spec.name), f"{prefix}{spec.name}.")
    for key, rule in getattr(schema, "WHEN_PRESENT", {}).items():
        message = rule.error(prefix + key, values[key]) if key in values else None
        if message:
            raise LeptonError(message)
