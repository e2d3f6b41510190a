"""A bookinfo-like sample app: ``productpage``, ``reviews`` (v1, v2, v3) and ``ratings``.

Each service is a small stdlib HTTP server that answers ``GET /`` with JSON naming its
service and version. ``productpage`` calls ``reviews``; ``reviews`` v2 and v3 call
``ratings`` (v1 does not, as in Istio's bookinfo). Calls go through the workload's
sidecar as an HTTP proxy (``--proxy HOST:PORT``, the sidecar's outbound listener), in
absolute form: ``GET http://reviews:9080/``. The ``end-user`` header is passed on, so
header-based routes apply to the whole request chain.

Every answer carries the call below it, with the upstream's status, latency and, for a
reply the proxy made itself, its ``proxy-status`` header, so a client sees the whole path::

    {"service": "productpage", "version": "v1",
     "call": {"service": "reviews", "status": 200, "ms": 1.9,
              "body": {"service": "reviews", "version": "v3", "call": {...}}}}

A failed upstream call makes the caller answer 502 with the same body.

``python -m meshcore.cli.samples.bookinfo SERVICE --version V --port P [--proxy H:P]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICES = ("productpage", "reviews", "ratings")
SERVICE_PORT = 9080
"""The port every bookinfo service declares (its ServiceEntry); sidecars route by it."""
PROPAGATED = ("end-user", "x-request-id")


def upstream_of(service: str, version: str) -> str | None:
    """Who this workload calls: productpage → reviews; reviews v2/v3 → ratings."""
    if service == "productpage":
        return "reviews"
    if service == "reviews" and version != "v1":
        return "ratings"
    return None


class _Upstream:
    """Keep-alive HTTP connections to the sidecar's outbound listener, one per thread."""

    def __init__(self, proxy: tuple[str, int], service: str, timeout: float) -> None:
        self.proxy = proxy
        self.url = f"http://{service}:{SERVICE_PORT}/"
        self.service = service
        self.timeout = timeout
        self._local = threading.local()

    def call(self, headers: dict[str, str]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            status, reply_headers, body = self._request(headers)
        except (OSError, http.client.HTTPException) as error:
            return {
                "service": self.service,
                "status": 0,
                "error": f"{type(error).__name__}: {error}",
                "ms": _ms_since(started),
            }
        result: dict[str, Any] = {
            "service": self.service,
            "status": status,
            "ms": _ms_since(started),
        }
        if "proxy-status" in reply_headers:
            result["proxy_status"] = reply_headers["proxy-status"]
        try:
            result["body"] = json.loads(body)
        except ValueError:
            result["text"] = body[:200].decode(errors="replace")
        return result

    def _request(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        reused = connection is not None
        for _ in range(2):
            if connection is None:
                connection = http.client.HTTPConnection(*self.proxy, timeout=self.timeout)
                self._local.conn = connection
            try:
                connection.request("GET", self.url, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                connection.close()
                self._local.conn = connection = None
                if not reused:
                    raise
                reused = False  # a stale keep-alive connection: retry once on a new one
                continue
            if response.will_close:
                connection.close()
                self._local.conn = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        raise ConnectionError("unreachable")


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def make_handler(
    service: str, version: str, upstream: _Upstream | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the sidecar can reuse connections
        server_version = f"bookinfo-{service}/{version}"

        def setup(self) -> None:
            super().setup()
            # Responses go out in one write (see _reply) and without Nagle's delay, which
            # would hold a second small write until the peer's delayed ACK (~40 ms).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            body: dict[str, Any] = {"service": service, "version": version}
            status = 200
            if self.path.startswith("/healthz"):
                self._reply(200, body)
                return
            if upstream is not None:
                headers = {h: v for h in PROPAGATED if (v := self.headers.get(h)) is not None}
                call = upstream.call(headers)
                body["call"] = call
                if call["status"] != 200:
                    status = 502
            if service == "ratings":
                body["stars"] = 5 if self.headers.get("end-user") == "jason" else 4
            self._reply(status, body)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, separators=(",", ":")).encode()
            head = (
                f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
                f"Server: {self.server_version}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            )
            self.wfile.write(head.encode() + data)  # one write: headers and body together

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the demo measures traffic itself; an access log per request is noise

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def serve(
    service: str,
    version: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    proxy: tuple[str, int] | None = None,
    timeout: float = 10.0,
) -> ThreadingHTTPServer:
    """A bound server (``serve_forever`` not yet called) for one workload."""
    callee = upstream_of(service, version)
    upstream = None
    if callee is not None:
        if proxy is None:
            raise ValueError(f"{service} {version} calls {callee}: give its sidecar as --proxy")
        upstream = _Upstream(proxy, callee, timeout)
    return _Server((host, port), make_handler(service, version, upstream))


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proxy", type=_host_port, default=None, metavar="HOST:PORT")
    args = parser.parse_args(argv)
    try:
        server = serve(args.service, args.version, args.port, host=args.host, proxy=args.proxy)
    except OSError as error:
        print(f"{args.service} {args.version}: cannot listen on port {args.port}: {error}")
        return 1
    except ValueError as error:
        print(error)
        return 2
    # SIGTERM ends serve_forever from another thread; then the process exits normally.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{args.service} {args.version} serving on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
