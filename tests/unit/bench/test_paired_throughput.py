"""Two CPU-capped proxies driven together: their requests/s compared run by run."""

from typing import Any

from bench import paired_throughput


def _side(rps: float, used: float) -> dict[str, float]:
    return {"rps": rps, "cores_used": used, "quota_used": used / 0.4, "rps_per_core": rps / used}


def test_the_ratio_is_taken_run_by_run() -> None:
    # The host halves both in run 2: the ratio does not move.
    runs = [
        {"a": _side(20_000, 0.4), "b": _side(18_000, 0.4)},
        {"a": _side(10_000, 0.4), "b": _side(9_000, 0.4)},
        {"a": _side(17_000, 0.4), "b": _side(18_000, 0.4)},
    ]
    c = paired_throughput.compare(runs, "a", "b")
    assert c["runs"] == 3
    assert round(c["median_ratio"], 4) == round(20_000 / 18_000, 4)
    assert round(c["min_ratio"], 4) == round(17_000 / 18_000, 4)
    assert c["runs_not_behind"] == 2
    assert c["quota_used"] == {"a": 1.0, "b": 1.0}
    assert c["rps_per_core"]["a"] == 42_500


def test_the_table_shows_each_pair() -> None:
    runs: list[dict[str, Any]] = [{"a": _side(20_000, 0.4), "b": _side(20_000, 0.38)}]
    c = paired_throughput.compare(runs, "a", "b")
    text = paired_throughput.render(
        {"quota": 0.4, "seconds": 8, "command": "x", "comparisons": {"a|b": c}}
    )
    row = "| a / b | 1 | \u00d71.000 (\u00d71.000 \u2013 \u00d71.000) | 1 of 1 |"
    assert row + " 50,000 / 52,632 | 100% / 95% |" in text
