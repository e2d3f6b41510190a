"""The one list of fields meshcore accepts but its data plane does not implement yet.

Every field a CRD accepts parses; fields listed here also produce a Warning (MC0003) naming
the field, so nothing is silently ignored. Entries are generic path prefixes in the schema
notation (`spec.http[].fault` covers everything under it). When the compiler implements a
field, delete its line here (the test suite checks every entry is a real field path).
"""

from __future__ import annotations

from meshcore.config.base import IstioResource
from meshcore.config.diagnostics import UNIMPLEMENTED_FIELD, Diagnostic
from meshcore.config.introspect import set_fields

UNIMPLEMENTED: dict[str, tuple[str, ...]] = {
    "VirtualService": (
        "spec.exportTo",
        "spec.http[].corsPolicy",
        "spec.http[].delegate",
        "spec.http[].directResponse",
        "spec.http[].fault",
        "spec.http[].headers",
        "spec.http[].match[].authority",
        "spec.http[].match[].gateways",
        "spec.http[].match[].queryParams",
        "spec.http[].match[].scheme",
        "spec.http[].match[].sourceLabels",
        "spec.http[].match[].sourceNamespace",
        "spec.http[].match[].statPrefix",
        "spec.http[].match[].withoutHeaders",
        "spec.http[].mirror",
        "spec.http[].mirrorPercent",
        "spec.http[].mirrorPercentage",
        "spec.http[].mirror_percent",
        "spec.http[].mirrors",
        "spec.http[].redirect",
        "spec.http[].retries.backoff",
        "spec.http[].retries.retryIgnorePreviousHosts",
        "spec.http[].retries.retryRemoteLocalities",
        "spec.http[].rewrite",
        "spec.http[].route[].headers",
        "spec.tcp[].match[].destinationSubnets",
        "spec.tcp[].match[].gateways",
        "spec.tcp[].match[].sourceLabels",
        "spec.tcp[].match[].sourceNamespace",
        "spec.tcp[].match[].sourceSubnet",
        "spec.tls",
    ),
    "DestinationRule": (
        "spec.exportTo",
        "spec.workloadSelector",
        "spec.trafficPolicy.connectionPool.http",
        "spec.trafficPolicy.connectionPool.tcp.idleTimeout",
        "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive",
        "spec.trafficPolicy.loadBalancer.backendUtilization",
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "spec.trafficPolicy.loadBalancer.warmup",
        "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
        "spec.trafficPolicy.outlierDetection",
        "spec.trafficPolicy.portLevelSettings",
        "spec.trafficPolicy.proxyProtocol",
        "spec.trafficPolicy.retryBudget",
        "spec.trafficPolicy.tls",
        "spec.trafficPolicy.tunnel",
        "spec.subsets[].trafficPolicy",
    ),
    "Gateway": ("spec.selector", "spec.servers"),
    "ServiceEntry": ("spec.exportTo", "spec.subjectAltNames", "spec.workloadSelector"),
    "WorkloadEntry": ("spec.locality", "spec.network", "spec.serviceAccount", "spec.weight"),
    "WorkloadGroup": ("spec.metadata", "spec.probe", "spec.template"),
    "Sidecar": (
        "spec.egress",
        "spec.inboundConnectionPool",
        "spec.ingress",
        "spec.outboundTrafficPolicy",
        "spec.workloadSelector",
    ),
    "PeerAuthentication": ("spec.mtls", "spec.portLevelMtls", "spec.selector"),
    "AuthorizationPolicy": (
        "spec.action",
        "spec.provider",
        "spec.rules",
        "spec.selector",
        "spec.targetRef",
        "spec.targetRefs",
    ),
    "RequestAuthentication": (
        "spec.jwtRules",
        "spec.selector",
        "spec.targetRef",
        "spec.targetRefs",
    ),
    "Telemetry": (
        "spec.accessLogging",
        "spec.metrics",
        "spec.selector",
        "spec.targetRef",
        "spec.targetRefs",
        "spec.tracing",
    ),
}


def unimplemented_fields(resource: IstioResource) -> list[Diagnostic]:
    """A Warning for each field of `resource` the data plane does not implement yet.

    One warning per listed entry and concrete location: a whole `fault` block is named once,
    not once per leaf under it.
    """
    entries = set(UNIMPLEMENTED.get(resource.kind, ()))
    spec = getattr(resource, "spec", None)
    diagnostics: list[Diagnostic] = []
    for concrete, generic in set_fields(spec, "spec", "spec"):
        if generic in entries and not any(_within(concrete, d.path or "") for d in diagnostics):
            diagnostics.append(
                Diagnostic.of(
                    UNIMPLEMENTED_FIELD,
                    "accepted, but meshcore's data plane does not implement it yet; "
                    "it has no effect",
                    origin=resource.origin,
                    path=concrete,
                )
            )
    return diagnostics


def _within(path: str, ancestor: str) -> bool:
    return path.startswith(ancestor) and path[len(ancestor) : len(ancestor) + 1] in (".", "[", "{")
