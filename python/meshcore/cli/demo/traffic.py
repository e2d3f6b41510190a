"""The traffic generator: paced ``GET /`` requests to productpage's sidecar over keep-alive
HTTP/1.1 connections, a share of them as ``end-user: jason``, recorded in `Metrics`."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from meshcore.cli.demo.metrics import Metrics


class TrafficGenerator:
    """Paced GET / requests to productpage's sidecar over keep-alive HTTP/1.1 connections."""

    def __init__(self, port: int, rate: float, connections: int, jason_share: float) -> None:
        self.port = port
        self.interval = 1.0 / max(rate, 0.1)
        self.connections = max(1, connections)
        self.jason_share = jason_share
        self.metrics = Metrics()
        self._next_at = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def reset(self) -> None:
        """Starts a new measurement."""
        self.metrics = Metrics()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.connections)]

    async def stop(self) -> None:
        """Lets requests in flight finish (briefly), then stops."""
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=2.0) if self._tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _worker(self) -> None:
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while not self._stopping:
                self._next_at = max(self._next_at + self.interval, time.monotonic() - 1.0)
                delay = self._next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stopping:
                    break
                jason = random.random() < self.jason_share  # noqa: S311 - traffic mix, not crypto
                started = time.perf_counter()
                try:
                    if stream is None:
                        stream = await asyncio.wait_for(
                            asyncio.open_connection("127.0.0.1", self.port), 5
                        )
                    status, body, keep = await asyncio.wait_for(_get(*stream, jason), 10)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                    self.metrics.record(0, _ms(started), None, jason)
                    self.metrics.last_error = f"productpage: {type(error).__name__} {error}"
                    _close(stream)
                    stream = None
                    await asyncio.sleep(0.2)
                    continue
                self.metrics.record(status, _ms(started), body, jason)
                if not keep:
                    _close(stream)
                    stream = None
        finally:
            _close(stream)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _close(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if stream is not None:
        stream[1].close()


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, jason: bool
) -> tuple[int, dict[str, Any] | None, bool]:
    """One request on a keep-alive connection: (status, JSON body or None, keep-alive)."""
    extra = "end-user: jason\r\n" if jason else ""
    writer.write(f"GET / HTTP/1.1\r\nHost: productpage:9080\r\n{extra}\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            data += await reader.readexactly(size + 2)
            data = data[:-2]
        await reader.readuntil(b"\r\n")
    else:
        data = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    return status, body if isinstance(body, dict) else None, keep
