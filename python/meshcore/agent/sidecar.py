"""One sidecar process: the data plane, its status ports, a config source and shutdown.

The config source is whatever feeds snapshots to `apply`: the control-plane client
(`ControlPlaneClient.run`) or, in static mode, a file watcher that compiles locally (built
by the CLI, since this package never imports the compiler). The rest is shared::

    DataPlane.start ─► StatusServer (/healthz/ready, /stats/prometheus)
      ─► source(apply) ... apply = data plane apply on a worker thread (GIL released)
      ─► SIGTERM/SIGINT: not ready, stop the source, DataPlane.shutdown(drain), exit 0

SIGHUP runs `on_hup` when given (static mode reloads) and is ignored otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from meshcore.agent.client import Apply
from meshcore.agent.state import AgentState
from meshcore.agent.status import StatusServer
from meshcore.dataplane import DataPlane, DataPlaneError, DataPlaneOptions, SnapshotRejected

log = logging.getLogger("meshcore.sidecar")

ConfigSource = Callable[[Apply], Coroutine[Any, Any, None]]
"""Feeds snapshots to `apply` until cancelled."""


@dataclass(frozen=True)
class SidecarOptions:
    """The process's own ports and threads (the listeners come from the snapshots)."""

    concurrency: int = 2
    admin_port: int | None = 15000
    status_address: str = "0.0.0.0"  # noqa: S104 (probes and scrapes come from outside)
    status_ports: Sequence[int] = (15021, 15020)
    drain_seconds: float = 5.0


async def run_sidecar(
    options: SidecarOptions,
    source: Callable[[AgentState], ConfigSource],
    on_hup: Callable[[], None] | None = None,
) -> int:
    """Runs until SIGTERM or SIGINT, then drains; returns the exit status."""
    try:
        dataplane = DataPlane.start(DataPlaneOptions(options.concurrency, options.admin_port))
    except DataPlaneError as error:
        log.error("cannot start the data plane: %s", error)
        return 1
    state = AgentState()
    status = StatusServer(state, dataplane)
    try:
        await status.start(options.status_address, options.status_ports)
    except OSError as error:
        log.error("cannot listen on the status ports: %s", error)
        dataplane.shutdown(0.0)
        return 1

    async def apply(data: bytes) -> str:
        try:
            version = await asyncio.to_thread(dataplane.apply, data)
        except SnapshotRejected as error:
            state.rejected(f"{error.path}: {error} ({error.code})")
            raise
        state.applied(version)
        return version

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup or (lambda: log.info("SIGHUP ignored")))
    feeding = asyncio.create_task(source(state)(apply))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([feeding, stopping], return_when=asyncio.FIRST_COMPLETED)
    failed = feeding.done() and not feeding.cancelled() and feeding.exception() is not None
    if failed:
        log.error("config source failed: %r", feeding.exception())
    state.draining = True
    feeding.cancel()
    stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await feeding
    log.info("draining for up to %.1fs", options.drain_seconds)
    closed = await asyncio.to_thread(dataplane.shutdown, options.drain_seconds)
    log.info("stopped (%d connections closed at the deadline)", closed)
    await status.close()
    return 1 if failed else 0
