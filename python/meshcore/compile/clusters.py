"""Clusters: one per service port (`outbound|PORT||HOST`) and subset (`outbound|PORT|SUBSET|HOST`).

The DestinationRule for a service is looked up in Istio's order: the proxy's namespace, then
the service's namespace, then the root namespace; within one namespace an exact host beats a
wildcard, and the oldest rule wins. A rule with a `workloadSelector` applies only to the
proxies it selects. Traffic policy is layered, each later level replacing whole blocks
(`loadBalancer`, `connectionPool`) of the earlier: the rule's policy, its `portLevelSettings`
for the port, the subset's policy, the subset's port-level settings.

- `loadBalancer.simple` ROUND_ROBIN, RANDOM, LEAST_REQUEST/LEAST_CONN → `lb_policy`
  (Istio's default, least_request, when unset);
- the rule's annotation `meshcore.io/load-balancer: PEAK_EWMA` → `lb_policy` peak_ewma, as
  if it were the rule's own `loadBalancer`: port-level settings and subsets that set a
  `loadBalancer` still replace it. With `spec.trafficPolicy.loadBalancer` set too, the
  annotation is ignored, with a warning (Istio never reads it: the Istio field wins);
- `loadBalancer.consistentHash` → `lb_policy` maglev (with `maglev`) or ring_hash, and
  `hash_policy` (httpHeaderName, httpCookie, httpQueryParameterName, useSourceIp);
- `connectionPool.tcp.connectTimeout` → `connect_timeout_ms` (MeshConfig `connectTimeout`,
  else 10 s);
- `connectionPool.tcp.maxConnections`, `.http.maxRequestsPerConnection`, `.idleTimeout`,
  `.maxConcurrentStreams` → `pool`;
- the port's protocol (HTTP → http1, HTTP2/gRPC → http2), `h2UpgradePolicy: UPGRADE`,
  `useClientProtocol` → `protocol`;
- `resolution: NONE` → `kind: original_dst` (no endpoints).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from meshcore.compile.hosts import fqdn, host_matches, specificity
from meshcore.compile.index import ConfigIndex
from meshcore.compile.proxy import ProxyIdentity
from meshcore.compile.report import Report
from meshcore.compile.scope import export_allows, labels_match
from meshcore.compile.snapshot import (
    Cluster,
    ConnectionPool,
    CookieHash,
    Endpoint,
    HashPolicy,
    Origin,
)
from meshcore.config import DestinationRule
from meshcore.config.annotations import LOAD_BALANCER, load_balancer_annotation
from meshcore.config.durations import NANOS_PER_MS, parse_duration
from meshcore.config.networking import (
    ConnectionPoolSettings,
    LoadBalancerSettings,
    Subset,
    SubsetTrafficPolicy,
)
from meshcore.registry import Resolution, Resolver, Service, ServicePort, is_ip

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
DEFAULT_LB_POLICY = "least_request"
"""Istio's default load balancer since 1.14."""


def cluster_name(direction: str, port: int, subset: str, host: str) -> str:
    """Istio's cluster naming: `outbound|9080|v1|reviews.default.svc.cluster.local`."""
    return f"{direction}|{port}|{subset}|{host}"


def parse_cluster_name(name: str) -> tuple[str, int, str, str] | None:
    """`(direction, port, subset, host)` of an Istio-style cluster name, else None."""
    parts = name.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def millis(duration: str | None) -> int | None:
    """A duration string in whole milliseconds (at least 1 for a positive duration)."""
    if duration is None:
        return None
    nanos = parse_duration(duration)
    return 0 if nanos <= 0 else max(1, nanos // NANOS_PER_MS)


@dataclass(frozen=True)
class _Policy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    annotated_lb: str | None = None
    """The `lb_policy` the rule's annotation asks for where no `loadBalancer` is set."""

    def layer(self, policy: SubsetTrafficPolicy | None, port: int) -> _Policy:
        if policy is None:
            return self
        merged = _Policy(
            policy.load_balancer or self.load_balancer,
            policy.connection_pool or self.connection_pool,
            self.annotated_lb,
        )
        for level in policy.port_level_settings or ():
            if level.port is not None and level.port.number == port:
                merged = _Policy(
                    level.load_balancer or merged.load_balancer,
                    level.connection_pool or merged.connection_pool,
                    self.annotated_lb,
                )
        return merged


_RuleHosts = tuple[dict[str, list[DestinationRule]], list[tuple[str, DestinationRule]]]


def _rules_by_host(index: ConfigIndex, namespace: str, domain_suffix: str) -> _RuleHosts:
    """A namespace's rules by FQDN host (exact) and its wildcard rules, cached on the index."""
    key = ("rules_by_host", namespace, domain_suffix)
    if key not in index.cache:
        exact: dict[str, list[DestinationRule]] = {}
        wildcard: list[tuple[str, DestinationRule]] = []
        for rule in index.rules_by_namespace.get(namespace, ()):
            host = fqdn(rule.spec.host, namespace, domain_suffix)
            if host.startswith("*"):
                wildcard.append((host, rule))
            else:
                exact.setdefault(host, []).append(rule)
        # Stable sort: equally specific rules keep the index's oldest-first order.
        wildcard.sort(key=lambda item: specificity(item[0]))
        index.cache[key] = (exact, wildcard)
    return cast(_RuleHosts, index.cache[key])


def destination_rule_for(
    index: ConfigIndex, proxy: ProxyIdentity, service: Service, domain_suffix: str
) -> DestinationRule | None:
    """The DestinationRule for `service` as seen by `proxy`, in Istio's lookup order."""
    for namespace in (proxy.namespace, service.namespace, index.mesh.root_namespace):
        exact, wildcard = _rules_by_host(index, namespace, domain_suffix)
        candidates = exact.get(service.hostname, []) + [
            rule for host, rule in wildcard if host_matches(host, service.hostname)
        ]
        for rule in candidates:
            selector = rule.spec.workload_selector
            selected = selector is None or not selector.match_labels
            if not selected and namespace == proxy.namespace:
                selected = labels_match(selector.match_labels if selector else {}, proxy.labels)
            if selected and export_allows(rule.spec.export_to, namespace, proxy.namespace):
                return rule
    return None


class ClusterBuilder:
    """Builds the clusters of one service port for one proxy, resolving DNS as it goes."""

    def __init__(
        self, index: ConfigIndex, resolver: Resolver, report: Report, default_connect_ms: int
    ) -> None:
        self._index = index
        self._resolver = resolver
        self._report = report
        self._connect_ms = default_connect_ms
        self._dns: dict[str, tuple[str, ...]] = {}

    def resolve(self, hostname: str) -> tuple[str, ...]:
        if hostname not in self._dns:
            self._dns[hostname] = tuple(sorted(set(self._resolver(hostname))))
        return self._dns[hostname]

    def for_port(
        self, service: Service, port: ServicePort, rule: DestinationRule | None
    ) -> list[Cluster]:
        """The default cluster of `service:port`, then one per subset of `rule`."""
        base = _Policy(annotated_lb=self._annotated_lb(rule)).layer(
            rule.spec.traffic_policy if rule else None, port.number
        )
        origin = (
            Origin(
                kind="DestinationRule",
                namespace=rule.metadata.namespace,
                name=rule.metadata.name,
                rule="trafficPolicy" if rule.spec.traffic_policy else "",
            )
            if rule
            else None
        )
        clusters = [self._cluster(service, port, None, base, origin)]
        for i, subset in enumerate(rule.spec.subsets or () if rule else ()):
            assert rule is not None
            policy = base.layer(subset.traffic_policy, port.number)
            subset_origin = Origin(
                kind="DestinationRule",
                namespace=rule.metadata.namespace,
                name=rule.metadata.name,
                rule=f"subsets[{i}]",
            )
            clusters.append(self._cluster(service, port, subset, policy, subset_origin))
        return clusters

    def _annotated_lb(self, rule: DestinationRule | None) -> str | None:
        """The `lb_policy` of `meshcore.io/load-balancer`, unless the rule's own
        `loadBalancer` is set too: then the Istio field wins, and the user is told."""
        annotated = load_balancer_annotation(rule) if rule is not None else None
        if annotated is None or rule is None:
            return None
        policy = rule.spec.traffic_policy
        if policy is not None and policy.load_balancer is not None:
            value = (rule.metadata.annotations or {})[LOAD_BALANCER]
            self._report.warn(
                rule.origin,
                f"annotation {LOAD_BALANCER}: {value} is ignored because "
                "spec.trafficPolicy.loadBalancer is set too (the Istio field wins); "
                "remove one of them",
                "spec.trafficPolicy.loadBalancer",
            )
            return None
        return annotated

    def _cluster(
        self,
        service: Service,
        port: ServicePort,
        subset: Subset | None,
        policy: _Policy,
        origin: Origin | None,
    ) -> Cluster:
        name = cluster_name(
            "outbound", port.number, subset.name if subset else "", service.hostname
        )
        fields: dict[str, Any] = {"name": name, "origin": origin}
        fields.update(self._lb_fields(policy.load_balancer, policy.annotated_lb))
        fields.update(self._pool_fields(policy.connection_pool, port))
        if service.resolution is Resolution.NONE:
            fields["kind"] = "original_dst"
            fields.pop("hash_policy", None)
            if fields["lb_policy"] in ("ring_hash", "maglev"):
                fields["lb_policy"] = DEFAULT_LB_POLICY
            return Cluster(**fields)
        fields["endpoints"] = self._endpoints(service, port, subset)
        return Cluster(**fields)

    def _endpoints(
        self, service: Service, port: ServicePort, subset: Subset | None
    ) -> list[Endpoint]:
        selector = subset.labels if subset else None
        seen: set[tuple[str, int]] = set()
        endpoints = []
        for workload in service.endpoints:
            if selector and not labels_match(selector, workload.labels):
                continue
            number = service.endpoint_port(workload, port)
            if service.resolution is Resolution.DNS:
                addresses = self.resolve(workload.address)
                if not addresses:
                    self._report.warn(
                        service.origin,
                        f"{workload.address} does not resolve; it has no endpoints",
                    )
            elif is_ip(workload.address):
                addresses = (workload.address,)
            else:
                self._report.warn(
                    workload.origin,
                    f"address {workload.address!r} is not an IP address (resolution "
                    f"{service.resolution.value}); endpoint skipped",
                )
                addresses = ()
            for address in addresses:
                if (address, number) in seen:
                    continue
                seen.add((address, number))
                endpoints.append(
                    Endpoint(
                        address=address,
                        port=number,
                        weight=max(1, workload.weight),
                        labels=dict(workload.labels),
                    )
                )
        return endpoints

    def _lb_fields(self, lb: LoadBalancerSettings | None, annotated: str | None) -> dict[str, Any]:
        if lb is None:
            return {"lb_policy": annotated or DEFAULT_LB_POLICY}
        if lb.consistent_hash is not None:
            ch = lb.consistent_hash
            policy: HashPolicy
            if ch.http_header_name:
                policy = HashPolicy(header=ch.http_header_name.lower())
            elif ch.http_cookie is not None:
                policy = HashPolicy(
                    cookie=CookieHash(
                        name=ch.http_cookie.name,
                        ttl_ms=millis(ch.http_cookie.ttl),
                        path=ch.http_cookie.path,
                    )
                )
            elif ch.http_query_parameter_name:
                policy = HashPolicy(query_parameter=ch.http_query_parameter_name)
            else:
                policy = HashPolicy(source_ip=True)
            kind = "maglev" if ch.maglev is not None else "ring_hash"
            return {"lb_policy": kind, "hash_policy": policy}
        simple = {
            "ROUND_ROBIN": "round_robin",
            "RANDOM": "random",
            "LEAST_REQUEST": "least_request",
            "LEAST_CONN": "least_request",
        }
        return {"lb_policy": simple.get(lb.simple or "", DEFAULT_LB_POLICY)}

    def _pool_fields(
        self, pool: ConnectionPoolSettings | None, port: ServicePort
    ) -> dict[str, Any]:
        protocol = "inherit"
        if port.protocol.is_http2:
            protocol = "http2"
        elif port.protocol.is_http:
            protocol = "http1"
        fields: dict[str, Any] = {"connect_timeout_ms": self._connect_ms}
        limits: dict[str, Any] = {}
        if pool is not None and pool.tcp is not None:
            connect = millis(pool.tcp.connect_timeout)
            if connect:
                fields["connect_timeout_ms"] = connect
            if pool.tcp.max_connections:
                limits["max_connections"] = max(0, pool.tcp.max_connections)
        if pool is not None and pool.http is not None:
            http = pool.http
            if http.max_requests_per_connection:
                limits["max_requests_per_connection"] = max(0, http.max_requests_per_connection)
            idle = millis(http.idle_timeout)
            if idle is not None:
                limits["idle_timeout_ms"] = idle
            if http.max_concurrent_streams and http.max_concurrent_streams > 0:
                limits["http2_max_concurrent_streams"] = http.max_concurrent_streams
            if http.use_client_protocol:
                protocol = "inherit"
            elif http.h2_upgrade_policy == "UPGRADE" and protocol == "http1":
                protocol = "http2"
        fields["protocol"] = protocol
        fields["pool"] = ConnectionPool(**limits)
        return fields


def special_clusters() -> list[Cluster]:
    """Istio's PassthroughCluster (original destination) and BlackHoleCluster (no endpoints)."""
    return [
        Cluster(name=BLACKHOLE_CLUSTER),
        Cluster(name=PASSTHROUGH_CLUSTER, kind="original_dst"),
    ]


ClusterFactory = Callable[[Service, ServicePort], list[Cluster]]
