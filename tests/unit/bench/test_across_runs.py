"""Latency pooled across passes: repeats merged per system, and paired differences."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from bench import across_runs


def _run(latency_us: float, n: int = 100) -> dict[str, object]:
    return {"buckets": [[latency_us, latency_us + 10, n]]}


def _file(tmp_path: Path, name: str, systems: dict[str, list[float]], rate: int = 1000) -> Path:
    runs = {s: [_run(v) for v in values] for s, values in systems.items()}
    payload = {
        "command": "suite",
        "machine": {"git_commit": "abc", "extension_build": "pgo"},
        "by_rate": {str(rate): {"runs": runs}},
    }
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def test_systems_are_pooled_over_every_file(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.json", {"direct": [100, 100], "proxy": [200, 300]})
    b = _file(tmp_path, "b.json", {"direct": [100], "proxy": [400], "peer": [150]})
    pooled = across_runs.load([a, b], 1000)
    proxy = across_runs.added(pooled, "proxy")
    assert proxy["repeats"] == 3
    assert proxy["samples"] == 300
    # The pooled p99 lies in the slowest repeat's bucket; direct's in its own.
    assert 400 <= proxy["p99_us"] <= 410
    assert proxy["added_p99_us"] == pytest.approx(
        proxy["p99_us"] - pooled.p("direct", [("a.json", 0)])
    )
    # The peer ran only in b: its difference to proxy is read over that one repeat.
    assert pooled.shared("proxy", "peer") == [("b.json", 0)]


def test_a_system_slower_in_every_repeat_is_never_drawn_as_not_worse(tmp_path: Path) -> None:
    systems = {"direct": [100.0] * 6, "fast": [150.0] * 6, "slow": [180.0 + i for i in range(6)]}
    pooled = across_runs.load([_file(tmp_path, "a.json", systems)], 1000)
    d = across_runs.difference(pooled, "slow", "fast", 200, random.Random(1))
    assert d["repeats"] == 6
    assert d["p99_difference_us"] > 0
    assert d["share_not_worse"] == 0
    assert d["low_us"] <= d["p99_difference_us"] <= d["high_us"]
    assert d["repeats_not_worse"] == 0
    assert d["median_repeat_difference_us"] > 0
    # Every draw of the repeats has a positive median difference too.
    assert 0 < d["median_low_us"] <= d["median_repeat_difference_us"] <= d["median_high_us"]
    d = across_runs.difference(pooled, "fast", "slow", 200, random.Random(1))
    assert d["share_not_worse"] == 1


def test_a_file_without_the_rate_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "a.json", {"direct": [100]}, rate=500)
    with pytest.raises(SystemExit, match="no latency runs at 1000"):
        across_runs.load([path], 1000)


def test_the_table_states_the_verdict_per_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    systems = {
        "direct": [100.0] * 4,
        "meshcore-http": [150.0] * 4,
        "nginx": [160.0] * 4,
        "haproxy": [140.0] * 4,
    }
    path = _file(tmp_path, "a.json", systems)
    across_runs.main([str(path), "--draws", "50"])
    out = capsys.readouterr().out
    assert "Pooled added p99: meshcore-http ≤ nginx, > haproxy." in out
    assert "| meshcore-http \u2212 nginx | 4 | -10 |" in out
