"""MeshConfig end to end: a real ``meshcore sidecar --config-dir DIR --mesh FILE`` process
(static mode), curl as the client through its HTTP-proxy outbound listener, and a real
HTTP/1.1 upstream (Python's ``http.server``) that reports the header names it received
exactly as they arrived on the wire, and answers with a mixed-case header name of its own.

``meshConfig.defaultConfig.proxyHeaders.preserveHttp1HeaderCase: true`` must keep the case
of header names both ways; editing the mesh file to turn it off must, without a restart,
bring back the lower-casing (Envoy's, and meshcore's default), which also shows that the
first check could fail.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.test_sidecar_http import free_ports
from tests.integration.support import REPO
from tests.integration.test_control_plane import wait_for, write

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

HOST = "echo.default.svc.cluster.local"


class _Upstream(BaseHTTPRequestHandler):
    """Answers with the request's header names as received, one per line, and a header
    whose name is in mixed case."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = "\n".join(self.headers.keys()).encode()  # the names as they were on the wire
        self.send_response(200)
        self.send_header("X-Upstream-Mixed-Case", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what matters from the responses."""


@contextmanager
def upstream() -> Iterator[int]:
    """The upstream on a free port; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def config(upstream_port: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream_port}}}}}]
"""


def mesh_config(preserve: bool) -> str:
    value = "true" if preserve else "false"
    return f"defaultConfig:\n  proxyHeaders:\n    preserveHttp1HeaderCase: {value}\n"


@dataclass
class Sidecar:
    outbound: int
    admin: int
    mesh: Path
    log: Path

    def version(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        try:
            conn.request("GET", "/stats")
            version: str = json.loads(conn.getresponse().read())["version"]
            return version
        finally:
            conn.close()

    def curl(self, *args: str) -> tuple[list[str], str]:
        """One GET to the echo service through the outbound listener: the response's
        header lines as curl received them, and its body."""
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        out = subprocess.run(
            [
                "curl",
                "--silent",
                "--show-error",
                "--fail",
                "--max-time",
                "10",
                "--dump-header",
                "-",
                "--proxy",
                f"http://127.0.0.1:{self.outbound}",
                *args,
                f"http://{HOST}:8080/",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        ).stdout
        head, _, body = out.partition("\n\n")  # text mode: CRLF reads as LF
        return head.split("\n")[1:], body

    def apply_mesh(self, text: str) -> None:
        """Edits the mesh file and waits until the sidecar serves the snapshot it makes."""
        before = self.version()
        write(self.mesh, text)
        wait_for(lambda: self.version() != before, timeout=10, what="mesh edit applied")


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    outbound, inbound, admin, status = free_ports(4)
    with upstream() as upstream_port:
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        (config_dir / "echo.yaml").write_text(config(upstream_port))
        mesh = tmp_path / "mesh.yaml"
        mesh.write_text(mesh_config(preserve=True))
        log = tmp_path / "sidecar.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "meshcore.cli.main", "sidecar"),
                    *("--config-dir", str(config_dir), "--mesh", str(mesh)),
                    *("--name", "client", "--namespace", "default"),
                    *("--outbound-port", str(outbound), "--inbound-port", str(inbound)),
                    *("--admin-port", str(admin), "--status-port", str(status)),
                    *("--metrics-port", "-1", "--debounce-after", "0.05"),
                    *("--poll-interval", "0.05"),
                ],
                stdout=sink,
                stderr=sink,
                cwd=REPO,
            )
        try:
            ready = Sidecar(outbound, admin, mesh, log)

            def serving() -> bool:
                assert proc.poll() is None, log.read_text()
                return ready.version() is not None

            wait_for(serving, what="sidecar serving a snapshot")
            yield ready
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_preserve_http1_header_case_keeps_header_names_as_sent_both_ways(
    sidecar: Sidecar,
) -> None:
    sent = ("-H", "X-Mixed-Case: from-the-client", "-H", "ALL-CAPS-NAME: yes")
    response, received = sidecar.curl(*sent)
    assert "X-Mixed-Case" in received.split("\n"), received
    assert "ALL-CAPS-NAME" in received.split("\n"), received
    assert "X-Upstream-Mixed-Case: yes" in response, response

    # The same request with the setting turned off: names arrive lower-cased.
    sidecar.apply_mesh(mesh_config(preserve=False))
    response, received = sidecar.curl(*sent)
    names = received.split("\n")
    assert "x-mixed-case" in names, received
    assert "all-caps-name" in names, received
    assert "X-Mixed-Case" not in names, received
    assert "x-upstream-mixed-case: yes" in response, response
