"""A TCP echo service that greets each connection with its name (a version label, say),
so a client can see which workload answered.

``python -m meshcore.cli.samples.echo NAME [--host H] [--port P]`` runs one in its own
process and prints the bound port on the first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def echo_handler(name: str) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{name}\n".encode())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    return handle


async def serve_echo(name: str, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Starts an echo service; ``server.sockets[0].getsockname()`` has its address."""
    return await asyncio.start_server(echo_handler(name), host, port)


async def _main(name: str, host: str, port: int) -> None:
    server = await serve_echo(name, host, port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.name, args.host, args.port))
