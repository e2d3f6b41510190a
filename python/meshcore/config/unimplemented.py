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

# Parts of a traffic policy the compiler does not express yet, relative to the policy.
_POLICY_GAPS = (
    "connectionPool.http.http1MaxPendingRequests",
    "connectionPool.http.http2KeepAlive",
    "connectionPool.http.http2MaxRequests",
    "connectionPool.http.maxRetries",
    "connectionPool.tcp.idleTimeout",
    "connectionPool.tcp.maxConnectionDuration",
    "connectionPool.tcp.tcpKeepalive",
    "loadBalancer.backendUtilization",
    "loadBalancer.consistentHash.httpCookie.attributes",
    "loadBalancer.consistentHash.maglev.tableSize",
    "loadBalancer.consistentHash.minimumRingSize",
    "loadBalancer.consistentHash.ringHash",
    "loadBalancer.localityLbSetting",
    "loadBalancer.warmup",
    "loadBalancer.warmupDurationSecs",
    "outlierDetection",
    "tls",
)
_POLICY_ONLY_GAPS = ("proxyProtocol", "retryBudget", "tunnel")


def _policy_gaps(prefix: str) -> tuple[str, ...]:
    top = tuple(f"{prefix}.{gap}" for gap in _POLICY_GAPS + _POLICY_ONLY_GAPS)
    ports = tuple(f"{prefix}.portLevelSettings[].{gap}" for gap in _POLICY_GAPS)
    return top + ports


UNIMPLEMENTED: dict[str, tuple[str, ...]] = {
    "VirtualService": (
        "spec.http[].corsPolicy",
        "spec.http[].delegate",
        "spec.http[].fault",
        "spec.http[].match[].statPrefix",
        "spec.http[].mirror",
        "spec.http[].mirrorPercent",
        "spec.http[].mirrorPercentage",
        "spec.http[].mirror_percent",
        "spec.http[].mirrors",
        "spec.http[].redirect.derivePort",
        "spec.http[].redirect.prefixRewrite",
        "spec.http[].retries.backoff",
        "spec.http[].retries.retryIgnorePreviousHosts",
        "spec.http[].retries.retryRemoteLocalities",
        "spec.tcp[].match[].destinationSubnets",
        "spec.tcp[].match[].sourceSubnet",
        "spec.tls",
    ),
    "DestinationRule": (
        *_policy_gaps("spec.trafficPolicy"),
        *_policy_gaps("spec.subsets[].trafficPolicy"),
    ),
    "Gateway": ("spec.selector", "spec.servers"),
    "ServiceEntry": ("spec.subjectAltNames",),
    "WorkloadEntry": ("spec.locality", "spec.network"),
    "WorkloadGroup": ("spec.metadata", "spec.probe", "spec.template"),
    "Sidecar": (
        "spec.inboundConnectionPool",
        "spec.ingress[].connectionPool",
        "spec.ingress[].tls",
        "spec.outboundTrafficPolicy.egressProxy",
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
