"""MeshConfig: mesh-wide settings, spelled with Istio's `meshConfig` field names.

It owns the settings meshcore reads today: trust domain, root namespace, outbound traffic
policy, the default HTTP retry policy and the access log. `load_mesh_config` reads a bare
meshConfig YAML, one wrapped in `meshConfig:` (IstioOperator/Helm values style) or the
`istio` ConfigMap (`data.mesh`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from meshcore.config.base import IstioModel
from meshcore.config.networking import HTTPRetry
from meshcore.config.yaml12 import loads


class OutboundTrafficPolicy(IstioModel):
    """What happens to traffic for hosts the mesh does not know."""

    mode: Literal["ALLOW_ANY", "REGISTRY_ONLY"] = "ALLOW_ANY"
    """`ALLOW_ANY` passes it through; `REGISTRY_ONLY` refuses it."""


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


def parse_mesh_config(data: Any) -> MeshConfig:
    """Build a MeshConfig from parsed YAML in any of the accepted shapes."""
    if isinstance(data, dict) and data.get("kind") == "ConfigMap":
        data = loads((data.get("data") or {}).get("mesh") or "{}")
    elif isinstance(data, dict) and set(data) == {"meshConfig"}:
        data = data["meshConfig"]
    return MeshConfig.model_validate(data or {})


def load_mesh_config(path: str | Path) -> MeshConfig:
    """Read and validate a mesh config file (raises pydantic's ValidationError if invalid)."""
    return parse_mesh_config(loads(Path(path).read_text()))
