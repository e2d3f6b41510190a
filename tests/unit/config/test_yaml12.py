"""YAML scalars resolve as Kubernetes (Go) reads them, not as PyYAML's YAML 1.1 does."""

from __future__ import annotations

from typing import Any

import pytest

from meshcore.config.yaml12 import loads, parse_documents


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1.2.3.4, 001:db8::]", ["1.2.3.4", "001:db8::"]),
        ("[a:]", ["a:"]),
        ("{a: b}", {"a": "b"}),
        ('{"a":1}', {"a": 1}),
        ("on", "on"),
        ("yes", "yes"),
        ("No", "No"),
        ("true", True),
        ("False", False),
        ("2024-01-01", "2024-01-01"),
        ("1:20", "1:20"),
        ("0x1F", 31),
        ("0o17", 15),
        ("1e3", 1000.0),
        ("1.5", 1.5),
        ("~", None),
        ("null", None),
        ("5s", "5s"),
        ("{8080: x}", {"8080": "x"}),
        ("{true: x}", {"true": "x"}),
    ],
)
def test_scalars(text: str, expected: Any) -> None:
    assert loads(text) == expected


def test_lines_and_document_indexes() -> None:
    documents = parse_documents("# c\n---\na: 1\nb:\n- x\n- y: 2\n---\n---\nc: [\n---\nd: 4\n")
    assert [d.index for d in documents] == [0, 1, 2]
    first = documents[0]
    assert first.lines.line_of(("b", 1, "y")) == 6
    assert first.lines.line_of(("b", 1, "missing")) == 6
    assert documents[1].error is not None
    assert documents[1].error_line == 9
    assert documents[2].data == {"d": 4}
