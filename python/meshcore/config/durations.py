"""Duration strings as Istio and Kubernetes spell them (Go's `time.ParseDuration` syntax).

Istio durations are strings such as `"5s"`, `"1.5m"`, `"100ms"` or `"1h30m"`. This module
owns parsing them; range checks live with the rules that need them (`rules`, `validation`).
"""

from __future__ import annotations

import re

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_MAX_NS = 2**63 - 1

NANOS_PER_MS = 1_000_000
NANOS_PER_SECOND = 1_000_000_000


class DurationError(ValueError):
    """A string that is not a duration."""


def parse_duration(text: str) -> int:
    """Parse a Go duration string into nanoseconds.

    >>> parse_duration("1m30s")
    90000000000
    >>> parse_duration("250ms")
    250000000

    Raises `DurationError` when the text is not a duration or overflows int64.
    """
    if not isinstance(text, str):
        raise DurationError(f"duration must be a string, got {type(text).__name__}")
    body = text
    sign = 1
    if body and body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise DurationError(f"invalid duration {text!r}")
    total = 0.0
    exact = 0
    pos = 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise DurationError(f"invalid duration {text!r}")
        number, unit = match.groups()
        scale = _UNITS_NS[unit]
        if "." in number:
            whole, _, frac = number.partition(".")
            exact += int(whole or "0") * scale
            total += float("0." + (frac or "0")) * scale
        else:
            exact += int(number) * scale
        pos = match.end()
    nanos = exact + round(total)
    if nanos > _MAX_NS:
        raise DurationError(f"invalid duration {text!r}: out of range")
    return sign * nanos


def format_duration(nanos: int) -> str:
    """Spell nanoseconds as a short duration string (`1500000000` → `"1.5s"`)."""
    if nanos % NANOS_PER_SECOND == 0:
        return f"{nanos // NANOS_PER_SECOND}s"
    if nanos % NANOS_PER_MS == 0:
        return f"{nanos // NANOS_PER_MS}ms"
    return f"{nanos}ns"
