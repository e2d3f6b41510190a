"""The demo's two ways to stop early: a failure to report, and Ctrl-C during start-up."""

from __future__ import annotations


class DemoError(Exception):
    """The demo cannot go on; the message says why (and which process, if one died)."""


class Interrupted(DemoError):
    """Ctrl-C (or SIGTERM) before the mesh was up: stop quietly."""
