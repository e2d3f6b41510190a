"""Compiler semantics that a user of Istio would notice, one behaviour per test."""

from __future__ import annotations

import pytest

from meshcore.compile import CompileError, Compiler, identify_proxy, routes
from meshcore.compile.snapshot import StringMatch, parse_snapshot, validate_snapshot
from meshcore.config import MeshConfig, load_text
from meshcore.config import networking as istio
from meshcore.config.networking import HTTPRetry
from meshcore.registry import registry_from_resources

from .helpers import compile_resources, compile_text

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %(ns)s}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-%(ns)s, namespace: %(ns)s, labels: {app: reviews, version: v1}}
spec: {containers: [{name: r}]}
status: {podIP: 10.9.0.1}
"""


def _vhost_names(compiled) -> list[str]:
    config = compiled.snapshot.route_config("outbound")
    return [v.name for v in config.virtual_hosts]


def test_export_to_dot_hides_services_and_virtual_services_from_other_namespaces() -> None:
    text = (
        SERVICE % {"ns": "team"}
        + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: team}
spec:
  exportTo: ["."]
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}], timeout: 3s}]
"""
    )
    inside = compile_text(text, "a.team")
    outside = compile_text(text, "a.elsewhere")
    route = inside.snapshot.route_config("outbound").virtual_hosts[0].routes[0]  # type: ignore[union-attr]
    assert route.origin is not None
    assert route.route is not None
    assert route.route.timeout_ms == 3000
    other = outside.snapshot.route_config("outbound").virtual_hosts[0].routes[0]  # type: ignore[union-attr]
    assert other.origin is None  # the default route: the VirtualService is not exported here


def test_sidecar_egress_hosts_limit_what_a_proxy_sees() -> None:
    text = (
        SERVICE % {"ns": "a"}
        + "---"
        + SERVICE % {"ns": "b"}
        + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*"]}]
"""
    )
    compiled = compile_text(text, "client.a")
    assert _vhost_names(compiled) == ["reviews.a.svc.cluster.local:9080", "allow_any"]
    assert all("reviews.b" not in c.name for c in compiled.snapshot.clusters)


def test_sidecar_workload_selector_beats_namespace_default() -> None:
    text = (
        SERVICE % {"ns": "a"}
        + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
spec:
  egress: [{hosts: ["istio-system/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: special, namespace: a}
spec:
  workloadSelector: {labels: {app: client}}
  egress: [{hosts: ["./*"]}]
"""
    )
    selected = compile_text(text, "client.a", labels={"app": "client"})
    other = compile_text(text, "other.a", labels={"app": "other"})
    assert "reviews.a.svc.cluster.local:9080" in _vhost_names(selected)
    assert "reviews.a.svc.cluster.local:9080" not in _vhost_names(other)


def test_destination_rule_in_proxy_namespace_wins_over_service_namespace() -> None:
    text = (
        SERVICE % {"ns": "svc"}
        + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: svc}
spec:
  host: reviews.svc.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-client, namespace: client}
spec:
  host: reviews.svc.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"""
    )
    name = "outbound|9080||reviews.svc.svc.cluster.local"
    client = compile_text(text, "c.client").snapshot.cluster(name)
    other = compile_text(text, "c.other").snapshot.cluster(name)
    assert client is not None
    assert other is not None
    assert (client.lb_policy, client.origin.name if client.origin else None) == (
        "round_robin",
        "reviews-client",
    )
    assert other.lb_policy == "random"


def test_mesh_default_retry_policy_applies_to_routes_without_retries() -> None:
    mesh = MeshConfig(default_http_retry_policy=HTTPRetry(attempts=5, retry_on="5xx"))
    compiled = compile_text(SERVICE % {"ns": "a"}, "c.a", mesh=mesh)
    route = compiled.snapshot.route_config("outbound").virtual_hosts[0].routes[0]  # type: ignore[union-attr]
    assert route.route is not None
    assert route.route.retries is not None
    assert (route.route.retries.attempts, route.route.retries.retry_on) == (5, ["5xx"])


def test_unknown_subset_gets_an_empty_cluster_and_a_warning() -> None:
    text = (
        SERVICE % {"ns": "a"}
        + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: a}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
"""
    )
    compiled = compile_text(text, "c.a")
    cluster = compiled.snapshot.cluster("outbound|9080|v9|reviews.a.svc.cluster.local")
    assert cluster is not None
    assert cluster.endpoints == []
    assert any("subset 'v9'" in d.message for d in compiled.diagnostics)


def test_inbound_listener_serves_the_workload_port() -> None:
    compiled = compile_text(SERVICE % {"ns": "a"}, "reviews-a.a")
    inbound = [x for x in compiled.snapshot.listeners if x.direction == "inbound"]
    assert [(x.port, x.route_config) for x in inbound] == [(15006, "inbound|9080")]
    cluster = compiled.snapshot.cluster("inbound|9080||")
    assert cluster is not None
    assert [(e.address, e.port) for e in cluster.endpoints] == [("127.0.0.1", 9080)]


def test_sidecar_egress_with_capture_none_gets_its_own_listener() -> None:
    text = (
        SERVICE % {"ns": "a"}
        + """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
spec:
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: ["./reviews.a.svc.cluster.local"]
  - hosts: ["./*"]
"""
    )
    snapshot = compile_text(text, "c.a").snapshot
    listener = next(x for x in snapshot.listeners if x.port == 9080)
    assert (listener.address, listener.protocol, listener.route_config) == (
        "127.0.0.1",
        "http",
        "127.0.0.1_9080",
    )
    config = snapshot.route_config("127.0.0.1_9080")
    assert config is not None
    assert "*" in config.virtual_hosts[0].domains


def test_every_compiled_snapshot_is_valid_and_versioned_by_content() -> None:
    resources = load_text(SERVICE % {"ns": "a"}).resources
    first = compile_resources(resources, "c.a").snapshot
    second = compile_resources(resources, "d.a").snapshot
    assert validate_snapshot(first) == []
    assert first.version == second.version  # same proxy config, same version
    changed = compile_resources(
        resources, "c.a", mesh=MeshConfig(access_log_file="/tmp/x")
    ).snapshot
    assert changed.version != first.version


def test_the_wire_form_is_the_snapshot_serialised_once() -> None:
    compiled = compile_text(SERVICE % {"ns": "a"}, "c.a")
    assert compiled.wire is not None
    assert compiled.payload == compiled.snapshot.to_json()
    assert parse_snapshot(compiled.payload) == compiled.snapshot


def test_a_broken_compile_is_refused_also_when_its_pieces_are_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pieces are built without re-validation and shared between proxies; the one
    `validate_snapshot` at the end still sees what they break."""

    def broken(match: istio.StringMatch | None) -> StringMatch | None:
        return None if match is None else StringMatch(regex="(unclosed")

    monkeypatch.setattr(routes, "string_match", broken)
    text = (
        SERVICE % {"ns": "a"}
        + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: a}
spec:
  hosts: [reviews]
  http: [{match: [{uri: {prefix: /x}}], route: [{destination: {host: reviews}}]}]
"""
    )
    resources = load_text(text).resources
    registry = registry_from_resources(resources)
    compiler = Compiler(resources, registry)
    for name in ("c", "d"):  # the second proxy reuses what the first one built
        with pytest.raises(CompileError) as caught:
            compiler.compile(identify_proxy(registry, name, "a"))
        assert [e.path for e in caught.value.errors] == [
            "route_configs[0].virtual_hosts[0].routes[0].matches[0].uri.regex"
        ]


def test_ports_declared_opaque_skip_detection_on_the_outbound_listener() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: a}
spec:
  ports: [{name: mysql, port: 3306}, {name: smtp-relay, port: 25, appProtocol: tcp}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec:
  ports: [{name: http, port: 9080}, {name: metrics, port: 9090}, {name: tcp-admin, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: a}
spec:
  ports: [{name: http-alt, port: 8080}, {name: dns, port: 53, protocol: UDP}]
"""
    snapshot = compile_text(text, "c.a").snapshot
    outbound = next(x for x in snapshot.listeners if x.name == "outbound-http-proxy")
    assert outbound.protocol == "auto"
    # 9090 is undeclared (detected); 8080 is TCP for one service but HTTP for another.
    assert outbound.opaque_ports == [25, 3306]
