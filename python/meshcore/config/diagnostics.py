"""Diagnostics: the one shape every config error, warning and note takes.

The loader, the validators and (later) the cross-resource analyzers all report through
`Diagnostic`, so the CLI, the webhook and tests print and compare them the same way. Codes
follow `istioctl analyze` (`IST0106` for schema errors, ...) where Istio has one; meshcore's
own codes start with `MC`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Level(StrEnum):
    """Severity, spelled as istioctl prints it."""

    ERROR = "Error"
    WARNING = "Warning"
    INFO = "Info"


@dataclass(frozen=True)
class MessageType:
    """A kind of diagnostic: code, name, default level and the prefix of its text."""

    code: str
    name: str
    level: Level
    title: str


INTERNAL_ERROR = MessageType("IST0001", "InternalError", Level.ERROR, "Internal error")
DEPRECATED = MessageType("IST0002", "Deprecated", Level.WARNING, "Deprecated")
SCHEMA_VALIDATION_ERROR = MessageType(
    "IST0106", "SchemaValidationError", Level.ERROR, "Schema validation error"
)
SCHEMA_WARNING = MessageType("IST0133", "SchemaWarning", Level.WARNING, "Schema validation warning")
YAML_PARSE_ERROR = MessageType("MC0001", "YAMLParseError", Level.ERROR, "YAML parse error")
UNKNOWN_KIND = MessageType("MC0002", "UnknownKind", Level.WARNING, "Unknown kind")
UNIMPLEMENTED_FIELD = MessageType(
    "MC0003", "UnimplementedField", Level.WARNING, "Field not implemented by meshcore"
)
FILE_READ_ERROR = MessageType("MC0004", "FileReadError", Level.ERROR, "Cannot read file")

MESSAGE_TYPES: dict[str, MessageType] = {
    t.code: t
    for t in (
        INTERNAL_ERROR,
        DEPRECATED,
        SCHEMA_VALIDATION_ERROR,
        SCHEMA_WARNING,
        YAML_PARSE_ERROR,
        UNKNOWN_KIND,
        UNIMPLEMENTED_FIELD,
        FILE_READ_ERROR,
    )
}


@dataclass(frozen=True)
class Diagnostic:
    """One finding about one object (or file).

    `message` is the detail without the code's title; `path` is the field path inside the
    object (`spec.http[0].route[1].weight`), `origin` names the object (`Kind namespace/name`),
    `document` is the 0-based index of the YAML document in `file` and `line` is 1-based.
    """

    code: str
    level: Level
    message: str
    origin: str | None = None
    path: str | None = None
    file: str | None = None
    document: int | None = None
    line: int | None = None

    @classmethod
    def of(
        cls,
        kind: MessageType,
        message: str,
        *,
        origin: str | None = None,
        path: str | None = None,
        file: str | None = None,
        document: int | None = None,
        line: int | None = None,
        level: Level | None = None,
    ) -> Diagnostic:
        """A diagnostic of message type `kind`, at that type's level unless `level` is given."""
        return cls(
            code=kind.code,
            level=level or kind.level,
            message=message,
            origin=origin,
            path=path,
            file=file,
            document=document,
            line=line,
        )

    def located(
        self, *, file: str | None, document: int | None, line: int | None = None
    ) -> Diagnostic:
        """The same diagnostic, placed in a file (keeping any line it already has)."""
        return replace(self, file=file, document=document, line=self.line or line)

    @property
    def is_error(self) -> bool:
        """True for `Error` level."""
        return self.level is Level.ERROR

    def format_text(self) -> str:
        """istioctl's one-line form.

        `Error [IST0106] (VirtualService default/reviews vs.yaml:12) Schema validation error:
        spec.http[0].route[0].weight: ...`
        """
        where = []
        if self.origin:
            where.append(self.origin)
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        located = f" ({' '.join(where)})" if where else ""
        kind = MESSAGE_TYPES.get(self.code)
        detail = f"{self.path}: {self.message}" if self.path else self.message
        text = f"{kind.title}: {detail}" if kind else detail
        return f"{self.level} [{self.code}]{located} {text}"

    def __str__(self) -> str:
        return self.format_text()


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    """True if any diagnostic is an error."""
    return any(d.is_error for d in diagnostics)
