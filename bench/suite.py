"""The data-plane benchmark suite: meshcore against direct, a bare relay, nginx and haproxy.

    .venv/bin/python -m bench.suite --mode smoke|quick|full [--only SCENARIO,...]

(`make bench-smoke`, `make bench`, `make bench-full` install the tools first.) Every system
runs in the same run in front of the same upstream and is driven by the same client; the
systems are interleaved run by run and every run is repeated; results are medians with their
spread, and every comparison is a ratio (or a difference) against `direct` or a peer measured
in this run. Absolute numbers are printed but are not comparable across runs or machines.

Scenarios: ``memory`` (RSS idle, per idle keep-alive connection), ``rps`` (closed-loop max
requests/s on one core, CPU per request, RSS under load), ``latency`` (added latency at
constant rates, open loop), ``churn`` (a new connection per request), ``h2`` (HTTP/2
multiplexed), ``stream`` (one 100 MB body), ``isolation`` (bench/gil_isolation.py),
``callgrind`` (instructions per request), ``profile`` (perf or callgrind hot spots).

smoke checks that the harness works (every scenario once, tiny sizes, no timing thresholds)
and writes to bench/.work/results; quick and full write bench/results/<date>-<scenario>.json,
the charts and the tables in bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import instructions, loadgen, report, tables
from bench.systems import (
    ROOT,
    WORK,
    Lab,
    Processes,
    System,
    cpu_ns,
    cpu_seconds,
    nofile,
    raise_nofile,
    rss_kb,
)

ALL_SYSTEMS = [
    "direct",
    "relay",
    "meshcore-tcp",
    "meshcore-http",
    "meshcore-pair",
    "relay-pair",
    "nginx",
    "haproxy",
]
PROXIES = [s for s in ALL_SYSTEMS if s != "direct"]
SCENARIOS = [
    "memory",
    "rps",
    "latency",
    "churn",
    "h2",
    "stream",
    "isolation",
    "callgrind",
    "syscalls",
    "profile",
]


@dataclass
class Mode:
    repeats: int
    seconds: float  # closed-loop runs (wrk, h2load)
    warmup: bool
    connections: int  # wrk connections for max requests/s
    rates: list[int]  # constant rates for the latency scenario
    latency_seconds: float
    latency_connections: int
    churn_connections: int
    stream_repeats: int
    idle_levels: list[int]  # idle keep-alive connections (slope between first and last)
    isolation: tuple[int, int]  # gil_isolation --requests, --repeats
    callgrind_requests: int  # 0: skip
    profile: bool
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))


MODES = {
    "smoke": Mode(
        repeats=1,
        seconds=1,
        warmup=False,
        connections=8,
        rates=[300],
        latency_seconds=1,
        latency_connections=2,
        churn_connections=4,
        stream_repeats=1,
        idle_levels=[50, 200],
        isolation=(200, 1),
        # CI records instructions per request so that a regression shows as a number.
        callgrind_requests=500,
        profile=False,
        scenarios=[s for s in SCENARIOS if s != "profile"],
    ),
    "quick": Mode(
        repeats=3,
        seconds=3,
        warmup=True,
        connections=32,
        rates=[1000, 5000],
        latency_seconds=3,
        latency_connections=4,
        churn_connections=16,
        stream_repeats=3,
        idle_levels=[1000, 10000],
        isolation=(3000, 3),
        callgrind_requests=2000,
        profile=False,
        scenarios=[s for s in SCENARIOS if s != "profile"],
    ),
    "full": Mode(
        repeats=5,
        seconds=10,
        warmup=True,
        connections=64,
        rates=[500, 1000, 2000, 5000, 10000, 20000],
        latency_seconds=10,
        latency_connections=8,
        churn_connections=32,
        stream_repeats=5,
        idle_levels=[1000, 10000],
        isolation=(5000, 5),
        callgrind_requests=20000,
        profile=True,
    ),
}


class Sampler:
    """Peak RSS of the proxy processes, sampled every 100 ms while a run lasts."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_kb = max(self.peak_kb, sum(rss_kb(p) for p in self.pids))

    def __enter__(self) -> Sampler:
        if self.pids:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.pids:
            self._thread.join()


def measured(system: System, upstream: System, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one load, adding the proxy's CPU per request and its peak RSS.

    CPU is utime+stime from /proc/PID/stat (`cpu_us_per_req_stat`, 10 ms ticks) and the
    same from the threads' schedstat in ns (`cpu_us_per_req`, used in the tables).
    """
    pids = system.proxy_pids
    cpu0 = sum(cpu_seconds(p) for p in pids)
    ns0 = sum(cpu_ns(p) for p in pids)
    up0 = cpu_ns(upstream.proxy_pids[0])
    t0 = time.monotonic()
    with Sampler(pids) as sampler:
        result = run()
    wall = time.monotonic() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    ns = sum(cpu_ns(p) for p in pids) - ns0
    n = result.get("requests") or 0
    if pids:
        result["proxy_cpu_s"] = ns / 1e9
        result["proxy_busy"] = ns / 1e9 / wall  # share of one core
        result["cpu_us_per_req"] = ns / 1e3 / n if n else None
        result["cpu_us_per_req_stat"] = cpu / n * 1e6 if n else None
        result["rss_peak_kb"] = sampler.peak_kb
    result["upstream_cpu_us_per_req"] = (
        (cpu_ns(upstream.proxy_pids[0]) - up0) / 1e3 / n if n else None
    )
    return result


def interleave(
    systems: dict[str, System],
    upstream: System,
    repeats: int,
    run: Callable[[System], dict[str, Any]],
    label: str,
) -> dict[str, list[dict[str, Any]]]:
    """Run every system once per repeat, rotating the order each repeat."""
    names = list(systems)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            system = systems[name]
            res = measured(system, upstream, functools.partial(run, system))
            res["repeat"] = r
            runs[name].append(res)
            _progress(label, name, r, res)
    return runs


def _progress(label: str, name: str, r: int, res: dict[str, Any]) -> None:
    keys = ("rps", "p50_us", "p99_us", "mb_per_s", "cpu_us_per_req", "errors")
    parts = [f"{k}={res[k]:.1f}" for k in keys if isinstance(res.get(k), float | int)]
    print(f"  [{label}] {name:14s} #{r} " + " ".join(parts), flush=True)


def ratios(
    summary: dict[str, Any], key: str, bases: list[str], higher_is_better: bool = True
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, s in summary.items():
        out[name] = {}
        for base in bases:
            if base in summary and summary[base][key]["median"]:
                out[name][f"vs_{base}"] = s[key]["median"] / summary[base][key]["median"]
    return out


def added(
    runs: dict[str, list[dict[str, Any]]], key: str, base: str = "direct"
) -> dict[str, dict[str, float]]:
    """Per-repeat difference to `base` (same repeat, interleaved), median and spread."""
    out: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        if name == base or base not in runs:
            continue
        deltas = [
            r[key] - b[key] for r, b in zip(rs, runs[base], strict=False) if r.get(key) is not None
        ]
        out[name] = report.spread(deltas)
    return out


def pooled(runs: dict[str, list[dict[str, Any]]], base: str = "direct") -> dict[str, Any]:
    """Each system's percentiles over all its repeats' samples (histograms merged), and
    what they add to `base`'s pooled percentiles."""
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        histograms = [r["buckets"] for r in rs if r.get("buckets")]
        if histograms:
            out[name] = report.pooled_percentiles(histograms)
    if base in out:
        for name, pct in out.items():
            if name != base:
                pct["added"] = {
                    k: pct[k] - out[base][k] for k in ("p50_us", "p90_us", "p99_us", "p999_us")
                }
    return out


class Suite:
    def __init__(
        self,
        mode_name: str,
        only: list[str] | None,
        systems: list[str],
        *,
        rates: list[int] | None = None,
        repeats: int | None = None,
        latency_seconds: float | None = None,
        latency_tool: str = "fortio",
        tag: str = "",
    ) -> None:
        self.mode_name = mode_name
        self.mode = MODES[mode_name]
        # A focused run (more repeats of one rate, say) keeps the mode's other settings.
        if rates:
            self.mode = dataclasses.replace(self.mode, rates=rates)
        if repeats:
            self.mode = dataclasses.replace(self.mode, repeats=repeats)
        if latency_seconds:
            self.mode = dataclasses.replace(self.mode, latency_seconds=latency_seconds)
        self.latency_tool = latency_tool
        self.tag = tag
        self.only = only
        self.scenarios = [s for s in SCENARIOS if s in only] if only else self.mode.scenarios
        self.names = systems
        self.date = datetime.date.today().isoformat()
        self.out = WORK / "results" if mode_name == "smoke" else ROOT / "bench" / "results"
        stamp = datetime.datetime.now().strftime("%H%M%S")
        self.work = WORK / f"run-{stamp}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.procs = Processes()
        self.lab = Lab(self.work, self.procs)
        self.results: dict[str, dict[str, Any]] = {}
        self.failures: list[str] = []
        self.command = " ".join([sys.executable, "-m", "bench.suite", *sys.argv[1:]])
        self.machine = report.machine()
        self.nofile = raise_nofile()

    # -- plumbing -------------------------------------------------------------------------
    def payload(self, scenario: str, params: dict[str, Any], **data: Any) -> dict[str, Any]:
        return {
            "scenario": scenario,
            "mode": self.mode_name,
            "command": self.command,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": self.machine,
            "pinning": {
                "proxy_cpus": self.lab.proxy_cpus,
                "client_and_upstream_cpus": self.lab.client_cpus,
                "tool": "taskset -c",
            },
            "proxy_workers": 1,
            "notes": self.lab.notes + [f"{n}: {s.note}" for n, s in self.sys.items() if s.note],
            "params": params,
            **data,
        }

    def save(self, scenario: str, payload: dict[str, Any]) -> None:
        self.results[scenario] = payload
        name = f"{self.tag}-{scenario}" if self.tag else scenario
        path = report.write_result(self.date, name, payload, self.out)
        print(f"  -> {path.relative_to(ROOT)}", flush=True)

    def check(self, scenario: str, runs: dict[str, list[dict[str, Any]]]) -> None:
        """Functional checks only (never timing): every run served requests without errors."""
        for name, rs in runs.items():
            for r in rs:
                served = r.get("requests", r.get("bytes", 0))
                if not served:
                    self.failures.append(f"{scenario}/{name}: served nothing")
                if r.get("errors"):
                    self.failures.append(f"{scenario}/{name}: {r['errors']} errors")

    def start_systems(self) -> None:
        self.upstream = self.lab.start_upstream()
        self.sys: dict[str, System] = {}
        for name in self.names:
            try:
                self.sys[name] = self.lab.start(name)
            except (RuntimeError, OSError) as e:
                self.failures.append(f"start {name}: {e}")
                self.lab.notes.append(f"{name} did not start: {e}")
                print(f"  ! {name} did not start: {e}", flush=True)
        time.sleep(1)

    def warm(self, systems: dict[str, System], h2: bool = False) -> None:
        if not self.mode.warmup:
            return
        for s in systems.values():
            if h2 and s.h2_port:
                loadgen.h2load(s.h2_port, 1, connections=2, streams=4, cpus=self.lab.client_cpus)
            else:
                loadgen.wrk(s.port, 1, connections=8, cpus=self.lab.client_cpus)

    # -- scenarios ------------------------------------------------------------------------
    def memory(self) -> None:
        proxies = {n: s for n, s in self.sys.items() if s.proxy_pids}
        # Two descriptors per connection on an L4 hop, and RLIMIT_NOFILE's hard limit may be
        # below 2 x 10k (no CAP_SYS_RESOURCE in a sandbox): cap the top level to fit.
        cap = (nofile() - 1000) // 2
        levels = [min(n, cap) for n in self.mode.idle_levels]
        if levels != self.mode.idle_levels:
            self.lab.notes.append(
                f"memory: RLIMIT_NOFILE is {nofile()} here, so the idle-connection levels were "
                f"capped to {levels}"
            )
        data: dict[str, Any] = {}
        for name, s in proxies.items():
            idle = sum(rss_kb(p) for p in s.proxy_pids)
            holder = loadgen.IdleConnections(s.port)
            points: list[tuple[int, int]] = []
            try:
                for n in levels:
                    holder.grow(n)
                    time.sleep(0.5)
                    points.append((n, sum(rss_kb(p) for p in s.proxy_pids)))
            except (OSError, RuntimeError) as e:
                self.failures.append(f"memory/{name}: {e}")
            finally:
                holder.close()
            slope = None
            if len(points) >= 2 and points[-1][0] != points[0][0]:
                (n0, r0), (n1, r1) = points[0], points[-1]
                slope = (r1 - r0) * 1024 / (n1 - n0)
            data[name] = {
                "rss_idle_kb": idle,
                "rss_with_idle_connections_kb": dict(points),
                "bytes_per_idle_connection": slope,
                "processes": len(s.proxy_pids),
            }
            print(f"  [memory] {name:14s} idle={idle} KiB points={points} slope={slope}")
        time.sleep(1)
        self.save(
            "memory",
            self.payload(
                "memory",
                {"idle_levels": levels, "request": "GET / over HTTP/1.1 keep-alive, then idle"},
                systems=data,
            ),
        )

    def rps(self) -> None:
        m = self.mode
        self.warm(self.sys)
        runs = interleave(
            self.sys,
            self.upstream,
            m.repeats,
            lambda s: loadgen.wrk(
                s.port, m.seconds, connections=m.connections, cpus=self.lab.client_cpus
            ),
            "rps",
        )
        self.check("rps", runs)
        keys = ["rps", "p50_us", "p99_us", "cpu_us_per_req", "proxy_busy", "rss_peak_kb"]
        summary = report.summarize(runs, keys)
        self.save(
            "rps",
            self.payload(
                "rps",
                {"seconds": m.seconds, "connections": m.connections, "threads": 1},
                runs=runs,
                summary=summary,
                ratios=ratios(summary, "rps", ["direct", "nginx", "haproxy", "relay"]),
            ),
        )

    def latency(self) -> None:
        m = self.mode
        by_rate: dict[str, Any] = {}
        self.warm(self.sys)
        for rate in m.rates:
            runs = interleave(
                self.sys,
                self.upstream,
                m.repeats,
                functools.partial(self._fortio, rate),
                f"latency {rate}/s",
            )
            self.check("latency", runs)
            keys = ["p50_us", "p90_us", "p99_us", "p999_us", "actual_qps", "cpu_us_per_req"]
            summary = report.summarize(runs, keys)
            by_rate[str(rate)] = {
                "runs": runs,
                "summary": summary,
                "added_us": {k: added(runs, k) for k in ("p50_us", "p90_us", "p99_us")},
                "pooled": pooled(runs),
                "below_knee": {
                    n: s["actual_qps"]["median"] >= 0.95 * rate for n, s in summary.items()
                },
            }
        params = {
            "rates": m.rates,
            "seconds": m.latency_seconds,
            "connections": m.latency_connections,
            "uniform": True,
            "keepalive": True,
            "tool": self.latency_tool,
        }
        self.save("latency", self.payload("latency", params, by_rate=by_rate))

    def _fortio(self, rate: int, s: System) -> dict[str, Any]:
        m = self.mode
        generator = loadgen.oha if self.latency_tool == "oha" else loadgen.fortio
        return generator(
            s.port,
            rate,
            seconds=m.latency_seconds,
            connections=m.latency_connections,
            cpus=self.lab.client_cpus,
        )

    def churn(self) -> None:
        m = self.mode
        runs = interleave(
            self.sys,
            self.upstream,
            m.repeats,
            lambda s: loadgen.wrk(
                s.port,
                m.seconds,
                connections=m.churn_connections,
                cpus=self.lab.client_cpus,
                close=True,
            ),
            "churn",
        )
        self.check("churn", runs)
        summary = report.summarize(runs, ["rps", "p50_us", "p99_us", "cpu_us_per_req"])
        self.save(
            "churn",
            self.payload(
                "churn",
                {
                    "seconds": m.seconds,
                    "connections": m.churn_connections,
                    "header": "Connection: close",
                },
                runs=runs,
                summary=summary,
                ratios=ratios(summary, "rps", ["direct", "nginx", "haproxy", "relay"]),
            ),
        )

    def h2(self) -> None:
        m = self.mode
        systems = {n: s for n, s in self.sys.items() if s.h2_port}
        conns, streams = (2, 4) if self.mode_name == "smoke" else (4, 16)
        runs = interleave(
            systems,
            self.upstream,
            m.repeats,
            lambda s: loadgen.h2load(
                s.h2_port or 0,
                m.seconds,
                connections=conns,
                streams=streams,
                cpus=self.lab.client_cpus,
            ),
            "h2",
        )
        self.check("h2", runs)
        summary = report.summarize(runs, ["rps", "mean_us", "cpu_us_per_req"])
        self.save(
            "h2",
            self.payload(
                "h2",
                {
                    "seconds": m.seconds,
                    "connections": conns,
                    "streams_per_connection": streams,
                    "downstream": "h2c prior knowledge",
                    "upstream": "HTTP/1.1 keep-alive for L7 proxies; h2c passed through for L4",
                },
                runs=runs,
                summary=summary,
                ratios=ratios(summary, "rps", ["direct", "nginx", "haproxy", "relay"]),
            ),
        )

    def stream(self) -> None:
        m = self.mode
        runs = interleave(
            self.sys,
            self.upstream,
            m.stream_repeats,
            lambda s: loadgen.curl_stream(s.port, self.lab.client_cpus),
            "stream",
        )
        for rs in runs.values():
            for r in rs:
                r["requests"] = 1
                r["cpu_ms_per_100mb"] = (
                    r.get("proxy_cpu_s", 0) * 1e3 if "proxy_cpu_s" in r else None
                )
                if r["status"] != 200 or r["bytes"] != 100 * 1024 * 1024:
                    self.failures.append(f"stream: status {r['status']}, {r['bytes']} bytes")
        summary = report.summarize(runs, ["mb_per_s", "seconds", "cpu_ms_per_100mb"])
        self.save(
            "stream",
            self.payload(
                "stream",
                {
                    "bytes": 100 * 1024 * 1024,
                    "client": "curl -o /dev/null",
                    "repeats": m.stream_repeats,
                },
                runs=runs,
                summary=summary,
                ratios=ratios(summary, "mb_per_s", ["direct", "nginx", "haproxy", "relay"]),
            ),
        )

    def isolation(self) -> None:
        requests, repeats = self.mode.isolation
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            code = (
                "import sys; from pathlib import Path; import bench.gil_isolation as g; "
                "g.RESULTS = Path(sys.argv[1]); sys.argv = ['bench.gil_isolation', *sys.argv[2:]]; "
                "g.main()"
            )
            argv = [sys.executable, "-c", code, tmp, "--requests", str(requests)]
            argv += ["--repeats", str(repeats)]
            subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=600)
            out = next(Path(tmp).glob("*.json"))
            data = json.loads(out.read_text())
        print(f"  [isolation] {json.dumps(data['summary'])}", flush=True)
        self.save(
            "isolation",
            self.payload(
                "isolation",
                {
                    "requests": requests,
                    "repeats": repeats,
                    "pinning": "none (in-process data plane)",
                },
                gil_isolation=data,
            ),
        )

    def callgrind(self) -> None:
        data = instructions.callgrind_suite(self.lab, self.mode.callgrind_requests, self.work)
        self.save(
            "callgrind",
            self.payload("callgrind", {"requests": self.mode.callgrind_requests}, **data),
        )

    def syscalls(self) -> None:
        requests = 300 if self.mode_name == "smoke" else 2000
        data = instructions.syscalls(self.lab, requests, self.work)
        self.save("syscalls", self.payload("syscalls", {"requests": requests}, **data))

    def profile(self) -> None:
        data = instructions.profile(self.lab, self.sys, self.work, flame_dir=self.out)
        self.save("profile", self.payload("profile", {}, **data))

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> int:
        t0 = time.monotonic()
        print(
            f"bench suite, mode {self.mode_name}: {', '.join(self.scenarios)}\n"
            f"  systems: {', '.join(self.names)}; proxy on cpu {self.lab.proxy_cpus}, "
            f"client and upstream on cpu {self.lab.client_cpus}; RLIMIT_NOFILE {self.nofile}\n"
            f"  machine: {self.machine}",
            flush=True,
        )
        if self.mode_name != "smoke" and self.machine["extension_build"] != "pgo":
            self.lab.notes.append(
                "measured the plain build of the extension, not the release (PGO) build that "
                "`make bench` installs (`make pgo`, bench/pgo.py)"
            )
        try:
            self.start_systems()
            for scenario in self.scenarios:
                print(f"== {scenario}", flush=True)
                try:
                    getattr(self, scenario)()
                except (subprocess.SubprocessError, RuntimeError, OSError, KeyError) as e:
                    self.failures.append(f"{scenario}: {type(e).__name__}: {e}")
                    print(f"  ! {scenario} failed: {e}", flush=True)
        finally:
            self.procs.close()
            prune_runs(keep=3)
        ext_now = report.machine()["extension_built"]
        if ext_now != self.machine["extension_built"]:
            note = (
                f"the extension was rebuilt during this run ({self.machine['extension_built']}"
                f" to {ext_now}): later scenarios may have run the new build"
            )
            self.lab.notes.append(note)
            for payload in self.results.values():
                payload["notes"].append(note)
        if self.mode_name != "smoke" and self.results and self.only is None and not self.tag:
            tables.publish(self.results, self.date)
        elif self.results:
            print("bench/README.md not updated (smoke, --only or --tag run)")
        print(f"done in {time.monotonic() - t0:.0f}s; notes: {self.lab.notes}")
        if self.failures:
            print("FAILURES:\n  " + "\n  ".join(self.failures))
            return 1
        return 0


def prune_runs(keep: int) -> None:
    """Removes all but the `keep` newest run directories: each holds the upstream's 100 MB
    file and the proxies' logs, and nothing reads an old one."""
    runs = sorted(WORK.glob("run-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=list(MODES), default="quick")
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    parser.add_argument(
        "--systems", default=",".join(ALL_SYSTEMS), help="comma-separated topologies"
    )
    parser.add_argument("--rates", help="comma-separated constant rates (latency), for the mode's")
    parser.add_argument("--repeats", type=int, help="repeats of every run, for the mode's")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help="length of each constant-rate run, for the mode's (shorter runs, more repeats: "
        "a disturbance of the machine lands on every system alike)",
    )
    parser.add_argument(
        "--latency-tool",
        choices=["fortio", "oha"],
        default="fortio",
        help="constant-rate load generator: fortio (Istio's), or oha, which keeps every "
        "request's latency (fortio's buckets are 100-200 µs wide around 1 ms; "
        "`make bench-oha-deps` installs it)",
    )
    parser.add_argument(
        "--tag", default="", help="result files named <date>-<tag>-<scenario>.json (not published)"
    )
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    rates = [int(r) for r in args.rates.split(",")] if args.rates else None
    suite = Suite(
        args.mode,
        only,
        args.systems.split(","),
        rates=rates,
        repeats=args.repeats,
        latency_seconds=args.latency_seconds,
        latency_tool=args.latency_tool,
        tag=args.tag,
    )
    sys.exit(suite.run())


if __name__ == "__main__":
    main()
