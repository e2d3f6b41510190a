"""HTTP through an in-process data plane with real clients and real upstreams: gRPC (all
four call kinds, trailers and a non-OK status), WebSocket, curl (HTTP/2 prior knowledge and
HTTP proxy mode), nginx with an h2load smoke, and the sidecar drain (inbound drains while
outbound serves, ``/drain`` and ``/quitquitquit`` on the admin port).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve

from meshcore.dataplane import DataPlane, DataPlaneOptions
from tests.integration.support import free_port


def _listener(name: str, port: int, direction: str = "outbound", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "127.0.0.1",
        "port": port,
        "protocol": "http",
        "direction": direction,
        "route_config": "rc",
        **extra,
    }


def _snapshot(
    listeners: list[dict[str, Any]],
    upstream_port: int,
    protocol: str = "http1",
    domains: list[str] | None = None,
) -> bytes:
    return json.dumps(
        {
            "version": "v1",
            "listeners": listeners,
            "route_configs": [
                {
                    "name": "rc",
                    "virtual_hosts": [
                        {
                            "name": "vh",
                            "domains": domains or ["*"],
                            "routes": [{"route": {"clusters": [{"name": "app"}]}}],
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "app",
                    "protocol": protocol,
                    "connect_timeout_ms": 1000,
                    "endpoints": [{"address": "127.0.0.1", "port": upstream_port}],
                }
            ],
        }
    ).encode()


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# --- gRPC -------------------------------------------------------------------------------

_SERVICE = "meshcore.test.Echo"


def _unary(request: bytes, context: Any) -> bytes:
    context.set_trailing_metadata((("x-echo-trailer", "kept"),))
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b"echo:" + request


def _server_stream(request: bytes, context: Any) -> Iterator[bytes]:
    for i in range(int(request)):
        yield f"item-{i}".encode()


def _client_stream(requests: Iterator[bytes], context: Any) -> bytes:
    return b"+".join(requests)


def _bidi(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    for request in requests:
        yield request.upper()


@pytest.fixture
def grpc_upstream() -> Iterator[int]:
    """A gRPC server with raw-bytes handlers (no codegen); yields its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        _SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream),
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


def test_grpc_all_call_kinds_with_trailers_and_status(grpc_upstream: int) -> None:
    port = free_port()
    with DataPlane.start() as dp:
        dp.apply(_snapshot([_listener("grpc", port)], grpc_upstream, protocol="http2"))
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]
        ) as channel:
            unary = channel.unary_unary(f"/{_SERVICE}/Unary")
            response, call = unary.with_call(b"hi", timeout=5)
            assert response == b"echo:hi"
            assert call.code() == grpc.StatusCode.OK
            assert ("x-echo-trailer", "kept") in call.trailing_metadata()

            with pytest.raises(grpc.RpcError) as failed:
                unary(b"missing", timeout=5)
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
            assert failed.value.details() == "no such thing"
            assert ("x-echo-trailer", "kept") in failed.value.trailing_metadata()

            server_stream = channel.unary_stream(f"/{_SERVICE}/ServerStream")
            assert list(server_stream(b"3", timeout=5)) == [b"item-0", b"item-1", b"item-2"]

            client_stream = channel.stream_unary(f"/{_SERVICE}/ClientStream")
            assert client_stream(iter([b"a", b"b", b"c"]), timeout=5) == b"a+b+c"

            bidi = channel.stream_stream(f"/{_SERVICE}/Bidi")
            assert list(bidi(iter([b"x", b"yz"]), timeout=5)) == [b"X", b"YZ"]
        stats = dp.stats()
        assert stats["listeners"][0]["detected_http2"] >= 1
        assert stats["clusters"][0]["responses_2xx"] == 5


# --- WebSocket --------------------------------------------------------------------------


def test_websocket_echo_both_ways() -> None:
    def echo(connection: ServerConnection) -> None:
        connection.send("welcome")
        for message in connection:
            connection.send(message)

    with ws_serve(echo, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        upstream = server.socket.getsockname()[1]
        port = free_port()
        with DataPlane.start() as dp:
            dp.apply(_snapshot([_listener("ws", port)], upstream))
            with ws_connect(f"ws://127.0.0.1:{port}/chat", open_timeout=5) as client:
                assert client.recv(timeout=5) == "welcome"
                for i in range(5):
                    client.send(f"text {i}")
                    assert client.recv(timeout=5) == f"text {i}"
                client.send(b"\x00\x01binary")
                assert client.recv(timeout=5) == b"\x00\x01binary"
                # Counted as a connection of its direction while it is open.
                assert dp.active_connections("outbound") >= 1
            assert _eventually(lambda: dp.active_connections() == 0)
        server.shutdown()


# --- curl, nginx, h2load ----------------------------------------------------------------


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """nginx on a free port serving a 1 KB file at /file.bin; yields (port, content)."""
    binary = _need("nginx")
    www = tmp_path / "www"
    www.mkdir()
    content = bytes(range(256)) * 4
    (www / "file.bin").write_bytes(content)
    # Started as root, nginx's workers would run as nobody, who cannot read tmp_path.
    user = "user root;" if os.geteuid() == 0 else ""
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
{user}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {www};
    }}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if not _eventually(lambda: not _refused(port) or proc.poll() is not None):
            pytest.fail("nginx did not start")
        if proc.poll() is not None:
            pytest.fail(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        yield port, content
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [_need("curl"), "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        check=True,
        env=env,
    )


def test_curl_http2_prior_knowledge_and_proxy_mode_to_nginx(
    nginx: tuple[int, bytes], tmp_path: Path
) -> None:
    upstream, content = nginx
    sidecar, proxy = free_port(), free_port()
    with DataPlane.start() as dp:
        dp.apply(
            _snapshot(
                [_listener("sidecar", sidecar), _listener("proxy", proxy, http_proxy=True)],
                upstream,
            )
        )
        body = tmp_path / "h2.bin"
        h2 = _curl(
            "--http2-prior-knowledge",
            "-o",
            str(body),
            "-w",
            "%{http_version} %{http_code}",
            f"http://127.0.0.1:{sidecar}/file.bin",
        )
        assert h2.stdout == b"2 200"
        assert body.read_bytes() == content

        via_proxy = tmp_path / "proxy.bin"
        proxied = _curl(
            "-x",
            f"http://127.0.0.1:{proxy}",
            "-o",
            str(via_proxy),
            "-w",
            "%{http_code}",
            "http://nginx.mesh.local/file.bin",
        )
        assert proxied.stdout == b"200"
        assert via_proxy.read_bytes() == content
        stats = dp.stats()
        assert stats["clusters"][0]["responses_2xx"] == 2


def test_h2load_through_the_proxy_to_nginx(nginx: tuple[int, bytes]) -> None:
    h2load = _need("h2load")
    upstream, _ = nginx
    port = free_port()
    with DataPlane.start() as dp:
        dp.apply(_snapshot([_listener("sidecar", port)], upstream))
        run = subprocess.run(
            [h2load, "-n", "1000", "-c", "1", "-m", "10", f"http://127.0.0.1:{port}/file.bin"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "requests: 1000 total, 1000 started, 1000 done, 1000 succeeded" in run.stdout
        assert "status codes: 1000 2xx, 0 3xx, 0 4xx, 0 5xx" in run.stdout
        assert dp.stats()["clusters"][0]["responses_2xx"] == 1000


# --- drain ------------------------------------------------------------------------------


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    """``/gate`` answers once the test sets the server's gate; anything else at once."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/gate":
            self.server.waiting.set()  # type: ignore[attr-defined]
            self.server.gate.wait(10)  # type: ignore[attr-defined]
        body = f"app {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gated_upstream() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHandler)
    server.daemon_threads = True
    server.gate = threading.Event()  # type: ignore[attr-defined]
    server.waiting = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.gate.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


def _admin(port: int, method: str, path: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as e:
        return e.code


def test_inbound_drains_in_flight_requests_while_outbound_serves(
    gated_upstream: http.server.ThreadingHTTPServer,
) -> None:
    upstream = gated_upstream.server_address[1]
    inbound, outbound, admin = free_port(), free_port(), free_port()
    with DataPlane.start(DataPlaneOptions(admin_port=admin)) as dp:
        dp.apply(
            _snapshot(
                [_listener("inbound", inbound, "inbound"), _listener("outbound", outbound)],
                upstream,
            )
        )
        idle = http.client.HTTPConnection("127.0.0.1", inbound, timeout=5)
        idle.request("GET", "/")
        assert idle.getresponse().read() == b"app /"

        in_flight: dict[str, Any] = {}

        def gated_request() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", inbound, timeout=10)
            conn.request("GET", "/gate")
            response = conn.getresponse()
            in_flight.update(
                status=response.status,
                connection=response.getheader("connection"),
                body=response.read(),
            )

        client = threading.Thread(target=gated_request)
        client.start()
        assert gated_upstream.waiting.wait(5)  # type: ignore[attr-defined]
        # Two connections and one request in flight.
        assert _eventually(lambda: dp.active_connections("inbound") == 3)
        assert dp.active_connections("outbound") == 0

        dp.drain_inbound()
        assert _refused(inbound)
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"http://127.0.0.1:{outbound}/", timeout=5
        ) as response:
            assert response.read() == b"app /"
        # The idle keep-alive connection is closed at once; the request in flight is not.
        assert _eventually(lambda: dp.active_connections("inbound") == 2)
        gated_upstream.gate.set()  # type: ignore[attr-defined]
        client.join(10)
        assert in_flight == {"status": 200, "connection": "close", "body": b"app /gate"}
        assert _eventually(lambda: dp.active_connections("inbound") == 0)

        assert not dp.quit_requested()
        assert _admin(admin, "GET", "/quitquitquit") == 405
        assert _admin(admin, "POST", "/quitquitquit") == 200
        assert dp.quit_requested()
        assert _admin(admin, "POST", "/drain?direction=outbound") == 200
        assert _refused(outbound)
        assert dp.active_connections() == 0
