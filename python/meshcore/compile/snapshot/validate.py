"""Semantic checks of a well-typed snapshot: references, duplicates, ranges, exactly-one-of
rules and regex syntax.

The walk order and every message match ``rust/meshcore-snapshot/src/validate.rs``, so both
sides report the same errors in the same order (regex messages end with the engine's own
detail, which differs between RE2 here and Rust's ``regex`` there).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import re2  # type: ignore[import-untyped]

from meshcore.compile.snapshot.errors import ErrorCode, SnapshotError
from meshcore.compile.snapshot.model import (
    Cluster,
    ForwardAction,
    HashPolicy,
    HeaderOps,
    KeyMatch,
    Listener,
    Redirect,
    Route,
    RouteConfig,
    RouteMatch,
    Snapshot,
    StringMatch,
    VirtualHost,
)
from meshcore.config.validation import SUPPORTED_RETRY_ON

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RETRY_CONDITIONS = SUPPORTED_RETRY_ON
"""Envoy's retry conditions, gRPC's, and Istio's ``retriable-status-codes`` (the webhook's
list; Rust's ``validate.rs`` carries the same one)."""

REDIRECT_CODES = (301, 302, 303, 307, 308)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")


def validate_snapshot(snapshot: Snapshot) -> list[SnapshotError]:
    """Every problem found, in document order (settings, listeners, route configs, clusters)."""
    walk = _Walk(
        snapshot,
        clusters=_first_index(c.name for c in snapshot.clusters),
        route_configs=_first_index(r.name for r in snapshot.route_configs),
    )
    walk.snapshot_fields()
    return walk.errors


def is_header_name(name: str) -> bool:
    """RFC 9110 token characters: what a header name may contain."""
    return _HEADER_NAME.fullmatch(name) is not None


def _first_index(names: Iterable[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return index


@functools.lru_cache(maxsize=65536)
def _parse_ip(address: str) -> IpAddress | None:
    """Memoised: a mesh's snapshots repeat the same few thousand endpoint addresses."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _sockets_collide(a: IpAddress, b: IpAddress) -> bool:
    """``0.0.0.0`` covers every IPv4 address and ``::`` every IPv6 one."""
    return a == b or (a.version == b.version and (a.is_unspecified or b.is_unspecified))


def _is_domain(domain: str) -> bool:
    """``*`` alone, or one ``*`` at the start or the end."""
    stars = domain.count("*")
    return bool(domain) and (
        stars == 0 or (stars == 1 and (domain.startswith("*") or domain.endswith("*")))
    )


def _is_retry_condition(condition: str) -> bool:
    return condition in RETRY_CONDITIONS or (
        condition.isascii() and condition.isdigit() and 100 <= int(condition) <= 599
    )


@dataclass
class _Walk:
    snapshot: Snapshot
    clusters: dict[str, int]
    route_configs: dict[str, int]
    errors: list[SnapshotError] = field(default_factory=list)

    def error(self, path: str, code: ErrorCode, message: str) -> None:
        self.errors.append(SnapshotError(path, code, message))

    def at_least_one(self, path: str) -> None:
        self.error(path, "out_of_range", "must be at least 1")

    def snapshot_fields(self) -> None:
        snapshot = self.snapshot
        if not snapshot.version.strip():
            self.error("version", "invalid_value", "must not be empty")
        self.settings()
        names: dict[str, int] = {}
        sockets: list[tuple[IpAddress, int, int]] = []
        for i, listener in enumerate(snapshot.listeners):
            self.listener(i, listener, names, sockets)
        config_names: dict[str, int] = {}
        for i, config in enumerate(snapshot.route_configs):
            self.route_config(i, config, config_names)
        cluster_names: dict[str, int] = {}
        for i, cluster in enumerate(snapshot.clusters):
            self.cluster(i, cluster, cluster_names)

    def settings(self) -> None:
        settings = self.snapshot.settings
        if settings.max_request_headers_kb == 0:
            self.at_least_one("settings.max_request_headers_kb")
        if settings.max_request_headers == 0:
            self.at_least_one("settings.max_request_headers")
        if settings.http2_max_concurrent_streams == 0:
            self.at_least_one("settings.http2_max_concurrent_streams")
        if settings.access_log is not None and not settings.access_log.path:
            self.error("settings.access_log.path", "invalid_value", "must not be empty")

    def name(
        self, name: str, path: str, *, kind: str, seen: dict[str, int], index: int, collection: str
    ) -> None:
        if not name:
            self.error(path, "invalid_value", "must not be empty")
        elif name in seen:
            self.error(
                path,
                "duplicate",
                f'duplicate {kind} name "{name}" (first used by {collection}[{seen[name]}])',
            )
        else:
            seen[name] = index

    def ip(self, address: str, path: str) -> IpAddress | None:
        ip = _parse_ip(address)
        if ip is None:
            self.error(path, "invalid_value", f'"{address}" is not an IP address')
        return ip

    def port(self, port: int, path: str) -> bool:
        if port == 0:
            self.error(path, "out_of_range", "must be between 1 and 65535")
        return port != 0

    def listener(  # noqa: PLR0912 - one branch per rule, in validate.rs's order
        self,
        i: int,
        listener: Listener,
        names: dict[str, int],
        sockets: list[tuple[IpAddress, int, int]],
    ) -> None:
        at = f"listeners[{i}]"
        self.name(
            listener.name,
            f"{at}.name",
            kind="listener",
            seen=names,
            index=i,
            collection="listeners",
        )
        ip = self.ip(listener.address, f"{at}.address")
        port_ok = self.port(listener.port, f"{at}.port")
        if ip is not None and port_ok:
            clash = next(
                (
                    first
                    for other, port, first in sockets
                    if port == listener.port and _sockets_collide(ip, other)
                ),
                None,
            )
            if clash is None:
                sockets.append((ip, listener.port, i))
            else:
                other_listener = self.snapshot.listeners[clash]
                self.error(
                    f"{at}.port",
                    "duplicate",
                    f"{listener.address}:{listener.port} collides with listeners[{clash}] "
                    f'"{other_listener.name}" ({other_listener.address}:{other_listener.port})',
                )
        protocol = listener.protocol
        if listener.http_proxy and protocol == "tcp":
            self.error(f"{at}.http_proxy", "invalid_value", "only for protocol http or auto")
        if listener.opaque_ports and protocol != "auto":
            self.error(
                f"{at}.opaque_ports",
                "invalid_value",
                "only for protocol auto (the only one that detects)",
            )
        for j, port in enumerate(listener.opaque_ports):
            self.port(port, f"{at}.opaque_ports[{j}]")
        if listener.tcp_route is None:
            if protocol == "tcp":
                self.error(f"{at}.tcp_route", "missing_field", "required for protocol tcp")
        elif protocol == "http":
            self.error(f"{at}.tcp_route", "invalid_value", "only for protocol tcp or auto")
        else:
            targets = [(c.name, c.weight) for c in listener.tcp_route.clusters]
            self.weighted_clusters(f"{at}.tcp_route.clusters", targets)
        if listener.route_config is None:
            if protocol != "tcp":
                self.error(
                    f"{at}.route_config", "missing_field", f"required for protocol {protocol}"
                )
        elif protocol == "tcp":
            self.error(f"{at}.route_config", "invalid_value", "only for protocol http or auto")
        elif listener.route_config not in self.route_configs:
            self.error(
                f"{at}.route_config",
                "unknown_reference",
                f'unknown route config "{listener.route_config}"',
            )

    def weighted_clusters(self, at: str, targets: list[tuple[str, int]]) -> None:
        if not targets:
            self.error(at, "invalid_value", "must name at least one cluster")
        for j, (name, _) in enumerate(targets):
            if name not in self.clusters:
                self.error(f"{at}[{j}].name", "unknown_reference", f'unknown cluster "{name}"')
        if targets and sum(weight for _, weight in targets) == 0:
            self.error(at, "invalid_value", "weights must add up to more than 0")

    def route_config(self, i: int, config: RouteConfig, names: dict[str, int]) -> None:
        at = f"route_configs[{i}]"
        self.name(
            config.name,
            f"{at}.name",
            kind="route config",
            seen=names,
            index=i,
            collection="route_configs",
        )
        host_names: dict[str, int] = {}
        domains: dict[str, int] = {}
        for v, host in enumerate(config.virtual_hosts):
            self.virtual_host(
                f"{at}.virtual_hosts[{v}]", v, host, names=host_names, domains=domains, config_at=at
            )

    def virtual_host(
        self,
        at: str,
        v: int,
        host: VirtualHost,
        *,
        names: dict[str, int],
        domains: dict[str, int],
        config_at: str,
    ) -> None:
        collection = f"{config_at}.virtual_hosts"
        self.name(
            host.name, f"{at}.name", kind="virtual host", seen=names, index=v, collection=collection
        )
        if not host.domains:
            self.error(f"{at}.domains", "invalid_value", "must list at least one domain")
        for d, domain in enumerate(host.domains):
            path = f"{at}.domains[{d}]"
            if not _is_domain(domain):
                self.error(
                    path,
                    "invalid_value",
                    f'"{domain}" is not a domain (a wildcard goes at the start or the end)',
                )
            elif domain in domains:
                self.error(
                    path,
                    "duplicate",
                    f'domain "{domain}" is already served by {collection}[{domains[domain]}]',
                )
            else:
                domains[domain] = v
        for k, route in enumerate(host.routes):
            self.route(f"{at}.routes[{k}]", route)

    def route(self, at: str, route: Route) -> None:
        actions = sum(a is not None for a in (route.route, route.redirect, route.direct_response))
        if actions != 1:
            self.error(
                at, "invalid_value", "exactly one of route, redirect, direct_response must be set"
            )
        for m, matcher in enumerate(route.matches):
            self.route_match(f"{at}.matches[{m}]", matcher)
        self.header_ops(f"{at}.request_headers", route.request_headers)
        self.header_ops(f"{at}.response_headers", route.response_headers)
        if route.route is not None:
            self.forward(f"{at}.route", route.route)
        if route.redirect is not None:
            self.redirect(f"{at}.redirect", route.redirect)
        if route.direct_response is not None and not 200 <= route.direct_response.status <= 599:
            self.error(
                f"{at}.direct_response.status", "out_of_range", "must be between 200 and 599"
            )

    def route_match(self, at: str, matcher: RouteMatch) -> None:
        fields = (
            ("uri", matcher.uri),
            ("method", matcher.method),
            ("authority", matcher.authority),
            ("scheme", matcher.scheme),
        )
        for name, value in fields:
            if value is not None:
                self.string_match(f"{at}.{name}", value)
        keyed = (
            ("headers", matcher.headers),
            ("without_headers", matcher.without_headers),
            ("query_params", matcher.query_params),
        )
        for name, keys in keyed:
            for h, key in enumerate(keys):
                self.key_match(f"{at}.{name}[{h}]", key, is_header=name != "query_params")
        if matcher.port is not None:
            self.port(matcher.port, f"{at}.port")

    def key_match(self, at: str, key: KeyMatch, *, is_header: bool) -> None:
        if not key.name:
            self.error(f"{at}.name", "invalid_value", "must not be empty")
        elif is_header and not is_header_name(key.name):
            self.error(f"{at}.name", "invalid_value", f'"{key.name}" is not a valid header name')
        if key.value is not None:
            self.string_match(f"{at}.value", key.value)

    def string_match(self, at: str, value: StringMatch) -> None:
        if sum(v is not None for v in (value.exact, value.prefix, value.regex)) != 1:
            self.error(at, "invalid_value", "exactly one of exact, prefix, regex must be set")
        if value.regex is not None:
            self.regex(f"{at}.regex", value.regex)

    def regex(self, at: str, pattern: str) -> None:
        try:
            re2.compile(pattern)
        except re2.error as e:
            self.error(at, "invalid_value", f'"{pattern}" is not a valid regular expression: {e}')

    def header_ops(self, at: str, ops: HeaderOps) -> None:
        names = [("set", n) for n in ops.set] + [("add", n) for n in ops.add]
        for name_field, name in names:
            if not is_header_name(name):
                self.error(
                    f"{at}.{name_field}", "invalid_value", f'"{name}" is not a valid header name'
                )
        for r, name in enumerate(ops.remove):
            if not is_header_name(name):
                self.error(
                    f"{at}.remove[{r}]", "invalid_value", f'"{name}" is not a valid header name'
                )

    def forward(self, at: str, forward: ForwardAction) -> None:
        targets = [(c.name, c.weight) for c in forward.clusters]
        self.weighted_clusters(f"{at}.clusters", targets)
        for j, target in enumerate(forward.clusters):
            self.header_ops(f"{at}.clusters[{j}].request_headers", target.request_headers)
            self.header_ops(f"{at}.clusters[{j}].response_headers", target.response_headers)
        rewrite = forward.rewrite
        if rewrite is not None:
            if rewrite.uri_prefix is not None and rewrite.uri_regex is not None:
                self.error(
                    f"{at}.rewrite",
                    "invalid_value",
                    "at most one of uri_prefix, uri_regex may be set",
                )
            if rewrite.uri_regex is not None:
                self.regex(f"{at}.rewrite.uri_regex.pattern", rewrite.uri_regex.pattern)
        if forward.retries is not None:
            for j, condition in enumerate(forward.retries.retry_on):
                if not _is_retry_condition(condition):
                    self.error(
                        f"{at}.retries.retry_on[{j}]",
                        "invalid_value",
                        f'unknown retry condition "{condition}"',
                    )

    def redirect(self, at: str, redirect: Redirect) -> None:
        if redirect.scheme is not None and redirect.scheme not in ("http", "https"):
            self.error(f"{at}.scheme", "invalid_value", "must be http or https")
        if redirect.port is not None:
            self.port(redirect.port, f"{at}.port")
        if redirect.response_code not in REDIRECT_CODES:
            self.error(
                f"{at}.response_code", "invalid_value", "must be one of 301, 302, 303, 307, 308"
            )

    def cluster(self, i: int, cluster: Cluster, names: dict[str, int]) -> None:
        at = f"clusters[{i}]"
        self.name(
            cluster.name, f"{at}.name", kind="cluster", seen=names, index=i, collection="clusters"
        )
        hashing = cluster.lb_policy in ("ring_hash", "maglev")
        if cluster.hash_policy is None:
            if hashing:
                self.error(
                    f"{at}.hash_policy",
                    "missing_field",
                    "required for lb_policy ring_hash or maglev",
                )
        elif not hashing:
            self.error(
                f"{at}.hash_policy", "invalid_value", "only for lb_policy ring_hash or maglev"
            )
        else:
            self.hash_policy(f"{at}.hash_policy", cluster.hash_policy)
        if cluster.connect_timeout_ms == 0:
            self.at_least_one(f"{at}.connect_timeout_ms")
        if cluster.pool.http2_max_concurrent_streams == 0:
            self.at_least_one(f"{at}.pool.http2_max_concurrent_streams")
        if cluster.kind == "original_dst" and cluster.endpoints:
            self.error(f"{at}.endpoints", "invalid_value", "must be empty for kind original_dst")
        for j, endpoint in enumerate(cluster.endpoints):
            ep = f"{at}.endpoints[{j}]"
            self.ip(endpoint.address, f"{ep}.address")
            self.port(endpoint.port, f"{ep}.port")
            if endpoint.weight == 0:
                self.at_least_one(f"{ep}.weight")

    def hash_policy(self, at: str, policy: HashPolicy) -> None:
        sources = (
            policy.header is not None,
            policy.cookie is not None,
            policy.source_ip,
            policy.query_parameter is not None,
        )
        if sum(sources) != 1:
            self.error(
                at,
                "invalid_value",
                "exactly one of header, cookie, source_ip, query_parameter must be set",
            )
        if policy.header is not None and not is_header_name(policy.header):
            self.error(
                f"{at}.header", "invalid_value", f'"{policy.header}" is not a valid header name'
            )
        if policy.cookie is not None and not policy.cookie.name:
            self.error(f"{at}.cookie.name", "invalid_value", "must not be empty")
        if policy.query_parameter == "":
            self.error(f"{at}.query_parameter", "invalid_value", "must not be empty")
