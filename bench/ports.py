"""Free ports on 127.0.0.1 for the suite's servers, picked below the kernel's ephemeral range.

`bind(0)` picks from the ephemeral range, the same range the kernel gives the source port of
every outgoing connection, so a port picked that way can be taken by some client before the
server meant to listen on it binds it. Below that range only listeners compete.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOW = 20000
_issued: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free now and not handed out before in this process."""
    high = _ephemeral_start() - 1
    for _ in range(1000):
        if high - _LOW >= 1000:
            port = random.randint(_LOW, high)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        if port in _issued:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _issued.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1")
