"""Type stubs for the Rust extension ``meshcore._core`` (checked by mypy.stubtest)."""

from typing import final

__all__ = ["SCHEMA_VERSION", "DataPlane", "DataPlaneError", "SnapshotRejected"]

SCHEMA_VERSION: int

class SnapshotRejected(ValueError):
    """apply() refused a snapshot; args are (message, path, code)."""

class DataPlaneError(RuntimeError):
    """The data plane could not start or is shut down."""

@final
class DataPlane:
    """A running data plane: a worker runtime for traffic and an admin runtime."""

    @staticmethod
    def start(worker_threads: int = 2, admin_address: str | None = None) -> DataPlane: ...
    def apply(self, snapshot: bytes) -> str: ...
    def stats(self) -> str: ...
    def config_dump(self) -> str | None: ...
    def local_addr(self, listener: str) -> tuple[str, int] | None: ...
    def shutdown(self, grace_seconds: float) -> int: ...
