"""The control-plane client: one persistent connection, snapshots in, ACK/NACK out.

A session is: connect → HELLO (identity and the version served now) → WELCOME (keepalive
interval) → PUSH* (each applied, answered with ACK or with NACK carrying the data plane's
path and code) with PINGs both ways. When the connection fails, is closed, or stays silent
for three keepalive intervals, the data plane keeps serving what it has and the client
reconnects after an exponential, jittered delay; its HELLO then names the version it
serves, so an unchanged control plane sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from meshcore.agent.backoff import Backoff
from meshcore.agent.protocol import (
    ERROR,
    PING,
    PUSH,
    WELCOME,
    Frame,
    ProtocolError,
    ProxyInfo,
    ack,
    encode,
    hello,
    nack,
    read_frame,
    snapshot_bytes,
)
from meshcore.agent.state import AgentState
from meshcore.dataplane import SnapshotRejected

log = logging.getLogger("meshcore.agent")

CONNECT_TIMEOUT = 10.0

Apply = Callable[[bytes], Awaitable[str]]
"""Applies snapshot bytes and records the outcome in the `AgentState`; returns the version,
raises `SnapshotRejected`."""


class ControlPlaneClient:
    """Keeps one sidecar connected to its control plane (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        proxy: ProxyInfo,
        state: AgentState,
        backoff: Backoff | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.proxy = proxy
        self.state = state
        self.backoff = backoff or Backoff()

    async def run(self, apply: Apply) -> None:
        """Connects and reconnects until cancelled, handing each pushed snapshot to `apply`."""
        while True:
            try:
                await self._session(apply)
                log.warning("control plane %s:%d closed the connection", self.host, self.port)
            except (OSError, asyncio.IncompleteReadError, ProtocolError, TimeoutError) as error:
                log.warning(
                    "control plane %s:%d: %s", self.host, self.port, error or type(error).__name__
                )
            finally:
                self.state.connected = False
            delay = self.backoff.next()
            log.info(
                "reconnecting in %.2fs; serving %s meanwhile",
                delay,
                self.state.version or "nothing",
            )
            await asyncio.sleep(delay)

    async def _session(self, apply: Apply) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that races with completion, which left a SIGTERMed sidecar reconnecting forever.
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        keepalive: asyncio.Task[None] | None = None
        try:
            writer.write(hello(self.proxy, self.state.version))
            await writer.drain()
            async with asyncio.timeout(CONNECT_TIMEOUT):
                welcome = await read_frame(reader)
            if welcome.type == ERROR:
                raise ProtocolError(f"refused: {welcome.meta.get('message')}")
            if welcome.type != WELCOME:
                raise ProtocolError(f"expected WELCOME, got {welcome.type}")
            interval = float(welcome.meta.get("keepalive_seconds", 15.0))
            self.state.connected = True
            self.state.connects += 1
            self.backoff.reset()
            log.info(
                "connected to control plane %s:%d as %s (serving %s)",
                self.host,
                self.port,
                self.proxy.id,
                self.state.version or "nothing",
            )
            keepalive = asyncio.create_task(_keepalive(writer, interval))
            while True:
                async with asyncio.timeout(3 * interval):
                    frame = await read_frame(reader)
                if frame.type == PUSH:
                    writer.write(await self._push(frame, apply))
                    await writer.drain()
                elif frame.type == ERROR:
                    raise ProtocolError(str(frame.meta.get("message")))
                elif frame.type != PING:
                    log.debug("ignoring %s from the control plane", frame.type)
        finally:
            if keepalive is not None:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await keepalive
            writer.close()

    async def _push(self, frame: Frame, apply: Apply) -> bytes:
        """Applies one PUSH; returns the ACK or NACK to send."""
        version = str(frame.meta.get("version", ""))
        nonce = frame.meta.get("nonce")
        try:
            applied = await apply(snapshot_bytes(frame))
        except SnapshotRejected as error:
            log.error(
                "snapshot %s rejected at %s (%s): %s; still serving %s",
                version,
                error.path,
                error.code,
                error,
                self.state.version or "nothing",
            )
            return nack(version, nonce, error.path, error.code, str(error))
        except ProtocolError as error:
            self.state.rejected(str(error))
            return nack(version, nonce, "", "syntax", str(error))
        log.info("applied snapshot %s", applied)
        return ack(applied, nonce)


async def _keepalive(writer: asyncio.StreamWriter, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        writer.write(encode({"type": PING}))
        await writer.drain()
