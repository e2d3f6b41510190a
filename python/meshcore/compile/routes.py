"""HTTP routes: VirtualService `http[]` rules compiled for one proxy and one service port.

Each rule becomes one `Route` that records its origin (`VirtualService ns/name http[i]`).
Match conditions that depend on who sends the request are decided here, for this proxy:
a match whose `sourceLabels`, `sourceNamespace`, `gateways` (without `mesh`) or `port` cannot
hold is dropped, and a rule left with no match is dropped. Everything else is carried over:

- `match[]` (uri, method, authority, scheme, headers, withoutHeaders, queryParams,
  ignoreUriCase) → `matches`;
- `route[]` (destination host with short names expanded, subset, port; weight; headers)
  → `route.clusters`;
- `redirect` → `redirect`; `directResponse` → `direct_response`;
- `rewrite` (uri, authority, uriRegexRewrite) → `route.rewrite`;
- `headers.request` / `.response` → `request_headers` / `response_headers`;
- `timeout` → `route.timeout_ms`; `retries` → `route.retries` (unset: MeshConfig
  `defaultHttpRetryPolicy`, else Istio's default of 2 attempts).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meshcore.compile.clusters import cluster_name, millis
from meshcore.compile.hosts import fqdn
from meshcore.compile.proxy import ProxyIdentity
from meshcore.compile.report import Report
from meshcore.compile.scope import labels_match
from meshcore.compile.snapshot import (
    DirectResponse,
    ForwardAction,
    HeaderOps,
    HttpWeightedCluster,
    KeyMatch,
    Origin,
    Redirect,
    RegexRewrite,
    RetryPolicy,
    Rewrite,
    Route,
    RouteMatch,
    StringMatch,
)
from meshcore.config import MeshConfig, VirtualService
from meshcore.config import networking as istio

ISTIO_DEFAULT_RETRY_ON = (
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
)
"""Istio's retry conditions for routes that set no policy (with 503 as the retriable code)."""
ISTIO_DEFAULT_RETRY_ATTEMPTS = 2
ISTIO_RETRIABLE_STATUS = "503"

PSEUDO_HEADERS = {
    ":authority": "authority",
    ":method": "method",
    ":scheme": "scheme",
    ":path": "uri",
}

DestinationLookup = Callable[[str, int | None, int], "ResolvedDestination | None"]
"""(FQDN host, explicit port or None, the virtual host's port) → cluster target."""


@dataclass(frozen=True)
class ResolvedDestination:
    """Where a destination goes: the service port, or a placeholder for unknown hosts."""

    host: str
    port: int


def mesh_retry_policy(mesh: MeshConfig) -> RetryPolicy | None:
    """The policy of routes without `retries`: MeshConfig's, else Istio's default."""
    if mesh.default_http_retry_policy is not None:
        return retry_policy(mesh.default_http_retry_policy)
    return RetryPolicy(
        attempts=ISTIO_DEFAULT_RETRY_ATTEMPTS,
        retry_on=[*ISTIO_DEFAULT_RETRY_ON, ISTIO_RETRIABLE_STATUS],
    )


def retry_policy(retries: istio.HTTPRetry) -> RetryPolicy | None:
    """An explicit retry policy; `attempts: 0` turns retries off."""
    attempts = retries.attempts if retries.attempts is not None else 0
    if attempts <= 0:
        return None
    conditions = [c.strip() for c in (retries.retry_on or "").split(",") if c.strip()]
    if not conditions:
        conditions = [*ISTIO_DEFAULT_RETRY_ON, ISTIO_RETRIABLE_STATUS]
    elif any(c.isdigit() for c in conditions) and "retriable-status-codes" not in conditions:
        # Istio turns listed status codes on by adding the condition that reads them.
        conditions.append("retriable-status-codes")
    return RetryPolicy(
        attempts=attempts,
        per_try_timeout_ms=millis(retries.per_try_timeout) or None,
        retry_on=conditions,
    )


def string_match(match: istio.StringMatch | None) -> StringMatch | None:
    """Istio's StringMatch; an empty one (`{}`) matches any value, so it is None."""
    if match is None:
        return None
    if match.exact is not None:
        return StringMatch(exact=match.exact)
    if match.prefix is not None:
        return StringMatch(prefix=match.prefix)
    if match.regex is not None:
        return StringMatch(regex=match.regex)
    return None


def _key_matches(values: Mapping[str, istio.StringMatch] | None, lower: bool) -> list[KeyMatch]:
    return [
        KeyMatch(name=name.lower() if lower else name, value=string_match(value))
        for name, value in sorted((values or {}).items())
    ]


NO_HEADER_OPS = HeaderOps()
"""The empty edit, shared (contract objects are frozen): most routes and targets have it."""


def header_ops(ops: istio.HeaderOperations | None) -> HeaderOps:
    """Istio's HeaderOperations (header names lowercased, as HTTP/2 sends them)."""
    if ops is None or not (ops.set or ops.add or ops.remove):
        return NO_HEADER_OPS
    return HeaderOps(
        set={k.lower(): v for k, v in sorted((ops.set or {}).items())},
        add={k.lower(): v for k, v in sorted((ops.add or {}).items())},
        remove=[k.lower() for k in ops.remove or ()],
    )


class RouteBuilder:
    """Compiles the VirtualServices of one proxy into routes, one service port at a time."""

    def __init__(
        self,
        proxy: ProxyIdentity,
        mesh: MeshConfig,
        domain_suffix: str,
        lookup: DestinationLookup,
        report: Report,
        *,
        default_retries: RetryPolicy | None = None,
    ) -> None:
        self._proxy = proxy
        self._domain_suffix = domain_suffix
        self._lookup = lookup
        self._report = report
        self._default_retries = default_retries or mesh_retry_policy(mesh)

    def default_route(self, host: str, port: int) -> Route:
        """The route of a service no VirtualService covers: straight to its cluster."""
        return Route(
            route=ForwardAction(
                clusters=[HttpWeightedCluster(name=cluster_name("outbound", port, "", host))],
                retries=self._default_retries,
            )
        )

    def routes(self, vs: VirtualService, port: int) -> list[Route]:
        """The routes of `vs` for a virtual host on `port`, in rule order."""
        compiled = []
        for i, rule in enumerate(vs.spec.http or ()):
            route = self._rule(vs, i, rule, port)
            if route is not None:
                compiled.append(route)
        return compiled

    def _matches(
        self, vs: VirtualService, rule: istio.HTTPRoute, port: int
    ) -> list[RouteMatch] | None:
        """The rule's matches that can hold for this proxy; None if none can."""
        if not rule.match:
            return []
        kept = []
        for match in rule.match:
            if not self._applies(vs, match, port):
                continue
            kept.append(self._match(match))
        return kept or None

    def _applies(self, vs: VirtualService, match: istio.HTTPMatchRequest, port: int) -> bool:
        proxy = self._proxy
        if match.port is not None and match.port != port:
            return False
        if match.source_labels and not labels_match(match.source_labels, proxy.labels):
            return False
        if match.source_namespace and match.source_namespace != proxy.namespace:
            return False
        return not (match.gateways and "mesh" not in match.gateways)

    def _match(self, match: istio.HTTPMatchRequest) -> RouteMatch:
        fields: dict[str, Any] = {
            "uri": string_match(match.uri),
            "ignore_uri_case": bool(match.ignore_uri_case),
            "method": string_match(match.method),
            "authority": string_match(match.authority),
            "scheme": string_match(match.scheme),
        }
        headers = []
        for key in _key_matches(match.headers, lower=True):
            pseudo = PSEUDO_HEADERS.get(key.name)
            if pseudo is not None:
                fields[pseudo] = fields[pseudo] or key.value
            else:
                headers.append(key)
        fields["headers"] = headers
        fields["without_headers"] = [
            k for k in _key_matches(match.without_headers, lower=True) if not k.name.startswith(":")
        ]
        fields["query_params"] = _key_matches(match.query_params, lower=False)
        return RouteMatch(**fields)

    def _rule(self, vs: VirtualService, i: int, rule: istio.HTTPRoute, port: int) -> Route | None:
        matches = self._matches(vs, rule, port)
        if matches is None:
            return None
        origin = Origin(
            kind="VirtualService",
            namespace=vs.metadata.namespace,
            name=vs.metadata.name,
            rule=f"http[{i}]",
        )
        headers = rule.headers or istio.Headers()
        common: dict[str, Any] = {
            "origin": origin,
            "matches": matches,
            "request_headers": header_ops(headers.request),
            "response_headers": header_ops(headers.response),
        }
        if rule.redirect is not None:
            r = rule.redirect
            return Route(
                **common,
                redirect=Redirect(
                    scheme=r.scheme,
                    authority=r.authority,
                    port=r.port if r.port and r.port <= 0xFFFF else None,
                    path=r.uri,
                    response_code=r.redirect_code or 301,
                ),
            )
        if rule.direct_response is not None:
            return Route(**common, direct_response=_direct_response(rule.direct_response))
        forward = self._forward(vs, i, rule, port)
        if forward is None:
            return None
        return Route(**common, route=forward)

    def _forward(
        self, vs: VirtualService, i: int, rule: istio.HTTPRoute, port: int
    ) -> ForwardAction | None:
        destinations = rule.route or []
        if not destinations:
            self._report.warn(
                vs.origin,
                "rule has no route, redirect or directResponse; dropped",
                f"spec.http[{i}]",
            )
            return None
        explicit = [d.weight for d in destinations if d.weight is not None]
        clusters = []
        for j, dest in enumerate(destinations):
            if len(destinations) == 1:
                weight = 100
            elif not explicit:
                weight = 1
            else:
                weight = dest.weight or 0
            if weight <= 0:
                continue
            host = fqdn(dest.destination.host, vs.metadata.namespace, self._domain_suffix)
            wanted = dest.destination.port.number if dest.destination.port else None
            target = self._lookup(host, wanted, port)
            if target is None:
                self._report.warn(
                    vs.origin,
                    f"destination {host} has several ports and names none; dropped",
                    f"spec.http[{i}].route[{j}].destination.port",
                )
                continue
            dest_headers = dest.headers or istio.Headers()
            clusters.append(
                HttpWeightedCluster(
                    name=cluster_name(
                        "outbound", target.port, dest.destination.subset or "", target.host
                    ),
                    weight=weight,
                    request_headers=header_ops(dest_headers.request),
                    response_headers=header_ops(dest_headers.response),
                )
            )
        if not clusters:
            return None
        rewrite = None
        if rule.rewrite is not None and (
            rule.rewrite.uri is not None
            or rule.rewrite.authority
            or rule.rewrite.uri_regex_rewrite is not None
        ):
            regex = rule.rewrite.uri_regex_rewrite
            rewrite = Rewrite(
                uri_prefix=rule.rewrite.uri,
                uri_regex=RegexRewrite(pattern=regex.match or "", substitution=regex.rewrite or "")
                if regex is not None and regex.match
                else None,
                authority=rule.rewrite.authority or None,
            )
        retries = retry_policy(rule.retries) if rule.retries is not None else self._default_retries
        return ForwardAction(
            clusters=clusters,
            rewrite=rewrite,
            timeout_ms=millis(rule.timeout) or None,
            retries=retries,
        )


def _direct_response(response: istio.HTTPDirectResponse) -> DirectResponse:
    body = None
    if response.body is not None:
        if response.body.string is not None:
            body = response.body.string
        elif response.body.bytes is not None:
            body = base64.b64decode(response.body.bytes).decode("utf-8", "replace")
    return DirectResponse(status=response.status, body=body)
