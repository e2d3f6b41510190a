"""MC0102 / MC0103: AuthorizationPolicy attributes Istio silently cannot evaluate.

- MC0102: `request.auth.*` conditions and `requestPrincipals` read the request's validated
  JWT. Without a RequestAuthentication for the selected workloads (in the policy's
  namespace or mesh-wide in `istio-system`) they are always empty: an ALLOW rule never
  matches, a DENY rule never denies.
- MC0103: `request.headers`, `request.auth.*`, `requestPrincipals`, `hosts`, `methods` and
  `paths` exist only for HTTP. When every port of the selected workloads' Services is
  declared TCP-only (`tcp`, `tls`, `https`, `mongo`, `mysql`, `redis` by name or
  appProtocol), Istio drops an ALLOW rule using them and applies a DENY rule without them.
  Ports of unknown protocol (sniffed) are assumed to carry HTTP.

Unknown keys are already rejected by validation (IST0106). Istio has no code for these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from meshcore.config.analyzers.index import FieldPath, ResourceIndex, ServicePort, selects
from meshcore.config.analyzers.messages import (
    HTTP_ONLY_CONDITION_ON_TCP_PORT,
    REQUEST_AUTH_WITHOUT_REQUEST_AUTHENTICATION,
)
from meshcore.config.diagnostics import Diagnostic
from meshcore.config.kube import Service
from meshcore.config.security import AuthorizationPolicy, RequestAuthentication, Rule

ROOT_NAMESPACE = "istio-system"
_HTTP = frozenset({"http", "http2", "grpc", "grpc-web", "h2c"})
_TCP_ONLY = frozenset({"tcp", "tls", "https", "mongo", "mysql", "redis", "udp"})
_HTTP_OPERATION_FIELDS = (
    ("hosts", "hosts"),
    ("not_hosts", "notHosts"),
    ("methods", "methods"),
    ("not_methods", "notMethods"),
    ("paths", "paths"),
    ("not_paths", "notPaths"),
)


def port_protocol(port: ServicePort) -> str | None:
    """The protocol Istio infers for a Service port (appProtocol, then name prefix)."""
    if port.app_protocol:
        return port.app_protocol.lower()
    if port.protocol and port.protocol.upper() == "UDP":
        return "udp"
    name = (port.name or "").lower()
    if name.startswith("grpc-web"):
        return "grpc-web"
    prefix = name.split("-", 1)[0]
    return prefix if prefix in _HTTP | _TCP_ONLY else None


def _jwt_uses(rule: Rule, base: FieldPath) -> Iterator[tuple[str, FieldPath]]:
    for position, condition in enumerate(rule.when or []):
        if condition.key.startswith("request.auth."):
            yield condition.key, (*base, "when", position, "key")
    for from_index, source_from in enumerate(rule.from_ or []):
        source = source_from.source
        for field, values in (
            ("requestPrincipals", source.request_principals if source else None),
            ("notRequestPrincipals", source.not_request_principals if source else None),
        ):
            if values:
                yield field, (*base, "from", from_index, "source", field)


def _http_uses(rule: Rule, base: FieldPath) -> Iterator[tuple[str, FieldPath]]:
    for position, condition in enumerate(rule.when or []):
        if condition.key.startswith(("request.headers", "request.auth.")):
            yield condition.key, (*base, "when", position, "key")
    for from_index, source_from in enumerate(rule.from_ or []):
        source = source_from.source
        for field, values in (
            ("requestPrincipals", source.request_principals if source else None),
            ("notRequestPrincipals", source.not_request_principals if source else None),
        ):
            if values:
                yield field, (*base, "from", from_index, "source", field)
    for to_index, target in enumerate(rule.to or []):
        operation = target.operation
        if operation is None:
            continue
        for field, alias in _HTTP_OPERATION_FIELDS:
            if getattr(operation, field):
                yield alias, (*base, "to", to_index, "operation", alias)


def _rule_ports(rule: Rule) -> set[int]:
    ports: set[int] = set()
    for target in rule.to or []:
        if target.operation is not None:
            ports.update(int(p) for p in target.operation.ports or [] if p.isdigit())
    for condition in rule.when or []:
        if condition.key == "destination.port":
            ports.update(int(v) for v in condition.values or [] if v.isdigit())
    return ports


class AuthorizationConditionAnalyzer:
    """Checks AuthorizationPolicy attributes against RequestAuthentications and protocols."""

    name = "auth.AuthorizationConditionAnalyzer"
    description = "Checks for JWT and HTTP-only attributes Istio cannot evaluate"
    codes = ("MC0102", "MC0103")

    def analyze(self, index: ResourceIndex) -> Iterator[Diagnostic]:
        for policy in index.of(AuthorizationPolicy):
            if policy.spec.action == "CUSTOM":
                continue
            has_jwt = self._jwt_applies(index, policy)
            ports = self._selected_ports(index, policy)
            for rule_index, rule in enumerate(policy.spec.rules or []):
                base: FieldPath = ("spec", "rules", rule_index)
                if not has_jwt:
                    for attribute, path in _jwt_uses(rule, base):
                        message = (
                            f"{attribute} reads the request's validated JWT, but no "
                            "RequestAuthentication applies to the workloads this policy selects: "
                            "the attribute is always empty and the rule never matches on it"
                        )
                        yield index.report(
                            policy, REQUEST_AUTH_WITHOUT_REQUEST_AUTHENTICATION, message, path
                        )
                if ports is None:
                    continue
                wanted = _rule_ports(rule)
                relevant = [p for p in ports if not wanted or (p.target_port or p.number) in wanted]
                if not relevant or any(port_protocol(p) not in _TCP_ONLY for p in relevant):
                    continue
                numbers = " ".join(str(p.number) for p in relevant)
                effect = (
                    "Istio applies the DENY rule without it, denying more than intended"
                    if policy.spec.action == "DENY"
                    else "Istio ignores this rule for TCP traffic, so it never allows anything"
                )
                for attribute, path in _http_uses(rule, base):
                    message = (
                        f"{attribute} is an HTTP attribute, but the selected workloads serve only "
                        f"TCP on ports [{numbers}]: {effect}"
                    )
                    yield index.report(policy, HTTP_ONLY_CONDITION_ON_TCP_PORT, message, path)

    @staticmethod
    def _selector(resource: AuthorizationPolicy | RequestAuthentication) -> Mapping[str, str]:
        selector = resource.spec.selector
        return (selector.match_labels if selector else None) or {}

    def _jwt_applies(self, index: ResourceIndex, policy: AuthorizationPolicy) -> bool:
        namespace = policy.metadata.namespace
        selector = self._selector(policy)
        for authn in index.of(RequestAuthentication):
            if authn.metadata.namespace not in (namespace, ROOT_NAMESPACE):
                continue
            if authn.spec.target_ref or authn.spec.target_refs:
                return True
            wanted = self._selector(authn)
            if not wanted or (selector and selects(wanted, selector)):
                return True
            scope = index.workloads if authn.metadata.namespace == ROOT_NAMESPACE else ()
            candidates = scope or index.workloads_in(namespace)
            if any(selects(wanted, w.labels) and selects(selector, w.labels) for w in candidates):
                return True
        return False

    def _selected_ports(
        self, index: ResourceIndex, policy: AuthorizationPolicy
    ) -> list[ServicePort] | None:
        """Ports of the Services in front of the policy's workloads; None if unknown."""
        namespace = policy.metadata.namespace
        if namespace == ROOT_NAMESPACE or policy.spec.target_ref or policy.spec.target_refs:
            return None
        selector = self._selector(policy)
        workloads = [w for w in index.workloads_in(namespace) if selects(selector, w.labels)]
        entries = [
            entry
            for entry in index.registry
            if isinstance(entry.owner, Service)
            and entry.namespace == namespace
            and entry.selector
            and any(selects(entry.selector, w.labels) for w in workloads)
        ]
        ports = [port for entry in entries for port in entry.ports]
        return ports or None
