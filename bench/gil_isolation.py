"""Does a CPU-bound Python thread in the sidecar's process slow its traffic?

The data plane runs on its own tokio threads and never takes the GIL, so it should not.
This measures round-trip latency over one keep-alive TCP connection (1 KB echoes) through
an in-process data plane, with the Python side idle and then with a Python thread spinning,
against the same echo upstream reached directly. The client and the upstream run in their
own processes so that neither shares this process's GIL.

    .venv/bin/python -m bench.gil_isolation [--requests 5000] [--repeats 3]

Writes bench/results/<date>-gil-isolation.json. Read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from bench.ports import free_port
from meshcore.dataplane import DataPlane, DataPlaneOptions

RESULTS = Path(__file__).parent / "results"

_CLIENT = r"""
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
body = b"x" * 1024
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
f.readline()
samples = []
for _ in range(n):
    t = time.perf_counter_ns()
    s.sendall(body)
    got = f.read(len(body))
    samples.append(time.perf_counter_ns() - t)
    assert got == body
samples.sort()
pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] / 1000
print(json.dumps({"p50_us": pick(0.5), "p90_us": pick(0.9), "p99_us": pick(0.99)}))
"""


def _client(port: int, requests: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(port), str(requests)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def main() -> None:
    parser = argparse.ArgumentParser(description="GIL isolation benchmark")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    upstream = subprocess.Popen(
        [sys.executable, "-m", "meshcore.cli.samples.echo", "bench"], stdout=subprocess.PIPE
    )
    assert upstream.stdout is not None
    up_port = int(upstream.stdout.readline())
    listen_port = free_port()
    snapshot = {
        "version": "bench",
        "listeners": [
            {
                "name": "l",
                "address": "127.0.0.1",
                "port": listen_port,
                "protocol": "tcp",
                "tcp_route": {"clusters": [{"name": "echo"}]},
            }
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": "127.0.0.1", "port": up_port}]}],
    }
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "idle_python": [], "busy_python": []}
    dataplane = DataPlane.start(DataPlaneOptions(concurrency=1))
    try:
        dataplane.apply(json.dumps(snapshot).encode())
        for _ in range(args.repeats):  # interleave the systems run by run
            runs["direct"].append(_client(up_port, args.requests))
            runs["idle_python"].append(_client(listen_port, args.requests))
            stop = threading.Event()
            spinner = threading.Thread(target=_spin, args=(stop,))
            spinner.start()
            try:
                runs["busy_python"].append(_client(listen_port, args.requests))
            finally:
                stop.set()
                spinner.join()
    finally:
        dataplane.shutdown(1.0)
        upstream.kill()

    summary: dict[str, Any] = {}
    for name, samples in runs.items():
        summary[name] = {
            key: statistics.median(s[key] for s in samples) for key in ("p50_us", "p99_us")
        }
        summary[name]["p99_spread_us"] = max(s["p99_us"] for s in samples) - min(
            s["p99_us"] for s in samples
        )
    for key in ("p50_us", "p99_us"):
        summary[f"busy_over_idle_{key}"] = summary["busy_python"][key] / summary["idle_python"][key]
    result = {
        "command": " ".join([sys.executable, "-m", "bench.gil_isolation", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "requests": args.requests,
        "repeats": args.repeats,
        "runs": runs,
        "summary": summary,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.date.today().isoformat()}-gil-isolation.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
