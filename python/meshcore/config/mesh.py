"""MeshConfig: mesh-wide settings, spelled with Istio's `meshConfig` field names.

It owns the settings meshcore reads today: trust domain, root namespace, outbound traffic
policy, the default HTTP retry policy, the access log, the protocol detection timeout and,
under `defaultConfig` (Istio's ProxyConfig, mesh-wide), the proxy's header handling and
meshcore's own HTTP limits. `load_mesh_config` reads a bare meshConfig YAML, one wrapped in
`meshConfig:` (IstioOperator/Helm values style) or the `istio` ConfigMap (`data.mesh`).

Like every other config model, fields are strict and unknown ones are refused: a field
meshcore does not implement is an error naming it (with the fields accepted there), never
silently ignored. Errors are `MeshConfigError`, whose diagnostics name the file, the field
path and its line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError

from meshcore.config.base import IstioModel
from meshcore.config.diagnostics import YAML_PARSE_ERROR, Diagnostic, MessageType
from meshcore.config.durations import NANOS_PER_MS, DurationError, parse_duration
from meshcore.config.introspect import generic_path, model_paths
from meshcore.config.loader import schema_diagnostics
from meshcore.config.networking import HTTPRetry
from meshcore.config.yaml12 import LineIndex, PathPart, format_path, parse_documents, path_parts

ORIGIN = "MeshConfig"
"""How diagnostics name the mesh config."""

MAX_REQUEST_HEADERS_KB = 8192
"""Envoy's upper bound of `max_request_headers_kb` (8 MiB)."""
MAX_HTTP2_CONCURRENT_STREAMS = 2**31 - 1
"""Envoy's upper bound of `max_concurrent_streams` (HTTP/2 stream ids are 31 bits)."""


def _detection_timeout(value: str) -> str:
    """Istio's rule: at least 1ms, or `0s`, which detects without a timeout."""
    try:
        nanos = parse_duration(value)
    except DurationError:
        nanos = -1
    if nanos != 0 and nanos < NANOS_PER_MS:
        raise ValueError(
            f"must be 0s (detect without a timeout) or a duration of at least 1ms, got {value!r}"
        )
    return value


class OutboundTrafficPolicy(IstioModel):
    """What happens to traffic for hosts the mesh does not know."""

    mode: Literal["ALLOW_ANY", "REGISTRY_ONLY"] = "ALLOW_ANY"
    """`ALLOW_ANY` passes it through; `REGISTRY_ONLY` refuses it."""


class ProxyHeaders(IstioModel):
    """How the proxy handles HTTP headers (Istio's `ProxyConfig.ProxyHeaders`, the part
    meshcore implements)."""

    preserve_http1_header_case: bool | None = None
    """Send HTTP/1 header names with the case they arrived in, both ways, instead of
    lower-casing them (for peers that wrongly compare names case-sensitively)."""


class MeshcoreHttp(IstioModel):
    """HTTP limits of the proxy that no Istio field reaches (a meshcore extension)."""

    max_request_headers_kb: Annotated[int, Field(ge=1, le=MAX_REQUEST_HEADERS_KB)] | None = None
    """Largest request head accepted, in KiB (larger: 431); default 60, Envoy's."""
    max_request_headers: Annotated[int, Field(ge=1, le=0xFFFF_FFFF)] | None = None
    """Most request header fields accepted (more: 431); default 100, Envoy's."""
    http2_max_concurrent_streams: (
        Annotated[int, Field(ge=1, le=MAX_HTTP2_CONCURRENT_STREAMS)] | None
    ) = None
    """Streams one downstream HTTP/2 connection may have open at once (the proxy's
    SETTINGS_MAX_CONCURRENT_STREAMS); default 200."""


class MeshcoreProxyConfig(IstioModel):
    """`defaultConfig.meshcore`: proxy settings only meshcore has. Istio has no such field;
    Istio tools that validate `defaultConfig` strictly would refuse it."""

    http: MeshcoreHttp | None = None
    """Downstream HTTP limits."""


class ProxyConfig(IstioModel):
    """Istio's ProxyConfig as `meshConfig.defaultConfig`: what every proxy of the mesh uses
    (the part meshcore implements; per-workload ProxyConfig is not supported)."""

    proxy_headers: ProxyHeaders | None = None
    """Header handling (Istio's `proxyHeaders`)."""
    meshcore: MeshcoreProxyConfig | None = None
    """meshcore's own settings (an extension; see `MeshcoreProxyConfig`)."""


class MeshConfig(IstioModel):
    """Mesh-wide configuration (Istio's `meshConfig`, the subset meshcore implements)."""

    trust_domain: str = "cluster.local"
    """SPIFFE trust domain of workload identities (`spiffe://<trustDomain>/ns/../sa/..`)."""
    trust_domain_aliases: list[str] | None = None
    """Other trust domains treated as this one in authorization policies."""
    root_namespace: str = "istio-system"
    """Namespace whose Sidecar/PeerAuthentication/... apply mesh-wide."""
    outbound_traffic_policy: OutboundTrafficPolicy = Field(default_factory=OutboundTrafficPolicy)
    """Policy for traffic to hosts outside the service registry."""
    default_http_retry_policy: HTTPRetry | None = None
    """Retry policy of HTTP routes that set none."""
    access_log_file: str | None = None
    """Path of the access log; `/dev/stdout` for the container log; unset or empty: off."""
    access_log_encoding: Literal["TEXT", "JSON"] = "TEXT"
    """Access log format."""
    access_log_format: str | None = None
    """Envoy-style access log format string (empty: meshcore's default)."""
    enable_auto_mtls: bool = True
    """Send mTLS to workloads that have a sidecar even without a DestinationRule."""
    connect_timeout: str | None = None
    """Default upstream connect timeout (duration string, e.g. `10s`)."""
    protocol_detection_timeout: Annotated[str, AfterValidator(_detection_timeout)] | None = None
    """How long an `auto` listener waits for a client's first bytes before treating the
    connection as opaque TCP (server-first protocols); `0s`: wait without a timeout (then
    only the listener's idle timeout closes a silent connection). Unset: meshcore's 5s
    (Istio's default is `0s`)."""
    default_config: ProxyConfig | None = None
    """ProxyConfig of every proxy (Istio's `defaultConfig`)."""


class MeshConfigError(ValueError):
    """A mesh config that cannot be read: each diagnostic names the field and its line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.format_text() for d in diagnostics))


def parse_mesh_config(
    data: Any, *, file: str | None = None, lines: LineIndex | None = None
) -> MeshConfig:
    """Build a MeshConfig from parsed YAML in any of the accepted shapes.

    Raises `MeshConfigError` with one diagnostic per invalid field; `file` and `lines`
    (the document's line index) place them.
    """
    prefix: tuple[PathPart, ...] = ()
    if isinstance(data, dict) and data.get("kind") == "ConfigMap":
        # The mesh is YAML inside a string: diagnostics point at the string.
        prefix = ("data", "mesh")
        lines = LineIndex(first_line=(lines or LineIndex()).line_of(prefix))
        documents = parse_documents((data.get("data") or {}).get("mesh") or "")
        if any(d.error is not None for d in documents) or len(documents) > 1:
            message = next((d.error for d in documents if d.error), None)
            message = message or "the mesh config is one YAML document"
            raise MeshConfigError(
                [_diagnostic(YAML_PARSE_ERROR, message, file, lines.first_line, "data.mesh")]
            )
        data = documents[0].data if documents else None
    elif isinstance(data, dict) and set(data) == {"meshConfig"}:
        data = data["meshConfig"]
        prefix = ("meshConfig",)
    try:
        return MeshConfig.model_validate(data or {})
    except ValidationError as failure:
        found = schema_diagnostics(
            MeshConfig, failure, origin=ORIGIN, file=file, lines=lines, prefix=prefix
        )
        raise MeshConfigError([_name_accepted(d, len(prefix)) for d in found]) from None


def load_mesh_config(path: str | Path) -> MeshConfig:
    """Read and validate a mesh config file.

    Raises `OSError` when the file cannot be read and `MeshConfigError` when it is not a
    valid mesh config (YAML errors included).
    """
    documents = parse_documents(Path(path).read_text())
    for document in documents:
        if document.error is not None:
            raise MeshConfigError(
                [_diagnostic(YAML_PARSE_ERROR, document.error, str(path), document.error_line)]
            )
    if len(documents) > 1:
        message = f"a mesh config file holds one YAML document, found {len(documents)}"
        raise MeshConfigError([_diagnostic(YAML_PARSE_ERROR, message, str(path), None)])
    if not documents:
        return MeshConfig()
    return parse_mesh_config(documents[0].data, file=str(path), lines=documents[0].lines)


def _diagnostic(
    kind: MessageType, message: str, file: str | None, line: int | None, path: str | None = None
) -> Diagnostic:
    return Diagnostic.of(kind, message, origin=ORIGIN, file=file, line=line, path=path)


_ACCEPTED = sorted(path.removeprefix(".") for path in model_paths(MeshConfig, ""))
"""Every field path meshcore reads in a mesh config (`defaultConfig.proxyHeaders`, ...)."""


def _name_accepted(diagnostic: Diagnostic, skip: int) -> Diagnostic:
    """ "unknown field" → the fields meshcore reads there: most fields it refuses are real
    Istio fields that meshcore does not implement, so "unknown" alone would mislead."""
    if diagnostic.message != "unknown field" or not diagnostic.path:
        return diagnostic
    parts = path_parts(diagnostic.path)[skip:]
    parent = generic_path(format_path(parts[:-1]))
    siblings = [
        path.removeprefix(f"{parent}.") if parent else path
        for path in _ACCEPTED
        if (path.startswith(f"{parent}.") if parent else True)
    ]
    siblings = [name for name in siblings if name and "." not in name and "[" not in name]
    where = f"under {parent}" if parent else "at the top level"
    message = f"not a field meshcore implements (or misspelt); {where} it reads: " + ", ".join(
        siblings
    )
    return replace(diagnostic, message=message)
