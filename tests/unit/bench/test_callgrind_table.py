"""The callgrind table states meshcore-http's instructions as a ratio to the L7 peers."""

from __future__ import annotations

from typing import Any

from bench import tables


def _system(protocol: str, per_request: float, relay: float) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "instructions_per_request": per_request,
        "vs_relay": per_request / relay,
    }


def test_the_table_names_the_ratio_to_each_peer() -> None:
    systems = {
        "relay": _system("tcp", 3_000, 3_000),
        "meshcore-http": _system("http", 40_000, 3_000),
        "nginx": _system("http", 25_000, 3_000),
        "haproxy": _system("http", 32_000, 3_000),
    }
    systems["meshcore-http"] |= {"vs_nginx": 1.6, "vs_haproxy": 1.25}
    text = tables._callgrind({"params": {"requests": 500}, "systems": systems})
    assert "\u00d71.60 nginx's and \u00d71.25 haproxy's" in text
    assert "| nginx | http | 25,000 | \u00d78.3 |" in text


def test_a_run_without_peers_has_no_ratio() -> None:
    systems = {"relay": _system("tcp", 3_000, 3_000)}
    text = tables._callgrind({"params": {"requests": 500}, "systems": systems})
    assert "runs \u00d7" not in text
