"""What the running processes say over HTTP and TCP: an app accepting, a sidecar or the
control plane ready, a sidecar's admin ``/stats``, a proxy's NACK from the control plane's
``/debug/syncz``. Blocking calls; the demo runs them in a thread."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any, TypeAlias

SidecarStats: TypeAlias = dict[str, dict[str, Any] | None]
"""Each sidecar's admin ``/stats`` by workload name (None: it did not answer)."""


def stats(port: int) -> dict[str, Any] | None:
    """A sidecar's admin ``/stats``, or None when it does not answer 200."""
    try:
        status, body = _http_get(port, "/stats")
    except OSError:
        return None
    if status != 200:
        return None
    result: dict[str, Any] = json.loads(body)
    return result


def snapshot_version(reading: dict[str, Any] | None) -> str | None:
    """The snapshot version a sidecar's ``/stats`` reading says it serves."""
    version = (reading or {}).get("version")
    return None if version is None else str(version)


def ok(port: int, path: str) -> bool:
    try:
        return _http_get(port, path)[0] == 200
    except OSError:
        return False


def tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def sync_problem(monitoring_port: int) -> str | None:
    """A proxy's NACK or compile error, as the control plane reports it (``/debug/syncz``)."""
    try:
        status, body = _http_get(monitoring_port, "/debug/syncz")
        proxies = json.loads(body).get("proxies", []) if status == 200 else []
    except (OSError, ValueError):
        return None
    for proxy in proxies:
        if error := proxy.get("compile_error"):
            return f"the control plane cannot compile {proxy.get('proxy')}'s config: {error}"
        if nack := proxy.get("nack"):
            hint = (
                " (the Python compiler writes a field this build of the data plane does not "
                "know: the extension is older than the Python side; rebuild it with `make dev`)"
                if nack.get("code") == "unknown_field"
                else ""
            )
            return (
                f"the sidecar {proxy.get('proxy')} rejected its snapshot at {nack.get('path')} "
                f"({nack.get('code')}): {nack.get('message')}{hint}"
            )
    return None


def _http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as error:
        return int(error.code), b""
