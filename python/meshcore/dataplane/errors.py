"""Errors the data plane raises, with the rejected field's path and the contract's code."""

from __future__ import annotations

from meshcore._core import DataPlaneError


class SnapshotRejected(ValueError):
    """``apply`` refused a snapshot; the previous one keeps serving.

    ``path`` names the offending field (``listeners[2].port``), ``code`` is the contract's
    error class (``unknown_reference``, ``bind_failed``, ...), and ``str()`` reads as both.
    """

    def __init__(self, message: str, path: str, code: str) -> None:
        super().__init__(message)
        self.path = path
        self.code = code


__all__ = ["DataPlaneError", "SnapshotRejected"]
