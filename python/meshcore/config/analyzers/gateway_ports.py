"""IST0101 / IST0162: a Gateway whose selector matches no workload, or whose server port the
workload's Service does not expose.

The Gateway's selector picks gateway workloads (Pods, Deployment pod templates) in any
namespace; the Services selecting those workloads in their namespace expose TCP ports, and
each server port must be one of their target ports (or the port itself when no target port
is set). A selector is judged only when some workload in the analyzed files carries one of
its label keys (the files model gateway workloads): application directories that reference
the cluster's ingress gateway without containing it are not reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import ResourceIndex, format_selector, selects
from meshcore.config.analyzers.messages import (
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    REFERENCED_RESOURCE_NOT_FOUND,
    referenced_not_found,
)
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.kube import Service
from meshcore.config.networking import Gateway


class IngressGatewayPortAnalyzer:
    """Checks a gateway's ports against the gateway's Kubernetes service ports."""

    name = "gateway.IngressGatewayPortAnalyzer"
    description = "Checks a gateway's ports against the gateway's Kubernetes service ports"
    codes = ("IST0101", "IST0162")

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        services = index.of(Service)
        for gateway in index.of(Gateway):
            selector = gateway.spec.selector
            if not selector:
                continue
            selector_text = format_selector(selector)
            selector_path = ("spec", "selector", sorted(selector)[0])
            if not any(key in w.labels for w in index.workloads for key in selector):
                continue
            matched = [w for w in index.workloads if selects(selector, w.labels)]
            if not matched:
                message = referenced_not_found("selector", selector_text)
                yield index.report(gateway, REFERENCED_RESOURCE_NOT_FOUND, message, selector_path)
                continue
            ports: set[int] = set()
            for workload in matched:
                for service in services:
                    if service.metadata.namespace != workload.namespace:
                        continue
                    if service.spec.selector is None or not selects(
                        service.spec.selector, workload.labels
                    ):
                        continue
                    for port in service.spec.ports or []:
                        if (port.protocol or "TCP") != "TCP":
                            continue
                        target = port.target_port
                        ports.add(target if isinstance(target, int) and target else port.port)
            for position, server in enumerate(gateway.spec.servers or []):
                if server.port.number in ports:
                    continue
                message = (
                    f"The gateway is listening on a target port (port {server.port.number}) that "
                    "is not defined in the Service associated with its workload instances (Pod "
                    f"selector {selector_text}). If you need to access the gateway port through "
                    "the gateway Service, it will not be available."
                )
                path = ("spec", "servers", position, "port", "number")
                yield index.report(gateway, GATEWAY_PORT_NOT_DEFINED_ON_SERVICE, message, path)
