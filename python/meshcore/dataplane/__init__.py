"""The data plane from Python: the only package that imports the Rust extension.

``DataPlane.start(options)`` runs the Rust data plane on its own threads; ``apply`` hands
it a compiled Snapshot; ``stats`` and ``shutdown`` do what they say. Every call releases
the GIL, and no request ever enters Python.
"""

from meshcore.dataplane.dataplane import DataPlane, DataPlaneOptions
from meshcore.dataplane.errors import DataPlaneError, SnapshotRejected

__all__ = ["DataPlane", "DataPlaneError", "DataPlaneOptions", "SnapshotRejected"]
