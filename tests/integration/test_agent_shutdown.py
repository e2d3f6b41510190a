"""A sidecar agent exits promptly on SIGTERM even when its control plane goes away at the
same moment (as when a pod is deleted): the reconnect loop must not outlive the drain."""

from __future__ import annotations

import signal
import time
from functools import partial
from pathlib import Path

from tests.integration.support import echo_server, free_port
from tests.integration.test_control_plane import ControlPlane, get, mesh_yaml, spawn, wait_for


def test_sigterm_to_agent_and_control_plane_together(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    with echo_server("v1") as upstream:
        (config_dir / "mesh.yaml").write_text(mesh_yaml(upstream, {"a1": free_port()}))
        # The race (a cancellation arriving as a reconnect attempt completes) is timing
        # dependent, so try it several times.
        for _ in range(5):
            control = ControlPlane(free_port(), free_port(), config_dir)
            control.start()
            status = free_port()
            args = ["--control-plane", f"127.0.0.1:{control.port}", "--name", "a1"]
            args += ["--namespace", "default", "--labels", "app=a1", "--status-port", str(status)]
            args += ["--admin-port", str(free_port()), "--metrics-port", "-1"]
            agent = spawn(["sidecar", *args, "--outbound-port", str(free_port())])
            try:
                wait_for(partial(_ready, status), what="agent ready")
                assert control.proc is not None
                control.proc.send_signal(signal.SIGTERM)
                agent.send_signal(signal.SIGTERM)
                started = time.monotonic()
                assert agent.wait(timeout=10) == 0
                assert time.monotonic() - started < 5
            finally:
                if agent.poll() is None:
                    agent.kill()
                agent.communicate()
                control.stop()


def _ready(status_port: int) -> bool:
    return get(status_port, "/healthz/ready")[0] == 200
