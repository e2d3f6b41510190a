"""Building a registry from loaded config: ServiceEntry, WorkloadEntry, Service and Pod.

Istio's rules, applied to objects read from files:

- a ServiceEntry is one service per host; `resolution` STATIC, DNS (and DNS_ROUND_ROBIN,
  DYNAMIC_DNS) or NONE (the default); endpoints are its inline `endpoints`, or the
  WorkloadEntries and pods of its namespace its `workloadSelector` selects; a DNS entry with
  neither resolves the host itself;
- a Kubernetes Service is `<name>.<namespace>.svc.<domain>`; its `selector` picks the pods
  (those with a `status.podIP`) and WorkloadEntries of its namespace, and a named
  `targetPort` is looked up among the pod's container ports; `ExternalName` services
  resolve their external name through DNS;
- `exportTo` (`.`, `*`, `~` or namespaces) limits which namespaces see a service; for a
  Service it is the `networking.istio.io/exportTo` annotation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from meshcore.config import Pod, Service, ServiceEntry, WorkloadEntry
from meshcore.config.kube import KubeServicePort
from meshcore.registry import model
from meshcore.registry.model import Resolution, ServicePort, Workload, frozen_map, frozen_ports
from meshcore.registry.protocol import port_protocol
from meshcore.registry.registry import DEFAULT_DOMAIN_SUFFIX, MemoryRegistry

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"

_RESOLUTIONS = {
    "STATIC": Resolution.STATIC,
    "DNS": Resolution.DNS,
    "DNS_ROUND_ROBIN": Resolution.DNS,
    "DYNAMIC_DNS": Resolution.DNS,
    "NONE": Resolution.NONE,
}


def export_set(export_to: Iterable[str] | None, namespace: str) -> frozenset[str]:
    """`exportTo` as a set of namespaces: unset means everyone, `.` the object's own."""
    values = [v.strip() for v in export_to or () if v.strip()]
    if not values:
        return frozenset({"*"})
    return frozenset(namespace if v == "." else v for v in values)


def registry_from_resources(
    resources: Iterable[object],
    *,
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    previous: MemoryRegistry | None = None,
) -> MemoryRegistry:
    """A registry of every service and workload described by `resources` (any order).

    Given `previous`, the registry of the config before an edit, the services of a
    ServiceEntry that depend on nothing but itself (inline endpoints) are taken from it
    when it is the very same object.
    """
    reuse = previous.derived if previous is not None else {}
    if previous is not None and previous.domain_suffix != domain_suffix:
        reuse = {}
    derived: dict[int, tuple[object, tuple[model.Service, ...]]] = {}
    items = list(resources)
    pods = [_pod_workload(p) for p in items if isinstance(p, Pod)]
    entries = [_entry_workload(w) for w in items if isinstance(w, WorkloadEntry)]
    # Sorted, so a service's endpoints come out in the same order whatever the file order.
    workloads = sorted(
        (w for w in (*pods, *entries) if w is not None),
        key=lambda w: (w.namespace, w.name, w.kind, repr(w)),
    )
    selectable = _Workloads(workloads)
    services: list[model.Service] = []
    for item in items:
        if isinstance(item, ServiceEntry):
            if item.spec.workload_selector is not None:
                services.extend(_from_service_entry(item, selectable))
                continue
            hit = reuse.get(id(item))
            made = hit[1] if hit is not None and hit[0] is item else None
            if made is None:
                made = tuple(_from_service_entry(item, selectable))
            derived[id(item)] = (item, made)
            services.extend(made)
        elif isinstance(item, Service):
            services.append(_from_kube_service(item, selectable, domain_suffix))
    return MemoryRegistry(services, workloads, domain_suffix=domain_suffix, derived=derived)


def _pod_workload(pod: Pod) -> Workload | None:
    status: Any = (pod.model_extra or {}).get("status") or {}
    address = status.get("podIP") if isinstance(status, dict) else None
    if not isinstance(address, str) or not address:
        return None
    container_ports = {
        port.name: port.container_port
        for container in pod.spec.containers
        for port in container.ports or ()
        if port.name
    }
    return Workload(
        kind="Pod",
        name=pod.metadata.name,
        namespace=pod.metadata.namespace,
        address=address,
        ports=frozen_ports(container_ports),
        labels=frozen_map(pod.metadata.labels),
        service_account=pod.spec.service_account_name or "default",
    )


def _entry_workload(entry: WorkloadEntry) -> Workload | None:
    spec = entry.spec
    if not spec.address:
        return None
    return Workload(
        kind="WorkloadEntry",
        name=entry.metadata.name,
        namespace=entry.metadata.namespace,
        address=spec.address,
        ports=frozen_ports(spec.ports),
        labels=frozen_map({**(entry.metadata.labels or {}), **(spec.labels or {})}),
        service_account=spec.service_account or "default",
        weight=spec.weight or 1,
    )


class _Workloads:
    """Workloads indexed by (namespace, label, value): a selector looks at the workloads
    carrying its rarest label, not at every workload (1,000 services over 2,000 pods)."""

    def __init__(self, workloads: Iterable[Workload]) -> None:
        self._by_label: dict[tuple[str, str, str], list[Workload]] = defaultdict(list)
        for workload in workloads:  # in order: each list keeps the workloads' order
            for key, value in workload.labels.items():
                self._by_label[(workload.namespace, key, value)].append(workload)

    def selected(self, namespace: str, selector: Mapping[str, str]) -> list[Workload]:
        """The workloads of `namespace` a (non-empty) selector selects, in order."""
        if not selector:
            return []
        candidates = min(
            (self._by_label.get((namespace, k, v), []) for k, v in selector.items()), key=len
        )
        return [w for w in candidates if w.selected_by(selector)]


def _from_service_entry(entry: ServiceEntry, workloads: _Workloads) -> list[model.Service]:
    spec = entry.spec
    namespace = entry.metadata.namespace
    resolution = _RESOLUTIONS[spec.resolution or "NONE"]
    ports = tuple(
        ServicePort(
            name=p.name,
            number=p.number,
            protocol=port_protocol(name=p.name, explicit=p.protocol),
            target_port=p.target_port,
        )
        for p in spec.ports or ()
    )
    if spec.workload_selector is not None:
        endpoints = workloads.selected(namespace, spec.workload_selector.labels or {})
    else:
        endpoints = [
            Workload(
                kind="ServiceEntry",
                name=f"{entry.metadata.name}[{i}]",
                namespace=namespace,
                address=e.address or "",
                ports=frozen_ports(e.ports),
                labels=frozen_map(e.labels),
                service_account=e.service_account or "default",
                weight=e.weight or 1,
            )
            for i, e in enumerate(spec.endpoints or ())
            if e.address and not e.address.startswith("unix://")
        ]
    services = []
    for host in spec.hosts:
        own = endpoints
        if resolution is Resolution.DNS and not own and spec.workload_selector is None:
            own = [
                Workload(
                    kind="ServiceEntry",
                    name=f"{entry.metadata.name}/{host}",
                    namespace=namespace,
                    address=host,
                )
            ]
        services.append(
            model.Service(
                hostname=host,
                namespace=namespace,
                ports=ports,
                resolution=resolution,
                endpoints=tuple(own) if resolution is not Resolution.NONE else (),
                addresses=tuple(spec.addresses or ()),
                location=spec.location or "MESH_EXTERNAL",
                export_to=export_set(spec.export_to, namespace),
                origin=entry.origin,
            )
        )
    return services


def _kube_port(port: KubeServicePort) -> ServicePort:
    return ServicePort(
        name=port.name or "",
        number=port.port,
        protocol=port_protocol(name=port.name, explicit=port.app_protocol, transport=port.protocol),
        target_port=port.target_port if isinstance(port.target_port, int) else None,
    )


def _from_kube_service(
    service: Service, workloads: _Workloads, domain_suffix: str
) -> model.Service:
    meta = service.metadata
    spec = service.spec
    namespace = meta.namespace
    kube_ports = list(spec.ports or ())
    ports = tuple(_kube_port(p) for p in kube_ports)
    annotation = (meta.annotations or {}).get(EXPORT_TO_ANNOTATION)
    export_to = export_set(annotation.split(",") if annotation else None, namespace)
    hostname = f"{meta.name}.{namespace}.svc.{domain_suffix}"
    addresses = tuple(a for a in [spec.cluster_ip] if a and a != "None")
    if spec.type == "ExternalName" and spec.external_name:
        endpoint = Workload(
            kind="Service", name=meta.name, namespace=namespace, address=spec.external_name
        )
        return model.Service(
            hostname=hostname,
            namespace=namespace,
            ports=ports,
            resolution=Resolution.DNS,
            endpoints=(endpoint,),
            location="MESH_EXTERNAL",
            export_to=export_to,
            origin=service.origin,
        )
    endpoints = []
    for workload in workloads.selected(namespace, spec.selector or {}):
        resolved = {}
        for kube_port, port in zip(kube_ports, ports, strict=True):
            target = _target_port(kube_port, port, workload)
            if target is not None:
                resolved[port.name] = target
        if resolved:
            endpoints.append(replace(workload, ports=frozen_ports(resolved)))
    return model.Service(
        hostname=hostname,
        namespace=namespace,
        ports=ports,
        resolution=Resolution.STATIC,
        endpoints=tuple(endpoints),
        addresses=addresses,
        export_to=export_to,
        origin=service.origin,
    )


def _target_port(kube_port: KubeServicePort, port: ServicePort, workload: Workload) -> int | None:
    target = kube_port.target_port
    if workload.kind == "WorkloadEntry" and port.name in workload.ports:
        return workload.ports[port.name]  # a WorkloadEntry names its ports as the service does
    if isinstance(target, str):
        return workload.ports.get(target)  # a named targetPort: the container port of that name
    return target if isinstance(target, int) else port.number
