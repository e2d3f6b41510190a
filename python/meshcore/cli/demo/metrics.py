"""What the traffic generator saw: per service version, a sliding window for the live view
and totals since the step began for the reports; and which reviews version answered
jason's requests and everyone else's."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 5.0
"""Rates, success and latency percentiles in the live view are over this sliding window."""


@dataclass
class Series:
    """Requests of one service version: a sliding window and per-step totals."""

    window: deque[tuple[float, bool, float]] = field(default_factory=deque)
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, now: float, ok: bool, ms: float) -> None:
        self.window.append((now, ok, ms))
        self.requests += 1
        self.errors += not ok
        self.latencies_ms.append(ms)

    def trim(self, now: float) -> None:
        while self.window and self.window[0][0] < now - WINDOW_SECONDS:
            self.window.popleft()


@dataclass
class Metrics:
    """What the traffic generator saw, per (service, version), since the step began."""

    started: float = field(default_factory=time.monotonic)
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    requests: int = 0
    errors: int = 0
    jason: Counter[str] = field(default_factory=Counter)
    """Reviews versions that answered requests with `end-user: jason`."""
    others: Counter[str] = field(default_factory=Counter)
    """Reviews versions that answered the other requests."""
    last_error: str | None = None

    def record(self, status: int, ms: float, body: dict[str, Any] | None, jason: bool) -> None:
        now = time.monotonic()
        self.requests += 1
        ok = status == 200
        self.errors += not ok
        version = (body or {}).get("version", "?")
        self._add(("productpage", version), now, ok, ms)
        call = (body or {}).get("call")
        while isinstance(call, dict):
            reply = call.get("body")
            callee: dict[str, Any] = reply if isinstance(reply, dict) else {}
            key = (str(call.get("service", "?")), str(callee.get("version", "?")))
            call_ok = call.get("status") == 200
            self._add(key, now, call_ok, float(call.get("ms", 0.0)))
            if key[0] == "reviews" and call_ok:
                (self.jason if jason else self.others)[key[1]] += 1
            if not call_ok:
                detail = call.get("proxy_status") or call.get("error") or call.get("text", "")
                self.last_error = f"{key[0]}: {call.get('status')} {detail}".strip()
            call = callee.get("call")
        if not ok and body is None:
            self.last_error = f"productpage: {status}"

    def _add(self, key: tuple[str, str], now: float, ok: bool, ms: float) -> None:
        self.series.setdefault(key, Series()).add(now, ok, ms)

    def by_version(self, service: str) -> dict[str, int]:
        return {v: s.requests for (svc, v), s in sorted(self.series.items()) if svc == service}

    def report(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        services: dict[str, dict[str, Any]] = {}
        for (service, version), s in sorted(self.series.items()):
            services.setdefault(service, {})[version] = {
                "requests": s.requests,
                "errors": s.errors,
                "rps": round(s.requests / elapsed, 1),
                "p50_ms": round(percentile(s.latencies_ms, 0.50), 3),
                "p99_ms": round(percentile(s.latencies_ms, 0.99), 3),
            }
        return {
            "seconds": round(elapsed, 2),
            "requests": self.requests,
            "errors": self.errors,
            "by_version": self.by_version("reviews"),
            "jason_by_version": dict(sorted(self.jason.items())),
            "others_by_version": dict(sorted(self.others.items())),
            "services": services,
            "last_error": self.last_error,
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
