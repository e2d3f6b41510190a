"""What a proxy does with one HTTP request, evaluated against its compiled snapshot.

The same route semantics as the data plane: the listener's route config; the virtual host
whose domains match the request's authority (exact, then the longest `*.suffix`, then the
longest `prefix.*`, then `*`); the first route whose matches accept the request (no
matches: everything; several: any one; within one: all of uri, method, authority, scheme,
headers, withoutHeaders, query parameters and port; regexes are RE2, matched whole). The
answer names the rule that decided and where the request would go. Istio's
`pilot/pkg/simulation` does the same over Envoy config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import re2  # type: ignore[import-untyped]

from meshcore.compile.clusters import PASSTHROUGH_CLUSTER, parse_cluster_name
from meshcore.compile.listeners import OUTBOUND_LISTENER
from meshcore.compile.snapshot import (
    KeyMatch,
    Listener,
    Route,
    RouteMatch,
    Snapshot,
    StringMatch,
    VirtualHost,
)

Decision = Literal["route", "redirect", "direct_response", "no_route", "deny"]

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Request:
    """An HTTP request as the proxy sees it."""

    method: str
    scheme: str
    authority: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(
        cls, url: str, method: str = "GET", headers: Mapping[str, str] | None = None
    ) -> Request:
        """`http://reviews:9080/api?x=1` plus method and headers (names are case-insensitive)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        authority = lowered.pop("host", None) or parts.netloc
        return cls(
            method=method.upper(),
            scheme=parts.scheme or "http",
            authority=authority,
            path=parts.path or "/",
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            headers=lowered,
        )

    @property
    def host(self) -> str:
        host, _, port = self.authority.rpartition(":")
        return host if port.isdigit() and host else self.authority

    @property
    def port(self) -> int:
        _, sep, port = self.authority.rpartition(":")
        return int(port) if sep and port.isdigit() else DEFAULT_PORTS.get(self.scheme, 80)


@dataclass(frozen=True)
class Destination:
    """One weighted target of a route, with the cluster behind it."""

    host: str
    subset: str
    port: int
    weight: int
    cluster: str
    lb_policy: str = ""
    endpoints: tuple[str, ...] = ()
    passthrough: bool = False


@dataclass(frozen=True)
class Outcome:
    """The answer: what happens and which rule decided."""

    decision: Decision
    listener: str
    route_config: str | None = None
    virtual_host: str | None = None
    virtual_service: str | None = None
    rule_index: int | None = None
    origin: str | None = None
    destinations: tuple[Destination, ...] = ()
    timeout_ms: int | None = None
    retries: dict[str, Any] | None = None
    rewrite: dict[str, Any] | None = None
    redirect: dict[str, Any] | None = None
    direct_response: dict[str, Any] | None = None
    reason: str = ""

    @property
    def endpoints(self) -> list[str]:
        return [e for d in self.destinations for e in d.endpoints]

    @property
    def lb_policy(self) -> str | None:
        return self.destinations[0].lb_policy if self.destinations else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["destinations"] = [asdict(d) for d in self.destinations]
        data["endpoints"] = self.endpoints
        data["lb_policy"] = self.lb_policy
        return data


def string_matches(match: StringMatch, value: str, *, ignore_case: bool = False) -> bool:
    """Exact, prefix or (whole-value, RE2) regex."""
    if match.exact is not None:
        return value.lower() == match.exact.lower() if ignore_case else value == match.exact
    if match.prefix is not None:
        if ignore_case:
            return value.lower().startswith(match.prefix.lower())
        return value.startswith(match.prefix)
    if match.regex is not None:
        return re2.fullmatch(match.regex, value) is not None
    return True


def _key_holds(key: KeyMatch, values: Mapping[str, str]) -> bool:
    if key.name not in values:
        return False
    return key.value is None or string_matches(key.value, values[key.name])


def route_match_holds(match: RouteMatch, request: Request) -> bool:
    """All conditions of one match hold for the request."""
    checks = [
        (match.uri, request.path, match.ignore_uri_case),
        (match.method, request.method, False),
        (match.authority, request.authority, False),
        (match.scheme, request.scheme, False),
    ]
    for condition, value, ignore_case in checks:
        if condition is not None and not string_matches(condition, value, ignore_case=ignore_case):
            return False
    if match.port is not None and match.port != request.port:
        return False
    if not all(_key_holds(k, request.headers) for k in match.headers):
        return False
    if any(_key_holds(k, request.headers) for k in match.without_headers):
        return False
    query = dict(reversed(request.query))  # the first value of a repeated parameter counts
    return all(_key_holds(k, query) for k in match.query_params)


def route_matches(route: Route, request: Request) -> bool:
    """No matches accept everything; several are alternatives."""
    return not route.matches or any(route_match_holds(m, request) for m in route.matches)


def select_virtual_host(hosts: Sequence[VirtualHost], authority: str) -> VirtualHost | None:
    """Envoy's domain matching: exact, longest `*.suffix`, longest `prefix.*`, then `*`."""
    authority = authority.lower()
    best: tuple[int, int, int] | None = None
    chosen = None
    for index, vhost in enumerate(hosts):
        for domain in (d.lower() for d in vhost.domains):
            if domain == authority:
                rank = (0, 0, index)
            elif domain == "*":
                rank = (3, 0, index)
            elif domain.startswith("*") and authority.endswith(domain[1:]):
                rank = (1, -len(domain), index)
            elif domain.endswith("*") and authority.startswith(domain[:-1]):
                rank = (2, -len(domain), index)
            else:
                continue
            if best is None or rank < best:
                best, chosen = rank, vhost
    return chosen


def simulate(  # noqa: PLR0911 - one return per decision
    snapshot: Snapshot, request: Request, listener: str = OUTBOUND_LISTENER
) -> Outcome:
    """Evaluate `request` arriving on `listener` (by name) of `snapshot`."""
    found: Listener | None = next((x for x in snapshot.listeners if x.name == listener), None)
    if found is None or found.route_config is None:
        return Outcome("no_route", listener, reason=f"no HTTP listener named {listener!r}")
    config = snapshot.route_config(found.route_config)
    if config is None:
        return Outcome("no_route", listener, found.route_config, reason="route config missing")
    vhost = select_virtual_host(config.virtual_hosts, request.authority)
    if vhost is None:
        return Outcome(
            "no_route", listener, config.name, reason=f"no virtual host for {request.authority}"
        )
    route = next((r for r in vhost.routes if route_matches(r, request)), None)
    base: dict[str, Any] = {
        "listener": listener,
        "route_config": config.name,
        "virtual_host": vhost.name,
    }
    if route is None:
        return Outcome("no_route", **base, reason="no route of the virtual host matches (404 NR)")
    origin = route.origin
    if origin is not None:
        base["origin"] = str(origin)
        if origin.kind == "VirtualService":
            base["virtual_service"] = f"{origin.namespace}/{origin.name}"
            rule = origin.rule
            if rule.startswith("http[") and rule.endswith("]"):
                base["rule_index"] = int(rule[5:-1])
    if route.redirect is not None:
        return Outcome("redirect", **base, redirect=route.redirect.model_dump(exclude_none=True))
    if route.direct_response is not None:
        decision: Decision = "direct_response"
        if origin is not None and origin.rule == "outboundTrafficPolicy":
            decision = "deny"
        return Outcome(
            decision, **base, direct_response=route.direct_response.model_dump(exclude_none=True)
        )
    assert route.route is not None
    action = route.route
    destinations = tuple(_destination(snapshot, c.name, c.weight, request) for c in action.clusters)
    return Outcome(
        "route",
        **base,
        destinations=destinations,
        timeout_ms=action.timeout_ms,
        retries=action.retries.model_dump() if action.retries else None,
        rewrite=action.rewrite.model_dump(exclude_none=True) if action.rewrite else None,
    )


def _destination(snapshot: Snapshot, name: str, weight: int, request: Request) -> Destination:
    cluster = snapshot.cluster(name)
    lb = cluster.lb_policy if cluster else ""
    endpoints = tuple(f"{e.address}:{e.port}" for e in cluster.endpoints) if cluster else ()
    if name == PASSTHROUGH_CLUSTER or (cluster is not None and cluster.kind == "original_dst"):
        parts = parse_cluster_name(name)
        host = parts[3] if parts else request.host
        port = parts[1] if parts else request.port
        return Destination(host, "", port, weight, name, lb, (), passthrough=True)
    parts = parse_cluster_name(name)
    if parts is None:
        return Destination(name, "", 0, weight, name, lb, endpoints)
    _, port, subset, host = parts
    return Destination(host, subset, port, weight, name, lb, endpoints)
