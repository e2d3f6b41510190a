"""IST0101 / IST0112: VirtualService destination hosts and ports that do not exist.

A destination host must be a Kubernetes Service (short names resolve in the
VirtualService's namespace) or a ServiceEntry host visible there, wildcard ServiceEntry
hosts included. A destination port must be one the service exposes; without a port, the
service must expose exactly one.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.analyzer import route_destinations
from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import (
    REFERENCED_RESOURCE_NOT_FOUND,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
    quote,
    referenced_not_found,
)
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import VirtualService


class DestinationHostAnalyzer:
    """Checks the destination hosts and ports of every VirtualService."""

    name = "virtualservice.DestinationHostAnalyzer"
    description = "Checks the destination hosts associated with each virtual service"
    codes = ("IST0101", "IST0112")

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for vs in index.of(VirtualService):
            namespace = vs.metadata.namespace
            for item in route_destinations(vs):
                host = item.destination.host
                entry = index.lookup_host(host, namespace, vs.spec.export_to)
                if entry is None:
                    reftype = "mirror host" if item.mirror else "host"
                    message = referenced_not_found(reftype, host)
                    yield index.report(vs, REFERENCED_RESOURCE_NOT_FOUND, message, item.path)
                    continue
                port = item.destination.port.number if item.destination.port else None
                numbers = [p.number for p in entry.ports]
                if port is None:
                    if len(numbers) > 1:
                        message = (
                            f"This VirtualService routes to a service {quote(host)} that exposes "
                            f"multiple ports [{' '.join(map(str, numbers))}]. Specifying a port in "
                            "the destination is required to disambiguate."
                        )
                        yield index.report(
                            vs,
                            VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                            message,
                            item.path,
                        )
                elif numbers and port not in numbers:
                    message = referenced_not_found("host:port", f"{host}:{port}")
                    yield index.report(vs, REFERENCED_RESOURCE_NOT_FOUND, message, item.path)
