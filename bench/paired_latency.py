"""Added p99 at 1,000 requests/s with two systems driven at the same time.

The suite runs the systems one after another, so a stall of the host (on this VM the vCPU
is taken from under a running thread for ~1 ms at the 1 % level; bench/README.md, session
8) lands on whichever system runs then, and decides most of a p99 comparison. Here two
systems run *together*: one oha per system at the same rate, both on the client CPU, both
proxies on the proxy CPU, so every stall lands on both, and each run is a matched pair.
Each pair of systems runs `--repeats` times (which of the two starts first alternates);
the statistic is the median over runs of the difference of their p99s, with a bootstrap
interval, and the pooled percentiles beside it.

    .venv/bin/python -m bench.paired_latency --repeats 20 --seconds 3

writes `bench/results/<date>-paired-latency.json` and prints a markdown table.
"""

# ruff: noqa: RUF001 (the minus sign in table labels is intended)

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bench import loadgen, report
from bench.report import fmt, table
from bench.systems import WORK, Lab, Processes

T = TypeVar("T")
PAIRS = [("meshcore-http", "nginx"), ("meshcore-http", "haproxy"), ("nginx", "haproxy")]


def together(order: tuple[str, str], drive: Callable[[str], T]) -> dict[str, T]:
    """`drive(name)` for both systems at the same time, one thread each, `order[0]` started
    first; the results by name."""
    results: dict[str, T] = {}
    threads = [threading.Thread(target=lambda n=n: results.update({n: drive(n)})) for n in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def compare(
    runs: list[dict[str, dict[str, Any]]], a: str, b: str, draws: int = 2000
) -> dict[str, Any]:
    """`a` against `b` over matched runs: per-run p99 differences (median, 90 % bootstrap
    interval, how many runs `a` was not worse) and both systems' pooled percentiles."""
    rng = random.Random(1)
    each = [r[a]["p99_us"] - r[b]["p99_us"] for r in runs]
    medians = sorted(statistics.median(rng.choice(each) for _ in each) for _ in range(draws))
    pooled = {
        s: report.pooled_percentiles([r[s]["buckets"] for r in runs], (50, 90, 99)) for s in (a, b)
    }
    return {
        "runs": len(runs),
        "median_p99_difference_us": statistics.median(each),
        "low_us": medians[int(0.05 * (draws - 1))],
        "high_us": medians[int(0.95 * (draws - 1))],
        "runs_not_worse": sum(1 for d in each if d <= 0),
        "pooled": pooled,
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for key, c in result["comparisons"].items():
        a, b = key.split("|")
        pa, pb = c["pooled"][a], c["pooled"][b]
        rows.append(
            [
                f"{a} − {b}",
                str(c["runs"]),
                f"{fmt(c['median_p99_difference_us'])} ({fmt(c['low_us'])} … {fmt(c['high_us'])})",
                f"{c['runs_not_worse']} of {c['runs']}",
                f"{fmt(pa['p50_us'])} / {fmt(pb['p50_us'])}",
                f"{fmt(pa['p90_us'])} / {fmt(pb['p90_us'])}",
                f"{fmt(pa['p99_us'])} / {fmt(pb['p99_us'])}",
            ]
        )
    return (
        f"**Two systems at {result['rate']:,} requests/s each, at the same time** "
        f"({result['seconds']:g} s runs; `{result['command']}`)\n\n"
        + table(
            [
                "pair",
                "runs",
                "median p99 difference µs (90 % interval)",
                "runs where the first ≤",
                "p50 µs",
                "p90 µs",
                "p99 µs (pooled)",
            ],
            rows,
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Drive pairs of systems at the same time and compare their p99s run by run."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now().strftime("%H%M%S")
    work = WORK / f"run-paired-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    lab = Lab(work, Processes())
    lab.start_upstream()
    names = sorted({n for pair in PAIRS for n in pair})
    systems = {n: lab.start(n) for n in names}
    time.sleep(1)
    for s in systems.values():  # warm-up
        loadgen.oha(s.port, args.rate, seconds=2, connections=8, cpus=lab.client_cpus)

    def drive(name: str) -> dict[str, Any]:
        return loadgen.oha(
            systems[name].port, args.rate, seconds=args.seconds, connections=8, cpus=lab.client_cpus
        )

    runs: dict[str, list[dict[str, dict[str, Any]]]] = {f"{a}|{b}": [] for a, b in PAIRS}
    for r in range(args.repeats):
        for a, b in PAIRS:
            results = together((a, b) if r % 2 == 0 else (b, a), drive)
            runs[f"{a}|{b}"].append(results)
            print(
                f"  #{r} {a} p99 {results[a]['p99_us']:.0f}  {b} p99 {results[b]['p99_us']:.0f}",
                flush=True,
            )
    result = {
        "scenario": "paired-latency",
        "command": " ".join(["python -m bench.paired_latency", *(argv or sys.argv[1:])]),
        "machine": report.machine(),
        "rate": args.rate,
        "seconds": args.seconds,
        "comparisons": {f"{a}|{b}": compare(runs[f"{a}|{b}"], a, b) for a, b in PAIRS},
        "runs": runs,
    }
    print(render(result))
    date = datetime.date.today().isoformat()
    path = report.write_result(date, "paired-latency", result, report.ROOT / "bench" / "results")
    print(f"-> {path.relative_to(report.ROOT)}")


if __name__ == "__main__":
    main()
