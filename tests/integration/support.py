"""Real upstreams and snapshot builders for the integration tests (no mocks).

Upstreams are TCP echo servers on 127.0.0.1 that greet each connection with their name,
so a client can tell which cluster answered.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_ISSUED: set[int] = set()
_FLOOR = _ephemeral_floor()


def free_port() -> int:
    """A port that is free now and was not handed out before in this process.

    Picked below the kernel's ephemeral range, so that no client connection's source port
    can take it between this call and the server binding it (bind(0) picks from that very
    range, which made tests with many servers fail now and then), and never twice.
    """
    first = 20000 + (os.getpid() * 7919) % max(1, _FLOOR - 20000 - 1000)
    for offset in range(_FLOOR - 20000):
        port = 20000 + (first - 20000 + offset) % (_FLOOR - 20000)
        if port in _ISSUED:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ISSUED.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        name: str = self.server.name  # type: ignore[attr-defined]
        self.request.sendall(f"{name}\n".encode())
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 drops SYNs under 50 parallel connects


@contextmanager
def echo_server(name: str) -> Iterator[int]:
    """An echo upstream on 127.0.0.1; yields its port."""
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    server.name = name  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def echo_process(name: str) -> Iterator[int]:
    """An echo upstream in a separate process (its own GIL); yields its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshcore.cli.samples.echo", name],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def snapshot(
    version: str,
    listeners: list[tuple[str, int, dict[str, int]]],
    clusters: dict[str, list[int]],
) -> dict[str, Any]:
    """A snapshot dict: listeners as (name, port, {cluster: weight}), clusters by name."""
    return {
        "version": version,
        "listeners": [
            {
                "name": name,
                "address": "127.0.0.1",
                "port": port,
                "protocol": "tcp",
                "tcp_route": {"clusters": [{"name": c, "weight": w} for c, w in route.items()]},
            }
            for name, port, route in listeners
        ],
        "clusters": [
            {
                "name": name,
                "connect_timeout_ms": 1000,
                "endpoints": [{"address": "127.0.0.1", "port": p} for p in ports],
            }
            for name, ports in clusters.items()
        ],
    }


def greeting(port: int, payload: bytes = b"ping\n") -> str:
    """Connects through a listener, returns the upstream's name after checking the echo."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        reader = s.makefile("rb")
        name = reader.readline().decode().strip()
        s.sendall(payload)
        echoed = reader.read(len(payload))
        assert echoed == payload, (echoed, payload)
        return name
