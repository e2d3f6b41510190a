"""The Snapshot contract, Python side: models, parsing and validation.

Mirrors the Rust crate ``meshcore-snapshot`` field for field. Both sides are checked
against the golden fixtures in ``tests/fixtures/snapshots/``: valid snapshots normalise to
the same JSON, invalid ones are rejected with the same field path and error code.
"""

from meshcore.compile.snapshot.errors import ErrorCode, SnapshotError, SnapshotInvalid
from meshcore.compile.snapshot.model import (
    DEFAULT_CONNECT_TIMEOUT_MS,
    DEFAULT_IDLE_TIMEOUT_MS,
    Cluster,
    Endpoint,
    LbPolicy,
    Listener,
    Protocol,
    Snapshot,
    TcpRoute,
    WeightedCluster,
)
from meshcore.compile.snapshot.parse import parse_snapshot
from meshcore.compile.snapshot.validate import validate_snapshot

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_MS",
    "DEFAULT_IDLE_TIMEOUT_MS",
    "Cluster",
    "Endpoint",
    "ErrorCode",
    "LbPolicy",
    "Listener",
    "Protocol",
    "Snapshot",
    "SnapshotError",
    "SnapshotInvalid",
    "TcpRoute",
    "WeightedCluster",
    "parse_snapshot",
    "validate_snapshot",
]
