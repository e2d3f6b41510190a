"""Golden snapshots of Istio documentation examples.

Each case compiles a fixture under tests/fixtures/compile for one proxy and compares the
JSON with tests/golden/compile/<case>.json. After an intended change, regenerate with
`MESHCORE_UPDATE_GOLDENS=1 pytest tests/unit/compile/test_golden.py` and review the diff.
"""

from __future__ import annotations

import os

import pytest

from meshcore.compile import snapshot_json
from meshcore.compile.snapshot import parse_snapshot, validate_snapshot
from meshcore.config import MeshConfig

from .helpers import GOLDEN, compile_fixture

CASES: dict[str, tuple[str, str, dict[str, str] | None, MeshConfig | None]] = {
    "bookinfo-productpage": ("bookinfo.yaml", "productpage-v1.default", None, None),
    "bookinfo-access-log": (
        "bookinfo.yaml",
        "reviews-v2.default",
        None,
        MeshConfig(access_log_file="/dev/stdout", access_log_encoding="JSON"),
    ),
    "subsets-and-policies": (
        "subsets-and-policies.yaml",
        "productpage.prod",
        {"app": "productpage"},
        None,
    ),
    "redirect-rewrite-direct": ("redirect-rewrite-direct.yaml", "sleep.default", None, None),
    "service-entries-registry-only": ("service-entries.yaml", "sleep.default", None, None),
    "source-labels-productpage-v2": (
        "source-labels.yaml",
        "productpage-v2.default",
        {"app": "productpage", "version": "v2"},
        None,
    ),
    "source-labels-canary-namespace": ("source-labels.yaml", "sleep.canary", None, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_snapshot_matches_golden(case: str) -> None:
    fixture, proxy, labels, mesh = CASES[case]
    snapshot = compile_fixture(fixture, proxy, labels, mesh).snapshot
    assert validate_snapshot(snapshot) == []
    text = snapshot_json(snapshot)
    path = GOLDEN / f"{case}.json"
    if os.environ.get("MESHCORE_UPDATE_GOLDENS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden {path}; run with MESHCORE_UPDATE_GOLDENS=1"
    assert text == path.read_text()
    # The short form leaves defaults out, losing nothing: it parses back to the snapshot.
    assert parse_snapshot(path.read_text()) == snapshot
