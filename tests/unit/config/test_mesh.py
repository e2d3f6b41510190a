"""MeshConfig from Istio's meshConfig YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcore.config import MeshConfig, MeshConfigError, load_mesh_config


def test_defaults() -> None:
    mesh = MeshConfig()
    assert (mesh.trust_domain, mesh.root_namespace) == ("cluster.local", "istio-system")
    assert mesh.outbound_traffic_policy.mode == "ALLOW_ANY"


@pytest.mark.parametrize(
    "text",
    [
        "trustDomain: example.org\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n"
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n",
        "meshConfig:\n  trustDomain: example.org\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "  defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n"
        "  accessLogFile: /dev/stdout\n  accessLogEncoding: JSON\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n    trustDomain: example.org\n    outboundTrafficPolicy:\n"
        "      mode: REGISTRY_ONLY\n    defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n"
        "    accessLogFile: /dev/stdout\n    accessLogEncoding: JSON\n",
    ],
    ids=["bare", "wrapped", "configmap"],
)
def test_load_shapes(tmp_path: Path, text: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    mesh = load_mesh_config(tmp_path / "mesh.yaml")
    assert mesh.trust_domain == "example.org"
    assert mesh.outbound_traffic_policy.mode == "REGISTRY_ONLY"
    assert mesh.default_http_retry_policy is not None
    assert mesh.default_http_retry_policy.attempts == 2
    assert (mesh.access_log_file, mesh.access_log_encoding) == ("/dev/stdout", "JSON")


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (
            "outboundTrafficPolicy: {mode: SOMETIMES}",
            "outboundTrafficPolicy.mode",
            "Input should be 'ALLOW_ANY' or 'REGISTRY_ONLY'",
        ),
        ("trustDomian: x", "trustDomian", "not a field meshcore implements"),
    ],
)
def test_rejects_bad_values(tmp_path: Path, text: str, path: str, message: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    with pytest.raises(MeshConfigError) as caught:
        load_mesh_config(tmp_path / "mesh.yaml")
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.file, diagnostic.path, diagnostic.line) == (
        str(tmp_path / "mesh.yaml"),
        path,
        1,
    )
    assert message in diagnostic.message


PROXY_CONFIG = """defaultConfig:
  proxyHeaders:
    preserveHttp1HeaderCase: true
  meshcore:
    http:
      maxRequestHeadersKb: 96
      maxRequestHeaders: 150
      http2MaxConcurrentStreams: 64
protocolDetectionTimeout: 250ms
"""


def test_default_config_and_protocol_detection_timeout_use_istios_names(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(PROXY_CONFIG)
    mesh = load_mesh_config(tmp_path / "mesh.yaml")
    assert mesh.protocol_detection_timeout == "250ms"
    proxy = mesh.default_config
    assert proxy is not None
    assert proxy.proxy_headers is not None
    assert proxy.proxy_headers.preserve_http1_header_case is True
    assert proxy.meshcore is not None
    assert proxy.meshcore.http is not None
    http = proxy.meshcore.http
    assert (http.max_request_headers_kb, http.max_request_headers) == (96, 150)
    assert http.http2_max_concurrent_streams == 64


def _errors(tmp_path: Path, text: str) -> list[tuple[str | None, int | None, str]]:
    (tmp_path / "mesh.yaml").write_text(text)
    with pytest.raises(MeshConfigError) as caught:
        load_mesh_config(tmp_path / "mesh.yaml")
    assert all(d.file == str(tmp_path / "mesh.yaml") for d in caught.value.diagnostics)
    assert all(d.origin == "MeshConfig" for d in caught.value.diagnostics)
    return [(d.path, d.line, d.message) for d in caught.value.diagnostics]


def test_an_istio_proxy_config_field_meshcore_lacks_is_refused_by_name(tmp_path: Path) -> None:
    text = (
        "defaultConfig:\n"
        "  proxyHeaders:\n"
        "    server: {disabled: true}\n"
        "  holdApplicationUntilProxyStarts: true\n"
    )
    assert _errors(tmp_path, text) == [
        (
            "defaultConfig.proxyHeaders.server",
            3,
            "not a field meshcore implements (or misspelt); under defaultConfig.proxyHeaders "
            "it reads: preserveHttp1HeaderCase",
        ),
        (
            "defaultConfig.holdApplicationUntilProxyStarts",
            4,
            "not a field meshcore implements (or misspelt); under defaultConfig it reads: "
            "meshcore, proxyHeaders",
        ),
    ]


def test_wrapped_mesh_config_errors_name_the_path_in_the_file(tmp_path: Path) -> None:
    text = "meshConfig:\n  defaultConfig:\n    meshcore: {htp: {}}\n"
    [(path, line, message)] = _errors(tmp_path, text)
    assert (path, line) == ("meshConfig.defaultConfig.meshcore.htp", 3)
    assert message.endswith("under defaultConfig.meshcore it reads: http")


def test_preserve_header_case_is_a_boolean(tmp_path: Path) -> None:
    text = "defaultConfig: {proxyHeaders: {preserveHttp1HeaderCase: 'yes'}}\n"
    [(path, _, message)] = _errors(tmp_path, text)
    assert path == "defaultConfig.proxyHeaders.preserveHttp1HeaderCase"
    assert message == "Input should be a valid boolean, got str 'yes'"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("maxRequestHeadersKb", "0", "Input should be greater than or equal to 1"),
        ("maxRequestHeadersKb", "8193", "Input should be less than or equal to 8192"),
        ("maxRequestHeaders", "0", "Input should be greater than or equal to 1"),
        ("maxRequestHeaders", "-5", "Input should be greater than or equal to 1"),
        ("maxRequestHeaders", "4294967296", "Input should be less than or equal to 4294967295"),
        ("http2MaxConcurrentStreams", "0", "Input should be greater than or equal to 1"),
        (
            "http2MaxConcurrentStreams",
            "2147483648",
            "Input should be less than or equal to 2147483647",
        ),
        ("http2MaxConcurrentStreams", "'100'", "Input should be a valid integer, got str '100'"),
    ],
)
def test_meshcore_http_limits_are_bounded(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    text = f"defaultConfig:\n  meshcore:\n    http:\n      {field}: {value}\n"
    assert _errors(tmp_path, text) == [(f"defaultConfig.meshcore.http.{field}", 4, message)]


@pytest.mark.parametrize("value", ["0s", "0", "1ms", "1.5s", "1h"])
def test_protocol_detection_timeout_accepts_0s_or_at_least_1ms(tmp_path: Path, value: str) -> None:
    (tmp_path / "mesh.yaml").write_text(f"protocolDetectionTimeout: {value!r}\n")
    assert load_mesh_config(tmp_path / "mesh.yaml").protocol_detection_timeout == value


@pytest.mark.parametrize("value", ["500us", "-1s", "5 s", "soon"])
def test_protocol_detection_timeout_refuses_what_istio_refuses(tmp_path: Path, value: str) -> None:
    [(path, line, message)] = _errors(tmp_path, f"protocolDetectionTimeout: {value!r}\n")
    assert (path, line) == ("protocolDetectionTimeout", 1)
    assert message == (
        f"must be 0s (detect without a timeout) or a duration of at least 1ms, got {value!r}"
    )


def test_configmap_errors_point_at_the_embedded_mesh(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n    defaultConfig: {concurrency: 2}\n"
    )
    [(path, line, _)] = _errors(tmp_path, text)
    assert (path, line) == ("data.mesh.defaultConfig.concurrency", 5)


def test_yaml_errors_are_diagnostics_with_a_line(tmp_path: Path) -> None:
    [(path, line, message)] = _errors(tmp_path, "trustDomain: x\nrootNamespace: [\n")
    assert (path, line) == (None, 2)
    assert "expected the node content" in message
