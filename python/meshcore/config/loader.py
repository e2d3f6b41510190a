"""Reading config files the way `istioctl analyze` reads local files.

`load_paths` walks files and directories (recursively: `*.yaml`, `*.yml`, `*.json`), splits
multi-document YAML, unpacks `kind: List` and `*List` objects, and turns each document into
a typed object: an Istio resource (parsed strictly, then validated), or one of the
Kubernetes kinds analyzers need (Namespace, Service, Pod, Deployment, Secret, ConfigMap).
Unknown kinds are skipped with a warning. Every problem becomes a `Diagnostic` with file,
document, object, field path and line; a bad document never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from meshcore.config.base import IstioResource
from meshcore.config.diagnostics import (
    FILE_READ_ERROR,
    INTERNAL_ERROR,
    SCHEMA_VALIDATION_ERROR,
    UNKNOWN_KIND,
    YAML_PARSE_ERROR,
    Diagnostic,
)
from meshcore.config.introspect import unwrap_annotation
from meshcore.config.kinds import model_for
from meshcore.config.kube import KubeResource
from meshcore.config.validation import validate
from meshcore.config.yaml12 import LineIndex, PathPart, format_path, parse_documents, path_parts

EXTENSIONS = (".yaml", ".yml", ".json")

Resource = IstioResource | KubeResource


@dataclass
class Source:
    """Where an object came from."""

    file: str
    document: int
    line: int | None = None


@dataclass
class LoadResult:
    """Objects read from files, with every diagnostic found while reading them."""

    resources: list[Resource] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        """The error-level diagnostics."""
        return [d for d in self.diagnostics if d.is_error]

    @property
    def istio(self) -> list[IstioResource]:
        """Only the Istio resources."""
        return [r for r in self.resources if isinstance(r, IstioResource)]

    def of_kind(self, kind: str) -> list[Resource]:
        """Objects of one kind, in load order."""
        return [r for r in self.resources if r.kind == kind]

    def extend(self, other: LoadResult) -> None:
        """Append another result."""
        self.resources += other.resources
        self.sources += other.sources
        self.diagnostics += other.diagnostics


def _map_path(model: type[BaseModel], loc: tuple[PathPart, ...]) -> str:
    """pydantic's error location → field path; map keys are written `{key}`."""
    out = ""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            current = _item_type(current)
            continue
        fields = getattr(current, "model_fields", None)
        if isinstance(fields, dict):
            by_alias = {(info.alias or name): info for name, info in fields.items()}
            info = by_alias.get(part) or fields.get(part)
            name = (info.alias or part) if info is not None else part
            out += f".{name}" if out else name
            current = info.annotation if info is not None else None
            continue
        if current is not None and _is_dict(current):
            out += f"{{{part}}}"
            current = _item_type(current)
            continue
        out += f".{part}" if out else part
        current = None
    return out


def _is_dict(annotation: Any) -> bool:
    return get_origin(unwrap_annotation(annotation)) is dict


def _item_type(annotation: Any) -> Any:
    annotation = unwrap_annotation(annotation)
    if get_origin(annotation) in (list, dict):
        return unwrap_annotation(get_args(annotation)[-1])
    return None


def _line_parts(loc: tuple[PathPart, ...]) -> tuple[PathPart, ...]:
    """pydantic locations include union branch tags; keep the data keys only."""
    return tuple(part for part in loc if isinstance(part, int) or not part.startswith("function-"))


def _message(error: dict[str, Any]) -> str:
    text = str(error["msg"])
    if error["type"] == "value_error":
        text = text.removeprefix("Value error, ")
    elif error["type"] == "extra_forbidden":
        text = "unknown field"
    elif error["type"] == "missing":
        text = "required field is missing"
    elif error["type"] == "literal_error":
        text = f"{text}, got {error['input']!r}"
    elif error["type"] in (
        "int_type",
        "string_type",
        "bool_type",
        "float_type",
        "dict_type",
        "list_type",
        "model_type",
        "int_from_float",
    ):
        text = f"{text}, got {type(error['input']).__name__} {error['input']!r}"
    return text


def schema_diagnostics(
    model: type[BaseModel],
    failure: ValidationError,
    *,
    origin: str | None = None,
    file: str | None = None,
    document: int | None = None,
    lines: LineIndex | None = None,
    prefix: tuple[PathPart, ...] = (),
) -> list[Diagnostic]:
    """One IST0106 diagnostic per error of `model.model_validate`, with the field path in
    the document (`prefix` first, for a model found under some key) and its line."""
    lines = lines or LineIndex()
    diagnostics = []
    for error in failure.errors():
        loc = _line_parts(tuple(error["loc"]))
        path = _map_path(model, loc)
        if prefix:
            path = format_path(prefix) + (f".{path}" if path and path[0] != "[" else path)
        diagnostics.append(
            Diagnostic.of(
                SCHEMA_VALIDATION_ERROR,
                _message(dict(error)),
                origin=origin,
                path=path or None,
                line=lines.line_of(prefix + loc),
                file=file,
                document=document,
            )
        )
    return diagnostics


def parse_object(
    data: Any,
    *,
    file: str | None = None,
    document: int | None = None,
    lines: LineIndex | None = None,
) -> tuple[Resource | None, list[Diagnostic]]:
    """Turn one YAML object into a typed resource, with its diagnostics.

    Returns `(None, diagnostics)` when the object cannot be parsed (or is of an unknown kind).
    Istio objects that parse are also checked by the webhook-layer `validate`.
    """
    lines = lines or LineIndex()
    if not isinstance(data, dict):
        message = f"expected a Kubernetes object (a mapping), got {type(data).__name__}"
        return None, [
            Diagnostic.of(
                SCHEMA_VALIDATION_ERROR,
                message,
                line=lines.first_line,
                file=file,
                document=document,
            )
        ]
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    raw_metadata = data.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = f"{metadata.get('namespace', 'default')}/{metadata.get('name', '<unnamed>')}"
    origin = f"{kind} {name}" if isinstance(kind, str) else None
    model = None
    if isinstance(api_version, str) and isinstance(kind, str):
        model = model_for(api_version, kind)
    if model is None:
        message = f"kind {kind!r} of apiVersion {api_version!r} is not known to meshcore; skipped"
        if not isinstance(kind, str) or not isinstance(api_version, str):
            message = "object has no apiVersion/kind; skipped"
        return None, [
            Diagnostic.of(
                UNKNOWN_KIND,
                message,
                origin=origin,
                line=lines.first_line,
                file=file,
                document=document,
            )
        ]
    try:
        resource = model.model_validate(data)
    except ValidationError as failure:
        return None, schema_diagnostics(
            model, failure, origin=origin, file=file, document=document, lines=lines
        )
    if isinstance(resource, IstioResource):
        try:
            findings = validate(resource)
        except Exception as bug:
            findings = [Diagnostic.of(INTERNAL_ERROR, f"validation failed: {bug!r}", origin=origin)]
        return resource, [
            d.located(file=file, document=document, line=lines.line_of(path_parts(d.path or "")))
            for d in findings
        ]
    return resource, []


def _items(data: Any) -> list[tuple[Any, tuple[PathPart, ...]]]:
    """The objects of one document: itself, or the items of a `List`."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
        return [(item, ("items", index)) for index, item in enumerate(data["items"])]
    return [(data, ())]


class _Shifted(LineIndex):
    """A LineIndex seen from inside a List item."""

    def __init__(self, inner: LineIndex, prefix: tuple[PathPart, ...]) -> None:
        super().__init__(
            inner.lines, inner.lines.get(prefix, inner.first_line) if prefix else inner.first_line
        )
        self.prefix = prefix

    def line_of(self, path: tuple[PathPart, ...]) -> int:
        return super().line_of(self.prefix + path)


def load_text(text: str, file: str = "<string>") -> LoadResult:
    """Load every object of one YAML/JSON stream."""
    result = LoadResult()
    for document in parse_documents(text):
        if document.error is not None:
            result.diagnostics.append(
                Diagnostic.of(
                    YAML_PARSE_ERROR,
                    document.error,
                    file=file,
                    document=document.index,
                    line=document.error_line,
                )
            )
            continue
        if document.data is None:
            continue
        for data, prefix in _items(document.data):
            lines = _Shifted(document.lines, prefix)
            resource, diagnostics = parse_object(
                data, file=file, document=document.index, lines=lines
            )
            result.diagnostics.extend(diagnostics)
            if resource is not None:
                result.resources.append(resource)
                result.sources.append(Source(file, document.index, lines.first_line))
    return result


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in EXTENSIONS)
    return [path]


def load_paths(paths: Iterable[str | Path]) -> LoadResult:
    """Load every config file under `paths` (files, or directories searched recursively)."""
    result = LoadResult()
    for root in paths:
        for path in _files(Path(root)):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                result.diagnostics.append(
                    Diagnostic.of(FILE_READ_ERROR, str(error), file=str(path))
                )
                continue
            result.extend(load_text(text, str(path)))
    return result
