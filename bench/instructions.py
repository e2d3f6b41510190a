"""Instructions per request (callgrind) and where the time goes (perf, else callgrind).

Callgrind runs the proxy process itself (the `meshcore sidecar` process, the relay, or
nginx (no master process) and haproxy, the L7 peers, in the same run) with
instrumentation off through start-up and warm-up, switches it on for exactly N keep-alive
requests (fortio ``-n N -c 1``), switches it off and stops the process; the instruction count
of that window divided by N is one hop's instructions per request, a number that moves only
when the code does (so a regression shows without timing noise). The client and the upstream
run natively.

`perf` here samples ``cpu-clock`` (a software event: this VM exposes no hardware counters,
so ``perf stat -e instructions`` is "not supported") while wrk drives the proxy.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.ports import free_port
from bench.systems import RELAY, ROOT, Lab, System, cpu_ns, tool, wait_port


def _fortio_n(port: int, n: int, cpus: str) -> None:
    argv = ["taskset", "-c", cpus, tool("fortio"), "load", "-quiet", "-qps", "0", "-c", "1"]
    argv += ["-n", str(n), "-a=false", f"http://127.0.0.1:{port}/"]
    subprocess.run(argv, check=True, capture_output=True, timeout=900)


def _settle(pid: int, timeout: float = 300) -> None:
    """Wait until the process is idle (under 5% of a core over a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_ns(pid)
        time.sleep(1)
        if cpu_ns(pid) - before < 50_000_000:
            return
    raise RuntimeError(f"process {pid} did not settle in {timeout}s")


def _callgrind_one(lab: Lab, name: str, requests: int, work: Path) -> dict[str, Any]:
    d = work / f"callgrind-{name}"
    d.mkdir(parents=True, exist_ok=True)
    out = d / "callgrind.out"
    port = free_port()
    vg = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
    ]
    if name == "relay":
        argv = [*vg, str(RELAY), "1", f"127.0.0.1:{port}=127.0.0.1:{lab.up_port}"]
        protocol = "tcp"
    elif name == "nginx":
        argv = [*vg, *lab.nginx_argv(port, free_port(), master=False)]
        protocol = "http"
    elif name == "haproxy":
        argv = [*vg, *lab.haproxy_argv(port, free_port())]
        protocol = "http"
    else:
        protocol = "http" if name == "meshcore-http" else "tcp"
        snap = d / "snapshot.json"
        snap.write_bytes(lab.snapshot([(protocol, port, lab.up_port)]))
        argv = [
            *vg,
            str(ROOT / ".venv" / "bin" / "python"),
            str(ROOT / ".venv" / "bin" / "meshcore"),
            "sidecar",
            "--snapshot",
            str(snap),
            "--concurrency",
            "1",
            "--admin-port",
            str(free_port()),
        ]
    proc = lab.procs.start(argv, lab.proxy_cpus, d / "log")
    try:
        wait_port(port, proc, timeout=300)
        _settle(proc.pid)  # Python may still be importing after the listener binds
        _fortio_n(port, 200, lab.client_cpus)  # warm up: pool, buffers, lazy statics
        subprocess.run(
            ["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True
        )
        t0 = time.monotonic()
        _fortio_n(port, requests, lab.client_cpus)
        wall = time.monotonic() - t0
        subprocess.run(
            ["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True
        )
        # Valgrind reads the command when the process next runs: stopping it now would
        # count its shutdown. Settle first (the admin runtime's timers wake it).
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        lab.procs.stop(proc)
    totals = 0
    for f in d.glob("callgrind.out*"):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                totals += int(line.split()[1])
    top = annotate(out) if out.exists() else []
    return {
        "protocol": protocol,
        "requests": requests,
        "instructions": totals,
        "instructions_per_request": totals / requests,
        "wall_s_under_valgrind": wall,
        "top_functions": top,
        "command": " ".join(argv),
    }


def annotate(out: Path, limit: int = 30) -> list[dict[str, Any]]:
    """Exclusive (self) instruction counts per function, biggest first."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=99", str(out)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)", line)
        if (m and ":" in m.group(3)) or (m and "???" in m.group(3)):
            rows.append(
                {
                    "ir": int(m.group(1).replace(",", "")),
                    "pct": float(m.group(2)),
                    "fn": m.group(3)[:300],
                }
            )
    return rows[:limit]


# The floor, meshcore's two hops, and the L7 peers in the same run.
CALLGRIND_SYSTEMS = ("relay", "meshcore-tcp", "meshcore-http", "nginx", "haproxy")


def callgrind_suite(lab: Lab, requests: int, work: Path) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is missing (apt-get install valgrind)")
    systems: dict[str, Any] = {}
    for name in CALLGRIND_SYSTEMS:
        systems[name] = _callgrind_one(lab, name, requests, work)
        print(
            f"  [callgrind] {name:14s} {systems[name]['instructions_per_request']:,.0f} "
            "instructions/request",
            flush=True,
        )
    floor = systems["relay"]["instructions_per_request"]
    l7 = systems["meshcore-http"]["instructions_per_request"]
    for s in systems.values():
        s["vs_relay"] = s["instructions_per_request"] / floor if floor else None
    # The L7 peers, as meshcore-http's instructions over theirs.
    for peer in ("nginx", "haproxy"):
        theirs = systems[peer]["instructions_per_request"]
        systems["meshcore-http"][f"vs_{peer}"] = l7 / theirs if theirs else None
    return {"systems": systems, "client": "fortio -c 1 -qps 0 -n N (one keep-alive connection)"}


def syscalls(lab: Lab, requests: int, work: Path) -> dict[str, Any]:
    """System calls per request of one hop (strace -c -f over N sequential keep-alive
    requests after a warm-up): like instructions, a count that timing noise cannot move."""
    if shutil.which("strace") is None:
        raise RuntimeError("strace is missing (apt-get install strace)")
    out: dict[str, Any] = {}
    for name in ("relay", "meshcore-tcp", "meshcore-http"):
        system = lab.start(name)
        try:
            _settle(system.proxy_pids[0])  # Python may still be importing
            _fortio_n(system.port, 200, lab.client_cpus)
            trace = work / f"strace-{name}.txt"
            argv = ["strace", "-c", "-f", "-p", str(system.proxy_pids[0]), "-o", str(trace)]
            tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)  # attached to every thread
            _fortio_n(system.port, requests, lab.client_cpus)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
        finally:
            lab.stop(system)
        calls: dict[str, float] = {}
        errors: dict[str, float] = {}
        for line in trace.read_text().splitlines():
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3]) / requests
                if len(f) == 6:
                    errors[f[-1]] = int(f[4]) / requests
        data_path = {k: v for k, v in calls.items() if v >= 0.01}
        out[name] = {
            "per_request": sum(data_path.values()),
            "by_call": dict(sorted(data_path.items(), key=lambda kv: -kv[1])),
            "errors_by_call": {k: v for k, v in errors.items() if v >= 0.01},
        }
        print(f"  [syscalls] {name:14s} {out[name]['per_request']:.2f}/request", flush=True)
    return {"systems": out, "client": "fortio -c 1 -qps 0 -n N (one keep-alive connection)"}


def perf_supported() -> bool:
    if shutil.which("perf") is None:
        return False
    out = subprocess.run(
        ["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode == 0


def profile(
    lab: Lab,
    systems: dict[str, System],
    work: Path,
    seconds: float = 8,
    flame_dir: Path | None = None,
) -> dict[str, Any]:
    """perf cpu-clock samples of each meshcore hop under wrk load; flat, by symbol; and,
    with `flame_dir`, a flame graph of each (see `flame_graph`)."""
    out: dict[str, Any] = {}
    if not perf_supported():
        return {"tool": "none", "note": "perf unavailable; see the callgrind top functions"}
    hw = subprocess.run(
        ["perf", "stat", "-e", "instructions", "true"], capture_output=True, text=True, check=False
    )
    for name in ("meshcore-tcp", "meshcore-http"):
        s = systems.get(name)
        if s is None:
            continue
        data = work / f"perf-{name}.data"
        load = perf_under_wrk(lab, s, data, seconds, ["-F", "4999"])
        rep = subprocess.run(
            [
                "perf",
                "report",
                "-i",
                str(data),
                "--stdio",
                "--no-children",
                "--sort",
                "dso,sym",
                "--percent-limit",
                "0.7",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        rows = [ln.strip() for ln in rep.splitlines() if ln.strip() and not ln.startswith("#")]
        out[name] = {"rps_during_profile": load["rps"], "top": rows[:40]}
        if flame_dir is not None:
            out[name]["flame_graph"] = flame_graph(lab, s, name, work, flame_dir, seconds=seconds)
    return {
        "tool": "perf record -e cpu-clock -F 4999 (flat, self time)",
        "hardware_counters": "not supported" not in hw.stderr,
        "systems": out,
    }


def flame_graph(
    lab: Lab, s: System, name: str, work: Path, out_dir: Path, *, seconds: float
) -> dict[str, Any]:
    """A flame graph of `s` under wrk load: perf with DWARF call graphs (the release build
    keeps no frame pointers; its unwind tables are enough), folded and drawn by inferno
    (the Rust port of Brendan Gregg's FlameGraph; `make bench-flame-deps`)."""
    collapse, draw = tool("inferno-collapse-perf"), tool("inferno-flamegraph")
    data = work / f"perf-{name}-graph.data"
    load = perf_under_wrk(lab, s, data, seconds, ["-F", "499", "--call-graph", "dwarf,16384"])
    script = subprocess.run(
        ["perf", "script", "-i", str(data)], capture_output=True, check=False, timeout=600
    ).stdout
    folded = subprocess.run(
        [collapse], input=script, capture_output=True, check=True, timeout=600
    ).stdout
    svg = out_dir / f"flame-{name}.svg"
    title = f"{name} under wrk (32 connections), perf cpu-clock 499 Hz, DWARF call graphs"
    with svg.open("wb") as f:
        subprocess.run(
            [draw, "--title", title, "--minwidth", "0.2"],
            input=folded,
            stdout=f,
            check=True,
            timeout=600,
        )
    return {"svg": svg.name, "samples": folded.count(b"\n"), "rps_during_profile": load["rps"]}


def perf_under_wrk(
    lab: Lab, s: System, data: Path, seconds: float, options: list[str]
) -> dict[str, Any]:
    """`perf record -e cpu-clock` of `s`'s proxy into `data` while wrk (32 connections)
    drives it; returns wrk's result."""
    rec = subprocess.Popen(
        [
            *("perf", "record", "-e", "cpu-clock", *options, "-p", str(s.proxy_pids[0])),
            *("-o", str(data), "--", "sleep", str(seconds)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    load = loadgen.wrk(s.port, seconds - 1, connections=32, cpus=lab.client_cpus)
    rec.wait(120)
    return load
