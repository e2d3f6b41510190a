"""What the registry holds: services, their ports, and the workloads behind them.

Plain frozen values. A `Service` is one hostname in one namespace (a ServiceEntry with three
hosts is three services, as in Istio); a `Workload` is one endpoint instance (a pod, a
WorkloadEntry, or an inline ServiceEntry endpoint) with its address, named ports, labels,
service account and namespace. Mappings are read-only views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from meshcore.registry.protocol import PortProtocol

EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})


def frozen_map(values: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy, keys sorted so iteration order never depends on input order."""
    if not values:
        return EMPTY_LABELS
    return MappingProxyType(dict(sorted(values.items())))


def frozen_ports(values: Mapping[str, int] | None) -> Mapping[str, int]:
    """A read-only, sorted copy of a port-name → number map."""
    if not values:
        return MappingProxyType({})
    return MappingProxyType(dict(sorted(values.items())))


class Resolution(StrEnum):
    """How a service's endpoints are found (ServiceEntry `resolution`)."""

    STATIC = "STATIC"
    """The endpoints' addresses are IP literals, known from config."""
    DNS = "DNS"
    """Endpoint addresses (or the hostname itself) are resolved through DNS at compile time."""
    NONE = "NONE"
    """No endpoints: connections go to the address the client asked for (passthrough)."""


Location = Literal["MESH_INTERNAL", "MESH_EXTERNAL"]


@dataclass(frozen=True, slots=True)
class ServicePort:
    """A port of a service: its name, number, protocol and the port on the endpoints."""

    name: str
    number: int
    protocol: PortProtocol
    target_port: int | None = None
    """The endpoints' port when they do not name one (Kubernetes `targetPort`)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One endpoint instance: a pod, a WorkloadEntry or an inline ServiceEntry endpoint."""

    kind: str
    """`Pod`, `WorkloadEntry` or `ServiceEntry` (an inline endpoint)."""
    name: str
    """The object's name (for inline endpoints, `<serviceentry>[i]`)."""
    namespace: str
    address: str
    """An IP literal, or a hostname for DNS-resolved services."""
    ports: Mapping[str, int] = field(default_factory=lambda: frozen_ports(None))
    """Port name → the port this workload listens on for it (overrides `targetPort`)."""
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    service_account: str = "default"
    weight: int = 1

    @property
    def origin(self) -> str:
        """`Kind namespace/name`, as diagnostics name objects."""
        return f"{self.kind} {self.namespace}/{self.name}"

    def selected_by(self, selector: Mapping[str, str]) -> bool:
        """True if every label of a (non-empty) selector is on this workload."""
        return bool(selector) and all(self.labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True, slots=True)
class Service:
    """One hostname in one namespace, with its ports and endpoints."""

    hostname: str
    namespace: str
    ports: tuple[ServicePort, ...]
    resolution: Resolution
    endpoints: tuple[Workload, ...] = ()
    addresses: tuple[str, ...] = ()
    """Virtual IPs (ClusterIP, ServiceEntry `addresses`)."""
    location: Location = "MESH_INTERNAL"
    export_to: frozenset[str] = frozenset({"*"})
    """Namespaces that see this service: names, `*` (all) or `~` (none); `.` is resolved."""
    origin: str = ""
    """The object this service came from, `Kind namespace/name`."""

    def port(self, number: int) -> ServicePort | None:
        """The port with this number, if the service has it."""
        return next((p for p in self.ports if p.number == number), None)

    def visible_from(self, namespace: str) -> bool:
        """Whether a proxy in `namespace` may reach this service (`exportTo`)."""
        return "*" in self.export_to or namespace in self.export_to

    def endpoint_port(self, workload: Workload, port: ServicePort) -> int:
        """The port to connect to on `workload` for service port `port` (Istio's order)."""
        return workload.ports.get(port.name) or port.target_port or port.number
