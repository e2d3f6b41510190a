"""A minimal HTTP/1.1 server on asyncio streams for the monitoring port.

GET only, one request per connection (`Connection: close`), handlers by exact path. It is
all the debug API and a Prometheus scrape need, and it runs on the control plane's event
loop next to the push server, so the handlers read the loop's state without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("meshcore.control.http")

MAX_HEAD = 16 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


Handler = Callable[[Mapping[str, str]], Awaitable[Response]]
"""Takes the query parameters (last value of each) and answers."""


class HttpServer:
    """Routes `GET path` to a handler; anything else is 404 or 405."""

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = dict(routes)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            response = await self._respond(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        reason = HTTPStatus(response.status).phrase
        header = (
            f"HTTP/1.1 {response.status} {reason}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            writer.write(header.encode() + response.body)
            await writer.drain()
        writer.close()

    async def _respond(self, head: bytes) -> Response:
        try:
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except ValueError:
            return Response(400, b"bad request\n", "text/plain")
        url = urlsplit(target)
        handler = self.routes.get(url.path)
        if handler is None:
            return Response(404, f"no such path {url.path}\n".encode(), "text/plain")
        if method != "GET":
            return Response(405, b"GET only\n", "text/plain")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            return await handler(query)
        except Exception:
            log.exception("handler for %s failed", url.path)
            return Response(500, b"internal error\n", "text/plain")
