"""Watching config files: stat polling and the debounce that turns edits into reloads.

`scan` fingerprints every config file under the watched paths (mtime, ctime, size, inode:
an editor's rename-into-place changes the inode, an in-place write the mtime and ctime).
`DebouncedWatcher` polls the scan at a fixed interval (no busy loop, no dependency) and
reports one `Change` per burst of edits, like istiod's debounce: it waits for a quiet
period (`PILOT_DEBOUNCE_AFTER`, default 100 ms) after the last edit it saw, but never
longer than `PILOT_DEBOUNCE_MAX` (default 10 s) after the first one, so a file that keeps
changing still gets loaded. The change carries when it was first seen, which is where the
control plane's convergence time starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from meshcore.config.loader import EXTENSIONS

Fingerprint = tuple[int, int, int, int]
"""(mtime_ns, ctime_ns, size, inode) of one file."""

Scan = Mapping[Path, Fingerprint]


def scan(paths: Iterable[Path]) -> dict[Path, Fingerprint]:
    """Every config file under `paths` (directories recursively), with its fingerprint.

    A file that disappears between listing and stat is left out: the next scan sees it gone.
    """
    found: dict[Path, Fingerprint] = {}
    for root in paths:
        candidates = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in candidates:
            if path.suffix not in EXTENSIONS:
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                found[path] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    return found


@dataclass(frozen=True)
class Debounce:
    """How edits are batched (istiod's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX)."""

    after: float = 0.1
    max: float = 10.0
    poll_interval: float = 0.2
    """Between scans while nothing is changing; during a burst the next scan comes
    `after` seconds later (if sooner), to see the quiet period as soon as it ends."""

    def __post_init__(self) -> None:
        if self.after < 0 or self.max < self.after or self.poll_interval <= 0:
            raise ValueError(f"invalid debounce {self}")


@dataclass(frozen=True)
class Change:
    """A settled burst of edits: the files as they are now and when the burst began."""

    files: dict[Path, Fingerprint]
    first_seen: float
    """`time.monotonic()` when the first edit of the burst was noticed."""


class DebouncedWatcher:
    """Polls `paths` and yields one `Change` per settled burst of edits."""

    def __init__(self, paths: Iterable[Path], debounce: Debounce | None = None) -> None:
        self.paths = tuple(paths)
        self.debounce = debounce or Debounce()
        self.current: dict[Path, Fingerprint] = {}
        self._forced = asyncio.Event()

    def initial(self) -> Change:
        """The files as they are at start (the first load needs no debounce)."""
        self.current = scan(self.paths)
        return Change(dict(self.current), time.monotonic())

    def force(self) -> None:
        """Report a change at the next poll even if nothing changed (e.g. on SIGHUP)."""
        self._forced.set()

    async def changes(self) -> Change:
        """Waits for the next settled burst of edits."""
        first_seen: float | None = None
        last_seen = 0.0
        while True:
            wait = self.debounce.poll_interval
            if first_seen is not None:
                wait = min(wait, self.debounce.after)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._forced.wait(), wait)
            now = time.monotonic()
            files = await asyncio.to_thread(scan, self.paths)
            if files != self.current or self._forced.is_set():
                self._forced.clear()
                self.current = files
                first_seen = now if first_seen is None else first_seen
                last_seen = now
                if self.debounce.after > 0 and now - first_seen < self.debounce.max:
                    continue
            if first_seen is None:
                continue
            if now - last_seen >= self.debounce.after or now - first_seen >= self.debounce.max:
                return Change(dict(self.current), first_seen)
