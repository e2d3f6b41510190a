"""Findings of one compilation: what the compiler dropped or could not express, and why.

They use the config layer's `Diagnostic`, so `meshcore compile` prints them the way
`istioctl analyze` prints config errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshcore.config import Diagnostic, Level, MessageType

COMPILE_WARNING = MessageType("MC0200", "CompileWarning", Level.WARNING, "Compile warning")


@dataclass
class Report:
    """Collects diagnostics; duplicates (same origin, path and message) are kept once."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def warn(self, origin: str | None, message: str, path: str | None = None) -> None:
        diagnostic = Diagnostic.of(COMPILE_WARNING, message, origin=origin, path=path)
        if diagnostic not in self.diagnostics:
            self.diagnostics.append(diagnostic)
