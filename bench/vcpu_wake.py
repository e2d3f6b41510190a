"""What this VM puts under a sidecar pair's p99: the cost of waking a halted vCPU.

The pair's target (added p99 ≤ 200 µs at 1,000 requests/s) is missed here by two bare relays
as well as by meshcore (bench/README.md, sessions 7 and 9). This measures the machine's part.
Each system runs at 1,000 requests/s (oha, every latency kept) under `perf sched record`,
and every wake-up of one of its threads (client, upstream, proxies) is timed from
`sched_waking` to the woken thread's first traced event on its CPU. A wake-up from the other
core is an inter-processor interrupt to a vCPU that, at this rate, is almost always halted,
and on this nested guest the host has to run that vCPU again; direct has none on its path
(client and upstream share core 0), one hop or a pair has four. The latency is an upper
bound: it includes the woken thread's own work up to its first traced event (a few µs to
~20 µs). (`perf sched timehist` cannot be used here: the switch from idle to a task is never
recorded on core 1, so timehist charges the idle time to the task that ran before it.)

Two conditions, alternating per repeat:

- **halting**: as the suite runs them;
- **polling**: one `SCHED_IDLE` busy loop pinned to each core, so no vCPU ever halts (what
  `idle=poll` does to a guest's idle loop; a woken thread preempts a `SCHED_IDLE` task at
  once). What remains is the host taking a vCPU that is now always busy.

    .venv/bin/python -m bench.vcpu_wake --repeats 2

writes `bench/results/<date>-vcpu-wake.json` and prints a markdown table.
"""

# ruff: noqa: RUF001 (the en dash marks an empty cell)

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import loadgen, report
from bench.report import fmt, table
from bench.systems import WORK, Lab, Processes, cpu_plan, threads

SYSTEMS = ("direct", "relay", "meshcore-http", "relay-pair", "meshcore-pair")
CONDITIONS = ("halting", "polling")
SPIN = "while True: pass"
CLIENT_COMMS = ("oha", "tokio-rt-worker")  # oha's main thread and its one runtime worker
_EVENT = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")
_WAKING = re.compile(r"pid=(\d+)")


@dataclass
class Wakes:
    """Wake-up latencies (µs) of the threads of one system, by where the waker ran."""

    cross: list[float] = field(default_factory=list)  # from the other core
    same: list[float] = field(default_factory=list)  # from the same core


def wake_latencies(script: str, tids: set[int], client_comms: tuple[str, ...]) -> Wakes:
    """Matches every `sched_waking` of a tracked thread to the thread's next event.

    `script` is `perf script -F comm,tid,cpu,time,event,trace`; a thread is tracked if its
    tid is in `tids` or its name is one of `client_comms`.
    """
    wakes = Wakes()
    names: dict[int, str] = {}
    pending: dict[int, tuple[float, int]] = {}
    for line in script.splitlines():
        m = _EVENT.match(line)
        if not m:
            continue
        comm, tid_s, cpu_s, t_s, event, rest = m.groups()
        tid, cpu, t = int(tid_s), int(cpu_s), float(t_s)
        names[tid] = comm.strip()
        if tid in pending:
            t0, waker_cpu = pending.pop(tid)
            (wakes.same if waker_cpu == cpu else wakes.cross).append((t - t0) * 1e6)
        if event == "sched:sched_waking":
            w = _WAKING.search(rest)
            if not w:
                continue
            woken = int(w.group(1))
            comm_w = rest.split("comm=", 1)[-1].split(" ", 1)[0]
            tracked = woken in tids or comm_w.startswith(client_comms)
            if tracked and woken not in pending and woken != tid:
                pending[woken] = (t, cpu)
    return wakes


def percentiles(xs: list[float]) -> dict[str, float]:
    ordered = sorted(xs)
    return {
        f"p{p:g}_us".replace(".", ""): loadgen.exact_percentile(ordered, p)
        for p in (50, 90, 99, 99.9)
    } | {"over_200_us": sum(1 for x in xs if x > 200), "n": len(xs)}


def spinners(procs: Processes, work: Path) -> list[subprocess.Popen[bytes]]:
    """One `SCHED_IDLE` busy loop per core in use: the vCPUs stop halting."""
    cores = sorted({c for cpus in cpu_plan() for c in cpus.split(",")})
    return [
        procs.start(["chrt", "--idle", "0", sys.executable, "-c", SPIN], core, work / "spin.log")
        for core in cores
    ]


def summarize(
    runs: list[dict[str, Any]], wakes: list[Wakes], direct: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """One system in one condition: its requests' percentiles (pooled), its wake-ups per
    request and their latencies, and (for a proxy) its added p50/p99 over direct."""
    pooled = report.pooled_percentiles([r["buckets"] for r in runs], (50, 99))
    requests = sum(r["requests"] for r in runs)
    cross = [x for w in wakes for x in w.cross]
    same = [x for w in wakes for x in w.same]
    out: dict[str, Any] = {
        "requests": requests,
        "latency": pooled,
        "cross_core_wakes_per_request": len(cross) / requests if requests else 0.0,
        "same_core_wakes_per_request": len(same) / requests if requests else 0.0,
        "cross_core_wake_us": percentiles(cross),
        "same_core_wake_us": percentiles(same),
    }
    if direct is not None:
        base = report.pooled_percentiles([r["buckets"] for r in direct], (50, 99))
        out["added"] = {k: pooled[k] - base[k] for k in ("p50_us", "p99_us")}
    return out


def render(result: dict[str, Any]) -> str:
    rows = []
    for cond in CONDITIONS:
        for name, s in result["conditions"][cond].items():
            w, added = s["cross_core_wake_us"], s.get("added")
            rows.append(
                [
                    cond,
                    name,
                    fmt(s["latency"]["p50_us"]),
                    fmt(s["latency"]["p99_us"]),
                    fmt(added["p50_us"]) if added else "–",
                    fmt(added["p99_us"]) if added else "–",
                    f"{s['cross_core_wakes_per_request']:.2f}",
                    f"{fmt(w['p50_us'])} / {fmt(w['p99_us'])} / {fmt(w['p999_us'])}"
                    if w["n"]
                    else "–",
                ]
            )
    return (
        f"**Waking a halted vCPU: {result['rate']:,} requests/s under `perf sched record`** "
        f"({result['repeats']} × {result['seconds']:g} s per system and condition; "
        f"`{result['command']}`)\n\n"
        + table(
            [
                "vCPUs",
                "system",
                "p50 µs",
                "p99 µs",
                "added p50 µs",
                "added p99 µs",
                "cross-core wake-ups per request",
                "cross-core wake-up µs p50 / p99 / p99.9",
            ],
            rows,
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Time every wake-up on each system's path, with halting and with polling vCPUs."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args(argv)
    work = WORK / f"run-vcpu-{datetime.datetime.now():%H%M%S}"
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    lab = Lab(work, procs)
    upstream = lab.start_upstream()
    systems = {n: lab.start(n) for n in SYSTEMS}
    time.sleep(1)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        c: {n: [] for n in SYSTEMS} for c in CONDITIONS
    }
    wakes: dict[str, dict[str, list[Wakes]]] = {c: {n: [] for n in SYSTEMS} for c in CONDITIONS}
    for r in range(args.repeats):
        for cond in CONDITIONS if r % 2 == 0 else CONDITIONS[::-1]:
            spin = spinners(procs, work) if cond == "polling" else []
            for name in SYSTEMS:
                port = systems[name].port
                loadgen.oha(port, args.rate, seconds=1, connections=8, cpus=lab.client_cpus)
                data = work / f"sched-{cond}-{name}.data"
                record = f"{args.seconds + 1:g}"
                recorder = subprocess.Popen(
                    ["perf", "sched", "record", "-a", "-o", str(data), "--", "sleep", record],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                run = loadgen.oha(
                    port, args.rate, seconds=args.seconds, connections=8, cpus=lab.client_cpus
                )
                recorder.wait(60)
                script = subprocess.run(
                    ["perf", "script", "-i", str(data), "-F", "comm,tid,cpu,time,event,trace"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                data.unlink()
                tids = threads(upstream.proxy_pids + systems[name].proxy_pids)
                runs[cond][name].append(run)
                wakes[cond][name].append(wake_latencies(script, tids, CLIENT_COMMS))
                cross = len(wakes[cond][name][-1].cross) / run["requests"]
                print(
                    f"  #{r} {cond:8} {name:14} p50 {run['p50_us']:.0f} p99 {run['p99_us']:.0f}"
                    f"  cross-core wake-ups {cross:.2f}/request",
                    flush=True,
                )
            for p in spin:
                procs.stop(p)
    result = {
        "scenario": "vcpu-wake",
        "command": " ".join(["python -m bench.vcpu_wake", *(argv or sys.argv[1:])]),
        "machine": report.machine(),
        "rate": args.rate,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "conditions": {
            c: {
                n: summarize(runs[c][n], wakes[c][n], None if n == "direct" else runs[c]["direct"])
                for n in SYSTEMS
            }
            for c in CONDITIONS
        },
        "runs": runs,
    }
    print(render(result))
    date = datetime.date.today().isoformat()
    path = report.write_result(date, "vcpu-wake", result, report.ROOT / "bench" / "results")
    print(f"-> {path.relative_to(report.ROOT)}")


if __name__ == "__main__":
    main()
