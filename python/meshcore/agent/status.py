"""The sidecar's status ports: readiness (`/healthz/ready`, Istio's 15021) and merged
Prometheus metrics (`/stats/prometheus`, Istio's 15020).

Readiness is 200 only while a snapshot is serving and the sidecar is not draining, so a
workload gets traffic only once its proxy has config, and stops getting it on SIGTERM.
The metrics page merges the agent's own series with the data plane's counters (read with
one `stats()` call, GIL released). Both paths are served on every status port given; the
server is a few lines of asyncio, to keep the sidecar process small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from meshcore.agent.state import AgentState
from meshcore.dataplane import DataPlane, DataPlaneError

log = logging.getLogger("meshcore.agent")

_GAUGES = {"connections_active", "draining"}


class StatusServer:
    """Serves readiness and metrics for one sidecar."""

    def __init__(self, state: AgentState, dataplane: DataPlane) -> None:
        self.state = state
        self.dataplane = dataplane
        self._servers: list[asyncio.Server] = []

    async def start(self, address: str, ports: Iterable[int]) -> None:
        for port in ports:
            self._servers.append(await asyncio.start_server(self._handle, address, port))

    def ports(self) -> list[int]:
        return [int(s.sockets[0].getsockname()[1]) for s in self._servers]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            path = parts[1].split(b"?", 1)[0] if len(parts) == 3 else b""
            try:
                status, body, kind = await self._respond(path)
            except Exception:
                log.exception("status request %s failed", path.decode(errors="replace"))
                status, body, kind = "500 Internal Server Error", b"internal error\n", "text/plain"
            head_out = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head_out.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def _respond(self, path: bytes) -> tuple[str, bytes, str]:
        if path == b"/healthz/ready":
            if self.state.ready:
                return "200 OK", b"", "text/plain"
            return "503 Service Unavailable", b"not ready\n", "text/plain"
        if path == b"/stats/prometheus":
            text = self.prometheus(await self._stats())
            return "200 OK", text.encode(), "text/plain; version=0.0.4; charset=utf-8"
        return "404 Not Found", b"not found\n", "text/plain"

    async def _stats(self) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(self.dataplane.stats)
        except DataPlaneError:
            return None

    def prometheus(self, stats: dict[str, Any] | None) -> str:
        """The agent's series, then the data plane's, in Prometheus text format."""
        state = self.state
        out = _Exposition()
        out.gauge("meshcore_agent_ready", "1 while a snapshot serves and not draining.")
        out.sample("meshcore_agent_ready", {}, int(state.ready))
        out.gauge("meshcore_agent_control_plane_connected", "1 while connected.")
        out.sample("meshcore_agent_control_plane_connected", {}, int(state.connected))
        out.counter("meshcore_agent_snapshot_applies", "Snapshots applied or rejected.")
        out.sample("meshcore_agent_snapshot_applies_total", {"result": "ack"}, state.applies)
        out.sample("meshcore_agent_snapshot_applies_total", {"result": "nack"}, state.rejects)
        out.counter("meshcore_agent_control_plane_connects", "Connections to the control plane.")
        out.sample("meshcore_agent_control_plane_connects_total", {}, state.connects)
        out.gauge("meshcore_agent_snapshot_info", "The snapshot version serving.")
        out.sample("meshcore_agent_snapshot_info", {"version": state.version or ""}, 1)
        if stats is None:
            return out.text()
        _numbers(out, "meshcore_proxy", {}, stats.get("totals", {}))
        for scope in ("listener", "cluster"):
            for item in stats.get(f"{scope}s", []):
                labels = {scope: str(item.get("name", ""))}
                fields = {k: v for k, v in item.items() if k != "port"}
                _numbers(out, f"meshcore_proxy_{scope}", labels, fields)
        return out.text()


_LABELS = {"response_flags": "flag", "detected_by_port": "port"}
"""The label of each map-valued counter (response flag → count); others use `key`. A map
of maps (port → outcome → count) labels the inner key `outcome`."""


def _numbers(out: _Exposition, prefix: str, labels: dict[str, str], fields: dict[str, Any]) -> None:
    """Every number in `fields` as a series; a map of numbers as one series with a label."""
    for key, value in fields.items():
        if isinstance(value, bool | int | float):
            out.metric(f"{prefix}_{key}", labels, value)
        elif isinstance(value, dict):
            label = _LABELS.get(key, "key")
            for inner, number in sorted(value.items()):
                if isinstance(number, bool | int | float):
                    out.metric(f"{prefix}_{key}", {**labels, label: str(inner)}, number)
                elif isinstance(number, dict):
                    for outcome, count in sorted(number.items()):
                        if isinstance(count, bool | int | float):
                            at = {**labels, label: str(inner), "outcome": str(outcome)}
                            out.metric(f"{prefix}_{key}", at, count)


class _Exposition:
    """Prometheus text format 0.0.4, written by hand (no client library in the sidecar)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._typed: set[str] = set()

    def gauge(self, name: str, help_text: str) -> None:
        self._type(name, "gauge", help_text)

    def counter(self, name: str, help_text: str) -> None:
        self._type(name, "counter", help_text)

    def _type(self, name: str, kind: str, help_text: str) -> None:
        if name not in self._typed:
            self._typed.add(name)
            self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def metric(self, name: str, labels: dict[str, str], value: float) -> None:
        if any(name.endswith(f"_{gauge}") for gauge in _GAUGES):
            self.gauge(name, "data plane gauge")
            self.sample(name, labels, value)
        else:
            self.counter(name, "data plane counter")
            self.sample(f"{name}_total", labels, value)

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            self.lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, bool | int) else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
