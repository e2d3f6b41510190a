"""Latencies kept per request (oha): exact percentiles, and bins fine enough to pool."""

import json
import math
from pathlib import Path

from bench import loadgen, report


def test_exact_percentile_is_the_nearest_rank() -> None:
    ordered = [float(v) for v in range(1, 101)]  # 1 .. 100
    assert loadgen.exact_percentile(ordered, 50) == 50
    assert loadgen.exact_percentile(ordered, 99) == 99
    assert loadgen.exact_percentile(ordered, 99.9) == 100
    assert loadgen.exact_percentile([7.0], 99) == 7
    assert math.isnan(loadgen.exact_percentile([], 50))


def test_bins_widen_with_latency_and_keep_every_sample() -> None:
    samples = [101.0, 104.9, 105.0, 1999.0, 2001.0, 2049.0, 25_000.0]
    bins = loadgen.latency_bins(samples)
    assert bins == [
        [100, 105, 2],
        [105, 110, 1],
        [1995, 2000, 1],
        [2000, 2050, 2],
        [25_000, 25_500, 1],
    ]
    assert sum(count for _, _, count in bins) == len(samples)


def test_pooled_bins_read_back_within_one_bin_of_the_exact_p99() -> None:
    # Two runs whose tails differ by 30 µs around 1 ms: fortio's 100-200 µs buckets
    # there could not show it, 5 µs bins do.
    fast = [150.0] * 980 + [1000.0 + i for i in range(20)]
    slow = [150.0] * 980 + [1030.0 + i for i in range(20)]
    for run in (fast, slow):
        exact = loadgen.exact_percentile(sorted(run), 99)
        pooled = report.pooled_percentiles([loadgen.latency_bins(run)])["p99_us"]
        assert abs(pooled - exact) <= 5
    both = report.pooled_percentiles([loadgen.latency_bins(fast), loadgen.latency_bins(slow)])
    assert 1000 <= both["p99_us"] <= 1050


def test_result_files_keep_one_bucket_per_line_and_read_back_whole(tmp_path: Path) -> None:
    payload = {"runs": [{"buckets": [[100, 105, 2], [1995.5, 2000, 1e-05]], "p99_us": 1.5}]}
    path = report.write_result("2026-01-01", "x", payload, tmp_path)
    text = path.read_text()
    assert "[100, 105, 2]" in text
    assert "[1995.5, 2000, 1e-05]" in text
    assert json.loads(text) == payload
