"""Bytes to a validated :class:`Snapshot`, with errors shaped like the Rust side's.

pydantic reports what failed with its own error types; this module maps them onto the
contract's codes and ``a[0].b`` paths, so a rejection reads the same from either side.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from meshcore.compile.snapshot.errors import ErrorCode, SnapshotError, SnapshotInvalid
from meshcore.compile.snapshot.model import Snapshot
from meshcore.compile.snapshot.validate import validate_snapshot

_CODES: dict[str, ErrorCode] = {
    "json_invalid": "syntax",
    "json_type": "syntax",
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "literal_error": "invalid_value",
}


def parse_snapshot(data: bytes | str) -> Snapshot:
    """Parses and validates; raises :class:`SnapshotInvalid` listing every problem."""
    try:
        snapshot = Snapshot.model_validate_json(data)
    except ValidationError as e:
        raise SnapshotInvalid([_to_snapshot_error(d) for d in e.errors()]) from None
    errors = validate_snapshot(snapshot)
    if errors:
        raise SnapshotInvalid(errors)
    return snapshot


def _to_snapshot_error(detail: ErrorDetails) -> SnapshotError:
    code = _CODES.get(detail["type"], "invalid_type")
    path = "" if code == "syntax" else format_path(detail["loc"])
    return SnapshotError(path, code, detail["msg"])


def format_path(loc: Sequence[int | str]) -> str:
    """``("listeners", 0, "port")`` → ``listeners[0].port``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
