"""The catalogue of kinds meshcore reads: (group, kind) → model class.

One place maps what a document says (`apiVersion`, `kind`) to the model that parses it; the
loader and the schema tests both use it.
"""

from __future__ import annotations

from meshcore.config.base import IstioResource
from meshcore.config.kube import KUBE_KINDS, KubeResource
from meshcore.config.networking import (
    DestinationRule,
    Gateway,
    ServiceEntry,
    Sidecar,
    VirtualService,
    WorkloadEntry,
    WorkloadGroup,
)
from meshcore.config.security import AuthorizationPolicy, PeerAuthentication, RequestAuthentication
from meshcore.config.telemetry import Telemetry

ISTIO_RESOURCES: tuple[type[IstioResource], ...] = (
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    WorkloadEntry,
    WorkloadGroup,
    Sidecar,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
    Telemetry,
)

ISTIO_KINDS: dict[tuple[str, str], type[IstioResource]] = {
    (model.GROUP, model.KIND): model for model in ISTIO_RESOURCES
}

KUBE_KINDS_BY_KEY: dict[tuple[str, str], type[KubeResource]] = {
    (api_version, model.KIND): model for model in KUBE_KINDS for api_version in model.API_VERSIONS
}


def model_for(api_version: str, kind: str) -> type[IstioResource] | type[KubeResource] | None:
    """The model of a served Istio (group, kind) or a known Kubernetes (apiVersion, kind)."""
    group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
    istio = ISTIO_KINDS.get((group, kind))
    if istio is not None:
        return istio
    return KUBE_KINDS_BY_KEY.get((api_version, kind))
