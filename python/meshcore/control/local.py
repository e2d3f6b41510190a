"""A control plane for one in-process data plane: the static sidecar mode.

`meshcore sidecar --config-dir DIR` runs the same pipeline as `meshcore control` — watch
with debounce, load with the per-file cache, reject a broken edit whole, compile — for the
one proxy it is, and hands the snapshot bytes to the sidecar's `apply`. A compile whose
version equals the one serving is not applied again (an edit that changes nothing this
proxy sees costs no data-plane work).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from meshcore.control.protocol import ProxyInfo
from meshcore.control.snapshots import CompileFailure, Outcome, compile_proxy, identity_of
from meshcore.control.source import ConfigState, FileSource
from meshcore.control.watch import Change, Debounce, DebouncedWatcher
from meshcore.dataplane import SnapshotRejected

log = logging.getLogger("meshcore.sidecar")


class LocalControl:
    """Watches config files and keeps one data plane on this proxy's snapshot."""

    def __init__(
        self,
        config_dir: Path,
        proxy: ProxyInfo,
        *,
        mesh_file: Path | None = None,
        debounce: Debounce | None = None,
    ) -> None:
        self.proxy = proxy
        self.source = FileSource(mesh_file)
        paths = [config_dir] if mesh_file is None else [config_dir, mesh_file]
        self.watcher = DebouncedWatcher(paths, debounce)
        self.version: str | None = None

    def reload(self) -> None:
        """Reload now (SIGHUP), without waiting for an edit."""
        self.watcher.force()

    async def run(self, apply: Callable[[bytes], Awaitable[str]]) -> None:
        """Applies the config as it is, then every settled edit, until cancelled."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile") as worker:
            change = self.watcher.initial()
            while True:
                outcome = await loop.run_in_executor(worker, self._load_and_compile, change)
                if outcome is not None:
                    await self._apply(outcome, apply)
                change = await self.watcher.changes()

    def _load_and_compile(self, change: Change) -> Outcome | None:
        state, rejection = self.source.load(change.files, change.first_seen)
        if rejection is not None:
            kept = self.version or "nothing"
            log.error("config rejected (%d errors); still serving %s:", len(rejection.errors), kept)
            for diagnostic in rejection.errors:
                log.error("  %s", diagnostic.format_text())
            return None
        assert isinstance(state, ConfigState)
        return compile_proxy(state, identity_of(state, self.proxy))

    async def _apply(self, outcome: Outcome, apply: Callable[[bytes], Awaitable[str]]) -> None:
        if isinstance(outcome, CompileFailure):
            log.error("cannot compile: %s; still serving %s", outcome.message, self.version)
            return
        if outcome.version == self.version:
            log.info("config changed, snapshot %s did not; not re-applied", outcome.version)
            return
        for diagnostic in outcome.diagnostics:
            log.warning("  %s", diagnostic.format_text())
        try:
            self.version = await apply(outcome.payload)
        except SnapshotRejected as error:
            log.error(
                "snapshot %s rejected at %s (%s): %s; still serving %s",
                outcome.version,
                error.path,
                error.code,
                error,
                self.version or "nothing",
            )
            return
        log.info("applied snapshot %s", self.version)
