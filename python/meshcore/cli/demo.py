"""``meshcore demo``: a local mesh on this machine, no root, no Kubernetes.

Starts sample TCP echo services for every endpoint of a shipped example snapshot, a real
``meshcore sidecar`` process serving that snapshot, and a traffic generator; then shows,
once a second, which version answered how many connections and how fast. Ctrl-C (or
``--duration``) ends everything, sidecar included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from meshcore.cli.samples.echo import serve_echo
from meshcore.compile.snapshot import Snapshot, parse_snapshot

log = logging.getLogger("meshcore.demo")

DEFAULT_SNAPSHOT = Path("examples/l4-canary/snapshot.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot", type=Path, default=DEFAULT_SNAPSHOT, metavar="FILE")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--rate", type=int, default=200, help="new connections per second")
    parser.add_argument("--admin-port", type=int, default=15000)
    parser.add_argument(
        "-o", "--output", choices=["text", "json"], default="text", help="final report format"
    )


@dataclass
class Observed:
    """What the traffic generator saw, per listener and answering version."""

    answered: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def record(self, listener: str, version: str, ms: float) -> None:
        self.answered[listener, version] += 1
        self.latencies_ms.setdefault((listener, version), []).append(ms)


def run(args: argparse.Namespace) -> int:
    snapshot = parse_snapshot(args.snapshot.read_bytes())
    try:
        return asyncio.run(_demo(args, snapshot))
    except KeyboardInterrupt:
        return 0


async def _demo(args: argparse.Namespace, snapshot: Snapshot) -> int:
    servers = [s for name in _clusters(snapshot) for s in await _start_echo(snapshot, name)]
    sidecar = _start_sidecar(args)
    observed = Observed()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _wait_ready(args.admin_port, sidecar)
        generators = [
            asyncio.create_task(_generate(listener.name, listener.port, args.rate, observed, stop))
            for listener in snapshot.listeners
        ]
        started = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            if args.output == "text":
                _print_view(observed, time.monotonic() - started)
            if args.duration is not None and time.monotonic() - started >= args.duration:
                stop.set()
        await asyncio.gather(*generators)
        stats = _admin_json(args.admin_port, "/stats")
    finally:
        sidecar.send_signal(signal.SIGTERM)
        await asyncio.to_thread(sidecar.wait, 10)
        for server in servers:
            server.close()
    _report(args.output, observed, stats)
    return 0


def _clusters(snapshot: Snapshot) -> list[str]:
    return [c.name for c in snapshot.clusters]


async def _start_echo(snapshot: Snapshot, cluster_name: str) -> list[asyncio.Server]:
    """Sample services for one cluster's endpoints, each greeting with its ``version``
    label (or the cluster's name)."""
    cluster = snapshot.cluster(cluster_name)
    assert cluster is not None
    return [
        await serve_echo(e.labels.get("version", cluster_name), e.address, e.port)
        for e in cluster.endpoints
    ]


def _start_sidecar(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "meshcore.cli.main",
        "sidecar",
        "--snapshot",
        str(args.snapshot),
        "--admin-port",
        str(args.admin_port),
        "--drain-seconds",
        "2",
    ]
    log.info("starting sidecar: %s", " ".join(command))
    return subprocess.Popen(command, env=os.environ.copy())


def _admin_json(port: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        result: dict[str, object] = json.load(response)
        return result


async def _wait_ready(port: int, sidecar: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sidecar.poll() is not None:
            raise SystemExit(f"sidecar exited with status {sidecar.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("sidecar did not become ready within 30s")


async def _generate(
    listener: str, port: int, rate: int, observed: Observed, stop: asyncio.Event
) -> None:
    interval = 1.0 / max(rate, 1)
    next_at = time.monotonic()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            version = (await reader.readline()).decode().strip()
            writer.write(b"ping\n")
            echoed = await reader.readline()
            writer.close()
            if echoed != b"ping\n" or not version:
                observed.errors[listener] += 1
            else:
                observed.record(listener, version, (time.perf_counter() - started) * 1000)
        except OSError:
            observed.errors[listener] += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _print_view(observed: Observed, elapsed: float) -> None:
    total = sum(observed.answered.values())
    lines = [f"\n-- {elapsed:5.1f}s  {total} connections, {sum(observed.errors.values())} errors"]
    lines.append(f"{'listener':<12} {'version':<10} {'conns':>7} {'share':>7} {'p50 ms':>8}")
    for (listener, version), count in sorted(observed.answered.items()):
        share = 100.0 * count / total if total else 0.0
        p50 = _percentile(observed.latencies_ms[listener, version], 0.5)
        lines.append(f"{listener:<12} {version:<10} {count:>7} {share:>6.1f}% {p50:>8.2f}")
    print("\n".join(lines), flush=True)


def _report(output: str, observed: Observed, stats: dict[str, object]) -> None:
    by_version = {version: n for (_, version), n in observed.answered.items()}
    report = {
        "requests": sum(observed.answered.values()) + sum(observed.errors.values()),
        "errors": sum(observed.errors.values()),
        "by_version": by_version,
        "sidecar": stats.get("totals"),
    }
    if output == "json":
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"\nsidecar totals: {json.dumps(stats.get('totals'))}")
