"""IST0101 / IST0132: gateways a VirtualService binds to that do not exist or lack its hosts.

`mesh` is the implicit sidecar gateway. A gateway reference is `name` (the VirtualService's
namespace) or `namespace/name`. A bound gateway must serve at least one of the
VirtualService's hosts (server hosts `ns/host`, `./host` and `*/host` honoured).
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers import hosts
from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import (
    REFERENCED_RESOURCE_NOT_FOUND,
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    go_list,
    referenced_not_found,
)
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import Gateway, VirtualService

MESH = "mesh"


def gateway_name(reference: str, namespace: str) -> tuple[str, str]:
    """`(namespace, name)` a VirtualService's gateway reference points at."""
    if "/" in reference:
        ns, name = reference.split("/", 1)
        return ns, name
    return namespace, reference


def serves(gateway: Gateway, vs_hosts: list[str], vs_namespace: str) -> bool:
    """True if one of the gateway's server hosts visible to `vs_namespace` matches a VS host."""
    gateway_namespace = gateway.metadata.namespace
    for server in gateway.spec.servers or []:
        for value in server.hosts:
            scope, host = hosts.split_namespaced_host(value, gateway_namespace)
            if scope not in ("*", vs_namespace):
                continue
            if any(hosts.matches(host, vs_host) for vs_host in vs_hosts):
                return True
    return False


class GatewayAnalyzer:
    """Checks the gateways associated with each virtual service."""

    name = "virtualservice.GatewayAnalyzer"
    description = "Checks the gateways associated with each virtual service"
    codes = ("IST0101", "IST0132")

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for vs in index.of(VirtualService):
            vs_namespace = vs.metadata.namespace
            for position, reference in enumerate(vs.spec.gateways or []):
                if reference == MESH:
                    continue
                path = ("spec", "gateways", position)
                namespace, name = gateway_name(reference, vs_namespace)
                gateway = index.get(Gateway, namespace, name)
                if gateway is None:
                    message = referenced_not_found("gateway", reference)
                    yield index.report(vs, REFERENCED_RESOURCE_NOT_FOUND, message, path)
                    continue
                vs_hosts = vs.spec.hosts or []
                if not serves(gateway, vs_hosts, vs_namespace):
                    message = (
                        f"one or more host {go_list(vs_hosts)} defined in VirtualService "
                        f"{vs_namespace}/{vs.metadata.name} not found in Gateway "
                        f"{namespace}/{name}."
                    )
                    yield index.report(vs, VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY, message, path)
