"""``meshcore control`` and three ``meshcore sidecar --control-plane`` agents as real
processes over real sockets: edits reach every sidecar and only good ones do, NACKs are
reported with the data plane's reason, sidecars outlive the control plane and resync
without re-applying, readiness waits for the first snapshot, and proxy-status and
proxy-config read it all back.

Routing is checked through TCP services (ServiceEntry ports with protocol TCP reached
through a Sidecar egress listener per workload); HTTP parts are checked by version only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import REPO, echo_server, free_port, greeting

WORKLOADS = ("a1", "a2", "a3")


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(port: int, path: str) -> Any:
    status, body = get(port, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return
        except (OSError, KeyError, ValueError) as error:
            last = error
        time.sleep(0.05)
    raise AssertionError(f"not met in {timeout}s: {what} (last: {last!r})")


def mesh_yaml(upstream: int, egress: dict[str, int], extra: str = "") -> str:
    """A TCP service with one endpoint, and one Sidecar per workload with its egress port."""
    docs = [
        f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.mesh.local]
  location: MESH_INTERNAL
  ports: [{{number: 7000, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {upstream}}}}}]
"""
    ]
    for workload, port in egress.items():
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo-{workload}, namespace: default}}
spec:
  hosts: [echo-{workload}.mesh.local]
  location: MESH_INTERNAL
  ports: [{{number: {port}, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {upstream}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {workload}, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: {workload}}}}}
  egress:
  - port: {{number: {port}, protocol: TCP, name: tcp-echo}}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./echo-{workload}.mesh.local"]
  - hosts: ["./*"]
"""
        )
    return "---\n".join(docs) + extra


def write(path: Path, text: str) -> None:
    """Replaces a file the way editors do (write a temp file, rename over)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "meshcore.cli.main", "--log-level", "debug", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Stops a process; returns its log."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, err = proc.communicate()
    return err


@dataclass
class ControlPlane:
    port: int
    monitoring: int
    config_dir: Path
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = spawn(
            [
                "control",
                "--config-dir",
                str(self.config_dir),
                "--port",
                str(self.port),
                "--monitoring-port",
                str(self.monitoring),
                "--keepalive-seconds",
                "1",
                "--debounce-after",
                "0.05",
                "--poll-interval",
                "0.05",
            ]
        )
        wait_for(lambda: get(self.monitoring, "/ready")[0] == 200, what="control plane ready")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        assert self.proc is not None
        return stop(self.proc, sig)

    def syncz(self) -> dict[str, Any]:
        result: dict[str, Any] = get_json(self.monitoring, "/debug/syncz")
        return result

    def proxies(self) -> dict[str, dict[str, Any]]:
        return {p["proxy"]: p for p in self.syncz()["proxies"]}

    def metric(self, name: str) -> float:
        text = get(self.monitoring, "/metrics")[1].decode()
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
        return sum(values)


@dataclass
class Agent:
    workload: str
    admin: int
    status: int
    metrics: int
    outbound: int
    egress: int
    proc: subprocess.Popen[str] | None = None

    @property
    def id(self) -> str:
        return f"{self.workload}.default"

    def start(self, control_port: int) -> None:
        self.proc = spawn(
            [
                "sidecar",
                "--control-plane",
                f"127.0.0.1:{control_port}",
                "--name",
                self.workload,
                "--namespace",
                "default",
                "--labels",
                f"app={self.workload}",
                "--admin-port",
                str(self.admin),
                "--status-port",
                str(self.status),
                "--metrics-port",
                str(self.metrics),
                "--outbound-port",
                str(self.outbound),
                "--concurrency",
                "1",
                "--drain-seconds",
                "1",
            ]
        )

    def ready(self) -> bool:
        return get(self.status, "/healthz/ready")[0] == 200

    def version(self) -> str | None:
        dump = get(self.admin, "/config_dump")
        return json.loads(dump[1])["version"] if dump[0] == 200 else None

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = get_json(self.admin, "/stats")
        return result

    def prometheus(self) -> str:
        return get(self.metrics, "/stats/prometheus")[1].decode()


@dataclass
class Mesh:
    control: ControlPlane
    agents: list[Agent]
    config: Path
    upstreams: dict[str, int]

    def edit(self, upstream: str, egress: dict[str, int] | None = None, extra: str = "") -> None:
        ports = egress or {a.workload: a.egress for a in self.agents}
        write(self.config, mesh_yaml(self.upstreams[upstream], ports, extra))

    def versions(self) -> list[str | None]:
        """Each sidecar's serving version (each workload has its own Sidecar, so they differ)."""
        return [a.version() for a in self.agents]

    def moved_from(self, before: list[str | None]) -> bool:
        now = self.versions()
        return None not in now and all(a != b for a, b in zip(now, before, strict=True))

    def all_synced(self) -> bool:
        proxies = self.control.proxies()
        return len(proxies) == len(self.agents) and all(
            p["state"] == "SYNCED" for p in proxies.values()
        )


def _kill(process: ControlPlane | Agent) -> None:
    if process.proc is not None:
        stop(process.proc, signal.SIGKILL)


@contextmanager
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    with ExitStack() as stack:
        upstreams = {name: stack.enter_context(echo_server(name)) for name in ("v1", "v2")}
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        agents = [
            Agent(w, free_port(), free_port(), free_port(), free_port(), free_port())
            for w in WORKLOADS
        ]
        config = config_dir / "mesh.yaml"
        m = Mesh(ControlPlane(free_port(), free_port(), config_dir), agents, config, upstreams)
        m.edit("v1")
        m.control.start()
        stack.callback(_kill, m.control)
        for agent in agents:
            agent.start(m.control.port)
            stack.callback(_kill, agent)
        wait_for(lambda: all(a.ready() for a in agents), what="agents ready")
        wait_for(m.all_synced, what="all SYNCED")
        yield m


def test_edits_reach_every_sidecar_and_broken_ones_none(tmp_path: Path) -> None:
    with mesh(tmp_path) as m:
        first = m.versions()
        assert all(v is not None and v.startswith("sha256:") for v in first)
        for agent in m.agents:
            assert greeting(agent.egress) == "v1"

        m.edit("v2")
        wait_for(lambda: m.moved_from(first), what="new version on every sidecar")
        second = m.versions()
        wait_for(m.all_synced, what="SYNCED after the edit")
        proxies = m.control.proxies()
        assert [proxies[a.id]["version"] for a in m.agents] == second
        for agent in m.agents:
            assert greeting(agent.egress) == "v2"
        wait_for(lambda: m.control.metric("meshcore_control_convergence_seconds_count") >= 1)
        assert m.control.metric('meshcore_control_pushes_total{result="ack"}') >= 6

        # A broken edit: reported (log, metric, syncz, analyze) and pushed to nobody.
        write(
            m.config,
            mesh_yaml(m.upstreams["v1"], {a.workload: a.egress for a in m.agents})
            + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: broken, namespace: default}\n"
            "spec: {hosts: [echo.mesh.local], tcp: [{route: [{destination: {host: echo.mesh.local,"
            " port: {number: 99999}}}]}]}\n",
        )
        wait_for(lambda: m.control.syncz()["rejected"] is not None, what="rejection reported")
        assert m.control.metric("meshcore_control_config_errors") >= 1
        errors = m.control.syncz()["rejected"]["errors"]
        assert any("99999" in e["message"] or "number" in (e["path"] or "") for e in errors)
        assert all(e["file"] == str(m.config) for e in errors)
        analyzed = get_json(m.control.monitoring, "/debug/analyze")
        assert any(d["level"] == "Error" and d["file"] == str(m.config) for d in analyzed)
        time.sleep(0.5)
        assert m.versions() == second
        assert m.all_synced()
        for agent in m.agents:
            assert greeting(agent.egress) == "v2"

        # Fixing the file is accepted again.
        m.edit("v1")
        wait_for(lambda: m.control.syncz()["rejected"] is None, what="fix accepted")
        wait_for(lambda: m.versions() == first, what="back to the first version")
        log = m.control.stop()
    assert "config rejected" in log
    assert "VirtualService default/broken" in log
    assert str(m.config) in log


def test_nack_is_reported_with_the_data_plane_reason(tmp_path: Path) -> None:
    with mesh(tmp_path) as m, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        before = m.versions()
        a1, a2, a3 = m.agents
        m.edit("v2", {"a1": busy, "a2": a2.egress, "a3": a3.egress})
        wait_for(lambda: m.control.proxies()[a1.id]["state"] == "NACKED", what="a1 NACKED")
        wait_for(lambda: m.versions()[1:] != before[1:], what="a2, a3 moved")
        proxies = m.control.proxies()
        nack = proxies[a1.id]["nack"]
        assert nack["code"] == "bind_failed"
        assert nack["path"].startswith("listeners[")
        assert nack["path"].endswith("].port")
        assert proxies[a1.id]["version"] == before[0]
        wait_for(lambda: m.control.proxies()[a2.id]["state"] == "SYNCED")
        assert a1.version() == before[0]
        assert greeting(a1.egress) == "v1"
        assert 'meshcore_agent_snapshot_applies_total{result="nack"} 1' in a1.prometheus()

        status = cli("proxy-status", "--control-plane", f"127.0.0.1:{m.control.monitoring}")
        row = next(line for line in status.splitlines() if line.startswith(a1.id))
        assert "NACKED" in row
        assert "STALE" in row
        assert f"at {nack['path']} (bind_failed)" in status


def test_sidecars_outlive_the_control_plane_and_resync_without_reapplying(
    tmp_path: Path,
) -> None:
    with mesh(tmp_path) as m:
        versions = m.versions()
        applies = [a.stats()["applies_accepted"] for a in m.agents]
        m.control.stop(signal.SIGKILL)
        time.sleep(1.0)
        for agent in m.agents:
            assert agent.ready()
            assert greeting(agent.egress) == "v1"
            assert "meshcore_agent_control_plane_connected 0" in agent.prometheus()

        m.control.start()
        wait_for(m.all_synced, what="resynced")
        assert m.versions() == versions
        assert [a.stats()["applies_accepted"] for a in m.agents] == applies
        assert m.control.metric('meshcore_control_pushes_total{result="sent"}') == 0

        # An edit while the sidecars were away reaches them when they come back.
        m.control.stop(signal.SIGKILL)
        m.edit("v2")
        m.control.start()
        wait_for(lambda: m.moved_from(versions), what="edit made while away arrived")
        for agent in m.agents:
            assert greeting(agent.egress) == "v2"


def test_readiness_waits_for_the_first_snapshot(tmp_path: Path) -> None:
    with echo_server("v1") as upstream:
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        agent = Agent("a1", free_port(), free_port(), free_port(), free_port(), free_port())
        write(config_dir / "mesh.yaml", mesh_yaml(upstream, {"a1": agent.egress}))
        control = ControlPlane(free_port(), free_port(), config_dir)
        agent.start(control.port)
        assert agent.proc is not None
        try:
            wait_for(lambda: get(agent.status, "/healthz/ready")[0] == 503, what="not ready")
            time.sleep(0.5)
            assert not agent.ready()
            control.start()
            wait_for(agent.ready, what="ready after the first snapshot")
            assert greeting(agent.egress) == "v1"
            agent.proc.send_signal(signal.SIGHUP)  # ignored in this mode
            time.sleep(0.3)
            assert agent.proc.poll() is None
            assert agent.ready()
        finally:
            log = stop(agent.proc)
            if control.proc is not None:
                control.stop()
    assert agent.proc.returncode == 0
    assert "SIGHUP ignored" in log
    assert "draining" in log


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "meshcore.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_proxy_status_and_proxy_config(tmp_path: Path) -> None:
    extra = """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.mesh.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.mesh.local]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: web.mesh.local}}]
"""
    with mesh(tmp_path) as m:
        m.edit("v1", extra=extra)
        wait_for(lambda: m.control.syncz()["generation"] == 2 and m.all_synced())
        monitoring = f"127.0.0.1:{m.control.monitoring}"
        status = cli("proxy-status", "--control-plane", monitoring)
        lines = status.splitlines()
        assert lines[0].split()[:5] == ["NAME", "CLUSTERS", "LISTENERS", "ROUTES", "VERSION"]
        assert sorted(line.split()[0] for line in lines[1:]) == [a.id for a in m.agents]
        versions = dict(zip((a.id for a in m.agents), m.versions(), strict=True))
        for line in lines[1:]:
            name, *columns = line.split()
            assert columns[:4] == ["SYNCED", "SYNCED", "SYNCED", versions[name]]
        a1 = m.agents[0]
        one = json.loads(cli("proxy-status", a1.id, "--control-plane", monitoring, "-o", "json"))
        assert [p["proxy"] for p in one] == [a1.id]

        clusters = cli("proxy-config", "clusters", a1.id, "--admin-port", str(a1.admin))
        assert clusters.split()[:3] == ["SERVICE", "FQDN", "PORT"]
        rows = [line.split() for line in clusters.splitlines()]
        assert ["echo-a1.mesh.local", str(a1.egress), "-", "OUTBOUND", "STATIC"] in [
            row[:5] for row in rows
        ]
        listeners = cli("proxy-config", "listeners", a1.id, "--admin-port", str(a1.admin))
        assert f"127.0.0.1_{a1.egress}" in listeners
        assert f"Cluster: outbound|{a1.egress}||echo-a1.mesh.local" in listeners
        endpoints = cli("proxy-config", "endpoints", a1.id, "--admin-port", str(a1.admin))
        assert f"127.0.0.1:{m.upstreams['v1']}" in endpoints
        routes = cli("proxy-config", "routes", a1.id, "--control-plane", monitoring)
        row = next(line for line in routes.splitlines() if "/api*" in line)
        assert "VirtualService web.default http[0]" in row
        assert "outbound|80||web.mesh.local" in row
        admin = str(a1.admin)
        dump = json.loads(cli("proxy-config", "all", a1.id, "--admin-port", admin, "-o", "json"))
        assert dump["version"] == versions[a1.id]
        from_control = json.loads(
            cli("proxy-config", "all", a1.id, "--control-plane", monitoring, "-o", "json")
        )
        assert from_control["version"] == versions[a1.id]


@pytest.mark.parametrize("mode", ["control-plane"])
def test_agent_process_stays_lean(tmp_path: Path, mode: str) -> None:
    """The agent never imports pydantic, the compiler, the config models or kubernetes."""
    with echo_server("v1") as upstream:
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        egress, status = free_port(), free_port()
        write(config_dir / "mesh.yaml", mesh_yaml(upstream, {"a1": egress}))
        control = ControlPlane(free_port(), free_port(), config_dir)
        control.start()
        modules = tmp_path / "modules.txt"
        script = f"""
import os, signal, socket, sys, threading, time
def watch():
    while True:
        try:
            with socket.create_connection(("127.0.0.1", {status}), timeout=1) as s:
                s.sendall(b"GET /healthz/ready HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        time.sleep(0.05)
    with open({str(modules)!r}, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, daemon=True).start()
from meshcore.cli.main import main
sys.exit(main(["sidecar", "--{mode}", "127.0.0.1:{control.port}", "--name", "a1",
    "--namespace", "default", "--labels", "app=a1", "--admin-port", "{free_port()}",
    "--status-port", "{status}", "--metrics-port", "-1", "--outbound-port", "{free_port()}"]))
"""
        try:
            done = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=60,
                check=False,
            )
        finally:
            control.stop()
    assert done.returncode == 0, done.stderr
    loaded = set(modules.read_text().split())
    assert "meshcore._core" in loaded
    assert "meshcore.agent.client" in loaded
    forbidden = (
        "pydantic",
        "meshcore.compile",
        "meshcore.config",
        "meshcore.control",
        "kubernetes",
        "yaml",
    )
    assert (
        sorted(m for m in loaded if m.split(".")[0] in forbidden or m.startswith(forbidden)) == []
    )
