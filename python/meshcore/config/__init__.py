"""Istio-compatible resource models (pydantic), the YAML loader, validation and diagnostics.

This is meshcore's bottom layer: it imports nothing else from meshcore. Typical use::

    from meshcore.config import load_paths, VirtualService

    result = load_paths(["config/"])
    for diagnostic in result.diagnostics:
        print(diagnostic.format_text())
    routes = [r for r in result.resources if isinstance(r, VirtualService)]

Objects can also be built in Python (snake_case attributes or camelCase keys), validated
with `validate`, and written back with `.to_dict()`, which round-trips the input YAML.
The spec message types (HTTPRoute, TrafficPolicy, ...) live in `meshcore.config.networking`,
`.security` and `.telemetry`.
"""

from meshcore.config.base import IstioModel, IstioResource, ObjectMeta
from meshcore.config.diagnostics import Diagnostic, Level, MessageType, has_errors
from meshcore.config.kinds import ISTIO_RESOURCES, model_for
from meshcore.config.kube import (
    ConfigMap,
    Deployment,
    KubeResource,
    Namespace,
    Pod,
    Secret,
    Service,
)
from meshcore.config.loader import LoadResult, Source, load_paths, load_text, parse_object
from meshcore.config.mesh import (
    MeshConfig,
    MeshConfigError,
    OutboundTrafficPolicy,
    load_mesh_config,
)
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
from meshcore.config.unimplemented import UNIMPLEMENTED, unimplemented_fields
from meshcore.config.validation import validate

__all__ = [
    "ISTIO_RESOURCES",
    "UNIMPLEMENTED",
    "AuthorizationPolicy",
    "ConfigMap",
    "Deployment",
    "DestinationRule",
    "Diagnostic",
    "Gateway",
    "IstioModel",
    "IstioResource",
    "KubeResource",
    "Level",
    "LoadResult",
    "MeshConfig",
    "MeshConfigError",
    "MessageType",
    "Namespace",
    "ObjectMeta",
    "OutboundTrafficPolicy",
    "PeerAuthentication",
    "Pod",
    "RequestAuthentication",
    "Secret",
    "Service",
    "ServiceEntry",
    "Sidecar",
    "Source",
    "Telemetry",
    "VirtualService",
    "WorkloadEntry",
    "WorkloadGroup",
    "has_errors",
    "load_mesh_config",
    "load_paths",
    "load_text",
    "model_for",
    "parse_object",
    "unimplemented_fields",
    "validate",
]
