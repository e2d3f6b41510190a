"""IST0174: a DestinationRule whose host matches no service.

The host must be a Kubernetes Service (short names resolve in the rule's namespace) or a
ServiceEntry host visible there. Wildcard hosts (`*.local`, `*.example.com`) are policies
for whatever matches them and are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import UNKNOWN_DESTINATION_RULE_HOST
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.networking import DestinationRule


class UnknownDestinationRuleHostAnalyzer:
    """Checks that each DestinationRule's host is a known service."""

    name = "destinationrule.UnknownDestinationRuleHostAnalyzer"
    description = "Checks that the host of a destination rule is a service in the mesh"
    codes = ("IST0174",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for dr in index.of(DestinationRule):
            host = dr.spec.host
            if host.startswith("*"):
                continue
            if index.lookup_host(host, dr.metadata.namespace, dr.spec.export_to) is not None:
                continue
            message = (
                f"The host {host} defined in the DestinationRule does not match any services in "
                "the mesh."
            )
            yield index.report(dr, UNKNOWN_DESTINATION_RULE_HOST, message, ("spec", "host"))
