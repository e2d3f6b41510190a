"""``meshcore sidecar --config-dir DIR`` as a real process: compile locally, reload on edit
(debounced), keep the last good config on a broken edit, skip an unchanged snapshot,
report readiness and drain on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

from tests.integration.support import echo_server, free_port, greeting
from tests.integration.test_control_plane import get, mesh_yaml, spawn, stop, wait_for, write


def test_static_sidecar_reloads_on_edit_and_keeps_the_last_good_config(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config = config_dir / "mesh.yaml"
    admin, status, egress = free_port(), free_port(), free_port()
    with echo_server("v1") as v1, echo_server("v2") as v2:
        write(config, mesh_yaml(v1, {"a1": egress}))
        proc = spawn(
            [
                "sidecar",
                "--config-dir",
                str(config_dir),
                "--name",
                "a1",
                "--namespace",
                "default",
                "--labels",
                "app=a1",
                "--admin-port",
                str(admin),
                "--status-port",
                str(status),
                "--metrics-port",
                "-1",
                "--outbound-port",
                str(free_port()),
                "--debounce-after",
                "0.05",
                "--poll-interval",
                "0.05",
                "--concurrency",
                "1",
            ]
        )
        try:

            def stats() -> dict[str, object]:
                result: dict[str, object] = json.loads(get(admin, "/stats")[1])
                return result

            wait_for(lambda: get(status, "/healthz/ready")[0] == 200, what="ready")
            assert greeting(egress) == "v1"
            first = stats()["version"]

            write(config, mesh_yaml(v2, {"a1": egress}))
            wait_for(lambda: stats()["version"] != first, what="edit applied")
            assert greeting(egress) == "v2"
            assert stats()["applies_accepted"] == 2

            # Broken: a schema error. Reported with file, object and field; v2 keeps serving.
            broken = mesh_yaml(v1, {"a1": egress}).replace("number: 7000", "number: 0")
            write(config, broken)
            time.sleep(1.0)
            assert greeting(egress) == "v2"
            assert stats()["applies_accepted"] == 2

            # An edit this proxy's snapshot does not depend on is not applied again.
            write(config, mesh_yaml(v2, {"a1": egress}) + "\n# a comment\n")
            time.sleep(1.0)
            assert stats()["applies_accepted"] == 2
            assert greeting(egress) == "v2"

            # SIGHUP reloads now; same snapshot, so nothing is applied either.
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert stats()["applies_accepted"] == 2
        finally:
            log = stop(proc)
    assert proc.returncode == 0
    assert "config rejected (1 errors); still serving" in log
    assert f"(ServiceEntry default/echo {config}:" in log
    assert "spec.ports[0].number" in log
    assert "did not; not re-applied" in log
    assert "draining" in log


def test_static_sidecar_without_valid_config_is_not_ready(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config = config_dir / "mesh.yaml"
    config.write_text("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nspec: [\n")
    status, egress = free_port(), free_port()
    with echo_server("v1") as v1:
        proc = spawn(
            [
                "sidecar",
                "--config-dir",
                str(config_dir),
                "--name",
                "a1",
                "--namespace",
                "default",
                "--labels",
                "app=a1",
                "--admin-port",
                str(free_port()),
                "--status-port",
                str(status),
                "--metrics-port",
                "-1",
                "--outbound-port",
                str(free_port()),
                "--poll-interval",
                "0.05",
            ]
        )
        try:
            wait_for(lambda: get(status, "/healthz/ready")[0] == 503, what="up, not ready")
            write(config, mesh_yaml(v1, {"a1": egress}))
            wait_for(lambda: get(status, "/healthz/ready")[0] == 200, what="ready once fixed")
            assert greeting(egress) == "v1"
        finally:
            log = stop(proc)
    assert "still serving nothing" in log
    assert str(config) in log


def test_sigterm_drains_inbound_keeps_outbound_and_exits_when_idle(tmp_path: Path) -> None:
    """Istio's sidecar shutdown: not ready, no new inbound connections, outbound still
    working for the app's own shutdown, and exit once nothing is in flight - well before
    the drain deadline, not after a fixed sleep."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    admin, status, egress, ingress = free_port(), free_port(), free_port(), free_port()
    with echo_server("v1") as v1, echo_server("app") as app:
        sidecar = f"""---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: a1-ingress, namespace: default}}
spec:
  workloadSelector: {{labels: {{role: server}}}}
  ingress:
  - port: {{number: {ingress}, protocol: TCP, name: tcp-app}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:{app}
    captureMode: NONE
  egress:
  - port: {{number: {egress}, protocol: TCP, name: tcp-echo}}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./echo.mesh.local"]
"""
        egress_service = mesh_yaml(v1, {}).replace("number: 7000", f"number: {egress}")
        write(config_dir / "mesh.yaml", egress_service + sidecar)
        args = ["--config-dir", str(config_dir), "--name", "a1", "--namespace", "default"]
        args += ["--labels", "role=server", "--admin-port", str(admin), "--status-port"]
        args += [str(status), "--metrics-port", "-1", "--outbound-port", str(free_port())]
        proc = spawn(["sidecar", *args, "--concurrency", "1", "--drain-seconds", "60"])
        try:
            wait_for(lambda: get(status, "/healthz/ready")[0] == 200, what="ready")
            assert greeting(ingress) == "app"
            held = socket.create_connection(("127.0.0.1", ingress), timeout=5)
            reader = held.makefile("rb")
            assert reader.readline() == b"app\n"

            proc.send_signal(signal.SIGTERM)
            wait_for(lambda: get(status, "/healthz/ready")[0] == 503, what="not ready")
            wait_for(lambda: _refused(ingress), what="inbound closed")
            assert greeting(egress) == "v1"  # outbound keeps working while draining
            held.sendall(b"still here\n")
            assert reader.readline() == b"still here\n"
            assert proc.poll() is None  # a connection is in flight: still draining

            closed_at = time.monotonic()
            reader.close()
            held.close()
            proc.wait(timeout=20)
            assert time.monotonic() - closed_at < 20  # far from the 60 s deadline
        finally:
            log = stop(proc)
    assert proc.returncode == 0
    assert "inbound closed" in log
    assert "deadline passed" not in log


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False
