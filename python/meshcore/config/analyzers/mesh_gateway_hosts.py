"""IST0109: two VirtualServices bound to the mesh gateway define the same host.

A VirtualService with no `gateways` is bound to `mesh`. Hosts are compared as FQDNs within
the namespaces the VirtualServices are exported to.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers import hosts
from meshcore.config.analyzers.index import METADATA_NAME, ResourceIndex
from meshcore.config.analyzers.messages import CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import VirtualService


class ConflictingMeshGatewayHostsAnalyzer:
    """Checks VirtualServices on the mesh gateway for hosts defined twice."""

    name = "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
    description = (
        "Checks if multiple virtual services associated with the mesh gateway have "
        "conflicting hosts"
    )
    codes = ("IST0109",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        by_host: dict[str, list[VirtualService]] = {}
        for vs in index.of(VirtualService):
            gateways = vs.spec.gateways or []
            if gateways and "mesh" not in gateways:
                continue
            namespace = vs.metadata.namespace
            for scope in hosts.export_scopes(vs.spec.export_to, namespace):
                for host in dict.fromkeys(vs.spec.hosts or []):
                    key = f"{scope}/{hosts.to_fqdn(namespace, host)}"
                    by_host.setdefault(key, []).append(vs)
        for key, services in sorted(by_host.items()):
            if len(services) < 2:
                continue
            names = ",".join(f"{v.metadata.namespace}/{v.metadata.name}" for v in services)
            message = (
                f"The VirtualServices {names} associated with mesh gateway define the same host "
                f"{key} which can lead to undefined behavior. This can be fixed by merging the "
                "conflicting VirtualServices into a single resource."
            )
            for vs in services:
                yield index.report(
                    vs, CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS, message, METADATA_NAME
                )
