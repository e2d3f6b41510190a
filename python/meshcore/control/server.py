"""The push server: one connection per proxy, each pushed only what changed for it.

A connection starts with the agent's HELLO (who it is, the snapshot version it serves).
From then on one pusher task per connection compiles that proxy's snapshot for the newest
`ConfigState` (through the shared `SnapshotCache`) and pushes it only if its version
differs from what the proxy serves; a reconnecting proxy that already has the current
version gets nothing (no push storm after a control-plane restart). A version the proxy
NACKed is not pushed to it again; the next config change is. Config changes that arrive
while a proxy is still being handled coalesce into one wake-up.

Every connection is an `asyncio` stream pair, so TLS is a `ssl=` argument away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from meshcore.control.metrics import ControlMetrics
from meshcore.control.protocol import (
    ACK,
    ERROR,
    NACK,
    PING,
    PROTOCOL_VERSION,
    PUSH,
    WELCOME,
    Hello,
    ProtocolError,
    ProxyInfo,
    encode,
    encode_head,
    parse_hello,
    read_frame,
)
from meshcore.control.snapshots import CompileFailure, SnapshotCache
from meshcore.control.source import ConfigState

log = logging.getLogger("meshcore.control")

HELLO_TIMEOUT = 10.0
COPY_BELOW = 16 * 1024
"""Payloads smaller than this go out in one buffer with their frame head."""


class SyncState(StrEnum):
    """Where a proxy stands against the newest config, in istioctl proxy-status words."""

    SYNCED = "SYNCED"
    STALE = "STALE"
    NACKED = "NACKED"
    NOT_SENT = "NOT SENT"


@dataclass(frozen=True)
class Nack:
    """A snapshot the data plane refused, with the field at fault and the contract's code."""

    version: str
    path: str
    code: str
    message: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            "code": self.code,
            "message": self.message,
            "at": _iso(self.at),
        }


@dataclass
class ProxyStatus:
    """What the control plane knows about one connected proxy (owned by the event loop)."""

    info: ProxyInfo
    peer: str
    connected_at: float = field(default_factory=time.time)
    version: str | None = None
    """The snapshot the proxy serves (from its HELLO, then from its ACKs)."""
    target_version: str | None = None
    """The snapshot compiled for it from the newest config."""
    target_generation: int = 0
    sent_version: str | None = None
    sent_at: float | None = None
    in_flight: int | None = None
    """Nonce of the push awaiting an ACK or NACK."""
    nonce: int = 0
    nack: Nack | None = None
    compile_error: str | None = None
    acked_at: float | None = None
    pushes: int = 0
    done_generation: int = 0
    """The newest generation this proxy is done with (ACK, NACK, nothing to send, error)."""
    _sent_monotonic: float = 0.0
    _push_generation: int = 0

    @property
    def state(self) -> SyncState:
        if self.target_version is None:
            return SyncState.NOT_SENT
        if self.nack is not None and self.nack.version == self.target_version:
            return SyncState.NACKED
        if self.version == self.target_version and self.in_flight is None:
            return SyncState.SYNCED
        return SyncState.STALE

    def to_json(self) -> dict[str, Any]:
        return {
            "proxy": self.info.id,
            "name": self.info.name,
            "namespace": self.info.namespace,
            "peer": self.peer,
            "state": self.state.value,
            "version": self.version,
            "target_version": self.target_version,
            "generation": self.target_generation,
            "sent_version": self.sent_version,
            "last_push": _iso(self.sent_at),
            "last_ack": _iso(self.acked_at),
            "pushes": self.pushes,
            "nack": None if self.nack is None else self.nack.to_json(),
            "compile_error": self.compile_error,
            "connected_at": _iso(self.connected_at),
            "hello": self.info.to_json(),
        }


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


class PushServer:
    """Accepts proxies and keeps each one on the newest snapshot compiled for it."""

    def __init__(
        self, cache: SnapshotCache, metrics: ControlMetrics, *, keepalive: float = 15.0
    ) -> None:
        self.cache = cache
        self.metrics = metrics
        self.keepalive = keepalive
        self.state: ConfigState | None = None
        self.connections: dict[str, Connection] = {}
        self._converging: ConfigState | None = None
        self._pending: set[Connection] = set()
        """Connections not yet done with `_converging` (kept, so an ACK costs O(1))."""

    def publish(self, state: ConfigState) -> None:
        """Makes `state` the newest config and wakes every connection to sync to it."""
        self.state = state
        self._converging = state
        self._pending = set(self.connections.values())
        for connection in self.connections.values():
            connection.wake.set()
        self.check_convergence()

    def check_convergence(self, connection: Connection | None = None) -> None:
        """Records the convergence time once every proxy is done with the newest change.

        `connection` is the one whose state just moved (done, or gone); without it, the
        pending ones are all looked at.
        """
        state = self._converging
        if state is None:
            return
        candidates = [connection] if connection is not None else list(self._pending)
        for candidate in candidates:
            gone = self.connections.get(candidate.status.info.id) is not candidate
            if gone or candidate.status.done_generation >= state.generation:
                self._pending.discard(candidate)
        if self._pending:
            return
        self._converging = None
        if not self.connections:
            return
        elapsed = time.monotonic() - state.changed_at
        self.metrics.convergence.observe(elapsed)
        log.info(
            "config generation %d converged on %d proxies in %.3fs",
            state.generation,
            len(self.connections),
            elapsed,
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One proxy's connection, from HELLO to disconnect (an asyncio.start_server callback)."""
        peer = writer.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                hello = parse_hello(await read_frame(reader))
        except (ProtocolError, asyncio.IncompleteReadError, TimeoutError, OSError) as error:
            log.warning("connection from %s: bad hello: %s", where, error)
            with contextlib.suppress(OSError):
                writer.write(encode({"type": ERROR, "message": str(error)}))
                await writer.drain()
            writer.close()
            return
        connection = Connection(self, reader, writer, hello, where)
        previous = self.connections.get(hello.proxy.id)
        if previous is not None:
            log.info("%s reconnected from %s; closing its old connection", hello.proxy.id, where)
            previous.close()
        self.connections[hello.proxy.id] = connection
        if self._converging is not None:
            self._pending.add(connection)  # it, too, must be done before convergence
        if previous is not None:
            self.check_convergence(previous)
        self.metrics.connected.set(len(self.connections))
        log.info(
            "%s connected from %s (serving %s)", hello.proxy.id, where, hello.version or "nothing"
        )
        try:
            await connection.run()
        except asyncio.CancelledError:
            # The server is stopping; the connection closes with it (not an error to log).
            log.debug("%s: connection closed by shutdown", hello.proxy.id)
        finally:
            if self.connections.get(hello.proxy.id) is connection:
                del self.connections[hello.proxy.id]
            self.metrics.connected.set(len(self.connections))
            log.info("%s disconnected", hello.proxy.id)
            self.check_convergence(connection)


class Connection:
    """One proxy's stream: a reader, a pusher and a keepalive, stopped together."""

    def __init__(
        self,
        server: PushServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hello: Hello,
        peer: str,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.zlib = "zlib" in hello.encodings
        self.status = ProxyStatus(hello.proxy, peer, version=hello.version)
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        self.send({"type": WELCOME, "protocol": PROTOCOL_VERSION, "proxy": self.status.info.id,
                   "keepalive_seconds": self.server.keepalive})  # fmt: skip
        self.wake.set()
        self._tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._push()),
            asyncio.create_task(self._keepalive()),
        ]
        try:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.close()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.writer.close()

    def send(self, meta: dict[str, Any], payload: bytes = b"") -> None:
        # Head and payload written back to back, with no await between: frames never
        # interleave, whichever task sends them. The payload (one bytes object shared by
        # every proxy with this snapshot) is handed to the transport as it is.
        if len(payload) < COPY_BELOW:
            self.writer.write(encode(meta, payload))
            return
        self.writer.write(encode_head(meta, len(payload)))
        self.writer.write(payload)

    async def _read(self) -> None:
        proxy = self.status.info.id
        while True:
            try:
                async with asyncio.timeout(3 * self.server.keepalive):
                    frame = await read_frame(self.reader)
            except TimeoutError:
                log.warning(
                    "%s: no keepalive for %.0fs; dropping", proxy, 3 * self.server.keepalive
                )
                return
            except (asyncio.IncompleteReadError, OSError):
                return
            except ProtocolError as error:
                log.warning("%s: %s; dropping", proxy, error)
                return
            if frame.type == ACK:
                self._acked(str(frame.meta.get("version", "")), frame.meta.get("nonce"))
            elif frame.type == NACK:
                self._nacked(frame.meta)
            elif frame.type != PING:
                log.warning("%s: unexpected %s; ignored", proxy, frame.type)

    def _acked(self, version: str, nonce: object) -> None:
        status, metrics = self.status, self.server.metrics
        status.version = version
        if nonce != status.in_flight:
            return
        status.in_flight = None
        status.acked_at = time.time()
        status.nack = None
        status.done_generation = max(status.done_generation, status._push_generation)
        metrics.pushes.labels("ack").inc()
        metrics.push_duration.observe(time.monotonic() - status._sent_monotonic)
        log.debug("%s: ACK %s", status.info.id, version)
        self.server.check_convergence(self)

    def _nacked(self, meta: Any) -> None:
        status, metrics = self.status, self.server.metrics
        if meta.get("nonce") != status.in_flight:
            return
        status.in_flight = None
        nack = Nack(
            version=str(meta.get("version", "")),
            path=str(meta.get("path", "")),
            code=str(meta.get("code", "")),
            message=str(meta.get("message", "")),
            at=time.time(),
        )
        status.nack = nack
        status.done_generation = max(status.done_generation, status._push_generation)
        metrics.pushes.labels("nack").inc()
        metrics.push_duration.observe(time.monotonic() - status._sent_monotonic)
        log.warning(
            "%s: NACK of %s at %s (%s): %s; it keeps serving %s",
            status.info.id,
            nack.version,
            nack.path,
            nack.code,
            nack.message,
            status.version or "nothing",
        )
        self.server.check_convergence(self)

    async def _push(self) -> None:
        status, server = self.status, self.server
        while True:
            await self.wake.wait()
            self.wake.clear()
            state = server.state
            if state is None:
                continue
            outcome = await server.cache.get(state, status.info)
            if server.state is not state:
                continue  # a newer config arrived meanwhile; the wake flag is set again
            status.target_generation = state.generation
            if isinstance(outcome, CompileFailure):
                status.compile_error = outcome.message
                status.done_generation = state.generation
                server.metrics.compile_errors.inc()
                log.error("%s: cannot compile: %s", status.info.id, outcome.message)
                server.check_convergence(self)
                continue
            status.compile_error = None
            status.target_version = outcome.version
            # What the proxy will serve once the push in flight (if any) is answered.
            expected = status.version if status.in_flight is None else status.sent_version
            refused = status.nack is not None and status.nack.version == outcome.version
            if outcome.version == expected or refused:
                if status.in_flight is None:
                    status.done_generation = state.generation
                    server.check_convergence(self)
                else:
                    status._push_generation = state.generation
                continue
            status.nonce += 1
            status.in_flight = status.nonce
            status.sent_version = outcome.version
            status.sent_at = time.time()
            status._sent_monotonic = time.monotonic()
            status._push_generation = state.generation
            status.pushes += 1
            meta: dict[str, Any] = {"type": PUSH, "version": outcome.version, "nonce": status.nonce}
            if self.zlib and outcome.compressed is not None:
                meta["encoding"] = "zlib"
                self.send(meta, outcome.compressed)
            else:
                self.send(meta, outcome.payload)
            server.metrics.pushes.labels("sent").inc()
            log.debug("%s: pushed %s (nonce %d)", status.info.id, outcome.version, status.nonce)
            await self.writer.drain()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.server.keepalive)
            self.send({"type": PING})
            await self.writer.drain()
