"""Listeners: the outbound HTTP-proxy listener, inbound listeners, and Sidecar-declared ones.

- **outbound** (`127.0.0.1:15001`, `protocol: auto`, `http_proxy: true`): HTTP requests are
  routed by the `outbound` route config; other TCP goes to `PassthroughCluster` (ALLOW_ANY)
  or `BlackHoleCluster` (REGISTRY_ONLY), per MeshConfig or the Sidecar's
  `outboundTrafficPolicy`.
- **inbound** (`127.0.0.1:15006`): the workload's first captured app port, through cluster
  `inbound|PORT||` to `127.0.0.1:PORT` (or the Sidecar ingress listener's `defaultEndpoint`).
- **Sidecar `egress[]` with `captureMode: NONE` and a port**: its own listener on `bind`
  (default `127.0.0.1`) and port, seeing only that entry's hosts on that port.
- **Sidecar `ingress[]` with `captureMode: NONE`**: its own listener on `bind` (default
  `0.0.0.0`) and port, to its `defaultEndpoint`.
"""

from __future__ import annotations

from meshcore.compile.clusters import cluster_name
from meshcore.compile.snapshot import (
    Cluster,
    ClusterProtocol,
    Endpoint,
    ForwardAction,
    HttpWeightedCluster,
    Listener,
    Origin,
    Protocol,
    Route,
    RouteConfig,
    TcpRoute,
    VirtualHost,
    WeightedCluster,
)
from meshcore.registry import PortProtocol

OUTBOUND_LISTENER = "outbound-http-proxy"
OUTBOUND_ROUTE_CONFIG = "outbound"


def listener_protocol(protocol: PortProtocol) -> Protocol:
    """Snapshot listener protocol of an Istio port protocol."""
    if protocol.is_http:
        return "http"
    if protocol.is_sniffed:
        return "auto"
    return "tcp"


def cluster_protocol(protocol: PortProtocol) -> ClusterProtocol:
    """Upstream protocol of a cluster for an Istio port protocol."""
    if protocol.is_http2:
        return "http2"
    if protocol.is_http:
        return "http1"
    return "inherit"


def inbound_parts(
    *,
    name: str,
    address: str,
    port: int,
    app_port: int,
    protocol: PortProtocol,
    endpoint: tuple[str, int],
    origin: Origin | None = None,
) -> tuple[Listener, RouteConfig | None, Cluster]:
    """A listener to one app port, with its route config (HTTP) and `inbound|PORT||` cluster."""
    cluster = cluster_name("inbound", app_port, "", "")
    kind = listener_protocol(protocol)
    route_config = None
    if kind != "tcp":
        route_config = RouteConfig(
            name=f"inbound|{app_port}",
            virtual_hosts=[
                VirtualHost(
                    name=f"inbound|http|{app_port}",
                    domains=["*"],
                    routes=[
                        Route(route=ForwardAction(clusters=[HttpWeightedCluster(name=cluster)]))
                    ],
                )
            ],
        )
    listener = Listener(
        name=name,
        address=address,
        port=port,
        protocol=kind,
        direction="inbound",
        route_config=route_config.name if route_config else None,
        tcp_route=TcpRoute(clusters=[WeightedCluster(name=cluster)]) if kind != "http" else None,
        origin=origin,
    )
    target = Cluster(
        name=cluster,
        protocol=cluster_protocol(protocol),
        lb_policy="round_robin",
        endpoints=[Endpoint(address=endpoint[0], port=endpoint[1])],
    )
    return listener, route_config, target
