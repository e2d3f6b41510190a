"""Name resolution for `DNS` services, done when a snapshot is compiled.

The data plane only takes IP literals, so the compiler resolves hostnames through a
`Resolver`. The default asks the system (`socket.getaddrinfo`); tests and the control plane
inject their own. Results are sorted and deduplicated so compiling stays deterministic for
a given answer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from functools import lru_cache

Resolver = Callable[[str], tuple[str, ...]]
"""hostname → its IP addresses (empty when it does not resolve)."""


@lru_cache(maxsize=1 << 16)
def is_ip(address: str) -> bool:
    """True for an IPv4 or IPv6 literal (memoised: every compile asks about every endpoint)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def system_resolver(hostname: str) -> tuple[str, ...]:
    """Resolve through the system resolver; unresolvable names give no addresses."""
    if is_ip(hostname):
        return (hostname,)
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ()
    return tuple(sorted({str(info[4][0]) for info in infos}))
