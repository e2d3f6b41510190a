"""The file-backed control plane (istiod's role): watch → load → validate → compile → push.

One writer: the watch loop is the only code that replaces the `ConfigState`, and each
state is immutable, so the push server, the debug API and the compile worker read it
without locks. The flow of one edit::

    DebouncedWatcher ─► FileSource.load (worker thread) ─┬─ errors: Rejection, logged,
                                                         │   counted, on /debug/analyze;
                                                         │   the last good state stays
                                                         └─ ConfigState ─► PushServer.publish
                                                              ─► per proxy: SnapshotCache.get
                                                              ─► PUSH if its version changed

Loads, compiles and analyses share one worker thread: they are pure Python (the GIL would
serialise them anyway) and the event loop stays free for the proxies' ACKs and keepalives.
Monitoring port: `/metrics`, `/ready`, `/debug/syncz`, `/debug/configz[?proxy=ID]` and
`/debug/analyze`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from meshcore.config import Diagnostic, LoadResult
from meshcore.config.analyzers import analyze, documentation_url, message_text
from meshcore.control.http import HttpServer, Response
from meshcore.control.metrics import ControlMetrics
from meshcore.control.protocol import ProxyInfo
from meshcore.control.server import PushServer
from meshcore.control.snapshots import CompileFailure, SnapshotCache
from meshcore.control.source import ConfigState, FileSource, Rejection
from meshcore.control.watch import Change, Debounce, DebouncedWatcher

log = logging.getLogger("meshcore.control")

ACCEPT_BACKLOG = 4096
"""Pending connections the config port queues (the kernel caps it at somaxconn)."""


@dataclass(frozen=True)
class ControlOptions:
    """Where the control plane reads config and listens."""

    config_dir: Path
    mesh_file: Path | None = None
    address: str = "127.0.0.1"
    port: int = 15010
    monitoring_port: int = 15014
    debounce: Debounce = field(default_factory=Debounce)
    keepalive: float = 15.0


def diagnostic_json(diagnostic: Diagnostic) -> dict[str, Any]:
    """One finding in the shape `meshcore analyze -o json` prints."""
    return {
        "code": diagnostic.code,
        "level": diagnostic.level.value,
        "origin": diagnostic.origin,
        "message": message_text(diagnostic),
        "path": diagnostic.path,
        "file": diagnostic.file,
        "line": diagnostic.line,
        "documentation_url": documentation_url(diagnostic.code),
    }


class ControlPlane:
    """The whole control plane on one event loop; `start`, then `wait_closed` or `stop`."""

    def __init__(self, options: ControlOptions) -> None:
        self.options = options
        self.metrics = ControlMetrics()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile")
        self.source = FileSource(options.mesh_file)
        paths = [options.config_dir]
        if options.mesh_file is not None:
            paths.append(options.mesh_file)
        self.watcher = DebouncedWatcher(paths, options.debounce)
        cache = SnapshotCache(self.worker, self.metrics.compile_duration.observe)
        self.push = PushServer(cache, self.metrics, keepalive=options.keepalive)
        self.state: ConfigState | None = None
        self.rejection: Rejection | None = None
        self.http = HttpServer(
            {
                "/metrics": self._metrics,
                "/ready": self._ready,
                "/debug/syncz": self._syncz,
                "/debug/configz": self._configz,
                "/debug/analyze": self._analyze,
            }
        )
        self._servers: list[asyncio.Server] = []
        self._watch: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The config port actually bound (useful with port 0)."""
        return int(self._servers[0].sockets[0].getsockname()[1])

    @property
    def monitoring_port(self) -> int:
        return int(self._servers[1].sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Loads the config once, binds both ports, then watches for edits."""
        await self._reload(self.watcher.initial())
        address = self.options.address
        self._servers = [
            # Every proxy reconnects at once after a restart; with asyncio's default
            # backlog of 100, connections past it stall in the accept queue.
            await asyncio.start_server(
                self.push.handle, address, self.options.port, backlog=ACCEPT_BACKLOG
            ),
            await asyncio.start_server(self.http.handle, address, self.options.monitoring_port),
        ]
        self._watch = asyncio.create_task(self._watch_loop())
        log.info(
            "control plane serving %s on %s:%d (monitoring on %d)",
            self.options.config_dir,
            address,
            self.port,
            self.monitoring_port,
        )

    async def stop(self) -> None:
        """Closes the ports and every proxy connection; proxies keep their last snapshot."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for server in self._servers:
            server.close()
        for connection in list(self.push.connections.values()):
            connection.close()
        for server in self._servers:
            await server.wait_closed()
        self.worker.shutdown(wait=False, cancel_futures=True)

    async def _watch_loop(self) -> None:
        while True:
            await self._reload(await self.watcher.changes())

    async def _reload(self, change: Change) -> None:
        loop = asyncio.get_running_loop()
        state, rejection = await loop.run_in_executor(
            self.worker, self.source.load, change.files, change.first_seen
        )
        if rejection is not None:
            self.rejection = rejection
            self.metrics.config_loads.labels("rejected").inc()
            self.metrics.config_errors.set(len(rejection.errors))
            kept = f"generation {self.state.generation}" if self.state else "no config"
            log.error("config rejected (%d errors); still serving %s:", len(rejection.errors), kept)
            for diagnostic in rejection.errors:
                log.error("  %s", diagnostic.format_text())
            return
        assert state is not None
        self.state, self.rejection = state, None
        self.metrics.config_loads.labels("accepted").inc()
        self.metrics.config_errors.set(0)
        self.metrics.generation.set(state.generation)
        log.info(
            "config generation %d: %d objects from %d files",
            state.generation,
            len(state.load.resources),
            len(change.files),
        )
        self.push.publish(state)

    # -- monitoring ---------------------------------------------------------------------------

    def _config_json(self) -> dict[str, Any]:
        state, rejection = self.state, self.rejection
        return {
            "generation": state.generation if state else None,
            "loaded_at": state.loaded_at if state else None,
            "rejected": None
            if rejection is None
            else {"at": rejection.at, "errors": [diagnostic_json(d) for d in rejection.errors]},
        }

    async def _metrics(self, _: Any) -> Response:
        return Response(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)

    async def _ready(self, _: Any) -> Response:
        if self.state is None:
            return Response(503, b"no valid config yet\n", "text/plain")
        return Response(200, b"ok\n", "text/plain")

    async def _syncz(self, _: Any) -> Response:
        proxies = sorted(self.push.connections.values(), key=lambda c: c.status.info.id)
        body = {**self._config_json(), "proxies": [c.status.to_json() for c in proxies]}
        return _json(200, body)

    async def _configz(self, query: Any) -> Response:
        state = self.state
        proxy = query.get("proxy")
        if proxy is None:
            return _json(200, {**self._config_json(), "resources": _resources(state)})
        if state is None:
            return _json(503, {"error": "no valid config yet"})
        connection = self.push.connections.get(proxy)
        if connection is not None:
            info = connection.status.info
        else:
            name, dot, namespace = proxy.rpartition(".")
            if not dot or not name:
                return _json(400, {"error": f"proxy {proxy!r} is not NAME.NAMESPACE"})
            info = ProxyInfo(name, namespace)
        outcome = await self.push.cache.get(state, info)
        if isinstance(outcome, CompileFailure):
            return _json(500, {"error": outcome.message})
        return Response(200, outcome.payload)

    async def _analyze(self, _: Any) -> Response:
        files = dict(self.watcher.current)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self.worker, self._analyze_files, files)
        return _json(200, [diagnostic_json(d) for d in found])

    def _analyze_files(self, files: dict[Path, Any]) -> list[Diagnostic]:
        return analyze(self.source.read(files))


def _resources(state: ConfigState | None) -> list[dict[str, Any]]:
    if state is None:
        return []
    load: LoadResult = state.load
    return [
        {
            "kind": resource.kind,
            "namespace": resource.metadata.namespace,
            "name": resource.metadata.name,
            "file": source.file,
            "line": source.line,
        }
        for resource, source in zip(load.resources, load.sources, strict=False)
    ]


def _json(status: int, body: object) -> Response:
    return Response(status, json.dumps(body, indent=2).encode() + b"\n")
