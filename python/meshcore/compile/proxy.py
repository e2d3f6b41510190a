"""Who a snapshot is compiled for: the proxy's identity and the ports it serves.

`ProxyIdentity` is what the compiler knows about one sidecar: name and namespace, the
workload's labels and service account (which decide `sourceLabels` matches and which
`Sidecar` applies), the app ports inbound traffic goes to, and the proxy's own ports.
`identify_proxy` fills the blanks from the registry (a pod or WorkloadEntry of that name,
and the services that select it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshcore.registry import EMPTY_LABELS, PortProtocol, ServiceRegistry

DEFAULT_OUTBOUND_PORT = 15001
DEFAULT_INBOUND_PORT = 15006


@dataclass(frozen=True, slots=True)
class ProxyPort:
    """An app port of the proxy's workload: where inbound traffic is delivered."""

    number: int
    protocol: PortProtocol = PortProtocol.UNSUPPORTED
    name: str = ""


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """One sidecar: its workload's identity and the sockets it listens on."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    service_account: str = "default"
    ports: tuple[ProxyPort, ...] = ()
    """App ports, in the order inbound listeners are built (the first gets the inbound port)."""
    outbound_address: str = "127.0.0.1"
    outbound_port: int = DEFAULT_OUTBOUND_PORT
    inbound_address: str = "127.0.0.1"
    inbound_port: int = DEFAULT_INBOUND_PORT

    @property
    def id(self) -> str:
        """`name.namespace`, as istioctl names a proxy."""
        return f"{self.name}.{self.namespace}"


def identify_proxy(
    registry: ServiceRegistry,
    name: str,
    namespace: str,
    *,
    labels: Mapping[str, str] | None = None,
    service_account: str | None = None,
    ports: tuple[ProxyPort, ...] | None = None,
) -> ProxyIdentity:
    """A proxy identity, completed from the workload of that name in the registry.

    Explicit arguments win; otherwise labels and service account come from the pod or
    WorkloadEntry `namespace/name`, and the app ports from the services that select it.
    """
    workload = registry.workload(namespace, name)
    found_ports: dict[int, ProxyPort] = {}
    if workload is not None:
        for service in registry.services_of(workload):
            for port in service.ports:
                for endpoint in service.endpoints:
                    if endpoint.name == workload.name and endpoint.kind == workload.kind:
                        number = service.endpoint_port(endpoint, port)
                        found_ports.setdefault(number, ProxyPort(number, port.protocol, port.name))
    return ProxyIdentity(
        name=name,
        namespace=namespace,
        labels=dict(labels if labels is not None else (workload.labels if workload else {})),
        service_account=service_account
        or (workload.service_account if workload else None)
        or "default",
        ports=ports if ports is not None else tuple(found_ports[n] for n in sorted(found_ports)),
    )
