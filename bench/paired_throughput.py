"""Requests/s per core of one L7 hop, two proxies at a time, each held to the same CPU quota.

In the suite the client and the upstream share core 0, which bounds the requests/s before the
proxy's core is full (86–91 % busy), so each proxy's capacity per core is read from its CPU
per request; that varies ±15 % from run to run on this VM (host load), more than the margins
being compared. Here each proxy gets a CFS quota (`--quota` of a core, default 0.4, in 10 ms
periods: a cgroup of its own), so the proxy, not the client, is the bottleneck, and two
proxies are driven together (one wrk each, 64 connections, on core 0; both proxies on core
1), so whatever the host does lands on both: each run is a matched pair, and the statistic is
the ratio of their requests/s (equal quotas, so the ratio of requests/s per core). The
starting order alternates.

    .venv/bin/python -m bench.paired_throughput --repeats 7

writes `bench/results/<date>-paired-throughput.json` and prints a markdown table. Needs root
and the cgroup v1 `cpu` controller (this machine has no cgroup v2 controllers).
"""

# ruff: noqa: RUF001, RUF002 (the en dashes are intended)

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import loadgen, report
from bench.paired_latency import PAIRS, together
from bench.report import table
from bench.systems import WORK, Lab, Processes, cpu_ns, threads

PERIOD_US = 10_000
V1 = Path("/sys/fs/cgroup/cpu")


def cpu_quota(name: str, pids: list[int], quota: float) -> Path:
    """A cgroup (v1 `cpu` controller) named `bench-<name>` holding every thread of `pids`,
    limited to `quota` of a core."""
    if not (V1 / "cpu.cfs_quota_us").exists():
        raise RuntimeError(f"no cgroup v1 cpu controller at {V1} to hold a proxy to a quota")
    group = V1 / f"bench-{name}"
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * quota)))
    for tid in threads(pids):
        (group / "tasks").write_text(str(tid))
    return group


def compare(runs: list[dict[str, dict[str, float]]], a: str, b: str) -> dict[str, Any]:
    """`a`'s requests/s over `b`'s, run by run: median, range, runs where `a` ≥ `b`, and
    the share of its quota each used (near 1: the proxy was the bottleneck)."""
    each = [r[a]["rps"] / r[b]["rps"] for r in runs]
    return {
        "runs": len(runs),
        "median_ratio": statistics.median(each),
        "min_ratio": min(each),
        "max_ratio": max(each),
        "runs_not_behind": sum(1 for x in each if x >= 1),
        "quota_used": {s: statistics.median(r[s]["quota_used"] for r in runs) for s in (a, b)},
        "rps_per_core": {s: statistics.median(r[s]["rps_per_core"] for r in runs) for s in (a, b)},
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for key, c in result["comparisons"].items():
        a, b = key.split("|")
        rows.append(
            [
                f"{a} / {b}",
                str(c["runs"]),
                f"×{c['median_ratio']:.3f} (×{c['min_ratio']:.3f} – ×{c['max_ratio']:.3f})",
                f"{c['runs_not_behind']} of {c['runs']}",
                f"{c['rps_per_core'][a]:,.0f} / {c['rps_per_core'][b]:,.0f}",
                f"{c['quota_used'][a]:.0%} / {c['quota_used'][b]:.0%}",
            ]
        )
    return (
        f"**Two proxies at a time, each held to {result['quota']:.0%} of core 1** "
        f"({result['seconds']:g} s runs, wrk with 64 connections each; `{result['command']}`)\n\n"
        + table(
            [
                "pair",
                "runs",
                "requests/s ratio, median (range)",
                "runs where the first ≥",
                "req/s per core (req/s ÷ CPU used)",
                "quota used",
            ],
            rows,
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Drive pairs of CPU-capped proxies at the same time and compare their requests/s."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--quota", type=float, default=0.4)
    args = parser.parse_args(argv)
    work = WORK / f"run-paired-rps-{datetime.datetime.now():%H%M%S}"
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    lab = Lab(work, procs)
    names = sorted({n for pair in PAIRS for n in pair})
    groups: list[Path] = []
    runs: dict[str, list[dict[str, dict[str, float]]]] = {f"{a}|{b}": [] for a, b in PAIRS}
    try:
        lab.start_upstream()
        systems = {n: lab.start(n) for n in names}
        time.sleep(1)
        for n, s in systems.items():
            groups.append(cpu_quota(n, s.proxy_pids, args.quota))
            loadgen.wrk(s.port, 2, connections=64, cpus=lab.client_cpus)  # warm-up

        def drive(name: str) -> dict[str, float]:
            pids = systems[name].proxy_pids
            before = sum(cpu_ns(p) for p in pids)
            out = loadgen.wrk(
                systems[name].port, args.seconds, connections=64, cpus=lab.client_cpus
            )
            used = (sum(cpu_ns(p) for p in pids) - before) / 1e9 / args.seconds
            return {
                "rps": out["rps"],
                "cores_used": used,
                "quota_used": used / args.quota,
                "rps_per_core": out["rps"] / used if used else 0.0,
                "errors": out.get("errors", 0),
            }

        for r in range(args.repeats):
            for a, b in PAIRS:
                results = together((a, b) if r % 2 == 0 else (b, a), drive)
                runs[f"{a}|{b}"].append(results)
                print(
                    f"  #{r} {a} {results[a]['rps']:,.0f} req/s  {b} {results[b]['rps']:,.0f}"
                    f" req/s  ratio ×{results[a]['rps'] / results[b]['rps']:.3f}",
                    flush=True,
                )
    finally:
        procs.close()
        for group in groups:
            with contextlib.suppress(OSError):
                group.rmdir()
    result = {
        "scenario": "paired-throughput",
        "command": " ".join(["python -m bench.paired_throughput", *(argv or sys.argv[1:])]),
        "machine": report.machine(),
        "quota": args.quota,
        "period_us": PERIOD_US,
        "seconds": args.seconds,
        "comparisons": {f"{a}|{b}": compare(runs[f"{a}|{b}"], a, b) for a, b in PAIRS},
        "runs": runs,
    }
    print(render(result))
    date = datetime.date.today().isoformat()
    path = report.write_result(date, "paired-throughput", result, report.ROOT / "bench" / "results")
    print(f"-> {path.relative_to(report.ROOT)}")


if __name__ == "__main__":
    main()
