"""How long does a VirtualService edit take to reach every proxy, at 1,000 services?

One `meshcore control` process serves a config directory of `--services` ServiceEntries
(HTTP and TCP ports) and a VirtualService file that the benchmark edits. `--proxies`
simulated sidecars (protocol clients, not data planes: they inflate and ACK each push) run
in `--client-processes` processes, spread over `--workloads` distinct label sets, so the
control plane compiles one snapshot per workload and shares it between replicas. For each
edit, the time from writing the file to the last proxy's ACK is measured (CLOCK_MONOTONIC
is system-wide, so the clients' timestamps compare with the writer's), along with the
control plane's CPU time and RSS.

    .venv/bin/python -m bench.control_scale [--services 1000] [--proxies 500] [--edits 10]

Writes bench/results/<date>-control-scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.ports import free_port
from meshcore.agent.protocol import (
    PUSH,
    WELCOME,
    ProxyInfo,
    ack,
    hello,
    read_frame,
    snapshot_bytes,
)

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def write_config(root: Path, services: int, per_file: int = 100) -> Path:
    """ServiceEntries in files of `per_file`; returns the VirtualService file to edit."""
    for start in range(0, services, per_file):
        docs = [
            f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc{i}, namespace: default}}
spec:
  hosts: [svc{i}.mesh.local]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}, {{number: 9000, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 10.{i // 250}.{i % 250}.1}}, {{address: 10.{i // 250}.{i % 250}.2}}]
"""
            for i in range(start, min(start + per_file, services))
        ]
        (root / f"services-{start:05d}.yaml").write_text("---\n".join(docs))
    vs = root / "virtualservice.yaml"
    vs.write_text(virtual_service(0))
    return vs


def virtual_service(edit: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc0, namespace: default}}
spec:
  hosts: [svc0.mesh.local]
  http:
  - match: [{{uri: {{prefix: /v{edit}}}}}]
    route: [{{destination: {{host: svc0.mesh.local}}}}]
    timeout: {edit + 1}s
  - route: [{{destination: {{host: svc1.mesh.local}}}}]
"""


# -- simulated proxies (each client process) ---------------------------------------------------


class _Proxy:
    def __init__(self) -> None:
        self.pushes = 0
        self.last_ack = 0.0
        self.bytes = 0


async def _proxy(port: int, info: ProxyInfo, state: _Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    writer.write(hello(info, None))
    frame = await read_frame(reader)
    assert frame.type == WELCOME, frame.meta
    while True:
        frame = await read_frame(reader)
        if frame.type != PUSH:
            continue
        data = snapshot_bytes(frame)
        state.bytes += len(data)
        writer.write(ack(str(frame.meta["version"]), frame.meta["nonce"]))
        state.last_ack = time.monotonic()
        state.pushes += 1


def _client_process(port: int, first: int, count: int, workloads: int, pipe: Connection) -> None:
    async def main() -> None:
        states = [_Proxy() for _ in range(count)]
        # Referenced until exit: the loop keeps only weak references to tasks, and a
        # collected one ("Task was destroyed but it is pending!") never ACKs again.
        tasks = []
        for i, state in enumerate(states):
            n = first + i
            info = ProxyInfo(f"p{n}", "default", {"app": f"w{n % workloads}"})
            tasks.append(asyncio.create_task(_proxy(port, info, state)))
            if i % 50 == 49:
                await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        while True:
            wanted = await loop.run_in_executor(None, pipe.recv)
            if wanted is None:
                return
            while min(s.pushes for s in states) < wanted:
                await asyncio.sleep(0.005)
            pipe.send((max(s.last_ack for s in states), sum(s.bytes for s in states)))

    asyncio.run(main())


# -- the control plane --------------------------------------------------------------------------


def _proc_stats(pid: int) -> dict[str, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "cpu_seconds": (int(fields[11]) + int(fields[12])) / ticks,
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
    }


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp)
        vs = write_config(config, args.services)
        port, monitoring = free_port(), free_port()
        control = subprocess.Popen(
            [sys.executable, "-m", "meshcore.cli.main", "--log-level", "warning", "control",
             "--config-dir", str(config), "--port", str(port), "--monitoring-port",
             str(monitoring), "--keepalive-seconds", "30"],
            cwd=REPO,
        )  # fmt: skip
        pipes: list[Connection] = []
        workers: list[Any] = []
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    _metrics(monitoring)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            started = time.monotonic()
            ctx = mp.get_context("spawn")
            per = -(-args.proxies // args.client_processes)
            for first in range(0, args.proxies, per):
                ours, theirs = ctx.Pipe()
                count = min(per, args.proxies - first)
                worker = ctx.Process(
                    target=_client_process, args=(port, first, count, args.workloads, theirs)
                )
                worker.start()
                theirs.close()  # the worker's end: if it dies, recv() fails instead of hanging
                pipes.append(ours)
                workers.append(worker)
            for pipe in pipes:
                pipe.send(1)
            initial = [pipe.recv() for pipe in pipes]
            initial_sync = max(t for t, _ in initial) - started
            before = _proc_stats(control.pid)
            latencies = []
            for edit in range(1, args.edits + 1):
                time.sleep(args.pause)
                t0 = time.monotonic()
                vs.write_text(virtual_service(edit))
                for pipe in pipes:
                    pipe.send(edit + 1)
                acks = [pipe.recv() for pipe in pipes]
                latencies.append(max(t for t, _ in acks) - t0)
                print(f"edit {edit}: last ACK after {latencies[-1] * 1000:.0f} ms", flush=True)
            after = _proc_stats(control.pid)
            metrics = _metrics(monitoring)
            pushed_bytes = sum(b for _, b in acks)
        finally:
            for pipe in pipes:
                pipe.send(None)
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
            control.terminate()
            control.wait(timeout=30)
    snapshot_kb = pushed_bytes / (args.proxies * (args.edits + 1)) / 1024
    return {
        "edit_to_last_ack_ms": {
            "p50": statistics.median(latencies) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "max": max(latencies) * 1000,
            "all": [round(x * 1000, 1) for x in latencies],
        },
        "initial_sync_of_all_proxies_s": initial_sync,
        "control_plane": {
            "cpu_seconds_for_edits": after["cpu_seconds"] - before["cpu_seconds"],
            "cpu_seconds_per_edit": (after["cpu_seconds"] - before["cpu_seconds"]) / args.edits,
            "rss_mb": after["rss_mb"],
            "peak_rss_mb": after["peak_rss_mb"],
        },
        "snapshot_kb_inflated": snapshot_kb,
        "pushes_acked": metrics.get('meshcore_control_pushes_total{result="ack"}'),
        "compile_seconds_sum": metrics.get("meshcore_control_compile_duration_seconds_sum"),
        "convergence_seconds_sum": metrics.get("meshcore_control_convergence_seconds_sum"),
        "convergence_count": metrics.get("meshcore_control_convergence_seconds_count"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--proxies", type=int, default=500)
    parser.add_argument("--workloads", type=int, default=10, help="distinct label sets")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between edits")
    parser.add_argument("--output", type=Path, help="default: results/<date>-control-scale.json")
    args = parser.parse_args()
    result = {
        "command": " ".join(
            [Path(sys.executable).name, "-m", "bench.control_scale", *sys.argv[1:]]
        ),
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "parameters": {k: v for k, v in vars(args).items() if k != "output"},
        "results": run(args),
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    out = args.output or RESULTS / f"{result['date']}-control-scale.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
