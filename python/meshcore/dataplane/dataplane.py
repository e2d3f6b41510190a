"""A handle on one running Rust data plane (listeners, clusters, counters).

The Snapshot models (pydantic) are imported only when a ``Snapshot`` object is passed or
``config_dump`` is called: an agent that applies the bytes its control plane pushed stays
lean (no pydantic, no compiler in its process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from meshcore import _core
from meshcore.dataplane.errors import SnapshotRejected

if TYPE_CHECKING:
    from meshcore.compile.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class DataPlaneOptions:
    """How to run the data plane.

    ``concurrency`` is the number of worker threads for traffic (Istio's ProxyConfig field of
    that name). ``admin_port`` serves ``/stats``, ``/config_dump`` and ``/ready`` on
    127.0.0.1 only; ``None`` disables it.
    """

    concurrency: int = 2
    admin_port: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.admin_port is not None and not 0 <= self.admin_port <= 65535:
            raise ValueError(f"admin_port must be between 0 and 65535, got {self.admin_port}")


class DataPlane:
    """The Rust data plane, started on its own tokio threads."""

    def __init__(self, core: _core.DataPlane) -> None:
        self._core = core

    @classmethod
    def start(cls, options: DataPlaneOptions | None = None) -> DataPlane:
        """Starts the runtimes (no listeners until the first ``apply``)."""
        options = options or DataPlaneOptions()
        admin = None if options.admin_port is None else f"127.0.0.1:{options.admin_port}"
        return cls(_core.DataPlane.start(options.concurrency, admin))

    def apply(self, snapshot: Snapshot | bytes) -> str:
        """Validates and applies a snapshot completely, or not at all; returns its version.

        Raises :class:`SnapshotRejected` naming the field at fault; the last good snapshot
        keeps serving and no connection is dropped either way.
        """
        data = snapshot if isinstance(snapshot, bytes) else snapshot.to_json()
        try:
            return self._core.apply(data)
        except _core.SnapshotRejected as e:
            message, path, code = e.args
            raise SnapshotRejected(message, path, code) from None

    def stats(self) -> dict[str, Any]:
        """Counters: ``totals``, per ``listeners`` and per ``clusters`` (see ARCHITECTURE.md)."""
        result: dict[str, Any] = json.loads(self._core.stats())
        return result

    def config_dump(self) -> Snapshot | None:
        """The snapshot now serving, as the data plane normalised it."""
        from meshcore.compile.snapshot import Snapshot  # noqa: PLC0415 (kept lazy, see above)

        dump = self._core.config_dump()
        return None if dump is None else Snapshot.model_validate_json(dump)

    def config_dump_json(self) -> str | None:
        """The snapshot now serving, as the data plane's JSON (no models imported)."""
        return self._core.config_dump()

    def local_addr(self, listener: str) -> tuple[str, int] | None:
        """Where a listener is bound, by name."""
        return self._core.local_addr(listener)

    def drain_inbound(self) -> None:
        """Istio's sidecar shutdown, first step: inbound listeners stop accepting (outbound
        ones keep serving, so the app can finish its own calls), inbound HTTP/2 connections
        get GOAWAY and HTTP/1 responses ``Connection: close``. Returns at once; poll
        :meth:`active_connections` to learn when nothing is left in flight."""
        self._core.drain("inbound")

    def active_connections(self, direction: str | None = None) -> int:
        """Downstream connections plus HTTP requests in flight, of one direction or both:
        ``direction`` is ``"inbound"``, ``"outbound"`` or ``None`` (both). Exit when this
        reaches zero or the drain deadline passes, not after a fixed sleep."""
        return self._core.active_connections(direction)

    def quit_requested(self) -> bool:
        """Whether ``POST /quitquitquit`` reached the admin server (pilot-agent's exit
        request); the agent polls it and shuts down."""
        return self._core.quit_requested()

    def shutdown(self, grace_seconds: float = 5.0) -> int:
        """Stops accepting, drains up to ``grace_seconds``, closes the rest; returns how many
        connections were closed by force. Safe to call twice."""
        return self._core.shutdown(grace_seconds)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(0.0)
