"""The systems under test: the upstream and every proxy topology, started as real processes.

Every process binds 127.0.0.1 on a free port, lives in its own session (so it and its
children are killed together by process group) and keeps its files under one work directory
in bench/.work. `Processes.close()` (also run at exit) kills every process this module
started, by its own process group id.

Topologies, all in front of the same upstream (nginx, one worker, a fixed 1 KB body):

- ``direct``: the client talks to the upstream;
- ``relay``: bench/relay, a tokio accept/connect/copy loop, the floor of a user-space hop;
- ``meshcore-tcp``: one ``meshcore sidecar --snapshot`` with an L4 (``protocol: tcp``) listener;
- ``meshcore-http``: the same with an HTTP listener (``protocol: http``), when apply takes it;
- ``meshcore-pair``: a client sidecar in front of a server sidecar (the mesh's real path);
- ``relay-pair``: two relays in a row, the floor of two user-space hops (the pair's reference);
- ``nginx``: nginx ``proxy_pass`` with upstream keep-alive, one worker;
- ``haproxy``: haproxy in HTTP mode, one thread.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
BIN = WORK / "bin"
RELAY = WORK / "relay-target" / "release" / "meshcore-bench-relay"
BODY_BYTES = 1024
BIG_BYTES = 100 * 1024 * 1024

# Core plan for a 2-core machine: proxies on core 1, load generator and upstream on core 0.
PROXY_CPUS = "1"
CLIENT_CPUS = "0"


def cpu_plan() -> tuple[str, str]:
    """(proxy cpus, client+upstream cpus); on one core everything shares core 0."""
    n = os.cpu_count() or 1
    if n < 2:
        return "0", "0"
    return PROXY_CPUS, CLIENT_CPUS


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def nofile() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_nofile(limit: int = 200_000) -> int:
    """Raise RLIMIT_NOFILE for this process and its children (root may raise the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (limit, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            return want
        except (ValueError, OSError):
            continue
    return soft


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (threads are included in a pid)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cpu_ns(pid: int) -> int:
    """On-CPU time of a process's live threads and children in ns (/proc/*/task/*/schedstat).

    The same quantity as utime+stime without the clock-tick rounding (10 ms), which matters
    for a few thousand requests; threads that exited are missing (the suite's proxies keep
    their threads).
    """
    total = 0
    for p in [pid, *children(pid)]:
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total


def rss_kb(pid: int) -> int:
    """Resident set size of a process and its children, in KiB."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def threads(pids: list[int]) -> set[int]:
    """The thread ids of these processes and of their children."""
    out: set[int] = set()
    for pid in pids:
        for p in [pid, *children(pid)]:
            with contextlib.suppress(OSError):
                out |= {int(t.name) for t in Path(f"/proc/{p}/task").iterdir()}
    return out


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*") if Path(f"/proc/{pid}").exists() else []:
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


class Processes:
    """Every process the suite starts; closed (killed by process group) at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        atexit.register(self.close)

    def start(
        self,
        argv: list[str],
        cpus: str | None,
        log: Path,
        stdout: int | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        if cpus is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpus, *argv]
        logf = log.open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=stdout if stdout is not None else logf,
            stderr=logf,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        logf.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 3) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # A session leader's children may outlive it: sweep the group either way.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(self.procs):
            self.stop(proc, grace=2)


@dataclass
class System:
    """A running topology: where the client connects and which pids are the proxy."""

    name: str
    port: int  # HTTP/1.1 entry
    h2_port: int | None = None  # HTTP/2 (cleartext, prior knowledge) entry, if any
    proxy_pids: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    note: str = ""


def _nginx_common(work: Path, workers: int = 1, master: bool = True) -> str:
    for d in ("cb", "px", "fc", "uw", "sc"):
        (work / d).mkdir(exist_ok=True)
    # Without a master the worker is the started process itself (callgrind counts it).
    single = "" if master else "master_process off;\n"
    return f"""{single}
worker_processes {workers};
worker_rlimit_nofile {nofile()};
daemon off;
pid {work}/nginx.pid;
error_log stderr error;
events {{ worker_connections 65536; multi_accept off; }}
"""


def _nginx_http_common(work: Path) -> str:
    return f"""
  access_log off;
  client_body_temp_path {work}/cb; proxy_temp_path {work}/px; fastcgi_temp_path {work}/fc;
  uwsgi_temp_path {work}/uw; scgi_temp_path {work}/sc;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  sendfile on; tcp_nodelay on;
"""


class Lab:
    """Starts the upstream once and proxies on demand, all under one work directory."""

    def __init__(self, work: Path, procs: Processes) -> None:
        self.work = work
        self.procs = procs
        self.proxy_cpus, self.client_cpus = cpu_plan()
        self.up_port = 0
        self.up_h2_port = 0
        self.http_supported: bool | None = None
        self.notes: list[str] = []

    # -- upstream -------------------------------------------------------------------------
    def start_upstream(self) -> System:
        d = self.work / "upstream"
        d.mkdir(parents=True, exist_ok=True)
        big = d / "big.bin"
        if not big.exists() or big.stat().st_size != BIG_BYTES:
            with big.open("wb") as f:
                chunk = b"m" * (1 << 20)
                for _ in range(BIG_BYTES >> 20):
                    f.write(chunk)
        (d / "body.bin").write_bytes(b"x" * BODY_BYTES)
        self.up_port, self.up_h2_port = free_port(), free_port()
        conf = d / "nginx.conf"
        conf.write_text(
            _nginx_common(d)
            + "http {\n"
            + _nginx_http_common(d)
            + f"""
  server {{
    listen 127.0.0.1:{self.up_port} backlog=65535;
    listen 127.0.0.1:{self.up_h2_port} http2 backlog=65535;
    http2_max_requests 100000000;
    root {d};
    location = / {{ default_type application/octet-stream; try_files /body.bin =404; }}
    location = /big {{ default_type application/octet-stream; try_files /big.bin =404; }}
  }}
}}
"""
        )
        proc = self.procs.start(
            ["nginx", "-p", str(d), "-c", str(conf), "-e", "stderr"],
            self.client_cpus,
            d / "log",
        )
        wait_port(self.up_port, proc)
        wait_port(self.up_h2_port, proc)
        return System("upstream", self.up_port, self.up_h2_port, [proc.pid], [proc])

    # -- topologies -----------------------------------------------------------------------
    def start(self, name: str) -> System:
        starters: dict[str, Callable[[], System]] = {
            "direct": lambda: System("direct", self.up_port, self.up_h2_port),
            "relay": self._relay,
            "relay-pair": self._relay_pair,
            "meshcore-tcp": lambda: self._meshcore("meshcore-tcp", "tcp"),
            "meshcore-http": lambda: self._meshcore("meshcore-http", "http"),
            "meshcore-pair": self._pair,
            "nginx": self._nginx,
            "haproxy": self._haproxy,
        }
        return starters[name]()

    def stop(self, system: System) -> None:
        for proc in system.procs:
            self.procs.stop(proc)

    def _relay(self) -> System:
        d = self.work / "relay"
        d.mkdir(exist_ok=True)
        port, h2 = free_port(), free_port()
        argv = [
            str(RELAY),
            "1",
            f"127.0.0.1:{port}=127.0.0.1:{self.up_port}",
            f"127.0.0.1:{h2}=127.0.0.1:{self.up_h2_port}",
        ]
        proc = self.procs.start(argv, self.proxy_cpus, d / "log")
        wait_port(port, proc)
        return System("relay", port, h2, [proc.pid], [proc])

    def _relay_pair(self) -> System:
        """Two relays in a row on the proxy's core: the floor of two user-space hops, the
        reference for `meshcore-pair` (whose sidecars share that core the same way)."""
        d = self.work / "relay-pair"
        d.mkdir(exist_ok=True)
        client_port, server_port = free_port(), free_port()
        server = self.procs.start(
            [str(RELAY), "1", f"127.0.0.1:{server_port}=127.0.0.1:{self.up_port}"],
            self.proxy_cpus,
            d / "server.log",
        )
        wait_port(server_port, server)
        client = self.procs.start(
            [str(RELAY), "1", f"127.0.0.1:{client_port}=127.0.0.1:{server_port}"],
            self.proxy_cpus,
            d / "client.log",
        )
        wait_port(client_port, client)
        return System("relay-pair", client_port, None, [client.pid, server.pid], [client, server])

    def snapshot(self, listeners: list[tuple[str, int, int]]) -> bytes:
        """One listener per (protocol, port, upstream port), each to its own one-endpoint
        cluster; an HTTP listener routes every host and path to an HTTP/1.1 cluster."""
        snap: dict[str, object] = {"version": "bench"}
        ls: list[dict[str, object]] = []
        clusters: list[dict[str, object]] = []
        route_configs: list[dict[str, object]] = []
        for i, (protocol, port, up_port) in enumerate(listeners):
            listener: dict[str, object] = {
                "name": f"in{i}",
                "address": "127.0.0.1",
                "port": port,
                "protocol": protocol,
            }
            cluster: dict[str, object] = {
                "name": f"up{i}",
                "endpoints": [{"address": "127.0.0.1", "port": up_port}],
            }
            if protocol == "tcp":
                listener["tcp_route"] = {"clusters": [{"name": f"up{i}"}]}
            else:
                listener["route_config"] = f"rc{i}"
                cluster["protocol"] = "http1"
                route: dict[str, object] = {
                    "matches": [{"uri": {"prefix": "/"}}],
                    "route": {"clusters": [{"name": f"up{i}"}]},
                }
                vhost = {"name": "all", "domains": ["*"], "routes": [route]}
                route_configs.append({"name": f"rc{i}", "virtual_hosts": [vhost]})
            ls.append(listener)
            clusters.append(cluster)
        snap["listeners"] = ls
        if route_configs:
            snap["route_configs"] = route_configs
        snap["clusters"] = clusters
        return json.dumps(snap, indent=1).encode()

    def _sidecar(
        self, tag: str, listeners: list[tuple[str, int, int]], timeout: float = 30
    ) -> subprocess.Popen[bytes]:
        d = self.work / tag
        d.mkdir(exist_ok=True)
        snap = d / "snapshot.json"
        snap.write_bytes(self.snapshot(listeners))
        argv = [
            str(ROOT / ".venv" / "bin" / "meshcore"),
            "sidecar",
            "--snapshot",
            str(snap),
            "--concurrency",
            "1",
            "--admin-port",
            str(free_port()),
            "--status-port",
            "-1",
            "--metrics-port",
            "-1",
        ]
        proc = self.procs.start(argv, self.proxy_cpus, d / "log")
        try:
            for _, port, _ in listeners:
                wait_port(port, proc, timeout=timeout)
        except RuntimeError:
            self.procs.stop(proc)
            raise
        return proc

    def _meshcore_protocol(self, want: str) -> str:
        """`http` if this build's apply takes an HTTP listener, else `tcp` (noted once)."""
        if want != "http":
            return want
        if self.http_supported is None:
            try:
                proc = self._sidecar("probe", [("http", free_port(), self.up_port)], timeout=10)
                self.procs.stop(proc)
                self.http_supported = True
            except RuntimeError:
                self.http_supported = False
                log = (self.work / "probe" / "log").read_text(errors="replace")
                reason = next((ln for ln in log.splitlines() if "rejected" in ln), "")
                reason = reason.split("rejected:", 1)[-1].split(";")[0].strip()
                self.notes.append(
                    "this build's apply rejected an HTTP listener, so meshcore-http and "
                    f"meshcore-pair fell back to L4 (`protocol: tcp`): {reason}"
                )
        return "http" if self.http_supported else "tcp"

    def _meshcore(self, name: str, want: str) -> System:
        protocol = self._meshcore_protocol(want)
        port, h2 = free_port(), free_port()
        # The HTTP/2 entry: an L7 listener speaks h2c (prior knowledge) to clients and
        # HTTP/1.1 to the upstream, as nginx and haproxy do here; an L4 one passes h2c through.
        h2_up = self.up_h2_port if protocol == "tcp" else self.up_port
        proc = self._sidecar(name, [(protocol, port, self.up_port), (protocol, h2, h2_up)])
        note = "" if protocol == want else "L4 fallback"
        return System(name, port, h2, [proc.pid], [proc], note)

    def _pair(self) -> System:
        protocol = self._meshcore_protocol("http")
        server_port, client_port = free_port(), free_port()
        server = self._sidecar("pair-server", [(protocol, server_port, self.up_port)])
        client = self._sidecar("pair-client", [(protocol, client_port, server_port)])
        note = "" if protocol == "http" else "L4 fallback"
        return System(
            "meshcore-pair", client_port, None, [client.pid, server.pid], [client, server], note
        )

    def _nginx(self) -> System:
        port, h2 = free_port(), free_port()
        argv = self.nginx_argv(port, h2)
        proc = self.procs.start(argv, self.proxy_cpus, self.work / "nginx-proxy" / "log")
        wait_port(port, proc)
        return System("nginx", port, h2, [proc.pid], [proc])

    def nginx_argv(self, port: int, h2: int, master: bool = True) -> list[str]:
        """Writes the nginx proxy's config (one worker) and returns its command line."""
        d = self.work / "nginx-proxy"
        d.mkdir(exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(
            _nginx_common(d, master=master)
            + "http {\n"
            + _nginx_http_common(d)
            + f"""
  upstream up {{ server 127.0.0.1:{self.up_port}; keepalive 256; keepalive_requests 100000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=65535;
    listen 127.0.0.1:{h2} http2 backlog=65535;
    http2_max_requests 100000000;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_max_temp_file_size 0;
    }}
  }}
}}
"""
        )
        return ["nginx", "-p", str(d), "-c", str(conf), "-e", "stderr"]

    def _haproxy(self) -> System:
        port, h2 = free_port(), free_port()
        argv = self.haproxy_argv(port, h2)
        proc = self.procs.start(argv, self.proxy_cpus, self.work / "haproxy" / "log")
        wait_port(port, proc)
        return System("haproxy", port, h2, [proc.pid], [proc])

    def haproxy_argv(self, port: int, h2: int) -> list[str]:
        """Writes haproxy's config (one thread, foreground) and returns its command line."""
        d = self.work / "haproxy"
        d.mkdir(exist_ok=True)
        conf = d / "haproxy.cfg"
        conf.write_text(
            f"""
global
  nbthread 1
  maxconn {max(1000, (nofile() - 1000) // 2)}
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  http-reuse always
frontend h1
  bind 127.0.0.1:{port}
  default_backend up
frontend h2
  bind 127.0.0.1:{h2} proto h2
  default_backend up
backend up
  server s1 127.0.0.1:{self.up_port}
"""
        )
        return ["haproxy", "-f", str(conf), "-db"]


def tool(name: str) -> str:
    """A load tool: bench/.work/bin first (fortio), then PATH."""
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} is missing: run `make bench-deps` (or `make bench-smoke`)")
    return found
