"""Issue 4, end to end: one real ``meshcore sidecar --config-dir`` process (static mode)
per module, fed only Istio YAML written the way a user would (ServiceEntry, WorkloadEntry,
DestinationRule, VirtualService, Sidecar), in front of real upstreams (one nginx, a grpcio
server, a ``websockets`` server) and driven by real clients (``http.client`` keep-alive,
curl, h2load, grpcio, ``websockets``).

The mesh, on 127.0.0.1 with free ports everywhere:

- ``reviews.default.svc.cluster.local``: ServiceEntry ports ``http 9080`` (HTTP) and
  ``http2-local EGRESS_H2`` (HTTP2); workloads ``reviews-v1``/``reviews-v2``
  (WorkloadEntries, ``version: v1|v2``) are two nginx server blocks answering
  ``v1``/``v2`` and echoing, as response headers, the ``x-request-id``, ``end-user`` and
  protocol they received (so the upstream's side is visible to the client). A
  DestinationRule has the subsets; the VirtualService sends ``end-user: jason`` to v2 and
  splits the rest 90/10. Its destinations name port 9080 (``meshcore analyze``, like
  istioctl, requires a port for a service with two: IST0112), so the HTTP2 egress listener
  takes h2c from the client and speaks HTTP/1.1 to nginx.
- ``details.default.svc.cluster.local``: ``http2 9080`` (HTTP2) on an h2c-only nginx
  server block: a cluster that speaks HTTP/2 upstream.
- ``ratings.default.svc.cluster.local``: ``http 9080``; its ``v0`` subset's only endpoint is
  a closed port, and the VirtualService's ``http[1]`` routes there.
- ``echo-grpc.default.svc.cluster.local``: ``grpc EGRESS_GRPC`` (GRPC) on a grpcio server.
- ``chat`` and ``chat-archive.default.svc.cluster.local``: ``http EGRESS_WS`` (HTTP), both
  on a ``websockets`` server, so that egress listener routes by Host.
- The client's Sidecar: one captureMode NONE egress listener per ``EGRESS_*`` port (a
  Sidecar egress port selects the services with that port number, so those service ports
  are free ports too), plus ``./*`` for the outbound HTTP-proxy listener
  (``--outbound-port``).

The config is checked with ``meshcore analyze`` first: nothing here is a config a user's
linter would refuse. Tests run in file order; the config edit (last) restores the config.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve

from tests.integration.support import REPO, free_port
from tests.integration.test_control_plane import wait_for, write

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("nginx", "curl", "h2load")),
    reason="needs nginx, curl and h2load (apt-get install nginx curl nghttp2-client)",
)

NS = "default"
REVIEWS = "reviews.default.svc.cluster.local"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GRPC_SERVICE = "meshcore.e2e.Echo"


# --- the mesh's Istio YAML ------------------------------------------------------------


def reviews_virtual_service(v1: int, v2: int) -> str:
    """`end-user: jason` → v2; everyone else split v1/v2 by weight."""
    split = []
    for subset, weight in (("v1", v1), ("v2", v2)):
        if weight:
            split.append(
                f"    - destination: {{host: reviews, subset: {subset}, port: {{number: 9080}}}}\n"
                f"      weight: {weight}\n"
            )
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: {NS}}}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {{exact: jason}}
    route:
    - destination: {{host: reviews, subset: v2, port: {{number: 9080}}}}
  - route:
{"".join(split)}"""


@dataclass(frozen=True)
class Ports:
    outbound: int
    inbound: int
    admin: int
    status: int
    egress_h2: int
    egress_grpc: int
    egress_ws: int
    nginx_v1: int
    nginx_v2: int
    nginx_h2c: int
    closed: int
    grpc: int
    ws: int


def mesh_config(p: Ports) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: {NS}}}
spec:
  hosts: [{REVIEWS}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 9080, name: http, protocol: HTTP}}
  - {{number: {p.egress_h2}, name: http2-local, protocol: HTTP2}}
  workloadSelector: {{labels: {{app: reviews}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1, namespace: {NS}}}
spec:
  address: 127.0.0.1
  labels: {{app: reviews, version: v1}}
  ports: {{http: {p.nginx_v1}, http2-local: {p.nginx_v1}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2, namespace: {NS}}}
spec:
  address: 127.0.0.1
  labels: {{app: reviews, version: v2}}
  ports: {{http: {p.nginx_v2}, http2-local: {p.nginx_v2}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: {NS}}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ratings, namespace: {NS}}}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: ratings}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: ratings-v1, namespace: {NS}}}
spec:
  address: 127.0.0.1
  labels: {{app: ratings, version: v1}}
  ports: {{http: {p.nginx_v1}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: ratings-v0, namespace: {NS}}}
spec:
  address: 127.0.0.1
  labels: {{app: ratings, version: v0}}
  ports: {{http: {p.closed}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ratings, namespace: {NS}}}
spec:
  host: ratings
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v0, labels: {{version: v0}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ratings, namespace: {NS}}}
spec:
  hosts: [ratings]
  http:
  - match:
    - headers:
        end-user: {{exact: jason}}
    route:
    - destination: {{host: ratings, subset: v1}}
  - route:
    - destination: {{host: ratings, subset: v0}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: details, namespace: {NS}}}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http2, protocol: HTTP2}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http2: {p.nginx_h2c}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo-grpc, namespace: {NS}}}
spec:
  hosts: [echo-grpc.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {p.egress_grpc}, name: grpc, protocol: GRPC}}]
  endpoints: [{{address: 127.0.0.1, ports: {{grpc: {p.grpc}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: chat, namespace: {NS}}}
spec:
  hosts: [chat.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {p.egress_ws}, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {p.ws}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: chat-archive, namespace: {NS}}}
spec:
  hosts: [chat-archive.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {p.egress_ws}, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {p.ws}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: client, namespace: {NS}}}
spec:
  workloadSelector: {{labels: {{app: client}}}}
  egress:
  - port: {{number: {p.egress_h2}, protocol: HTTP2, name: http2-reviews}}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./{REVIEWS}"]
  - port: {{number: {p.egress_grpc}, protocol: GRPC, name: grpc-echo}}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./echo-grpc.default.svc.cluster.local"]
  - port: {{number: {p.egress_ws}, protocol: HTTP, name: http-chat}}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./chat.default.svc.cluster.local", "./chat-archive.default.svc.cluster.local"]
  - hosts: ["./*"]
"""


# --- upstreams ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """One nginx server block answering `body` on every path."""

    body: str
    port: int
    options: str = ""  # after `listen ADDRESS:PORT`, e.g. `http2` (h2c, prior knowledge)
    directives: str = ""


def _nginx_conf(root: Path, servers: list[Server]) -> str:
    user = "user root;" if os.geteuid() == 0 else ""
    blocks = "".join(
        f"""
    server {{
        listen 127.0.0.1:{server.port} {server.options};
        {server.directives}
        location / {{
            add_header x-seen-request-id "$http_x_request_id" always;
            add_header x-seen-end-user "$http_end_user" always;
            add_header x-seen-protocol "$server_protocol" always;
            return 200 "{server.body}\\n";
        }}
    }}"""
        for server in servers
    )
    return f"""
daemon off;
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 100000;
    default_type text/plain;{blocks}
}}
"""


def _listening(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.connect()
        conn.close()
    except OSError:
        return False
    return True


@contextmanager
def nginx(root: Path, servers: list[Server]) -> Iterator[None]:
    """One nginx process with these server blocks; stopped on exit."""
    root.mkdir()
    conf = root / "nginx.conf"
    conf.write_text(_nginx_conf(root, servers))
    binary = shutil.which("nginx")
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: proc.poll() is not None or all(_listening(server.port) for server in servers),
            timeout=10,
            what="nginx listening",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _unary(request: bytes, context: Any) -> bytes:
    if request == b"missing":
        context.set_trailing_metadata((("x-echo-trailer", "kept"),))
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: missing")
    return b"echo:" + request


def _bidi(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    for request in requests:
        yield request.upper()


@contextmanager
def grpc_server() -> Iterator[int]:
    """A grpcio server with raw-bytes handlers (no codegen); yields its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port: int = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


@contextmanager
def websocket_server() -> Iterator[int]:
    """A websockets echo server that greets with the request path; yields its port."""

    def echo(connection: ServerConnection) -> None:
        assert connection.request is not None
        connection.send(f"welcome {connection.request.path}")
        for message in connection:
            connection.send(message)

    with ws_serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(10)


# --- the sidecar ------------------------------------------------------------------------


@dataclass
class Mesh:
    ports: Ports
    config: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def stats(self) -> dict[str, Any]:
        status, body = _get(self.ports.admin, "/stats")
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def flags(self) -> Counter[str]:
        return Counter(self.stats()["totals"]["response_flags"])

    def cluster(self, name: str) -> dict[str, Any]:
        for cluster in self.stats()["clusters"]:
            if cluster["name"] == name:
                return dict(cluster)
        raise KeyError(name)

    def apply(self, text: str) -> None:
        """Writes the config and waits until the sidecar serves a new snapshot (a bound
        of a few seconds, not a measurement: the watch polls every 0.05 s)."""
        before = self.stats()["version"]
        write(self.config, text)
        wait_for(lambda: self.stats()["version"] != before, timeout=10, what="edit applied")


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free a moment ago, from below the ephemeral range (see
    `support.free_port`: a port from bind(0) can become some client's source port before
    the sidecar binds it)."""
    return [free_port() for _ in range(n)]


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("sidecar-http")
    with ExitStack() as stack:
        grpc_port = stack.enter_context(grpc_server())
        ws_port = stack.enter_context(websocket_server())
        names = "outbound inbound admin status egress_h2 egress_grpc egress_ws"
        names += " nginx_v1 nginx_v2 nginx_h2c closed"
        free = dict(zip(names.split(), free_ports(11), strict=True))
        ports = Ports(**free, grpc=grpc_port, ws=ws_port)
        servers = [
            Server("v1", ports.nginx_v1),
            Server("v2", ports.nginx_v2),
            # h2c only. nginx ends an HTTP/2 connection with GOAWAY after keepalive_requests
            # requests (default 1000; 100 here, so that it happens often).
            Server("details", ports.nginx_h2c, "http2", "keepalive_requests 100;"),
        ]
        stack.enter_context(nginx(root / "nginx", servers))
        config_dir = root / "config"
        config_dir.mkdir()
        config = config_dir / "mesh.yaml"
        config.write_text(mesh_config(ports) + "---\n" + reviews_virtual_service(90, 10))
        analyzed = subprocess.run(
            [sys.executable, "-m", "meshcore.cli.main", "analyze", str(config_dir)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr

        log = root / "sidecar.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "meshcore.cli.main",
                    "--log-level",
                    "debug",
                    "sidecar",
                    "--config-dir",
                    str(config_dir),
                    "--name",
                    "client",
                    "--namespace",
                    NS,
                    "--labels",
                    "app=client",
                    "--outbound-port",
                    str(ports.outbound),
                    "--inbound-port",
                    str(ports.inbound),
                    "--admin-port",
                    str(ports.admin),
                    "--status-port",
                    str(ports.status),
                    "--metrics-port",
                    "-1",
                    "--debounce-after",
                    "0.05",
                    "--poll-interval",
                    "0.05",
                ],
                stdout=sink,
                stderr=sink,
                cwd=REPO,
            )
        try:
            wait_for(
                lambda: proc.poll() is not None or _get(ports.status, "/healthz/ready")[0] == 200,
                what="sidecar ready",
            )
            assert proc.poll() is None, log.read_text()
            yield Mesh(ports, config, log, proc)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert proc.returncode == 0, log.read_text()


# --- clients ------------------------------------------------------------------------------


class ProxyClient:
    """A keep-alive HTTP/1.1 client of the sidecar's outbound listener in HTTP proxy mode
    (absolute-form request targets); notices if the connection is ever replaced."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.sock = self.conn.sock

    def get(
        self, url: str, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        self.conn.request("GET", url, headers=headers or {})
        response = self.conn.getresponse()
        body = response.read()
        return response.status, response.headers, body

    @property
    def same_connection(self) -> bool:
        return self.conn.sock is not None and self.conn.sock is self.sock

    def close(self) -> None:
        self.conn.close()


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    curl = shutil.which("curl")
    assert curl is not None
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [curl, "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )


def _curl_headers(*args: str) -> tuple[str, int, dict[str, str], str]:
    """curl with `-D -`; returns (http version, status, last response's headers, body)."""
    out = _curl("-D", "-", *args).stdout  # text mode: CRLF reads as LF
    head, _, body = out.partition("\n\n")
    lines = head.split("\n")
    version, status = lines[0].split()[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return version, int(status), headers, body


# --- 1. canary --------------------------------------------------------------------------


def test_canary_90_10_over_5000_keep_alive_requests(mesh: Mesh) -> None:
    """Weighted subsets, end to end: the VirtualService's 90/10 reaches real nginx
    workloads in that proportion. v2's share of 5,000 is within 2 points of 10% (the
    binomial standard deviation is 0.42 points, so this fails ~never by chance)."""
    names = {v: f"outbound|9080|{v}|{REVIEWS}" for v in ("v1", "v2")}
    before = {v: mesh.cluster(name)["responses_2xx"] for v, name in names.items()}
    client = ProxyClient(mesh.ports.outbound)
    counts: Counter[str] = Counter()
    try:
        for _ in range(5000):
            status, _, body = client.get("http://reviews:9080/")
            assert status == 200, body
            counts[body.decode().strip()] += 1
        assert client.same_connection
    finally:
        client.close()
    assert set(counts) == {"v1", "v2"}, counts
    assert sum(counts.values()) == 5000
    share = counts["v2"] / 5000
    assert abs(share - 0.10) <= 0.02, counts
    # The sidecar's own counters agree with what the client saw.
    for version, name in names.items():
        assert mesh.cluster(name)["responses_2xx"] - before[version] == counts[version]


# --- 2. curl, HTTP/1.1 and HTTP/2 -------------------------------------------------------


def test_curl_http1_proxy_mode_and_http2_egress_listener(mesh: Mesh) -> None:
    proxy = ["-x", f"http://127.0.0.1:{mesh.ports.outbound}"]
    h2 = ["--http2-prior-knowledge", f"http://127.0.0.1:{mesh.ports.egress_h2}/"]

    version, status, headers, body = _curl_headers(*proxy, "http://reviews:9080/")
    assert (version, status) == ("HTTP/1.1", 200)
    assert body in ("v1\n", "v2\n")
    assert UUID.match(headers["x-seen-request-id"]), headers

    version, status, headers, body = _curl_headers(*h2)
    assert (version, status) == ("HTTP/2", 200)
    assert body in ("v1\n", "v2\n")
    assert UUID.match(headers["x-seen-request-id"]), headers
    assert headers["x-seen-protocol"] == "HTTP/1.1"  # h2c in, HTTP/1.1 to nginx

    # A request id the client sets is kept, not replaced.
    _, _, headers, _ = _curl_headers(*h2, "-H", "x-request-id: from-the-client")
    assert headers["x-seen-request-id"] == "from-the-client"

    # The header match, through both listeners: jason always lands on v2.
    for args in ([*proxy, "http://reviews:9080/"], h2):
        for _ in range(20):
            _, status, headers, body = _curl_headers(*args, "-H", "end-user: jason")
            assert (status, body) == (200, "v2\n")
            assert headers["x-seen-end-user"] == "jason"

    # A service whose port is HTTP2: its cluster speaks h2c to nginx.
    version, status, headers, body = _curl_headers(*proxy, "http://details:9080/")
    assert (version, status, body) == ("HTTP/1.1", 200, "details\n")
    assert headers["x-seen-protocol"] == "HTTP/2.0"
    assert UUID.match(headers["x-seen-request-id"]), headers

    # Many URLs on one curl invocation reuse one connection through the proxy.
    many = _curl(*proxy, "-w", "%{num_connects}\\n", *(["http://reviews:9080/"] * 20))
    assert many.stdout.count("\n") == 40
    assert [line for line in many.stdout.splitlines() if line.isdigit()].count("1") == 1

    # HTTP/1.0 is answered in kind (HTTP/1.1 to nginx); its connection is kept only when
    # the client asks with `Connection: keep-alive`.
    version, status, headers, body = _curl_headers("--http1.0", *proxy, "http://reviews:9080/")
    assert (version, status) == ("HTTP/1.0", 200)
    assert body in ("v1\n", "v2\n")
    assert headers["x-seen-protocol"] == "HTTP/1.1"
    kept = ["--http1.0", "-H", "Connection: keep-alive", *proxy]
    many = _curl(*kept, "-w", "%{num_connects}\\n", *(["http://reviews:9080/"] * 5))
    assert [line for line in many.stdout.splitlines() if line.isdigit()].count("1") == 1
    closed = ["--http1.0", "-H", "Connection: close", *proxy]
    many = _curl(*closed, "-w", "%{num_connects}\\n", *(["http://reviews:9080/"] * 5))
    assert [line for line in many.stdout.splitlines() if line.isdigit()].count("1") == 5


# --- 3. h2load --------------------------------------------------------------------------


def test_h2load_1000_requests_10_streams_through_the_egress_listener(mesh: Mesh) -> None:
    """h2c to the HTTP2 egress listener; upstream HTTP/1.1 nginx (the route names port
    9080, an HTTP port, so its clusters speak HTTP/1.1)."""
    h2load = shutil.which("h2load")
    assert h2load is not None
    before = mesh.stats()["listeners"]
    run = subprocess.run(
        [h2load, "-n", "1000", "-c", "1", "-m", "10", f"http://127.0.0.1:{mesh.ports.egress_h2}/"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "requests: 1000 total, 1000 started, 1000 done, 1000 succeeded" in run.stdout, run.stdout
    assert "status codes: 1000 2xx, 0 3xx, 0 4xx, 0 5xx" in run.stdout, run.stdout
    after = mesh.stats()["listeners"]
    name = f"127.0.0.1_{mesh.ports.egress_h2}"

    def requests(listeners: list[dict[str, Any]]) -> int:
        return next(int(lis["http_requests"]) for lis in listeners if lis["name"] == name)

    assert requests(after) - requests(before) == 1000


def test_http2_upstream_goaway_fails_no_request(mesh: Mesh) -> None:
    """nginx ends each HTTP/2 connection with GOAWAY after `keepalive_requests` (100
    here; 1000 by default): ordinary behaviour every long-lived h2 upstream has. Under
    concurrent load through the sidecar, no client request may fail because of it."""
    cluster = "outbound|9080||details.default.svc.cluster.local"
    before = mesh.cluster(cluster)
    failures: Counter[str] = Counter()
    lock = threading.Lock()

    def client() -> None:
        proxy = ProxyClient(mesh.ports.outbound)
        try:
            for _ in range(150):
                status, headers, _ = proxy.get("http://details:9080/")
                if status != 200:
                    with lock:
                        failures[f"{status} {headers['x-meshcore-decision']}"] += 1
        finally:
            proxy.close()

    with futures.ThreadPoolExecutor(max_workers=20) as pool:
        for done in [pool.submit(client) for _ in range(20)]:
            done.result()
    after = mesh.cluster(cluster)
    assert after["connections_opened"] - before["connections_opened"] >= 10  # GOAWAYs seen
    assert not failures, (failures, after["http_retries"] - before["http_retries"])


# --- 4. gRPC ----------------------------------------------------------------------------


def test_grpc_unary_bidi_and_status_through_the_egress_listener(mesh: Mesh) -> None:
    target = f"127.0.0.1:{mesh.ports.egress_grpc}"
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        unary = channel.unary_unary(f"/{GRPC_SERVICE}/Unary")
        response, call = unary.with_call(b"hi", timeout=5)
        assert response == b"echo:hi"
        assert call.code() == grpc.StatusCode.OK

        with pytest.raises(grpc.RpcError) as failed:
            unary(b"missing", timeout=5)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        assert failed.value.details() == "no such thing: missing"
        assert ("x-echo-trailer", "kept") in failed.value.trailing_metadata()

        bidi = channel.stream_stream(f"/{GRPC_SERVICE}/Bidi")
        sent = [f"message {i}".encode() for i in range(50)]
        assert list(bidi(iter(sent), timeout=5)) == [m.upper() for m in sent]
    cluster = mesh.cluster(
        f"outbound|{mesh.ports.egress_grpc}||echo-grpc.default.svc.cluster.local"
    )
    assert cluster["http_requests"] >= 3


# --- 5. WebSocket -----------------------------------------------------------------------


def test_websocket_through_the_egress_listener_and_the_http_proxy(mesh: Mesh) -> None:
    """Upgrades through both listeners. The egress listener serves two services on its
    port, so it routes by Host: the client dials 127.0.0.1 with `chat`'s host name, as an
    app with a hosts-file entry would; through the HTTP proxy, websockets uses CONNECT."""
    chat = f"chat.default.svc.cluster.local:{mesh.ports.egress_ws}"
    for path, via_proxy in (("/room", False), ("/lobby", True)):
        if via_proxy:
            proxy = f"http://127.0.0.1:{mesh.ports.outbound}"
            connection = ws_connect(f"ws://{chat}{path}", proxy=proxy, open_timeout=5)
        else:
            sock = socket.create_connection(("127.0.0.1", mesh.ports.egress_ws), timeout=5)
            connection = ws_connect(f"ws://{chat}{path}", sock=sock, proxy=None, open_timeout=5)
        with connection as client:
            assert client.recv(timeout=5) == f"welcome {path}"
            for i in range(10):
                client.send(f"text {i}")
                assert client.recv(timeout=5) == f"text {i}"
            client.send(b"\x00\x01binary" * 1000)
            assert client.recv(timeout=5) == b"\x00\x01binary" * 1000


# --- 6. errors that explain themselves --------------------------------------------------


def test_errors_name_the_rule_and_are_counted(mesh: Mesh) -> None:
    closed = f"127.0.0.1:{mesh.ports.closed}"
    before = mesh.flags()
    client = ProxyClient(mesh.ports.outbound)
    try:
        # A subset whose only endpoint refuses: 503, the rule and the endpoint named.
        status, headers, body = client.get("http://ratings:9080/")
        assert status == 503, body
        assert headers["x-meshcore-decision"] == (
            "VirtualService/default/ratings http[1] -> "
            f"outbound|9080|v0|ratings.default.svc.cluster.local; UF,URX connect refused {closed}"
        )
        assert headers["proxy-status"] == (
            f'meshcore; error=connection_refused; details="connect refused {closed}"'
        )
        assert body == f"UF,URX: connect refused {closed}\n".encode()
        # The same host's other rule still works: the fault is the subset's.
        status, headers, body = client.get("http://ratings:9080/", {"end-user": "jason"})
        assert (status, body) == (200, b"v1\n")

        # A host the registry does not have, through the HTTP proxy under ALLOW_ANY: the
        # passthrough goes where the absolute-form request asked (the client dialled the
        # proxy, so there is no original destination; the authority is the destination).
        status, headers, body = client.get(f"http://127.0.0.1:{mesh.ports.nginx_v1}/")
        assert (status, body) == (200, b"v1\n"), (status, body)
        assert client.same_connection  # local replies keep the connection
    finally:
        client.close()

    # On an egress listener that routes by Host (two services), an unknown host: 404 NR.
    host = f"nowhere.default.svc.cluster.local:{mesh.ports.egress_ws}"
    _, status, nr, text = _curl_headers("--resolve", f"{host}:127.0.0.1", f"http://{host}/")
    assert status == 404, text
    assert nr["x-meshcore-decision"] == (
        f"RouteConfig/127.0.0.1_{mesh.ports.egress_ws}; NR no virtual host for {host}"
    )
    assert nr["proxy-status"] == (
        f'meshcore; error=destination_not_found; details="no virtual host for {host}"'
    )

    after = mesh.flags()
    delta = {flag: after[flag] - before[flag] for flag in after if after[flag] != before[flag]}
    assert delta == {"UF": 1, "URX": 1, "NR": 1}, delta


# --- 7. a config edit under load --------------------------------------------------------


def test_config_edit_takes_effect_without_dropping_the_keep_alive_client(mesh: Mesh) -> None:
    client = ProxyClient(mesh.ports.outbound)
    original = mesh.config.read_text()
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def keep_sending() -> None:
        try:
            while not stop.is_set():
                status, _, body = client.get("http://reviews:9080/")
                assert status == 200, body
                seen.append(body.decode().strip())
        except BaseException as error:  # reported by the test's thread below
            errors.append(error)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        wait_for(lambda: len(seen) >= 200 or errors, what="traffic flowing")
        mesh.apply(mesh_config(mesh.ports) + "---\n" + reviews_virtual_service(0, 100))
        # Once applied, new requests on the same connection see the new route.
        mark = len(seen)
        wait_for(lambda: len(seen) >= mark + 200 or errors, what="traffic after the edit")
    finally:
        stop.set()
        sender.join(15)
    try:
        assert not errors, errors
        assert client.same_connection
        # One request may have been routed just before the swap and answered after it.
        after = seen[mark + 1 :]
        assert set(after) == {"v2"}, Counter(after)
        assert "v1" in seen[:mark]
    finally:
        client.close()
        mesh.apply(original)
