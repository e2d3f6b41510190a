"""Proxy-wide settings from MeshConfig: a snapshot's `settings`, and how long its `auto`
listeners wait to detect a protocol.

- `accessLogFile`, `accessLogEncoding` → `settings.access_log`;
- `defaultConfig.proxyHeaders.preserveHttp1HeaderCase` → `settings.preserve_header_case`;
- `defaultConfig.meshcore.http` (meshcore's extension: no Istio field sets these)
  `maxRequestHeadersKb`, `maxRequestHeaders`, `http2MaxConcurrentStreams` →
  `settings.max_request_headers_kb`, `max_request_headers`, `http2_max_concurrent_streams`;
- `protocolDetectionTimeout` → `detect_timeout_ms` of every `auto` listener; `0s` (Istio:
  no timeout) → 0, which the data plane reads the same way.

Unset fields keep the snapshot's defaults. Each value is computed once per config, not per
proxy: mesh config is the same for every proxy. Fields meshcore accepts but does not apply
yet are reported, once per compiled proxy, by `unapplied_fields`.
"""

from __future__ import annotations

from typing import Any

from meshcore.compile.clusters import millis
from meshcore.compile.snapshot import AccessLog, Listener, ProxySettings
from meshcore.config import MeshConfig


def proxy_settings(mesh: MeshConfig) -> ProxySettings:
    """The `settings` of every snapshot compiled under `mesh`."""
    fields: dict[str, Any] = {}
    if mesh.access_log_file:
        fields["access_log"] = AccessLog(
            path=mesh.access_log_file,
            format="json" if mesh.access_log_encoding == "JSON" else "text",
        )
    proxy = mesh.default_config
    headers = proxy.proxy_headers if proxy is not None else None
    if headers is not None and headers.preserve_http1_header_case is not None:
        fields["preserve_header_case"] = headers.preserve_http1_header_case
    extension = proxy.meshcore if proxy is not None else None
    http = extension.http if extension is not None else None
    if http is not None:
        limits = {
            "max_request_headers_kb": http.max_request_headers_kb,
            "max_request_headers": http.max_request_headers,
            "http2_max_concurrent_streams": http.http2_max_concurrent_streams,
        }
        fields.update({name: value for name, value in limits.items() if value is not None})
    return ProxySettings(**fields)


_UNAPPLIED = {
    "trust_domain": ("trustDomain", "identities use cluster.local until mTLS lands"),
    "trust_domain_aliases": ("trustDomainAliases", "no policy reads them yet"),
    "enable_auto_mtls": ("enableAutoMtls", "the data plane has no mTLS yet"),
    "access_log_format": ("accessLogFormat", "access logs use Istio's default format"),
}
"""Mesh config fields accepted (Istio configs carry them) whose effect meshcore lacks."""


def unapplied_fields(mesh: MeshConfig) -> list[tuple[str, str]]:
    """(field, why) for each field set in `mesh` that meshcore does not apply yet."""
    return [
        (name, f"meshConfig.{name} is accepted but not applied yet: {why}")
        for field, (name, why) in _UNAPPLIED.items()
        if field in mesh.model_fields_set
    ]


def detect_timeout_ms(mesh: MeshConfig) -> int | None:
    """`detect_timeout_ms` of `auto` listeners (0: no timeout); None: the snapshot's default."""
    return millis(mesh.protocol_detection_timeout)


def with_detect_timeout(listeners: list[Listener], timeout_ms: int | None) -> list[Listener]:
    """`listeners`, each `auto` one waiting `timeout_ms` for a client's first bytes."""
    if timeout_ms is None:
        return listeners
    return [
        listener.model_copy(update={"detect_timeout_ms": timeout_ms})
        if listener.protocol == "auto" and listener.detect_timeout_ms != timeout_ms
        else listener
        for listener in listeners
    ]
