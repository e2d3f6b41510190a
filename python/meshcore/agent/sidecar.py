"""One sidecar process: the data plane, its status ports, a config source and shutdown.

The config source is whatever feeds snapshots to `apply`: the control-plane client
(`ControlPlaneClient.run`) or, in static mode, a file watcher that compiles locally (built
by the CLI, since this package never imports the compiler). The rest is shared::

    DataPlane.start ─► StatusServer (/healthz/ready, /stats/prometheus)
      ─► source(apply) ... apply = data plane apply on a worker thread (GIL released)
      ─► SIGTERM/SIGINT or admin /quitquitquit: not ready, stop accepting inbound
         (outbound keeps working for the app's own shutdown), wait until no connection or
         request is in flight or the drain deadline passes, stop the source, close the rest

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
    quitting = asyncio.create_task(_quit_requested(dataplane))
    await asyncio.wait([feeding, stopping, quitting], return_when=asyncio.FIRST_COMPLETED)
    failed = feeding.done() and not feeding.cancelled() and feeding.exception() is not None
    if failed:
        log.error("config source failed: %r", feeding.exception())
    state.draining = True
    stopping.cancel()
    quitting.cancel()
    if not failed:
        await _drain_inbound(dataplane, options.drain_seconds)
    await _stop(feeding)
    closed = await asyncio.to_thread(dataplane.shutdown, 0.0)
    log.info("stopped (%d connections closed at the deadline)", closed)
    await status.close()
    return 1 if failed else 0


_POLL_SECONDS = 0.05


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancels the config source, again if a library swallowed the first cancellation."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_POLL_SECONDS * 2)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def _quit_requested(dataplane: DataPlane) -> None:
    """Returns once the admin API's POST /quitquitquit has been called."""
    while not await asyncio.to_thread(dataplane.quit_requested):
        await asyncio.sleep(_POLL_SECONDS * 4)
    log.info("/quitquitquit: shutting down")


async def _drain_inbound(dataplane: DataPlane, deadline_seconds: float) -> None:
    """Istio's sidecar drain: no new inbound connections, outbound still serving, and exit
    as soon as nothing is in flight rather than after a fixed sleep."""
    await asyncio.to_thread(dataplane.drain_inbound)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    log.info("draining: inbound closed, waiting up to %.1fs for connections", deadline_seconds)
    while (active := await asyncio.to_thread(dataplane.active_connections)) and (
        loop.time() < deadline
    ):
        await asyncio.sleep(_POLL_SECONDS)
    if active:
        log.info("drain deadline passed with %d connections still open", active)
