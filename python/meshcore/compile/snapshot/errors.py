"""Why a snapshot was rejected: the field path, a code shared with Rust, and a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ErrorCode = Literal[
    "syntax",
    "unknown_field",
    "missing_field",
    "invalid_type",
    "out_of_range",
    "invalid_value",
    "duplicate",
    "unknown_reference",
]


@dataclass(frozen=True, slots=True)
class SnapshotError:
    """One problem: ``path`` like ``listeners[0].tcp_route.clusters[1].name`` ('' = document)."""

    path: str
    code: ErrorCode
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SnapshotInvalid(ValueError):
    """A snapshot failed parsing or validation; ``errors`` lists every problem found."""

    def __init__(self, errors: list[SnapshotError]) -> None:
        self.errors = errors
        first = str(errors[0]) if errors else "invalid snapshot"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)
