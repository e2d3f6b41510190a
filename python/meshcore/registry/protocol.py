"""Port protocols, decided the way Istio decides them.

A port's protocol comes from, in order: an explicit protocol (`ServiceEntry.ports[].protocol`,
Kubernetes `appProtocol`), the port's name (`<protocol>[-<suffix>]`, e.g. `http-web`,
`grpc`), and otherwise `UNSUPPORTED`, which Istio treats as "detect from the first bytes".
Kubernetes `protocol: UDP` ports are `UDP`, which the mesh does not proxy.
"""

from __future__ import annotations

from enum import StrEnum


class PortProtocol(StrEnum):
    """Istio's protocol names."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    HTTPS = "HTTPS"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    TCP = "TCP"
    TLS = "TLS"
    MONGO = "Mongo"
    MYSQL = "MySQL"
    REDIS = "Redis"
    UDP = "UDP"
    UNSUPPORTED = "UNSUPPORTED"

    @property
    def is_http(self) -> bool:
        """Spoken as HTTP by the proxy: routed by VirtualService `http` rules."""
        return self in _HTTP

    @property
    def is_sniffed(self) -> bool:
        """Unknown protocol: detected per connection (HTTP routes if it looks like HTTP)."""
        return self is PortProtocol.UNSUPPORTED

    @property
    def is_tcp(self) -> bool:
        """Forwarded as opaque bytes: routed by VirtualService `tcp` rules."""
        return not self.is_http and self not in (PortProtocol.UDP, PortProtocol.UNSUPPORTED)

    @property
    def is_http2(self) -> bool:
        """Needs HTTP/2 to the upstream."""
        return self in (PortProtocol.HTTP2, PortProtocol.GRPC, PortProtocol.GRPC_WEB)


_HTTP = frozenset({PortProtocol.HTTP, PortProtocol.HTTP2, PortProtocol.GRPC, PortProtocol.GRPC_WEB})

_BY_NAME: dict[str, PortProtocol] = {
    "http": PortProtocol.HTTP,
    "http2": PortProtocol.HTTP2,
    "https": PortProtocol.HTTPS,
    "grpc": PortProtocol.GRPC,
    "grpc-web": PortProtocol.GRPC_WEB,
    "tcp": PortProtocol.TCP,
    "tls": PortProtocol.TLS,
    "mongo": PortProtocol.MONGO,
    "mysql": PortProtocol.MYSQL,
    "redis": PortProtocol.REDIS,
    "udp": PortProtocol.UDP,
}

# Kubernetes' standard appProtocol values (KEP-3726) next to Istio's own names.
_APP_PROTOCOLS: dict[str, PortProtocol] = {
    **_BY_NAME,
    "kubernetes.io/h2c": PortProtocol.HTTP2,
    "kubernetes.io/ws": PortProtocol.HTTP,
    "kubernetes.io/wss": PortProtocol.HTTPS,
}


def parse_protocol(value: str | None) -> PortProtocol:
    """An explicit protocol (`HTTP`, `grpc`, `kubernetes.io/h2c`, ...); unknown → UNSUPPORTED."""
    if not value:
        return PortProtocol.UNSUPPORTED
    return _APP_PROTOCOLS.get(value.lower(), PortProtocol.UNSUPPORTED)


def protocol_from_name(name: str | None) -> PortProtocol:
    """Istio's port naming convention: `<protocol>` or `<protocol>-<suffix>`."""
    if not name:
        return PortProtocol.UNSUPPORTED
    lowered = name.lower()
    if lowered in _BY_NAME:
        return _BY_NAME[lowered]
    # The longest prefix first, so `grpc-web-x` is gRPC-Web rather than gRPC.
    for prefix in sorted(_BY_NAME, key=len, reverse=True):
        if lowered.startswith(prefix + "-"):
            return _BY_NAME[prefix]
    return PortProtocol.UNSUPPORTED


def port_protocol(
    *, name: str | None, explicit: str | None = None, transport: str | None = None
) -> PortProtocol:
    """The protocol of one port: explicit protocol, then the name; UDP transport wins."""
    if transport and transport.upper() == "UDP":
        return PortProtocol.UDP
    chosen = parse_protocol(explicit)
    if chosen is PortProtocol.UNSUPPORTED:
        chosen = protocol_from_name(name)
    return chosen
