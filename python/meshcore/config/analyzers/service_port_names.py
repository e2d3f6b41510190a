"""IST0118: Service ports whose name does not follow Istio's `<protocol>[-<suffix>]` convention.

Without a recognised name (or `appProtocol`), Istio sniffs the protocol. Services in system
namespaces and Istio's own Services (label `istio`, or `release: istio`) are skipped, as
Istio does.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshcore.config.analyzers.index import ResourceIndex
from meshcore.config.analyzers.messages import PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.kube import Service

SYSTEM_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "local-path-storage", "istio-system"}
)
PROTOCOLS = frozenset(
    {"grpc", "grpc-web", "http", "http2", "https", "mongo", "mysql", "redis", "tcp", "tls",
     "udp", "thrift", "h2c"}
)  # fmt: skip


def follows_convention(name: str) -> bool:
    """True if `name` is `<protocol>` or `<protocol>-<suffix>` for a protocol Istio knows."""
    lowered = name.lower()
    return any(lowered == p or lowered.startswith(f"{p}-") for p in PROTOCOLS)


class PortNameAnalyzer:
    """Checks the port names associated with each service."""

    name = "service.PortNameAnalyzer"
    description = "Checks the port names associated with each service"
    codes = ("IST0118",)

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for service in index.of(Service):
            meta = service.metadata
            labels = meta.labels or {}
            if meta.namespace in SYSTEM_NAMESPACES or "istio" in labels:
                continue
            if labels.get("release") == "istio":
                continue
            for position, port in enumerate(service.spec.ports or []):
                if port.app_protocol or follows_convention(port.name or ""):
                    continue
                target = "" if port.target_port is None else str(port.target_port)
                message = (
                    f"Port name {port.name or ''} (port: {port.port}, targetPort: {target}) "
                    "doesn't follow the naming convention of Istio port."
                )
                path = ("spec", "ports", position, "name" if port.name else "port")
                yield index.report(service, PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION, message, path)
