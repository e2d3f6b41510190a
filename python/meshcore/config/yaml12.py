"""Reading YAML the way Kubernetes tools do, with the line of every field.

PyYAML implements YAML 1.1: it reads `on`/`yes` as booleans, `1:20` as a base-60 integer,
`2024-01-01` as a date, and the IPv6 literal in `[1.2.3.4, 001:db8::]` as a mapping. Go's
YAML reader (which kubectl and istioctl use) reads the last three as strings. `KubeLoader`
follows YAML 1.2 core-schema scalar resolution (`true`/`false`, `null`/`~`, ints, floats,
everything else a string) and Go's rule that `:` ends a plain scalar only before a blank.

`parse_documents` splits a file into documents, parses each on its own (so one broken
document does not hide the others) and returns, for each, the data and a `LineIndex` from
field path to line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.tokens import ScalarToken

PathPart = str | int
Path = tuple[PathPart, ...]

_FLOW_END = ",[]{}"


class KubeLoader(yaml.SafeLoader):
    """A SafeLoader with YAML 1.2 core-schema scalars and Go's plain-scalar rule for `:`."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012

    def scan_plain(self) -> ScalarToken:
        """In flow context `a:]` is the scalar `a:` (Go), not the key `a` (PyYAML)."""
        token: ScalarToken = super().scan_plain()
        if self.flow_level and self.peek() == ":" and self.peek(1) in _FLOW_END:
            self.forward()
            token = ScalarToken(token.value + ":", True, token.start_mark, self.get_mark())
        return token


def _resolver(tag: str, pattern: str, first: str) -> None:
    KubeLoader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])  # type: ignore[arg-type]
_resolver("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_resolver(
    "tag:yaml.org,2002:float",
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    "-+0123456789.",
)
_resolver("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")


def _construct_int(loader: KubeLoader, node: Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: KubeLoader, node: Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _construct_bool(loader: KubeLoader, node: Node) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"  # type: ignore[arg-type]


KubeLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
KubeLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
KubeLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
# Explicit `!!timestamp` stays text: Kubernetes objects carry times as RFC 3339 strings.
KubeLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


@dataclass
class LineIndex:
    """Line numbers (1-based) of the fields of one document, by path."""

    lines: dict[Path, int] = field(default_factory=dict)
    first_line: int = 1

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.first_line


@dataclass
class Document:
    """One YAML document of a file: its data, or the reason it could not be read."""

    index: int
    data: Any = None
    lines: LineIndex = field(default_factory=LineIndex)
    error: str | None = None
    error_line: int | None = None


def _json_key(key: Any) -> Any:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    return key


def as_json(data: Any) -> Any:
    """Mapping keys as JSON has them: strings (`8080:` → `"8080"`), as Kubernetes converts."""
    if isinstance(data, dict):
        return {_json_key(key): as_json(value) for key, value in data.items()}
    if isinstance(data, list):
        return [as_json(item) for item in data]
    return data


def loads(text: str) -> Any:
    """Parse one YAML document with `KubeLoader` (no line index), keys as JSON strings."""
    return as_json(yaml.load(text, Loader=KubeLoader))  # noqa: S506 - KubeLoader is a SafeLoader


_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")


def _split(text: str) -> Iterator[tuple[int, str]]:
    """Documents of a stream with the 0-based line each starts on."""
    start = 0
    chunk: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True)):
        if _SEPARATOR.match(line.rstrip("\r\n")):
            yield start, "".join(chunk)
            rest = line.rstrip("\r\n")[3:]
            chunk = [" " * 3 + rest + "\n"] if rest.strip() else []
            start = number if rest.strip() else number + 1
        elif line.rstrip("\r\n") == "...":
            yield start, "".join(chunk)
            chunk, start = [], number + 1
        else:
            chunk.append(line)
    yield start, "".join(chunk)


def _is_blank(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _index(node: Node, path: Path, offset: int, out: dict[Path, int]) -> None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                child = (*path, key.value)
                out[child] = key.start_mark.line + 1 + offset
                _index(value, child, offset, out)
    elif isinstance(node, SequenceNode):
        for position, item in enumerate(node.value):
            child = (*path, position)
            out[child] = item.start_mark.line + 1 + offset
            _index(item, child, offset, out)


def parse_documents(text: str) -> list[Document]:
    """Every non-empty document of a YAML stream, each parsed independently."""
    documents: list[Document] = []
    for offset, chunk in _split(text):
        if _is_blank(chunk):
            continue
        document = Document(index=len(documents))
        documents.append(document)
        loader = KubeLoader(chunk)
        try:
            node = loader.get_single_node()
            if node is None:
                continue
            document.data = as_json(loader.construct_document(node))
            lines: dict[Path, int] = {}
            _index(node, (), offset, lines)
            document.lines = LineIndex(lines, first_line=node.start_mark.line + 1 + offset)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            document.error_line = mark.line + 1 + offset if mark else offset + 1
            if "<stream end>" in (error.problem or ""):
                # "expected ']' but the document ended": point at its last line, not past it.
                document.error_line = offset + len(chunk.rstrip().splitlines())
            document.error = " ".join(
                part for part in (error.context, error.problem) if part
            ) or str(error)
        except (yaml.YAMLError, ValueError, OverflowError) as error:
            document.error = str(error)
            document.error_line = offset + 1
        finally:
            loader.dispose()
    return documents


def path_parts(path: str) -> tuple[PathPart, ...]:
    """`spec.http[0].headers{x}` → `("spec", "http", 0, "headers", "x")` the key path
    `LineIndex.line_of` takes (the form diagnostics write paths in)."""
    parts: list[PathPart] = []
    token = ""
    index = 0
    while index < len(path):
        char = path[index]
        if char in ".[{":
            if token:
                parts.append(token)
            token = ""
            if char in "[{":
                close = path.index("]" if char == "[" else "}", index)
                inner = path[index + 1 : close]
                parts.append(int(inner) if char == "[" else inner)
                index = close
        else:
            token += char
        index += 1
    if token:
        parts.append(token)
    return tuple(parts)


def format_path(parts: Iterable[PathPart]) -> str:
    """`("spec", "http", 0, "route")` → `spec.http[0].route`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
