"""Findings of one compilation: what the compiler dropped or could not express, and why.

They use the config layer's `Diagnostic`, so `meshcore compile` prints them the way
`istioctl analyze` prints config errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from meshcore.config import Diagnostic, Level, MessageType

COMPILE_WARNING = MessageType("MC0200", "CompileWarning", Level.WARNING, "Compile warning")


@dataclass
class Report:
    """Collects diagnostics; duplicates (same origin, path and message) are kept once."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    _captures: list[list[Diagnostic]] = field(default_factory=list, repr=False)

    def warn(self, origin: str | None, message: str, path: str | None = None) -> None:
        self.add(Diagnostic.of(COMPILE_WARNING, message, origin=origin, path=path))

    def add(self, diagnostic: Diagnostic) -> None:
        for captured in self._captures:
            captured.append(diagnostic)
        if diagnostic not in self.diagnostics:
            self.diagnostics.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Replays what building a shared piece reported (as if it had been built here)."""
        for diagnostic in diagnostics:
            self.add(diagnostic)

    @contextmanager
    def capture(self) -> Iterator[list[Diagnostic]]:
        """Every diagnostic reported inside the block, duplicates included, in order."""
        captured: list[Diagnostic] = []
        self._captures.append(captured)
        try:
            yield captured
        finally:
            popped = self._captures.pop()  # captures nest: the innermost ends first
            assert popped is captured
