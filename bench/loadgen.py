"""Load generators, each run pinned to the client core, each returning plain numbers.

- `wrk`: closed loop, keep-alive (or ``Connection: close`` for churn); a Lua ``done`` hook
  prints the summary as JSON, so nothing is scraped from its text report.
- `fortio`: open loop at a constant rate (``-qps R -uniform``), so a stall shows up in the
  percentiles instead of silently lowering the offered load.
- `oha`: open loop at a constant rate too, with every request's latency kept (binned
  finely here): fortio's histogram buckets are 10-20 % wide (100-200 µs around 1 ms), too
  coarse to tell proxies apart at p99. (vegeta, tried too, adds a tail of its own of
  several ms at 1,000 requests/s on one core.)
- `h2load`: HTTP/2 with multiplexing (h2c, prior knowledge).
- `curl`: one large streaming download.
- `IdleConnections`: N keep-alive connections that made one request each and then sit idle.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.systems import tool

_WRK_LUA = r"""
local close = os.getenv("BENCH_CLOSE") == "1"
if close then wrk.headers["Connection"] = "close" end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _pin(cpus: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus is not None else argv


def wrk(
    port: int,
    seconds: float,
    *,
    connections: int,
    cpus: str | None,
    close: bool = False,
    path: str = "/",
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA)
        script = f.name
    argv = [
        tool("wrk"),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        script,
        f"http://127.0.0.1:{port}{path}",
    ]
    env = {"BENCH_CLOSE": "1" if close else "0", "PATH": "/usr/bin:/bin"}
    try:
        out = subprocess.run(
            _pin(cpus, argv), capture_output=True, text=True, check=True, env=env, timeout=120
        )
    finally:
        Path(script).unlink(missing_ok=True)
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    secs = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / secs if secs else 0.0
    result["errors"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    result["command"] = " ".join(argv)
    return result


def fortio(
    port: int,
    qps: float,
    *,
    seconds: float,
    connections: int,
    cpus: str | None,
    keepalive: bool = True,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out_path = f.name
    argv = [
        tool("fortio"),
        "load",
        "-quiet",
        "-qps",
        str(qps),
        "-uniform",
        "-c",
        str(connections),
        "-t",
        f"{seconds}s",
        "-p",
        "50,90,99,99.9",
        # 10 µs histogram buckets: fortio's default (1 ms) interpolates every sub-ms
        # percentile inside one bucket, which hides the differences this suite measures.
        "-r",
        "0.00001",
        "-a=false",
        f"-keepalive={'true' if keepalive else 'false'}",
        "-json",
        out_path,
        f"http://127.0.0.1:{port}/",
    ]
    try:
        subprocess.run(_pin(cpus, argv), capture_output=True, check=True, timeout=seconds + 60)
        data = json.loads(Path(out_path).read_text())
    finally:
        Path(out_path).unlink(missing_ok=True)
    hist = data["DurationHistogram"]
    pct = {p["Percentile"]: p["Value"] * 1e6 for p in hist["Percentiles"]}
    codes = data.get("RetCodes", {})
    return {
        "requests": hist["Count"],
        "actual_qps": data["ActualQPS"],
        "ok": codes.get("200", 0),
        "errors": hist["Count"] - codes.get("200", 0),
        "p50_us": pct[50.0],
        "p90_us": pct[90.0],
        "p99_us": pct[99.0],
        "p999_us": pct[99.9],
        "avg_us": hist["Avg"] * 1e6,
        "max_us": hist["Max"] * 1e6,
        # The histogram itself (µs bucket bounds, counts), so repeats can be pooled.
        "buckets": [[b["Start"] * 1e6, b["End"] * 1e6, b["Count"]] for b in hist.get("Data") or []],
        "command": " ".join(argv),
    }


def latency_bins(latencies_us: list[float]) -> list[list[float]]:
    """Latencies as [start, end, count] buckets (µs), non-empty ones only: 5 µs wide below
    2 ms, 50 µs below 20 ms, 500 µs above — fine enough for p99 differences of tens of
    µs, small enough to keep every run's histogram in the result file."""
    counts: dict[tuple[int, int], int] = {}
    for v in latencies_us:
        width = 5 if v < 2000 else 50 if v < 20000 else 500
        start = int(v // width) * width
        key = (start, start + width)
        counts[key] = counts.get(key, 0) + 1
    return [[a, b, n] for (a, b), n in sorted(counts.items())]


def exact_percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank percentile of sorted samples."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


def oha(
    port: int,
    rate: float,
    *,
    seconds: float,
    connections: int,
    cpus: str | None,
) -> dict[str, Any]:
    """`rate` requests/s for `seconds` over `connections` keep-alive connections, each
    request's latency from when it was sent, as fortio measures it. (oha's
    `--latency-correction` counts from the scheduled start instead; in 2-second runs that
    charged every system oha's own start-up backlog: a p99 near 10 ms even for direct.)"""
    argv = [
        tool("oha"),
        "-z",
        f"{seconds}s",
        "-q",
        f"{rate:g}",
        "-c",
        str(connections),
        "--worker-threads",
        "1",
        "--no-tui",
        "--output-format",
        "csv",
        f"http://127.0.0.1:{port}/",
    ]
    encoded = subprocess.run(
        _pin(cpus, argv), capture_output=True, check=True, timeout=seconds + 60, text=True
    ).stdout
    latencies: list[float] = []
    starts: list[float] = []
    ok = 0
    for row in csv.DictReader(encoded.splitlines()):
        starts.append(float(row["request-start"]))
        latencies.append(float(row["request-duration"]) * 1e6)
        ok += row["status"] == "200"
    ordered = sorted(latencies)
    n = len(ordered)
    span = max(starts) - min(starts) if starts else 0.0
    return {
        "requests": n,
        "actual_qps": (n - 1) / span if span > 0 else float("nan"),
        "ok": ok,
        "errors": n - ok,
        "p50_us": exact_percentile(ordered, 50),
        "p90_us": exact_percentile(ordered, 90),
        "p99_us": exact_percentile(ordered, 99),
        "p999_us": exact_percentile(ordered, 99.9),
        "avg_us": sum(ordered) / n if n else float("nan"),
        "max_us": ordered[-1] if n else float("nan"),
        "buckets": latency_bins(ordered),
        "command": " ".join(argv),
    }


def h2load(
    port: int, seconds: float, *, connections: int, streams: int, cpus: str | None
) -> dict[str, Any]:
    argv = [
        tool("h2load"),
        "-t1",
        "-c",
        str(connections),
        "-m",
        str(streams),
        "-D",
        str(max(1, round(seconds))),
        "--warm-up-time=1",
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(
        _pin(cpus, argv), capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    reqs = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored",
        out,
    )
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if rps is None or reqs is None:
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "requests": int(reqs.group(3)),
        "errors": int(reqs.group(4)) + int(reqs.group(5)),
        "mean_us": _us(lat.group(3)) if lat else None,
        "command": " ".join(argv),
    }


def _us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6}[m.group(2)]
    return float(m.group(1)) * scale


def curl_stream(port: int, cpus: str | None, path: str = "/big") -> dict[str, Any]:
    argv = [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{time_total}",
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(
        _pin(cpus, argv), capture_output=True, text=True, check=True, timeout=120
    ).stdout
    code, size, secs = out.split()
    return {
        "status": int(code),
        "bytes": int(size),
        "seconds": float(secs),
        "mb_per_s": int(size) / float(secs) / 1e6,
        "command": " ".join(argv),
    }


class IdleConnections:
    """Open keep-alive connections that each complete one GET and then stay idle."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socks: list[socket.socket] = []

    def grow(self, total: int) -> int:
        request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        batch: list[socket.socket] = []
        while len(self.socks) + len(batch) < total:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(request)
            batch.append(s)
            if len(batch) >= 256:
                self._drain(batch)
                self.socks += batch
                batch = []
        self._drain(batch)
        self.socks += batch
        return len(self.socks)

    @staticmethod
    def _drain(batch: list[socket.socket]) -> None:
        for s in batch:
            got = b""
            while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("an idle connection was closed before its response")
                got += chunk

    def close(self) -> None:
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()
        self.socks = []
