"""Proxy-wide settings of the snapshot, and how mesh config reaches them: `defaultConfig`
(Istio's ProxyConfig, mesh-wide) and `protocolDetectionTimeout`."""

from __future__ import annotations

from meshcore.compile.snapshot import (
    DEFAULT_DETECT_TIMEOUT_MS,
    ProxySettings,
    Snapshot,
    validate_snapshot,
)
from meshcore.config import MeshConfig

from .helpers import compile_text

WORKLOAD = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: a}
spec:
  selector: {app: reviews}
  ports: [{name: web, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, namespace: a, labels: {app: reviews}}
spec: {containers: [{name: r}]}
status: {podIP: 10.9.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: a}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9081}]
"""
"""`reviews-1.a` has an `auto` inbound listener (port name `web`: protocol sniffed) and the
`auto` outbound one; a Sidecar adds an `http` listener below."""

SIDECAR = """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
spec:
  egress:
  - port: {number: 9081, protocol: HTTP, name: http}
    captureMode: NONE
    hosts: ["./*"]
  - hosts: ["./*"]
"""


def _mesh(text: str) -> MeshConfig:
    return MeshConfig.model_validate_json(text)


def test_downstream_http2_streams_default_to_hypers_and_must_be_at_least_one() -> None:
    assert ProxySettings().http2_max_concurrent_streams == 200
    zero = Snapshot(version="v1", settings=ProxySettings(http2_max_concurrent_streams=0))
    errors = validate_snapshot(zero)
    assert [(e.path, e.code, e.message) for e in errors] == [
        ("settings.http2_max_concurrent_streams", "out_of_range", "must be at least 1")
    ]


def test_without_mesh_config_the_settings_are_the_snapshots_defaults() -> None:
    snapshot = compile_text(WORKLOAD, "reviews-1.a").snapshot
    assert snapshot.settings == ProxySettings()
    assert {x.detect_timeout_ms for x in snapshot.listeners} == {DEFAULT_DETECT_TIMEOUT_MS}


def test_preserve_http1_header_case_turns_on_preserve_header_case() -> None:
    on = _mesh('{"defaultConfig": {"proxyHeaders": {"preserveHttp1HeaderCase": true}}}')
    off = _mesh('{"defaultConfig": {"proxyHeaders": {"preserveHttp1HeaderCase": false}}}')
    assert compile_text(WORKLOAD, "c.a", mesh=on).snapshot.settings.preserve_header_case
    assert not compile_text(WORKLOAD, "c.a", mesh=off).snapshot.settings.preserve_header_case


def test_meshcore_http_limits_reach_the_settings() -> None:
    mesh = _mesh(
        '{"defaultConfig": {"meshcore": {"http": {"maxRequestHeadersKb": 96,'
        ' "maxRequestHeaders": 150, "http2MaxConcurrentStreams": 64}}}}'
    )
    settings = compile_text(WORKLOAD, "c.a", mesh=mesh).snapshot.settings
    assert (settings.max_request_headers_kb, settings.max_request_headers) == (96, 150)
    assert settings.http2_max_concurrent_streams == 64


def test_an_unset_meshcore_http_limit_keeps_its_default() -> None:
    mesh = _mesh('{"defaultConfig": {"meshcore": {"http": {"maxRequestHeaders": 20}}}}')
    settings = compile_text(WORKLOAD, "c.a", mesh=mesh).snapshot.settings
    assert settings == ProxySettings(max_request_headers=20)


def test_mesh_settings_change_the_snapshot_version() -> None:
    plain = compile_text(WORKLOAD, "c.a").snapshot
    mesh = _mesh('{"defaultConfig": {"proxyHeaders": {"preserveHttp1HeaderCase": true}}}')
    assert compile_text(WORKLOAD, "c.a", mesh=mesh).snapshot.version != plain.version


def _detect_timeouts(mesh: MeshConfig) -> dict[tuple[str, str], int]:
    snapshot = compile_text(WORKLOAD + SIDECAR, "reviews-1.a", mesh=mesh).snapshot
    return {(x.name, x.protocol): x.detect_timeout_ms for x in snapshot.listeners}


def test_protocol_detection_timeout_applies_to_every_auto_listener() -> None:
    found = _detect_timeouts(_mesh('{"protocolDetectionTimeout": "250ms"}'))
    assert found == {
        ("outbound-http-proxy", "auto"): 250,
        ("127.0.0.1_9081", "http"): DEFAULT_DETECT_TIMEOUT_MS,
        ("inbound-9080", "auto"): 250,
    }


def test_protocol_detection_timeout_0s_means_no_timeout_as_in_istio() -> None:
    found = _detect_timeouts(_mesh('{"protocolDetectionTimeout": "0s"}'))
    assert found[("outbound-http-proxy", "auto")] == 0
    assert found[("inbound-9080", "auto")] == 0


def test_protocol_detection_timeout_rounds_down_to_whole_milliseconds() -> None:
    found = _detect_timeouts(_mesh('{"protocolDetectionTimeout": "1.9ms"}'))
    assert found[("outbound-http-proxy", "auto")] == 1


def test_mesh_fields_accepted_but_not_applied_are_reported_not_ignored() -> None:
    mesh = MeshConfig.model_validate(
        {"trustDomain": "example.org", "accessLogFormat": "%START_TIME%\n"}
    )
    compiled = compile_text(WORKLOAD, "c.a", mesh=mesh)
    warnings = {d.path: d.message for d in compiled.diagnostics if d.origin == "MeshConfig"}
    assert set(warnings) == {"trustDomain", "accessLogFormat"}
    assert "not applied yet" in warnings["accessLogFormat"]
    quiet = compile_text(WORKLOAD, "c.a", mesh=MeshConfig())
    assert not [d for d in quiet.diagnostics if d.origin == "MeshConfig"]
