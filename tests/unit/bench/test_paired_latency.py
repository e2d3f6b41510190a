"""Two systems driven together: their p99s compared run by run."""

import threading
from typing import Any

from bench import paired_latency


def _run(p99: float, bucket: float) -> dict[str, Any]:
    return {"p99_us": p99, "buckets": [[bucket, bucket + 5, 100]]}


def test_a_system_slower_in_every_run_is_worse_in_every_draw() -> None:
    runs = [{"a": _run(500 + i, 500), "b": _run(400 + i, 400)} for i in range(10)]
    c = paired_latency.compare(runs, "a", "b", draws=200)
    assert c["runs"] == 10
    assert c["median_p99_difference_us"] == 100
    assert c["low_us"] == c["high_us"] == 100
    assert c["runs_not_worse"] == 0
    assert 400 <= c["pooled"]["b"]["p99_us"] <= 405
    assert 500 <= c["pooled"]["a"]["p99_us"] <= 505


def test_a_tie_straddles_zero() -> None:
    runs = [{"a": _run(400 + d, 400), "b": _run(400, 400)} for d in (-30, -10, 0, 10, 30)]
    c = paired_latency.compare(runs, "a", "b", draws=500)
    assert c["median_p99_difference_us"] == 0
    assert c["low_us"] < 0 < c["high_us"]
    assert c["runs_not_worse"] == 3
    text = paired_latency.render(
        {"rate": 1000, "seconds": 3, "command": "x", "comparisons": {"a|b": c}}
    )
    assert "| a \u2212 b | 5 | 0 (" in text


def test_together_runs_both_at_once_and_returns_both_results() -> None:
    both_started = threading.Barrier(2, timeout=5)

    def drive(name: str) -> str:
        both_started.wait()  # raises if the other never starts while this one runs
        return name.upper()

    assert paired_latency.together(("a", "b"), drive) == {"a": "A", "b": "B"}
