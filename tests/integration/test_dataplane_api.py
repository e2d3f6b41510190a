"""The data plane through its Python API, with real sockets and real upstreams."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from meshcore.compile.snapshot import parse_snapshot
from meshcore.dataplane import DataPlane, DataPlaneOptions, SnapshotRejected
from tests.integration.support import echo_process, echo_server, free_port, greeting, snapshot


def _apply(dp: DataPlane, doc: dict[str, object]) -> str:
    return dp.apply(json.dumps(doc).encode())


def _settled_totals(dp: DataPlane) -> dict[str, int]:
    """Totals once every connection has closed (a client can read the last bytes an
    instant before the proxy counts them)."""
    deadline = time.monotonic() + 5
    while (totals := dp.stats()["totals"])["connections_active"] and time.monotonic() < deadline:
        time.sleep(0.01)
    result: dict[str, int] = totals
    return result


def test_traffic_flows_and_is_counted() -> None:
    port = free_port()
    with echo_server("a") as up, DataPlane.start(DataPlaneOptions(concurrency=1)) as dp:
        assert _apply(dp, snapshot("v1", [("l", port, {"a": 1})], {"a": [up]})) == "v1"
        assert [greeting(port) for _ in range(5)] == ["a"] * 5
        totals = _settled_totals(dp)
        assert dp.stats()["version"] == "v1"
        assert totals["connections_opened"] == totals["connections_closed"] == 5
        assert totals["bytes_upstream"] == 5 * len(b"ping\n")
        assert totals["bytes_downstream"] == 5 * len(b"a\nping\n")
        dump = dp.config_dump()
        assert dump is not None
        assert dump.version == "v1"


def test_snapshot_model_is_accepted_directly() -> None:
    port = free_port()
    with echo_server("a") as up, DataPlane.start() as dp:
        model = parse_snapshot(json.dumps(snapshot("m1", [("l", port, {"a": 1})], {"a": [up]})))
        assert dp.apply(model) == "m1"
        assert greeting(port) == "a"


def test_invalid_snapshot_is_rejected_and_the_old_one_keeps_serving() -> None:
    port = free_port()
    with echo_server("a") as up, DataPlane.start() as dp:
        _apply(dp, snapshot("v1", [("l", port, {"a": 1})], {"a": [up]}))
        broken = snapshot("v2", [("l", port, {"missing": 1})], {"a": [up]})
        with pytest.raises(SnapshotRejected) as caught:
            _apply(dp, broken)
        assert caught.value.path == "listeners[0].tcp_route.clusters[0].name"
        assert caught.value.code == "unknown_reference"
        assert 'unknown cluster "missing"' in str(caught.value)
        with pytest.raises(SnapshotRejected) as malformed:
            dp.apply(b'{"version": ')
        assert malformed.value.code == "syntax"
        assert greeting(port) == "a"
        stats = dp.stats()
        assert (stats["version"], stats["applies_rejected"]) == ("v1", 2)


def test_bind_failure_rejects_the_whole_apply() -> None:
    port, taken = free_port(), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    with taken, echo_server("a") as up, DataPlane.start() as dp:
        _apply(dp, snapshot("v1", [("l", port, {"a": 1})], {"a": [up]}))
        other_port = free_port()
        doc = snapshot(
            "v2",
            [("l", port, {"a": 1}), ("new", other_port, {"a": 1}), ("clash", busy, {"a": 1})],
            {"a": [up]},
        )
        with pytest.raises(SnapshotRejected) as caught:
            _apply(dp, doc)
        assert caught.value.code == "bind_failed"
        assert caught.value.path == "listeners[2].port"
        assert str(busy) in str(caught.value)
        # Nothing of v2 applied: the listener it would have added is not there.
        assert dp.stats()["version"] == "v1"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other_port), timeout=2).close()
        assert greeting(port) == "a"


def test_weighted_split_follows_the_route() -> None:
    port = free_port()
    with echo_server("v1") as a, echo_server("v2") as b, DataPlane.start() as dp:
        _apply(dp, snapshot("v1", [("l", port, {"v1": 3, "v2": 1})], {"v1": [a], "v2": [b]}))
        seen = Counter(greeting(port) for _ in range(400))
        # 3:1 over 400 connections: expected 100 for v2, sigma ~8.7; 5 sigma either way.
        assert 56 <= seen["v2"] <= 144, seen


def test_apply_while_50_connections_stream_breaks_none() -> None:
    port, second = free_port(), free_port()
    with echo_server("a") as a, echo_server("b") as b, DataPlane.start() as dp:
        base = snapshot("v0", [("l", port, {"a": 1})], {"a": [a], "b": [b]})
        _apply(dp, base)

        async def stream(i: int) -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await reader.readline()) == b"a\n"
            sent = 0
            for n in range(60):
                chunk = bytes([i % 256]) * 4096 + n.to_bytes(4, "big")
                writer.write(chunk)
                await writer.drain()
                assert await reader.readexactly(len(chunk)) == chunk
                sent += len(chunk)
                await asyncio.sleep(0.01)
            writer.close()
            return sent

        def churn() -> None:
            for version in range(1, 11):
                listeners = [("l", port, {"a": 1, "b": version})]
                if version % 2:
                    listeners.append(("extra", second, {"b": 1}))
                _apply(dp, snapshot(f"v{version}", listeners, {"a": [a], "b": [b]}))
                time.sleep(0.05)

        async def main() -> list[int]:
            streams = [asyncio.create_task(stream(i)) for i in range(50)]
            await asyncio.sleep(0.1)
            await asyncio.to_thread(churn)
            return await asyncio.gather(*streams)

        sent = asyncio.run(main())
        assert sent == [60 * 4100] * 50
        stats = dp.stats()
        assert stats["version"] == "v10"
        assert stats["totals"]["connections_opened"] == 50


def test_shutdown_waits_for_in_flight_connections() -> None:
    port = free_port()
    with echo_server("a") as up:
        dp = DataPlane.start()
        _apply(dp, snapshot("v1", [("l", port, {"a": 1})], {"a": [up]}))
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        reader = client.makefile("rb")
        assert reader.readline() == b"a\n"
        result: list[int] = []
        shutdown = threading.Thread(target=lambda: result.append(dp.shutdown(10.0)))
        shutdown.start()
        time.sleep(0.3)
        # No new connections, but the one in flight still works until it ends.
        with pytest.raises(ConnectionRefusedError):
            greeting(port)
        client.sendall(b"still here\n")
        assert reader.readline() == b"still here\n"
        assert shutdown.is_alive()
        reader.close()  # the makefile holds the socket open until it is closed too
        client.close()
        shutdown.join(timeout=5)
        assert result == [0]


def test_shutdown_closes_what_outlives_the_grace_period() -> None:
    port = free_port()
    with echo_server("a") as up:
        dp = DataPlane.start()
        _apply(dp, snapshot("v1", [("l", port, {"a": 1})], {"a": [up]}))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.recv(16) == b"a\n"
            assert dp.shutdown(0.2) == 1
            assert client.recv(16) == b""
        assert dp.shutdown(0.2) == 1  # idempotent: the first shutdown's report


_CLIENT = """
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline() == b"a\\n"
        s.sendall(b"x\\n")
        assert f.readline() == b"x\\n"
print("ok")
"""


def test_busy_python_thread_does_not_stop_traffic() -> None:
    """The data plane never needs the GIL: a CPU-bound Python thread in this process
    cannot stall it (bench/gil_isolation.py measures the latency side of this)."""
    port = free_port()
    with echo_process("a") as up, DataPlane.start() as dp:
        _apply(dp, snapshot("v1", [("l", port, {"a": 1})], {"a": [up]}))
        stop = threading.Event()

        def spin() -> None:
            x = 0
            while not stop.is_set():
                x += 1

        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            out = subprocess.run(
                [sys.executable, "-c", _CLIENT, str(port), "300"],
                capture_output=True,
                timeout=120,
                check=True,
            )
        finally:
            stop.set()
            spinner.join()
        assert out.stdout.strip() == b"ok"
        assert dp.stats()["totals"]["connections_opened"] == 300
