"""The agent's small parts: reconnect backoff, metrics text, and what it may import."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from meshcore.agent.backoff import Backoff
from meshcore.agent.state import AgentState
from meshcore.agent.status import StatusServer
from meshcore.cli.proxy_status import part_states

AGENT = Path(__file__).resolve().parents[3] / "python" / "meshcore" / "agent"
FORBIDDEN = ("meshcore.compile", "meshcore.config", "meshcore.control", "pydantic", "yaml",
             "kubernetes", "prometheus_client")  # fmt: skip


def test_backoff_grows_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    caps = []
    for _ in range(8):
        caps.append(backoff.cap())
        delay = backoff.next()
        assert 0.25 <= delay <= caps[-1]
    assert caps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    delays = {Backoff(0.5, 8.0, random.Random(seed)).next() for seed in range(10)}
    assert len(delays) == 10  # a fleet does not reconnect in lockstep
    backoff.reset()
    assert backoff.cap() == 0.5
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)


def test_readiness_follows_the_first_apply_and_drain() -> None:
    state = AgentState()
    assert not state.ready
    state.applied("v1")
    assert state.ready
    state.draining = True
    assert not state.ready


def test_merged_metrics_are_prometheus_text() -> None:
    state = AgentState(connected=True)
    state.applied('sha256:"x"')
    server = StatusServer(state, None)  # type: ignore[arg-type]
    stats = {
        "totals": {
            "connections_opened": 3,
            "connections_active": 1,
            "bytes_upstream": 12345678901,
            "response_flags": {"NR": 2, "UH": 0},
        },
        "listeners": [
            {
                "name": "l1",
                "port": 1,
                "connections_opened": 2,
                "draining": False,
                "detected_by_port": {"9080": {"http1": 4, "tcp": 0}, "3306": {"tcp": 1}},
            }
        ],
        "clusters": [{"name": "outbound|80||a", "connect_failures": 1}],
    }
    text = server.prometheus(stats)
    lines = text.splitlines()
    assert "meshcore_agent_ready 1" in lines
    assert 'meshcore_agent_snapshot_info{version="sha256:\\"x\\""} 1' in lines
    assert "# TYPE meshcore_proxy_connections_opened counter" in lines
    assert "meshcore_proxy_connections_opened_total 3" in lines
    assert "# TYPE meshcore_proxy_connections_active gauge" in lines
    assert "meshcore_proxy_bytes_upstream_total 12345678901" in lines
    assert 'meshcore_proxy_response_flags_total{flag="NR"} 2' in lines
    assert 'meshcore_proxy_listener_connections_opened_total{listener="l1"} 2' in lines
    assert 'meshcore_proxy_listener_draining{listener="l1"} 0' in lines
    assert 'meshcore_proxy_cluster_connect_failures_total{cluster="outbound|80||a"} 1' in lines
    by_port = "meshcore_proxy_listener_detected_by_port_total"
    assert f'{by_port}{{listener="l1",outcome="http1",port="9080"}} 4' in lines
    assert f'{by_port}{{listener="l1",outcome="tcp",port="3306"}} 1' in lines
    # The listener's own port is a label of nothing, not a series.
    assert not any(line.startswith("meshcore_proxy_listener_port") for line in lines)
    assert len([line for line in lines if line.startswith("# TYPE")]) == len(
        {line.split()[2] for line in lines if line.startswith("# TYPE")}
    )


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_the_agent_package_imports_no_compiler_config_or_control_plane() -> None:
    found = {
        f"{path.name}: {name}"
        for path in AGENT.glob("*.py")
        for name in _imports(path)
        if name.startswith(FORBIDDEN)
    }
    assert found == set()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("listeners[2].port", ["STALE", "NACKED", "STALE"]),
        ("clusters[0].name", ["NACKED", "STALE", "STALE"]),
        ("route_configs[0].virtual_hosts", ["STALE", "STALE", "NACKED"]),
        ("", ["NACKED", "NACKED", "NACKED"]),
    ],
)
def test_proxy_status_names_the_refused_part(path: str, expected: list[str]) -> None:
    states = part_states({"state": "NACKED", "nack": {"path": path}})
    assert [states[c] for c in ("CLUSTERS", "LISTENERS", "ROUTES")] == expected
