"""The bench suite's pooled latency percentiles: repeats' histograms merged, then read."""

import math
from typing import Any

from bench import report
from bench.suite import pooled


def test_merged_histograms_are_read_as_one_distribution() -> None:
    fast = [[0.0, 10.0, 90.0], [10.0, 20.0, 10.0]]
    slow = [[10.0, 20.0, 50.0], [100.0, 200.0, 50.0]]
    p = report.pooled_percentiles([fast, slow])
    assert p["samples"] == 200
    # 90 samples in [0, 10), 60 in [10, 20), 50 in [100, 200).
    assert p["p50_us"] == 10 / 60 * 10 + 10
    assert p["p90_us"] == 100 + 100 * (30 / 50)
    assert p["p99_us"] == 100 + 100 * (48 / 50)


def test_no_samples_gives_no_percentile() -> None:
    p = report.pooled_percentiles([])
    assert p["samples"] == 0
    assert math.isnan(p["p99_us"])


def test_added_is_against_direct_pooled() -> None:
    runs: dict[str, list[dict[str, Any]]] = {
        "direct": [{"buckets": [[0.0, 100.0, 100.0]]}, {"buckets": [[0.0, 100.0, 100.0]]}],
        "proxy": [{"buckets": [[100.0, 200.0, 100.0]]}, {"buckets": []}],
    }
    out = pooled(runs)
    assert out["direct"]["samples"] == 200
    assert out["proxy"]["samples"] == 100
    assert out["proxy"]["added"]["p50_us"] == 150 - 50
    assert "added" not in out["direct"]
