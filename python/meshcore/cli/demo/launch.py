"""One demo run's mesh and bringing it up: the `Run` (temp config directory, children,
ports), then the control plane and the apps, the sidecars once the control plane is ready,
and a wait until every app accepts and every sidecar has applied a snapshot."""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meshcore.cli.demo import probes
from meshcore.cli.demo.errors import DemoError, Interrupted
from meshcore.cli.demo.mesh import Mesh, Step
from meshcore.cli.demo.ports import PortPicker, SidecarPorts
from meshcore.cli.demo.probes import SidecarStats
from meshcore.cli.demo.processes import Processes

LIVE_ROUTE_FILE = "virtual-service-reviews.yaml"
"""The file of the temp config directory that each step replaces."""
NAMESPACE = "default"
READY_TIMEOUT = 30.0


@dataclass
class Run:
    """Everything one demo run started."""

    args: argparse.Namespace
    mesh: Mesh
    temp: Path
    config_dir: Path
    processes: Processes
    stop: asyncio.Event
    control_port: int = 0
    monitoring_port: int = 0
    sidecar_ports: dict[str, SidecarPorts] = field(default_factory=dict)
    free_port: PortPicker = field(default_factory=PortPicker)

    @property
    def entry_ports(self) -> SidecarPorts:
        return self.sidecar_ports[self.mesh.entry.name]

    def write_config(self, first: Step) -> None:
        """The control plane's config directory: the example's files and `first`'s route."""
        self.config_dir.mkdir()
        for path in self.mesh.base_files:
            shutil.copy(path, self.config_dir / path.name)
        self.apply_step(first)

    def apply_step(self, step: Step) -> None:
        """Replaces the live route file atomically (the control plane sees one edit)."""
        staged = self.temp / f".{LIVE_ROUTE_FILE}.staged"
        staged.write_text(step.text, encoding="utf-8")
        staged.replace(self.config_dir / LIVE_ROUTE_FILE)

    def sidecar_stats(self) -> SidecarStats:
        sidecars = sorted(self.sidecar_ports.items())
        return {name: probes.stats(ports.admin) for name, ports in sidecars}


async def launch(run: Run) -> None:
    """Starts every process and returns once the mesh serves."""
    await _start(run)
    await _wait_ready(run)


async def _start(run: Run) -> None:
    """The control plane and the apps, then (once the control plane listens) the sidecars."""
    run.control_port, run.monitoring_port = run.free_port(), run.free_port()
    run.processes.start(
        "control plane",
        "meshcore-control",
        _meshcore(
            "control",
            "--config-dir",
            str(run.config_dir),
            "--port",
            str(run.control_port),
            "--monitoring-port",
            str(run.monitoring_port),
            "--debounce-after",
            "0.05",
            "--poll-interval",
            "0.1",
        ),
    )
    for w in run.mesh.workloads:
        run.sidecar_ports[w.name] = SidecarPorts(run.free_port(), run.free_port(), run.free_port())
        app = [sys.executable, "-m", "meshcore.cli.samples.bookinfo", w.service]
        app += ["--version", w.version, "--port", str(w.app_port)]
        app += ["--proxy", f"127.0.0.1:{run.sidecar_ports[w.name].outbound}"]
        run.processes.start("app", w.name, app)
    control_ready = functools.partial(probes.ok, run.monitoring_port, "/ready")
    await _wait_for(run, [("the control plane (a valid config loaded)", control_ready)])
    for w in run.mesh.workloads:
        ports = run.sidecar_ports[w.name]
        run.processes.start(
            "sidecar",
            w.name,
            _meshcore(
                "sidecar",
                "--control-plane",
                f"127.0.0.1:{run.control_port}",
                "--name",
                w.name,
                "--namespace",
                NAMESPACE,
                "--labels",
                w.labels,
                "--service-account",
                w.service_account,
                "--inbound-port",
                str(w.inbound_port),
                "--outbound-port",
                str(ports.outbound),
                "--admin-port",
                str(ports.admin),
                "--status-port",
                str(ports.status),
                "--metrics-port",
                "-1",
                "--drain-seconds",
                "1",
            ),
        )


def _meshcore(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshcore.cli.main", "--log-level", "info", *args]


async def _wait_ready(run: Run) -> None:
    """Until every app accepts and every sidecar is ready (has applied a snapshot)."""
    checks: list[tuple[str, Callable[[], bool]]] = []
    for w in run.mesh.workloads:
        status = run.sidecar_ports[w.name].status
        checks.append((f"the {w.name} app", functools.partial(probes.tcp_open, w.app_port)))
        checks.append(
            (f"the {w.name} sidecar", functools.partial(probes.ok, status, "/healthz/ready"))
        )
    await _wait_for(run, checks)


async def _wait_for(run: Run, checks: list[tuple[str, Callable[[], bool]]]) -> None:
    """Until every check passes; fails naming the ones that did not, or a dead child."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(checks)
    while pending:
        run.processes.check()
        if run.stop.is_set():
            raise Interrupted("interrupted while starting")
        pending = [(what, ok) for what, ok in pending if not await asyncio.to_thread(ok)]
        if not pending:
            return
        if problem := await asyncio.to_thread(probes.sync_problem, run.monitoring_port):
            raise DemoError(problem)
        if time.monotonic() > deadline:
            names = ", ".join(what for what, _ in pending)
            raise DemoError(f"not ready after {READY_TIMEOUT:g}s: {names} (logs in {run.temp})")
        await asyncio.sleep(0.1)
