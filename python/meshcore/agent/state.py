"""What the agent knows about its own sidecar: the snapshot it serves and how it got there.

Written only by the config source's task (control-plane client or file watcher) and by the
shutdown path, read by the status server; all on one event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class AgentState:
    """The sidecar's config and connection status (see the module docstring)."""

    version: str | None = None
    """The snapshot version the data plane serves; None until the first apply."""
    applied_at: float | None = None
    applies: int = 0
    rejects: int = 0
    last_reject: str | None = None
    connected: bool = False
    connects: int = 0
    draining: bool = False

    @property
    def ready(self) -> bool:
        """Ready once a snapshot is serving, until draining begins."""
        return self.version is not None and not self.draining

    def applied(self, version: str) -> None:
        self.version = version
        self.applied_at = time.time()
        self.applies += 1

    def rejected(self, reason: str) -> None:
        self.rejects += 1
        self.last_reject = reason
