"""The targets table states the sidecar pair's added p99 next to the floor of two relays."""

from __future__ import annotations

from typing import Any

from bench import tables


def _spread(median: float) -> dict[str, float]:
    return {"median": median, "min": median, "max": median}


def _latency(systems: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """A latency payload at 1,000 rps; `systems` maps name -> (added p50, added p99)."""
    pooled: dict[str, Any] = {"direct": {"p99_us": 900.0}}
    for name, (_, p99) in systems.items():
        pooled[name] = {"p99_us": 900.0 + p99, "added": {"p99_us": p99}}
    added = {
        "p50_us": {n: _spread(p50) for n, (p50, _) in systems.items()},
        "p99_us": {n: _spread(p99) for n, (_, p99) in systems.items()},
    }
    rate = {"summary": {}, "added_us": added, "pooled": pooled}
    return {"by_rate": {"1000": rate}}


def test_the_pair_row_names_the_floor_of_two_relays() -> None:
    latency = _latency({"meshcore-pair": (92, 935), "relay-pair": (66, 830)})
    text = tables._targets({"latency": latency})
    assert text is not None
    assert (
        "935 µs, \u00d74.7 the goal (direct's own p99: 900 µs; two relays, the floor of a pair: "
        "830 µs, the pair \u00d71.13 of it)" in text
    )
    assert "Two bare relays in the same places add 66 µs at p50 and 830 µs at p99" in text


def test_without_the_relay_pair_the_row_has_no_floor() -> None:
    text = tables._targets({"latency": _latency({"meshcore-pair": (92, 150)})})
    assert text is not None
    assert "| 150 µs (direct's own p99: 900 µs) | yes |" in text
    assert "floor" not in text
