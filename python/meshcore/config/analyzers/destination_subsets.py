"""IST0101: VirtualService destinations naming a subset no DestinationRule defines.

The subset must be defined by a DestinationRule whose host is the destination's host (short
names resolved in each object's own namespace).
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers import hosts
from meshcore.config.analyzers.analyzer import route_destinations
from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import REFERENCED_RESOURCE_NOT_FOUND, referenced_not_found
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import DestinationRule, VirtualService


class DestinationSubsetAnalyzer:
    """Checks that every subset a VirtualService routes to is defined."""

    name = "virtualservice.DestinationRuleAnalyzer"
    description = "Checks the destination rules associated with each virtual service"
    codes = ("IST0101",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        defined: set[tuple[str, str]] = set()
        for dr in index.of(DestinationRule):
            host = hosts.resource_key(dr.metadata.namespace, dr.spec.host)
            defined.update((host, subset.name) for subset in dr.spec.subsets or [])
        for vs in index.of(VirtualService):
            for item in route_destinations(vs):
                subset = item.destination.subset
                if not subset:
                    continue
                host = hosts.resource_key(vs.metadata.namespace, item.destination.host)
                if (host, subset) in defined:
                    continue
                reftype = "mirror+subset" if item.mirror else "host+subset"
                message = referenced_not_found(
                    f"{reftype} in destinationrule", f"{item.destination.host}+{subset}"
                )
                path = (*item.path[:-1], "subset")
                yield index.report(vs, REFERENCED_RESOURCE_NOT_FOUND, message, path)
