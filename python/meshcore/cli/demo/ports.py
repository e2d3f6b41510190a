"""Ports on 127.0.0.1: free ones picked for the demo's own sockets (control plane, each
sidecar's outbound, admin and status), and a check that the example's declared ones are
free before anything starts."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path

from meshcore.cli.demo.errors import DemoError
from meshcore.cli.demo.mesh import Mesh


@dataclass(frozen=True)
class SidecarPorts:
    outbound: int
    admin: int
    status: int


class PortPicker:
    """Free ports for the demo's own sockets, each used once.

    Taken from below the kernel's ephemeral range when there is room: a port picked from
    inside it can be taken by an outgoing connection (the apps' and sidecars' own) before
    the process meant to listen on it binds it.
    """

    LOW = 20000

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.high = _ephemeral_start() - 1

    def __call__(self) -> int:
        for _ in range(200):
            if self.high - self.LOW >= 1000:
                port = random.randint(self.LOW, self.high)  # noqa: S311 - not a secret
            else:
                port = _kernel_port()
            if port not in self.used and _bind_error(port) is None:
                self.used.add(port)
                return port
        raise DemoError("cannot find a free port on 127.0.0.1")


def check_ports_free(mesh: Mesh) -> None:
    """Fails naming the first port the example declares that something else holds."""
    for workload in mesh.workloads:
        for port, what in (
            (workload.app_port, f"the {workload.name} app"),
            (workload.inbound_port, f"{workload.name}'s sidecar inbound listener"),
        ):
            # As the listeners will: connections in TIME_WAIT do not make a port taken.
            if (error := _bind_error(port, reuse_address=True)) is not None:
                raise DemoError(
                    f"port {port} ({what}, declared in {mesh.examples}/bookinfo.yaml) "
                    f"is taken: {error.strerror}. Stop whatever listens there "
                    f"(ss -ltnp 'sport = :{port}') or change the port in the example."
                )


def _bind_error(port: int, *, reuse_address: bool = False) -> OSError | None:
    """Why 127.0.0.1:`port` cannot be bound now; None when it can."""
    with socket.socket() as s:
        if reuse_address:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as error:
            return error
        return None


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _kernel_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
