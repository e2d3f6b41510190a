"""The demo's child processes: started in one process group that is not the demo's own (so
Ctrl-C reaches only the demo), each logging to a file, watched for an early exit, and
stopped in order (SIGTERM, then SIGKILL to the group)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from meshcore.cli.demo.errors import DemoError

STOP_GRACE = 5.0
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    role: str
    """``control plane``, ``sidecar``, ``app``."""
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def describe(self) -> str:
        return f"{self.role} {self.name} (pid {self.process.pid})"

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


class Processes:
    """The demo's children, all in one process group that is not the demo's own."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.pgid: int | None = None
        self._stopped = False

    def start(self, role: str, name: str, argv: list[str]) -> Child:
        log_path = self.log_dir / f"{role.replace(' ', '-')}-{name}.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=self.pgid or 0,
                # Only prctl runs there; children are spawned from the main thread, whose
                # exit (with the demo's) is what PDEATHSIG follows.
                preexec_fn=_die_with_parent,  # noqa: PLW1509
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if self.pgid is None:
            self.pgid = process.pid
        child = Child(role, name, process, log_path)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raises `DemoError` naming the first child that has exited."""
        for child in self.children:
            status = child.process.poll()
            if status is not None:
                tail = child.log_tail()
                how = (
                    f"was killed by {signal.Signals(-status).name}"
                    if status < 0
                    else f"exited with status {status}"
                )
                raise DemoError(
                    f"{child.describe()} {how}"
                    + (f"; the end of its log ({child.log_path}):\n{tail}" if tail else "")
                )

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to the sidecars and apps, then to the control plane (which outlives its
        proxies, as istiod does), up to `grace` in all; then SIGKILL to the group."""
        if self._stopped or self.pgid is None:
            return
        self._stopped = True
        deadline = time.monotonic() + grace
        last = [c for c in self.children if c.role == "control plane"]
        first = [c for c in self.children if c.role != "control plane"]
        for batch in (first, last):
            for child in batch:
                if child.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.send_signal(signal.SIGTERM)
            for child in batch:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(max(0.0, deadline - time.monotonic()))
        stuck = [child for child in self.children if child.process.poll() is None]
        if stuck:
            names = ", ".join(child.describe() for child in stuck)
            print(
                f"meshcore demo: {names} did not stop within {grace:g}s of SIGTERM; killed",
                file=sys.stderr,
            )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)  # the stuck ones, and any grandchild
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(1.0)
