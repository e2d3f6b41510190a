"""``meshcore demo``: a bookinfo-like mesh on this machine, no root, no Kubernetes.

One command starts, from ``examples/bookinfo`` (copied to a temp directory that the demo
edits step by step):

- ``meshcore control`` watching that copy;
- the sample app (:mod:`meshcore.cli.samples.bookinfo`): ``productpage``, ``reviews`` v1,
  v2, v3 and ``ratings``, one process each, on the ports the example's Sidecars declare;
- one ``meshcore sidecar --control-plane`` per workload, with free ports for its outbound
  listener (the app's HTTP proxy), admin and status; its inbound listener is the one the
  example's Sidecar declares, so every call passes through both sidecars;
- a traffic generator (asyncio, keep-alive connections) calling productpage through its
  sidecar, a share of the requests as ``end-user: jason``.

Then it walks through ``examples/bookinfo/steps/`` (all to reviews v1, the 90/10 canary,
jason to v2), showing each step's YAML and, once a second, requests/s, success rate and
p50/p99 per service and version. ``--headless --duration S -o json`` runs one step (the
canary unless ``--step``) and prints one JSON report. Every child runs in one process group
of its own, so Ctrl-C reaches only the demo, which then stops them all (SIGTERM, then
SIGKILL after a grace period); they also get SIGTERM if the demo itself is killed. If the
control plane, a sidecar or an app exits, the demo says which, shows its log's tail and
exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import functools
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from meshcore.config import Sidecar, VirtualService, WorkloadEntry, load_paths

log = logging.getLogger("meshcore.demo")

_REPO_EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "bookinfo"
LIVE_ROUTE_FILE = "virtual-service-reviews.yaml"
"""The file of the temp config directory that each step replaces."""
NAMESPACE = "default"
DEFAULT_STEP_SECONDS = 20.0
WINDOW_SECONDS = 5.0
"""Rates, success and latency percentiles in the live view are over this sliding window."""
READY_TIMEOUT = 30.0
STOP_GRACE = 5.0


class DemoError(Exception):
    """The demo cannot go on; the message says why (and which process, if one died)."""


class Interrupted(DemoError):
    """Ctrl-C (or SIGTERM) before the mesh was up: stop quietly."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--examples",
        type=Path,
        default=None,
        metavar="DIR",
        help="the mesh to run (default: the repository's examples/bookinfo)",
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=DEFAULT_STEP_SECONDS,
        metavar="S",
        help=f"how long each step runs (default {DEFAULT_STEP_SECONDS:g})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after this many seconds (default: run until Ctrl-C; headless: 10)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no live view: run one step (--step) for --duration, then print a report",
    )
    parser.add_argument(
        "--step", type=int, default=2, help="the step --headless runs (default 2, the canary)"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s (default 100)")
    parser.add_argument(
        "--connections", type=int, default=8, help="generator connections (default 8)"
    )
    parser.add_argument(
        "--jason-share",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="share of requests sent with `end-user: jason` (default 0.2)",
    )
    parser.add_argument(
        "-o", "--output", choices=["text", "json"], default="text", help="final report format"
    )
    parser.add_argument(
        "--keep-temp", action="store_true", help="keep the temp directory (config and logs)"
    )


def run(args: argparse.Namespace) -> int:
    if args.headless and args.duration is None:
        args.duration = 10.0
    try:
        examples = _examples_dir(args.examples)
        mesh = Mesh.load(examples)
        return asyncio.run(_demo(args, mesh))
    except DemoError as error:
        print(f"meshcore demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- the mesh, as the example declares it ---------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One workload of the example: its app and the sidecar in front of it."""

    name: str
    service: str
    version: str
    service_account: str
    app_port: int
    """Where the app listens (the Sidecar's ingress ``defaultEndpoint``)."""
    inbound_port: int
    """The sidecar's inbound listener (the WorkloadEntry's port, the Sidecar's ingress port)."""

    @property
    def labels(self) -> str:
        return f"app={self.service},version={self.version}"


@dataclass(frozen=True)
class Step:
    number: int
    path: Path
    title: str
    text: str
    weights: dict[str, int]
    """The catch-all route's split of reviews, subset → weight."""
    header_routes: tuple[tuple[str, str, str], ...]
    """(header, exact value, subset) of the matching routes."""


@dataclass(frozen=True)
class Mesh:
    examples: Path
    base_files: tuple[Path, ...]
    workloads: tuple[Workload, ...]
    steps: tuple[Step, ...]

    @classmethod
    def load(cls, examples: Path) -> Mesh:
        base_files = tuple(sorted(p for p in examples.glob("*.yaml") if p.is_file()))
        loaded = load_paths(base_files)
        if loaded.errors:
            raise DemoError(
                f"{examples} does not load: "
                + "; ".join(str(d) for d in loaded.diagnostics if d.is_error)
            )
        workloads = _workloads(loaded.resources)
        if not any(w.service == "productpage" for w in workloads):
            raise DemoError(f"{examples} declares no productpage WorkloadEntry")
        steps = tuple(_step(i, p) for i, p in enumerate(sorted(examples.glob("steps/*.yaml")), 1))
        if not steps:
            raise DemoError(f"{examples}/steps has no step files")
        return cls(examples, base_files, tuple(workloads), steps)

    def step(self, number: int) -> Step:
        if not 1 <= number <= len(self.steps):
            raise DemoError(f"--step {number}: the example has steps 1 to {len(self.steps)}")
        return self.steps[number - 1]

    @property
    def entry(self) -> Workload:
        return next(w for w in self.workloads if w.service == "productpage")


def _examples_dir(given: Path | None) -> Path:
    for candidate in [given] if given is not None else [_REPO_EXAMPLES, Path("examples/bookinfo")]:
        if candidate.is_dir():
            return candidate
    raise DemoError(f"no bookinfo example at {given or _REPO_EXAMPLES}; give one with --examples")


def _workloads(resources: Iterable[object]) -> list[Workload]:
    entries = [r for r in resources if isinstance(r, WorkloadEntry)]
    sidecars = [r for r in resources if isinstance(r, Sidecar)]
    workloads = []
    for entry in entries:
        labels = entry.spec.labels or {}
        where = f"WorkloadEntry {entry.metadata.namespace}/{entry.metadata.name}"
        if "app" not in labels or "version" not in labels:
            raise DemoError(f"{where} needs `app` and `version` labels")
        inbound = (entry.spec.ports or {}).get("http")
        if inbound is None:
            raise DemoError(f"{where} has no `http` port (its sidecar's inbound listener)")
        app_port = None
        for sidecar in sidecars:
            selector = sidecar.spec.workload_selector
            wanted = (selector.labels if selector else None) or {}
            if not wanted or not all(labels.get(k) == v for k, v in wanted.items()):
                continue
            for ingress in sidecar.spec.ingress or ():
                if ingress.port.number == inbound and ingress.default_endpoint:
                    app_port = int(ingress.default_endpoint.rpartition(":")[2])
        if app_port is None:
            raise DemoError(
                f"{where}: no Sidecar ingress on port {inbound} with a defaultEndpoint "
                "(where the app listens)"
            )
        workloads.append(
            Workload(
                name=entry.metadata.name,
                service=labels["app"],
                version=labels["version"],
                service_account=entry.spec.service_account or "default",
                app_port=app_port,
                inbound_port=inbound,
            )
        )
    return sorted(workloads, key=lambda w: (_SERVICE_ORDER.get(w.service, 9), w.version))


_SERVICE_ORDER = {"productpage": 0, "reviews": 1, "ratings": 2}


def _step(number: int, path: Path) -> Step:
    text = path.read_text(encoding="utf-8")
    loaded = load_paths([path])
    if loaded.errors:
        raise DemoError(f"{path} does not load")
    title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
    weights: dict[str, int] = {}
    headers: list[tuple[str, str, str]] = []
    for vs in (r for r in loaded.resources if isinstance(r, VirtualService)):
        for rule in vs.spec.http or ():
            route = rule.route or []
            subsets = [(d.destination.subset or "", d.weight) for d in route]
            if not rule.match:
                total = sum(w or 0 for _, w in subsets) or 100
                weights = {s: (w if w is not None else total) for s, w in subsets}
                break
            for match in rule.match:
                for header, value in (match.headers or {}).items():
                    if value.exact is not None and len(subsets) == 1:
                        headers.append((header, value.exact, subsets[0][0]))
    return Step(number, path, title, text, weights, tuple(headers))


# --- processes --------------------------------------------------------------------------------


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    role: str
    """``control plane``, ``sidecar``, ``app``."""
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def describe(self) -> str:
        return f"{self.role} {self.name} (pid {self.process.pid})"

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


class Processes:
    """The demo's children, all in one process group that is not the demo's own."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.pgid: int | None = None
        self._stopped = False

    def start(self, role: str, name: str, argv: list[str]) -> Child:
        log_path = self.log_dir / f"{role.replace(' ', '-')}-{name}.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=self.pgid or 0,
                # Only prctl runs there; children are spawned from the main thread, whose
                # exit (with the demo's) is what PDEATHSIG follows.
                preexec_fn=_die_with_parent,  # noqa: PLW1509
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if self.pgid is None:
            self.pgid = process.pid
        child = Child(role, name, process, log_path)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raises `DemoError` naming the first child that has exited."""
        for child in self.children:
            status = child.process.poll()
            if status is not None:
                tail = child.log_tail()
                how = (
                    f"was killed by {signal.Signals(-status).name}"
                    if status < 0
                    else f"exited with status {status}"
                )
                raise DemoError(
                    f"{child.describe()} {how}"
                    + (f"; the end of its log ({child.log_path}):\n{tail}" if tail else "")
                )

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to the sidecars and apps, then to the control plane (which outlives its
        proxies, as istiod does), up to `grace` in all; then SIGKILL to the group."""
        if self._stopped or self.pgid is None:
            return
        self._stopped = True
        deadline = time.monotonic() + grace
        last = [c for c in self.children if c.role == "control plane"]
        first = [c for c in self.children if c.role != "control plane"]
        for batch in (first, last):
            for child in batch:
                if child.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.send_signal(signal.SIGTERM)
            for child in batch:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(max(0.0, deadline - time.monotonic()))
        stuck = [child for child in self.children if child.process.poll() is None]
        if stuck:
            names = ", ".join(child.describe() for child in stuck)
            print(
                f"meshcore demo: {names} did not stop within {grace:g}s of SIGTERM; killed",
                file=sys.stderr,
            )
        self._signal_group(signal.SIGKILL)  # the stuck ones, and any grandchild
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(1.0)

    def _signal_group(self, signum: int) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)


class PortPicker:
    """Free ports for the demo's own sockets, each used once.

    Taken from below the kernel's ephemeral range when there is room: a port picked from
    inside it can be taken by an outgoing connection (the apps' and sidecars' own) before
    the process meant to listen on it binds it.
    """

    LOW = 20000

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.high = _ephemeral_start() - 1

    def __call__(self) -> int:
        for _ in range(200):
            if self.high - self.LOW >= 1000:
                port = random.randint(self.LOW, self.high)  # noqa: S311 - not a secret
            else:
                port = _kernel_port()
            if port not in self.used and _bindable(port):
                self.used.add(port)
                return port
        raise DemoError("cannot find a free port on 127.0.0.1")


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _kernel_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_ports_free(mesh: Mesh) -> None:
    for workload in mesh.workloads:
        for port, what in (
            (workload.app_port, f"the {workload.name} app"),
            (workload.inbound_port, f"{workload.name}'s sidecar inbound listener"),
        ):
            with socket.socket() as s:
                # As the listeners will: connections in TIME_WAIT do not make a port taken.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError as error:
                    raise DemoError(
                        f"port {port} ({what}, declared in {mesh.examples}/bookinfo.yaml) "
                        f"is taken: {error.strerror}. Stop whatever listens there "
                        f"(ss -ltnp 'sport = :{port}') or change the port in the example."
                    ) from None


def _meshcore(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshcore.cli.main", "--log-level", "info", *args]


@dataclass(frozen=True)
class SidecarPorts:
    outbound: int
    admin: int
    status: int


# --- measurements -----------------------------------------------------------------------------


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
                "p50_ms": round(_percentile(s.latencies_ms, 0.50), 3),
                "p99_ms": round(_percentile(s.latencies_ms, 0.99), 3),
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


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- traffic ----------------------------------------------------------------------------------


class TrafficGenerator:
    """Paced GET / requests to productpage's sidecar over keep-alive HTTP/1.1 connections."""

    def __init__(self, port: int, rate: float, connections: int, jason_share: float) -> None:
        self.port = port
        self.interval = 1.0 / max(rate, 0.1)
        self.connections = max(1, connections)
        self.jason_share = jason_share
        self.metrics = Metrics()
        self._next_at = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def reset(self) -> Metrics:
        """Starts a new measurement; returns the one that ends."""
        done, self.metrics = self.metrics, Metrics()
        return done

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.connections)]

    async def stop(self) -> None:
        """Lets requests in flight finish (briefly), then stops."""
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=2.0) if self._tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _worker(self) -> None:
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while not self._stopping:
                self._next_at = max(self._next_at + self.interval, time.monotonic() - 1.0)
                delay = self._next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stopping:
                    break
                jason = random.random() < self.jason_share  # noqa: S311 - traffic mix, not crypto
                started = time.perf_counter()
                try:
                    if stream is None:
                        stream = await asyncio.wait_for(
                            asyncio.open_connection("127.0.0.1", self.port), 5
                        )
                    status, body, keep = await asyncio.wait_for(_get(*stream, jason), 10)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                    self.metrics.record(0, _ms(started), None, jason)
                    self.metrics.last_error = f"productpage: {type(error).__name__} {error}"
                    _close(stream)
                    stream = None
                    await asyncio.sleep(0.2)
                    continue
                self.metrics.record(status, _ms(started), body, jason)
                if not keep:
                    _close(stream)
                    stream = None
        finally:
            _close(stream)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _close(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if stream is not None:
        stream[1].close()


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, jason: bool
) -> tuple[int, dict[str, Any] | None, bool]:
    """One request on a keep-alive connection: (status, JSON body or None, keep-alive)."""
    extra = "end-user: jason\r\n" if jason else ""
    writer.write(f"GET / HTTP/1.1\r\nHost: productpage:9080\r\n{extra}\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            data += await reader.readexactly(size + 2)
            data = data[:-2]
        await reader.readuntil(b"\r\n")
    else:
        data = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    return status, body if isinstance(body, dict) else None, keep


# --- admin and status -------------------------------------------------------------------------


def _http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as error:
        return int(error.code), b""


def _stats(port: int) -> dict[str, Any] | None:
    try:
        status, body = _http_get(port, "/stats")
    except OSError:
        return None
    if status != 200:
        return None
    result: dict[str, Any] = json.loads(body)
    return result


def _ok(port: int, path: str) -> bool:
    try:
        return _http_get(port, path)[0] == 200
    except OSError:
        return False


def _sync_problem(monitoring_port: int) -> str | None:
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


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ready(port: int) -> bool:
    return _ok(port, "/healthz/ready")


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything one demo run started."""

    args: argparse.Namespace
    mesh: Mesh
    temp: Path
    config_dir: Path
    processes: Processes
    stop: asyncio.Event
    control_port: int = 0
    monitoring_port: int = 0
    sidecar_ports: dict[str, SidecarPorts] = field(default_factory=dict)
    free_port: PortPicker = field(default_factory=PortPicker)

    @property
    def entry_ports(self) -> SidecarPorts:
        return self.sidecar_ports[self.mesh.entry.name]

    def apply_step(self, step: Step) -> None:
        """Replaces the live route file atomically (the control plane sees one edit)."""
        staged = self.temp / f".{LIVE_ROUTE_FILE}.staged"
        staged.write_text(step.text, encoding="utf-8")
        staged.replace(self.config_dir / LIVE_ROUTE_FILE)

    def sidecar_stats(self) -> dict[str, dict[str, Any] | None]:
        return {name: _stats(ports.admin) for name, ports in sorted(self.sidecar_ports.items())}


async def _demo(args: argparse.Namespace, mesh: Mesh) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    temp = Path(tempfile.mkdtemp(prefix="meshcore-demo-"))
    config_dir = temp / "config"
    processes = Processes(temp)
    atexit.register(processes.stop)
    run = Run(args, mesh, temp, config_dir, processes, stop)
    view = LiveView(sys.stdout, args) if not args.headless else None
    failed: DemoError | None = None
    report: dict[str, Any] | None = None
    try:
        report = await _run(run, view)
    except Interrupted:
        report = None
    except DemoError as error:
        failed = error
    finally:
        if view is not None:
            view.close()
        processes.stop()
        if failed is not None:
            print(f"meshcore demo: {failed}", file=sys.stderr)
        if args.keep_temp or (failed is not None and processes.children):  # logs to read
            print(f"meshcore demo: config and logs kept in {temp}", file=sys.stderr)
        else:
            shutil.rmtree(temp, ignore_errors=True)
    if failed is not None:
        return 1
    if report is None:
        return 130
    if args.headless:
        _print_report(args.output, report)
    else:
        _print_summary(args.output, report)
    return 0


async def _run(run: Run, view: LiveView | None) -> dict[str, Any]:
    """Starts everything, then runs the steps (or the headless one); the report."""
    first = run.mesh.step(run.args.step if run.args.headless else 1)
    _check_ports_free(run.mesh)
    run.config_dir.mkdir()
    for path in run.mesh.base_files:
        shutil.copy(path, run.config_dir / path.name)
    run.apply_step(first)
    if view is not None:
        view.starting(run)
    await _start(run)
    await _wait_ready(run)
    args = run.args
    generator = TrafficGenerator(
        run.mesh.entry.inbound_port, args.rate, args.connections, args.jason_share
    )
    generator.start()
    try:
        if view is None:
            return await _headless(run, generator, first)
        return await _interactive(run, generator, view)
    finally:
        await generator.stop()


async def _start(run: Run) -> None:
    """The control plane and the apps, then (once the control plane listens) the sidecars."""
    run.control_port, run.monitoring_port = run.free_port(), run.free_port()
    run.processes.start(
        "control plane",
        "meshcore-control",
        _meshcore(
            "control",
            "--config-dir",
            str(run.config_dir),
            "--port",
            str(run.control_port),
            "--monitoring-port",
            str(run.monitoring_port),
            "--debounce-after",
            "0.05",
            "--poll-interval",
            "0.1",
        ),
    )
    for w in run.mesh.workloads:
        run.sidecar_ports[w.name] = SidecarPorts(run.free_port(), run.free_port(), run.free_port())
        app = [sys.executable, "-m", "meshcore.cli.samples.bookinfo", w.service]
        app += ["--version", w.version, "--port", str(w.app_port)]
        app += ["--proxy", f"127.0.0.1:{run.sidecar_ports[w.name].outbound}"]
        run.processes.start("app", w.name, app)
    control_ready = functools.partial(_ok, run.monitoring_port, "/ready")
    await _wait_for(run, [("the control plane (a valid config loaded)", control_ready)])
    for w in run.mesh.workloads:
        ports = run.sidecar_ports[w.name]
        run.processes.start(
            "sidecar",
            w.name,
            _meshcore(
                "sidecar",
                "--control-plane",
                f"127.0.0.1:{run.control_port}",
                "--name",
                w.name,
                "--namespace",
                NAMESPACE,
                "--labels",
                w.labels,
                "--service-account",
                w.service_account,
                "--inbound-port",
                str(w.inbound_port),
                "--outbound-port",
                str(ports.outbound),
                "--admin-port",
                str(ports.admin),
                "--status-port",
                str(ports.status),
                "--metrics-port",
                "-1",
                "--drain-seconds",
                "1",
            ),
        )


async def _wait_ready(run: Run) -> None:
    """Until every app accepts and every sidecar is ready (has applied a snapshot)."""
    checks: list[tuple[str, Callable[[], bool]]] = []
    for w in run.mesh.workloads:
        status = run.sidecar_ports[w.name].status
        checks.append((f"the {w.name} app", functools.partial(_tcp_open, w.app_port)))
        checks.append((f"the {w.name} sidecar", functools.partial(_ready, status)))
    await _wait_for(run, checks)


async def _wait_for(run: Run, checks: list[tuple[str, Callable[[], bool]]]) -> None:
    """Until every check passes; fails naming the ones that did not, or a dead child."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(checks)
    while pending:
        run.processes.check()
        if run.stop.is_set():
            raise Interrupted("interrupted while starting")
        pending = [(what, ok) for what, ok in pending if not await asyncio.to_thread(ok)]
        if not pending:
            return
        if problem := await asyncio.to_thread(_sync_problem, run.monitoring_port):
            raise DemoError(problem)
        if time.monotonic() > deadline:
            names = ", ".join(what for what, _ in pending)
            raise DemoError(f"not ready after {READY_TIMEOUT:g}s: {names} (logs in {run.temp})")
        await asyncio.sleep(0.1)


async def _wait_applied(run: Run, before: str | None, timeout: float = 10.0) -> str | None:
    """Until productpage's sidecar serves a snapshot other than `before`; its version."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.processes.check()
        stats = await asyncio.to_thread(_stats, run.entry_ports.admin)
        version = None if stats is None else stats.get("version")
        if version is not None and version != before:
            return str(version)
        await asyncio.sleep(0.05)
    problem = await asyncio.to_thread(_sync_problem, run.monitoring_port)
    raise DemoError(
        problem or f"productpage's sidecar did not get the new route within {timeout:g}s"
    )


async def _sleep_or_stop(run: Run, seconds: float) -> bool:
    """Sleeps, checking the children; True when asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.stop.wait(), timeout=seconds)
    run.processes.check()
    return run.stop.is_set()


async def _headless(run: Run, generator: TrafficGenerator, step: Step) -> dict[str, Any]:
    before = await asyncio.to_thread(run.sidecar_stats)
    generator.reset()
    deadline = time.monotonic() + run.args.duration
    while time.monotonic() < deadline:
        if await _sleep_or_stop(run, min(0.5, max(0.0, deadline - time.monotonic()))):
            break
    await generator.stop()
    after = await asyncio.to_thread(run.sidecar_stats)
    report = generator.metrics.report()
    report["step"] = _step_info(run.mesh, step)
    report["sidecars"] = _sidecar_report(before, after)
    report["mesh_by_version"] = _cluster_split(before, after, run.mesh.entry.name, "reviews")
    return report


async def _interactive(run: Run, generator: TrafficGenerator, view: LiveView) -> dict[str, Any]:
    """Walks through the steps until the last one's time is up or Ctrl-C; a summary."""
    started = time.monotonic()
    steps = run.mesh.steps
    history: list[dict[str, Any]] = []
    index = 0
    step_started = time.monotonic()
    rates = SidecarRates()
    applied = rates.update(await asyncio.to_thread(run.sidecar_stats), run.mesh.entry.name)
    generator.reset()
    while True:
        elapsed = time.monotonic() - started
        if run.args.duration is not None and elapsed >= run.args.duration:
            break
        in_step = time.monotonic() - step_started
        if index + 1 < len(steps) and in_step >= run.args.step_seconds:
            history.append({**_step_info(run.mesh, steps[index]), **generator.metrics.report()})
            index += 1
            run.apply_step(steps[index])
            view.note(f"applied {steps[index].path.name}")
            applied = await _wait_applied(run, applied)
            generator.reset()
            step_started = time.monotonic()
        rates.update(await asyncio.to_thread(run.sidecar_stats), run.mesh.entry.name)
        view.draw(run, steps[index], generator.metrics, history, time.monotonic() - step_started)
        view.draw_sidecars(rates)
        if await _sleep_or_stop(run, 1.0):
            break
    history.append({**_step_info(run.mesh, steps[index]), **generator.metrics.report()})
    return {"steps": history}


@dataclass
class SidecarRates:
    """HTTP requests/s each sidecar's data plane handled, from its admin ``/stats``."""

    rates: dict[str, float | None] = field(default_factory=dict)
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def update(self, stats: dict[str, dict[str, Any] | None], entry: str) -> str | None:
        """Takes a reading; returns the snapshot version `entry` serves."""
        now = time.monotonic()
        for name, reading in stats.items():
            if reading is None:
                self.rates[name] = None
                continue
            count = int(reading.get("totals", {}).get("http_requests", 0))
            last = self._last.get(name)
            self.rates[name] = (count - last[1]) / (now - last[0]) if last else 0.0
            self._last[name] = (now, count)
        version = (stats.get(entry) or {}).get("version")
        return None if version is None else str(version)


def _step_info(mesh: Mesh, step: Step) -> dict[str, Any]:
    return {
        "number": step.number,
        "of": len(mesh.steps),
        "file": str(step.path),
        "title": step.title,
        "weights": step.weights,
    }


def _sidecar_report(
    before: dict[str, dict[str, Any] | None], after: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """Per sidecar: its snapshot version and what its data plane counted during the run."""
    report: dict[str, Any] = {}
    for name, now in after.items():
        if now is None:
            report[name] = None
            continue
        was = (before.get(name) or {}).get("totals", {})
        totals = now.get("totals", {})
        flags = {
            flag: n - was.get("response_flags", {}).get(flag, 0)
            for flag, n in totals.get("response_flags", {}).items()
        }
        report[name] = {
            "version": now.get("version"),
            "http_requests": totals.get("http_requests", 0) - was.get("http_requests", 0),
            "response_flags": {f: n for f, n in flags.items() if n},
        }
    return report


def _cluster_split(
    before: dict[str, dict[str, Any] | None],
    after: dict[str, dict[str, Any] | None],
    sidecar: str,
    service: str,
) -> dict[str, int]:
    """Requests the sidecar routed to each subset cluster of `service` during the run."""

    def counts(stats: dict[str, Any] | None) -> dict[str, int]:
        result = {}
        for cluster in (stats or {}).get("clusters", []):
            parts = str(cluster.get("name", "")).split("|")
            outbound = len(parts) == 4 and parts[0] == "outbound" and parts[2]
            if outbound and parts[3].split(".")[0] == service:
                result[parts[2]] = int(cluster.get("http_requests", 0))
        return result

    was, now = counts(before.get(sidecar)), counts(after.get(sidecar))
    return {subset: n - was.get(subset, 0) for subset, n in sorted(now.items())}


def _print_summary(output: str, summary: dict[str, Any]) -> None:
    """What each step of the walkthrough observed."""
    if output == "json":
        print(json.dumps(summary, sort_keys=True))
        return
    for step in summary["steps"]:
        print(
            f"step {step['number']} ({step['title']}): {step['requests']} requests, "
            f"{step['errors']} errors; reviews {_split_text(step['by_version'])}"
        )


def _print_report(output: str, report: dict[str, Any]) -> None:
    if output == "json":
        print(json.dumps(report, sort_keys=True))
        return
    step = report["step"]
    print(f"step {step['number']}: {step['title']}")
    print(
        f"{report['requests']} requests in {report['seconds']}s, {report['errors']} errors; "
        f"reviews by version: {_split_text(report['by_version'])}"
    )
    for line in _table(report["services"]):
        print(line)


def _convergence(weights: dict[str, int], observed: Counter[str]) -> str:
    """For a weighted split: the smallest subset's observed share with its 95% interval,
    which narrows as requests add up (1.96 standard errors of a proportion)."""
    total = sum(observed.values())
    if len(weights) < 2 or not total:
        return ""
    subset = min(weights, key=lambda s: weights[s])
    share = observed[subset] / total
    margin = 1.96 * math.sqrt(max(share * (1 - share), 1e-9) / total)
    expected = 100 * weights[subset] / sum(weights.values())
    return (
        f"{subset} {100 * share:.1f}% ±{100 * margin:.1f} (95%, n={total}; "
        f"the YAML says {expected:g}%)"
    )


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def _split_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "-"
    return "  ".join(f"{v} {100 * n / total:.1f}% ({n})" for v, n in sorted(counts.items()))


def _table(services: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = [
        f"{'service':<12} {'version':<8} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}"
    ]
    for service, versions in services.items():
        for version, s in versions.items():
            lines.append(
                f"{service:<12} {version:<8} {s['requests']:>9} {s['errors']:>7} "
                f"{s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
            )
    return lines


# --- the live view ----------------------------------------------------------------------------


_BOLD, _DIM, _GREEN, _YELLOW, _RED, _RESET = (
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[31m",
    "\x1b[0m",
)


class LiveView:
    """A full-screen ANSI redraw once a second on a terminal; plain frames otherwise."""

    def __init__(self, out: TextIO, args: argparse.Namespace) -> None:
        self.out = out
        self.args = args
        self.tty = out.isatty()
        self._note: str | None = None
        self._pending: list[str] = []
        if self.tty:
            out.write("\x1b[?25l")  # hide the cursor while redrawing

    def close(self) -> None:
        if self.tty:
            self.out.write("\x1b[?25h\n")
            self.out.flush()

    def note(self, text: str) -> None:
        self._note = text

    def starting(self, run: Run) -> None:
        self._emit(
            [
                f"meshcore demo: starting the control plane, {len(run.mesh.workloads)} apps and "
                f"their sidecars from {run.mesh.examples} (logs in {run.temp}) ..."
            ]
        )

    def draw(
        self,
        run: Run,
        step: Step,
        metrics: Metrics,
        history: list[dict[str, Any]],
        in_step: float,
    ) -> None:
        width = shutil.get_terminal_size((100, 40)).columns if self.tty else 120
        now = time.monotonic()
        lines = [
            self._c(_BOLD, "meshcore demo")
            + f" · bookinfo on 127.0.0.1 · control plane :{run.control_port}"
            + f" · {len(run.processes.children)} processes · Ctrl-C to stop",
            self._c(
                _DIM,
                f"try: curl -x http://127.0.0.1:{run.entry_ports.outbound} "
                "-H 'end-user: jason' http://reviews:9080/",
            ),
            "",
            self._c(_BOLD, f"Step {step.number}/{len(run.mesh.steps)}: {step.title}")
            + self._c(_DIM, f"   {in_step:.0f}s of {run.args.step_seconds:g}s")
            if step.number < len(run.mesh.steps)
            else self._c(_BOLD, f"Step {step.number}/{len(run.mesh.steps)}: {step.title}")
            + self._c(_DIM, f"   {in_step:.0f}s"),
            self._c(_DIM, f"── {_relative(step.path)} " + "─" * 30),
        ]
        for line in step.text.splitlines()[1:]:
            if line.startswith("#"):
                if line.strip("# "):
                    lines.append(self._c(_DIM, line[: width - 1]))
            else:
                lines.append(line[: width - 1])
        lines.append(self._c(_DIM, "─" * min(width - 1, 80)))
        lines.append(
            f"{'service':<12} {'version':<8} {'req/s':>7} {'success':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'requests':>9}  share of reviews"
        )
        reviews_total = sum(metrics.by_version("reviews").values())
        for (service, version), series in sorted(
            metrics.series.items(), key=lambda kv: (_SERVICE_ORDER.get(kv[0][0], 9), kv[0][1])
        ):
            series.trim(now)
            window = list(series.window)
            span = min(WINDOW_SECONDS, max(now - metrics.started, 1e-3))
            ok = sum(1 for _, good, _ in window if good)
            success = 100.0 * ok / len(window) if window else 100.0
            lat = [ms for _, _, ms in window]
            share = ""
            if service == "reviews" and reviews_total:
                fraction = series.requests / reviews_total
                share = f"{100 * fraction:5.1f}% {'█' * round(fraction * 30)}"
            colour = _GREEN if success >= 99.9 else _YELLOW if success >= 95 else _RED
            lines.append(
                f"{service:<12} {version:<8} {len(window) / span:>7.1f} "
                + self._c(colour, f"{success:>7.1f}%")
                + f" {_percentile(lat, 0.5):>8.2f} {_percentile(lat, 0.99):>8.2f}"
                f" {series.requests:>9}  {share}"
            )
        weights = "  ".join(f"{s} {w}%" for s, w in step.weights.items()) or "-"
        jason_route = next(
            (subset for h, v, subset in step.header_routes if (h, v) == ("end-user", "jason")),
            None,
        )
        lines.append("")
        lines.append(f"{'reviews routes':<34} {'the YAML says':<22} observed this step")
        lines.append(
            f"{'  with end-user: jason':<34} {jason_route or weights:<22} "
            f"{_split_text(dict(metrics.jason))}"
        )
        lines.append(f"{'  everyone else':<34} {weights:<22} {_split_text(dict(metrics.others))}")
        if converging := _convergence(step.weights, metrics.others):
            lines.append(f"{'':<57} {converging}")
        lines.append(
            f"generator: {metrics.requests} requests, {metrics.errors} errors, "
            f"{100 * self.args.jason_share:.0f}% as jason"
            + (f"   last error: {metrics.last_error}" if metrics.last_error else "")
        )
        if history:
            done = "   ".join(
                f"step {h['number']}: {_split_text(h['by_version'])}" for h in history
            )
            lines.append(self._c(_DIM, f"earlier: {done}"))
        if self._note:
            lines.append(self._c(_DIM, self._note))
            self._note = None
        self._pending = lines

    def draw_sidecars(self, rates: SidecarRates) -> None:
        """The sidecars' own count of requests/s (both directions), then shows the frame."""
        parts = [
            f"{name} {'down' if rate is None else f'{rate:.0f}'}"
            for name, rate in sorted(rates.rates.items())
        ]
        self._emit([*self._pending, self._c(_DIM, "sidecars, req/s: " + "  ".join(parts))])
        self._pending = []

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.tty else text

    def _emit(self, lines: list[str]) -> None:
        if self.tty:  # home, each line cleared to its end, then clear below: no flicker
            self.out.write("\x1b[H" + "".join(f"{ln}\x1b[K\n" for ln in lines) + "\x1b[J")
        else:
            self.out.write("\n".join(lines) + "\n\n")
        self.out.flush()
