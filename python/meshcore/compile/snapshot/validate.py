"""Semantic checks of a well-typed snapshot: references, duplicates and ranges.

The walk order and every message match ``rust/meshcore-snapshot/src/validate.rs``, so both
sides report the same errors in the same order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from meshcore.compile.snapshot.errors import SnapshotError
from meshcore.compile.snapshot.model import Cluster, Listener, Snapshot

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def validate_snapshot(snapshot: Snapshot) -> list[SnapshotError]:
    """Every problem found, in document order (listeners, then clusters)."""
    walk = _Walk({c.name for c in snapshot.clusters}, snapshot.listeners)
    if not snapshot.version.strip():
        walk.errors.append(SnapshotError("version", "invalid_value", "must not be empty"))
    for i, listener in enumerate(snapshot.listeners):
        walk.listener(i, listener)
    for i, cluster in enumerate(snapshot.clusters):
        walk.cluster(i, cluster)
    return walk.errors


def _sockets_collide(a: IpAddress, b: IpAddress) -> bool:
    """``0.0.0.0`` covers every IPv4 address and ``::`` every IPv6 one."""
    return a == b or (a.version == b.version and (a.is_unspecified or b.is_unspecified))


def _ip(address: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


@dataclass
class _Walk:
    cluster_names: set[str]
    listeners: list[Listener]
    errors: list[SnapshotError] = field(default_factory=list)
    listener_names: dict[str, int] = field(default_factory=dict)
    seen_cluster_names: dict[str, int] = field(default_factory=dict)
    sockets: list[tuple[IpAddress, int, int]] = field(default_factory=list)

    def name(self, name: str, path: str, kind: str, seen: dict[str, int], index: int) -> None:
        collection = f"{kind}s"
        if not name:
            self.errors.append(SnapshotError(path, "invalid_value", "must not be empty"))
        elif name in seen:
            self.errors.append(
                SnapshotError(
                    path,
                    "duplicate",
                    f'duplicate {kind} name "{name}" (first used by {collection}[{seen[name]}])',
                )
            )
        else:
            seen[name] = index

    def ip(self, address: str, path: str) -> IpAddress | None:
        ip = _ip(address)
        if ip is None:
            self.errors.append(
                SnapshotError(path, "invalid_value", f'"{address}" is not an IP address')
            )
        return ip

    def port(self, port: int, path: str) -> bool:
        if port == 0:
            self.errors.append(SnapshotError(path, "out_of_range", "must be between 1 and 65535"))
            return False
        return True

    def listener(self, i: int, listener: Listener) -> None:
        at = f"listeners[{i}]"
        self.name(listener.name, f"{at}.name", "listener", self.listener_names, i)
        ip = self.ip(listener.address, f"{at}.address")
        port_ok = self.port(listener.port, f"{at}.port")
        if ip is not None and port_ok:
            clash = next(
                (
                    first
                    for other, port, first in self.sockets
                    if port == listener.port and _sockets_collide(ip, other)
                ),
                None,
            )
            if clash is None:
                self.sockets.append((ip, listener.port, i))
            else:
                other_listener = self.listeners[clash]
                self.errors.append(
                    SnapshotError(
                        f"{at}.port",
                        "duplicate",
                        f"{listener.address}:{listener.port} collides with listeners[{clash}] "
                        f'"{other_listener.name}" ({other_listener.address}:{other_listener.port})',
                    )
                )
        route = listener.tcp_route
        if route is None:
            self.errors.append(
                SnapshotError(f"{at}.tcp_route", "missing_field", "required for protocol tcp")
            )
            return
        route_at = f"{at}.tcp_route.clusters"
        if not route.clusters:
            self.errors.append(
                SnapshotError(route_at, "invalid_value", "must name at least one cluster")
            )
        for j, target in enumerate(route.clusters):
            if target.name not in self.cluster_names:
                self.errors.append(
                    SnapshotError(
                        f"{route_at}[{j}].name",
                        "unknown_reference",
                        f'unknown cluster "{target.name}"',
                    )
                )
        if route.clusters and sum(c.weight for c in route.clusters) == 0:
            self.errors.append(
                SnapshotError(route_at, "invalid_value", "weights must add up to more than 0")
            )

    def cluster(self, i: int, cluster: Cluster) -> None:
        at = f"clusters[{i}]"
        self.name(cluster.name, f"{at}.name", "cluster", self.seen_cluster_names, i)
        if cluster.connect_timeout_ms == 0:
            self.errors.append(
                SnapshotError(f"{at}.connect_timeout_ms", "out_of_range", "must be at least 1")
            )
        for j, endpoint in enumerate(cluster.endpoints):
            ep = f"{at}.endpoints[{j}]"
            self.ip(endpoint.address, f"{ep}.address")
            self.port(endpoint.port, f"{ep}.port")
            if endpoint.weight == 0:
                self.errors.append(
                    SnapshotError(f"{ep}.weight", "out_of_range", "must be at least 1")
                )
