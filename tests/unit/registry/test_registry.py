"""The registry built from files: hostnames, ports, protocols, endpoints and visibility."""

from __future__ import annotations

import pytest

from meshcore.config import load_text
from meshcore.registry import (
    PortProtocol,
    Resolution,
    port_protocol,
    registry_from_resources,
    system_resolver,
)

KUBE = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.0.0.7
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: web}
  - {name: metrics, port: 9090, appProtocol: http}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-abc, namespace: default, labels: {app: reviews, version: v1}}
spec:
  serviceAccountName: bookinfo-reviews
  containers: [{name: app, ports: [{name: web, containerPort: 8080}]}]
status: {podIP: 10.1.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-pending, namespace: default, labels: {app: reviews}}
spec: {containers: [{name: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-elsewhere, namespace: other, labels: {app: reviews}}
spec: {containers: [{name: app}]}
status: {podIP: 10.1.0.9}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: default}
spec: {address: 10.2.0.1, labels: {app: reviews, version: v2}, ports: {http: 9081}}
"""

ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: egress}
spec:
  hosts: [api.example.com, www.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
  exportTo: ["."]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo, namespace: default}
spec:
  hosts: [mymongodb.somedomain]
  ports: [{number: 27018, name: mongodb, protocol: MONGO, targetPort: 27017}]
  resolution: STATIC
  endpoints:
  - {address: 2.2.2.2, weight: 3}
  - {address: 3.3.3.3, ports: {mongodb: 27999}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: vm}
spec:
  hosts: [details.vm.internal]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http-main}]
  resolution: STATIC
  workloadSelector: {labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-1, namespace: vm}
spec: {address: 192.168.1.5, labels: {app: details}, serviceAccount: details}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: default}
spec:
  hosts: [anything.example.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def _registry(text: str):
    result = load_text(text)
    assert [d.format_text() for d in result.errors] == []
    return registry_from_resources(result.resources)


def test_kubernetes_service_selects_running_pods_and_workload_entries_of_its_namespace() -> None:
    registry = _registry(KUBE)
    (service,) = registry.services_for_host("reviews.default.svc.cluster.local")
    assert service.resolution is Resolution.STATIC
    assert service.addresses == ("10.0.0.7",)
    http, metrics = service.ports
    assert (http.name, http.number, http.protocol) == ("http", 9080, PortProtocol.HTTP)
    assert metrics.protocol is PortProtocol.HTTP  # from appProtocol, not the name
    by_name = {e.name: e for e in service.endpoints}
    assert sorted(by_name) == ["reviews-v1-abc", "reviews-vm"]
    pod = by_name["reviews-v1-abc"]
    assert pod.address == "10.1.0.4"
    assert pod.service_account == "bookinfo-reviews"
    assert service.endpoint_port(pod, http) == 8080  # named targetPort → container port
    assert service.endpoint_port(pod, metrics) == 9090
    assert service.endpoint_port(by_name["reviews-vm"], http) == 9081
    assert registry.services_of(pod) == (service,)


def test_workload_lookup_by_name_finds_pods_and_workload_entries() -> None:
    registry = _registry(KUBE)
    pod = registry.workload("default", "reviews-v1-abc")
    assert pod is not None
    assert dict(pod.labels) == {"app": "reviews", "version": "v1"}
    assert registry.workload("default", "reviews-pending") is None  # no podIP yet
    vm = registry.workload("default", "reviews-vm")
    assert vm is not None
    assert vm.kind == "WorkloadEntry"


def test_service_entry_is_one_service_per_host_with_its_resolution() -> None:
    registry = _registry(ENTRIES)
    api = registry.services_for_host("api.example.com")[0]
    www = registry.services_for_host("www.example.com")[0]
    assert api.resolution is Resolution.DNS
    assert [e.address for e in api.endpoints] == ["api.example.com"]
    assert [e.address for e in www.endpoints] == ["www.example.com"]
    assert api.ports[0].protocol is PortProtocol.TLS
    assert api.location == "MESH_EXTERNAL"

    mongo = registry.services_for_host("mymongodb.somedomain")[0]
    port = mongo.ports[0]
    assert [(e.address, mongo.endpoint_port(e, port), e.weight) for e in mongo.endpoints] == [
        ("2.2.2.2", 27017, 3),
        ("3.3.3.3", 27999, 1),
    ]
    passthrough = registry.services_for_host("anything.example.org")[0]
    assert passthrough.resolution is Resolution.NONE
    assert passthrough.endpoints == ()


def test_service_entry_workload_selector_picks_workload_entries() -> None:
    registry = _registry(ENTRIES)
    (details,) = registry.services_for_host("details.vm.internal")
    assert [(e.name, e.address, e.service_account) for e in details.endpoints] == [
        ("details-1", "192.168.1.5", "details")
    ]
    assert details.ports[0].protocol is PortProtocol.HTTP  # from the name http-main


def test_export_to_limits_visibility() -> None:
    registry = _registry(ENTRIES)
    assert "api.example.com" in {s.hostname for s in registry.visible_services("egress")}
    assert "api.example.com" not in {s.hostname for s in registry.visible_services("default")}
    assert "mymongodb.somedomain" in {s.hostname for s in registry.visible_services("default")}


def test_order_of_resources_does_not_change_the_registry() -> None:
    resources = load_text(KUBE + "---" + ENTRIES).resources
    forward = registry_from_resources(resources)
    backward = registry_from_resources(list(reversed(resources)))
    assert forward.services() == backward.services()
    assert forward.workloads() == backward.workloads()


@pytest.mark.parametrize(
    ("name", "explicit", "transport", "expected"),
    [
        ("http", None, None, PortProtocol.HTTP),
        ("http-web", None, None, PortProtocol.HTTP),
        ("grpc-web-ui", None, None, PortProtocol.GRPC_WEB),
        ("grpc", None, None, PortProtocol.GRPC),
        ("tcp-db", None, None, PortProtocol.TCP),
        ("web", None, None, PortProtocol.UNSUPPORTED),
        ("httpx", None, None, PortProtocol.UNSUPPORTED),
        ("web", "kubernetes.io/h2c", None, PortProtocol.HTTP2),
        ("http", "TCP", None, PortProtocol.TCP),  # explicit protocol beats the name
        ("dns", None, "UDP", PortProtocol.UDP),
        (None, None, None, PortProtocol.UNSUPPORTED),
    ],
)
def test_port_protocol_follows_istio_naming_rules(
    name: str | None, explicit: str | None, transport: str | None, expected: PortProtocol
) -> None:
    assert port_protocol(name=name, explicit=explicit, transport=transport) is expected


def test_system_resolver_resolves_localhost_and_not_garbage() -> None:
    assert "127.0.0.1" in system_resolver("localhost")
    assert system_resolver("10.0.0.1") == ("10.0.0.1",)
    assert system_resolver("no-such-host.invalid") == ()


def test_the_next_registry_reuses_services_of_unchanged_service_entries() -> None:
    entry = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: default}
spec:
  hosts: [%(name)s.mesh.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: %(ip)s}]
"""
    kept = load_text(entry % {"name": "a", "ip": "10.0.0.1"}).resources
    first = registry_from_resources(
        [*kept, *load_text(entry % {"name": "b", "ip": "10.0.0.2"}).resources]
    )
    edited = load_text(entry % {"name": "b", "ip": "10.0.0.3"}).resources
    second = registry_from_resources([*kept, *edited], previous=first)
    fresh = registry_from_resources([*kept, *edited])
    assert second.services() == fresh.services()
    assert second.services_for_host("a.mesh.local")[0] is first.services_for_host("a.mesh.local")[0]
    assert second.services_for_host("b.mesh.local")[0].endpoints[0].address == "10.0.0.3"
