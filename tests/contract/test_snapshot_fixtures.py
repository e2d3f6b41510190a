"""The shared golden fixtures, Python side (the Rust side is
``rust/meshcore-snapshot/tests/golden_fixtures.rs``): same normal form, same rejections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshcore.compile.snapshot import SnapshotInvalid, parse_snapshot

FIXTURES = Path(__file__).parents[1] / "fixtures" / "snapshots"


def _inputs(kind: str) -> list[Path]:
    files = sorted(p for p in (FIXTURES / kind).glob("*.json") if p.name.count(".") == 1)
    assert files, f"no fixtures in {kind}"
    return files


def _sibling(path: Path, suffix: str) -> Any:
    return json.loads(path.with_name(f"{path.stem}.{suffix}.json").read_text())


@pytest.mark.parametrize("path", _inputs("valid"), ids=lambda p: p.stem)
def test_valid_fixture_normalises_to_golden_form(path: Path) -> None:
    snapshot = parse_snapshot(path.read_bytes())
    normalised = snapshot.model_dump(mode="json")
    assert normalised == _sibling(path, "normalized")
    assert parse_snapshot(snapshot.to_json()) == snapshot


@pytest.mark.parametrize("path", _inputs("invalid"), ids=lambda p: p.stem)
def test_invalid_fixture_is_rejected_like_rust_does(path: Path) -> None:
    expected = _sibling(path, "error")
    with pytest.raises(SnapshotInvalid) as caught:
        parse_snapshot(path.read_bytes())
    first = caught.value.errors[0]
    assert (first.path, first.code) == (expected["path"], expected["code"]), str(first)
    if "message" in expected:
        assert first.message == expected["message"]
