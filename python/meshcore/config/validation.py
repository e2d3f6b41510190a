"""Semantic validation: the checks Istio's admission webhook makes beyond the CRD schema.

The CRD layer (types, enums, bounds, `oneOf`, CEL rules) runs while parsing, in the models.
This module owns the next layer, after istio/istio `pkg/config/validation`: host syntax,
duration ranges, RE2 regexes, route weights, ports, subset and gateway names, and the
structural rules of each kind (a VirtualService needs `http`, `tcp` or `tls`, ...). Every
finding is collected; nothing stops at the first problem. `validate(resource)` returns
Diagnostics with the field path of each finding.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from meshcore.config import networking as net
from meshcore.config import security as sec
from meshcore.config import telemetry as tel
from meshcore.config.annotations import LOAD_BALANCER, annotation_path, load_balancer_error
from meshcore.config.base import IstioResource
from meshcore.config.diagnostics import SCHEMA_VALIDATION_ERROR, SCHEMA_WARNING, Diagnostic, Level
from meshcore.config.durations import NANOS_PER_MS, DurationError, parse_duration

try:
    import re2 as _re2  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - exercised only where google-re2 is missing
    _re2 = None

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_WILDCARD_LABEL = re.compile(r"^(\*|\*?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")
_PERL_ONLY = re.compile(r"\(\?[=!<>]|\(\?<[=!]|\\[1-9]|\(\?>|[*+?}]\+|\\[GZz]")

SUPPORTED_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
GRPC_STATUS = frozenset(
    {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)
GATEWAY_PROTOCOLS = frozenset({"HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"})
SERVICE_PROTOCOLS = GATEWAY_PROTOCOLS | {"UDP", "REDIS", "MYSQL", "THRIFT", "SCTP"}


class Findings:
    """Collects errors and warnings with their field paths."""

    def __init__(self) -> None:
        self.items: list[tuple[Level, str, str]] = []

    def error(self, path: str, message: str) -> None:
        """Record an error at `path`."""
        self.items.append((Level.ERROR, path, message))

    def warn(self, path: str, message: str) -> None:
        """Record a warning at `path`."""
        self.items.append((Level.WARNING, path, message))

    def check(self, path: str, message: str | None) -> None:
        """Record `message` as an error when a check returned one."""
        if message is not None:
            self.error(path, message)


# Building blocks (each returns an error message or None) ---------------------------------


def dns1123_label(value: str) -> str | None:
    """A lower-case DNS-1123 label (subset names, namespaces)."""
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        return f"{value!r} is not a valid DNS-1123 label"
    return None


def dns1123_subdomain(value: str) -> str | None:
    """A lower-case DNS-1123 subdomain (object names)."""
    if not value or len(value) > 253:
        return f"{value!r} is not a valid DNS-1123 subdomain"
    if any(dns1123_label(part) for part in value.split(".")):
        return f"{value!r} is not a valid DNS-1123 subdomain"
    return None


def _labels(domain: str, labels: list[str]) -> str | None:
    for label in labels:
        if len(label) > 63 or not _HOST_LABEL.match(label):
            return f"domain name {domain!r} invalid (label {label!r} invalid)"
    if labels and labels[-1].isdigit():
        return f"domain name {domain!r} invalid (top level domain {labels[-1]!r} is all-numeric)"
    return None


def wildcard_domain(domain: str) -> str | None:
    """A host name, optionally with a wildcard first label (`*`, `*.example.com`)."""
    if not domain:
        return "empty domain name not allowed"
    if len(domain) > 255:
        return f"domain name {domain!r} too long (max 255)"
    first, _, rest = domain.partition(".")
    if not _WILDCARD_LABEL.match(first) or len(first) > 63:
        return f"domain name {domain!r} invalid (label {first!r} invalid)"
    if rest:
        return _labels(domain, rest.removesuffix(".").split("."))
    return None


def fqdn(domain: str) -> str | None:
    """A host name without wildcards."""
    if not domain:
        return "empty domain name not allowed"
    if len(domain) > 255:
        return f"domain name {domain!r} too long (max 255)"
    return _labels(domain, domain.removesuffix(".").split("."))


def is_ip(value: str) -> bool:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip_or_cidr(value: str) -> str | None:
    """An IP address or a CIDR block."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{value!r} is not a valid IP address or CIDR block"
    return None


def port(number: int) -> str | None:
    """A TCP/UDP port."""
    if not 1 <= number <= 65535:
        return f"port number {number} must be in the range 1..65535"
    return None


def duration(text: str, minimum_ms: int = 1) -> str | None:
    """A duration string of at least `minimum_ms` milliseconds."""
    try:
        nanos = parse_duration(text)
    except DurationError as error:
        return str(error)
    if nanos < minimum_ms * NANOS_PER_MS:
        return f"duration must be greater than {minimum_ms}ms (got {text!r})"
    return None


def regex(pattern: str) -> str | None:
    """A regular expression in RE2 syntax (what Envoy and Istio accept)."""
    if _re2 is not None:
        options = _re2.Options()
        options.log_errors = False
        try:
            _re2.compile(pattern, options)
        except _re2.error as error:
            detail = error.args[0] if error.args else error
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            return f"{pattern!r}: {detail}; Istio uses RE2 style regex-based match"
        return None
    if _PERL_ONLY.search(pattern):
        return f"{pattern!r}: uses syntax RE2 does not support (lookaround, backreference, ...)"
    try:
        re.compile(pattern)
    except re.error as error:
        return f"{pattern!r}: {error}; Istio uses RE2 style regex-based match"
    return None


def header_name(name: str) -> str | None:
    """An HTTP header name (an RFC 7230 token, or a `:pseudo` header)."""
    if not name:
        return "header name cannot be empty"
    if not _HEADER_NAME.match(name.removeprefix(":")):
        return f"header name {name!r} is not a valid HTTP header name"
    return None


def label_map(labels: dict[str, str] | None, path: str, out: Findings) -> None:
    """Kubernetes label keys and values."""
    for key, value in (labels or {}).items():
        name = key.rpartition("/")[2]
        if (
            not name
            or len(name) > 63
            or not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", name)
        ):
            out.error(f"{path}{{{key}}}", f"invalid label key {key!r}")
        if len(value) > 63 or not re.match(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", value):
            out.error(f"{path}{{{key}}}", f"invalid label value {value!r}")


def _each(items: Iterable[Any] | None, path: str) -> Iterable[tuple[str, Any]]:
    for index, item in enumerate(items or ()):
        yield f"{path}[{index}]", item


# VirtualService -------------------------------------------------------------------------


def _string_match(match: net.StringMatch | None, path: str, out: Findings) -> None:
    if match is not None and match.regex is not None:
        out.check(f"{path}.regex", regex(match.regex))


def _gateway_names(gateways: list[str] | None, path: str, out: Findings) -> None:
    for where, gateway in _each(gateways, path):
        if gateway == "mesh":
            continue
        namespace, slash, name = gateway.partition("/")
        if not slash:
            out.check(where, fqdn(gateway))
            continue
        if not namespace or not name:
            out.error(where, "config namespace and gateway name cannot be empty")
            continue
        if dns1123_label(namespace):
            out.error(where, f"invalid value for namespace: {namespace!r}")
        if dns1123_label(name):
            out.error(where, f"invalid value for gateway name: {name!r}")


def _destination(dest: net.Destination | None, path: str, out: Findings) -> None:
    if dest is None:
        return
    if dest.host == "*":
        out.error(f"{path}.host", f"invalid destination host {dest.host}")
    else:
        out.check(f"{path}.host", wildcard_domain(dest.host))
    if dest.subset is not None:
        if not dest.subset:
            out.error(f"{path}.subset", "subset name cannot be empty")
        elif dns1123_label(dest.subset):
            out.error(f"{path}.subset", f"subset name is invalid: {dest.subset}")
    if dest.port is not None and dest.port.number is not None:
        out.check(f"{path}.port.number", port(dest.port.number))


def _weights(routes: list[Any] | None, path: str, out: Findings) -> None:
    total = 0
    for where, route in _each(routes, path):
        _destination(route.destination, f"{where}.destination", out)
        weight = route.weight or 0
        if weight < 0:
            out.error(f"{where}.weight", f"weight {weight} < 0")
        total += weight
    if routes and len(routes) > 1 and total == 0:
        out.error(path, "total destination weight = 0")


def _header_operations(headers: net.Headers | None, path: str, out: Findings) -> None:
    if headers is None:
        return
    for side in ("request", "response"):
        ops: net.HeaderOperations | None = getattr(headers, side)
        if ops is None:
            continue
        for op in ("add", "set"):
            for name in getattr(ops, op) or {}:
                out.check(f"{path}.{side}.{op}{{{name}}}", header_name(name))
        for where, name in _each(ops.remove, f"{path}.{side}.remove"):
            out.check(where, header_name(name))


def _http_route(route: net.HTTPRoute, path: str, delegate: bool, out: Findings) -> None:  # noqa: PLR0912, PLR0915 - one branch per Istio check
    if route.delegate is not None and delegate:
        out.error(f"{path}.delegate", "delegate HTTP route cannot contain delegate")
    actions = [name for name in ("route", "redirect", "direct_response") if getattr(route, name)]
    if route.delegate is not None:
        if route.redirect is not None:
            out.error(path, f"root HTTP route {route.name or ''} must not specify redirect")
        if route.route:
            out.error(path, f"root HTTP route {route.name or ''} must not specify route")
    elif not actions:
        out.error(path, "HTTP route, redirect or directResponse is required")
    elif len(actions) > 1:
        out.error(
            path, "HTTP route cannot contain more than one of route, redirect, directResponse"
        )
    if route.redirect is not None:
        if route.fault is not None:
            out.error(path, "HTTP route cannot contain both fault and redirect")
        if route.rewrite is not None:
            out.error(path, "HTTP route rule cannot contain both rewrite and redirect")
    for where, match in _each(route.match, f"{path}.match"):
        for attr, alias in (("uri", "uri"), ("scheme", "scheme"), ("method", "method")):
            _string_match(getattr(match, attr), f"{where}.{alias}", out)
        _string_match(match.authority, f"{where}.authority", out)
        for kind in ("headers", "query_params", "without_headers"):
            alias = {"query_params": "queryParams", "without_headers": "withoutHeaders"}.get(
                kind, kind
            )
            for name, value in (getattr(match, kind) or {}).items():
                if kind != "query_params":
                    out.check(f"{where}.{alias}{{{name}}}", header_name(name))
                _string_match(value, f"{where}.{alias}{{{name}}}", out)
        if match.port:
            out.check(f"{where}.port", port(match.port))
        if match.source_namespace and dns1123_label(match.source_namespace):
            out.error(
                f"{where}.sourceNamespace",
                f"sourceNamespace match {match.source_namespace} is invalid",
            )
        _gateway_names(match.gateways, f"{where}.gateways", out)
        label_map(match.source_labels, f"{where}.sourceLabels", out)
    _header_operations(route.headers, f"{path}.headers", out)
    for where, dest in _each(route.route, f"{path}.route"):
        _header_operations(dest.headers, f"{where}.headers", out)
    _weights(route.route, f"{path}.route", out)
    if route.timeout is not None:
        out.check(f"{path}.timeout", duration(route.timeout))
    _retries(route.retries, f"{path}.retries", out)
    _fault(route.fault, f"{path}.fault", out)
    _redirect(route.redirect, f"{path}.redirect", out)
    _rewrite(route.rewrite, f"{path}.rewrite", out)
    if route.direct_response is not None:
        status = route.direct_response.status
        if not 200 <= status <= 599:
            out.error(
                f"{path}.directResponse.status", f"HTTP status {status} is not in range 200-599"
            )
    _destination(route.mirror, f"{path}.mirror", out)
    for where, mirror in _each(route.mirrors, f"{path}.mirrors"):
        _destination(mirror.destination, f"{where}.destination", out)
        if mirror.percentage is not None and not 0 <= (mirror.percentage.value or 0) <= 100:
            out.error(f"{where}.percentage", "mirror percentage must be between 0 and 100")
    if route.mirror_percentage is not None and not 0 <= (route.mirror_percentage.value or 0) <= 100:
        out.error(f"{path}.mirrorPercentage", "mirror_percentage must be between 0 and 100")
    for attr, alias in (
        ("mirror_percent", "mirrorPercent"),
        ("mirror_percent_legacy", "mirror_percent"),
    ):
        value = getattr(route, attr)
        if value is not None:
            if value > 100:
                out.error(
                    f"{path}.{alias}",
                    f"mirror_percent must have a max value of 100 (it has {value})",
                )
            out.warn(
                f"{path}.{alias}",
                'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead',
            )
    _cors(route.cors_policy, f"{path}.corsPolicy", out)


def _retries(retries: net.HTTPRetry | None, path: str, out: Findings) -> None:
    if retries is None:
        return
    attempts = retries.attempts or 0
    if attempts < 0:
        out.error(f"{path}.attempts", "attempts cannot be negative")
    if attempts == 0 and (
        retries.per_try_timeout or retries.retry_on or retries.retry_remote_localities
    ):
        out.error(path, "http retry policy configured when attempts are set to 0 (disabled)")
    if retries.per_try_timeout is not None:
        out.check(f"{path}.perTryTimeout", duration(retries.per_try_timeout))
    if retries.backoff is not None:
        out.check(f"{path}.backoff", duration(retries.backoff))
    for raw_policy in (retries.retry_on or "").split(","):
        policy = raw_policy.strip()
        if not policy or policy in SUPPORTED_RETRY_ON:
            continue
        if not (policy.isdigit() and 100 <= int(policy) <= 599):
            out.error(f"{path}.retryOn", f"{policy!r} is not a valid retryOn policy")


def _fault(fault: net.HTTPFaultInjection | None, path: str, out: Findings) -> None:  # noqa: PLR0912 - one branch per Istio check
    if fault is None:
        return
    if fault.abort is None and fault.delay is None:
        out.error(path, "HTTP fault injection must have an abort and/or a delay")
    for name, part in (("abort", fault.abort), ("delay", fault.delay)):
        if part is not None and part.percentage is not None:
            value = part.percentage.value or 0
            if not 0 <= value <= 100:
                out.error(f"{path}.{name}.percentage.value", "percentage must be in range 0..100")
    abort = fault.abort
    if abort is not None:
        if abort.http_status is not None and not 200 <= abort.http_status <= 599:
            out.error(
                f"{path}.abort.httpStatus",
                f"HTTP status {abort.http_status} is not in range 200-599",
            )
        if abort.grpc_status is not None and abort.grpc_status not in GRPC_STATUS:
            out.error(
                f"{path}.abort.grpcStatus", f"gRPC status {abort.grpc_status!r} is not supported"
            )
        if abort.http2_error is not None:
            out.error(f"{path}.abort.http2Error", "HTTP/2 abort fault injection not supported yet")
        if abort.http_status is None and abort.grpc_status is None and abort.http2_error is None:
            out.warn(f"{path}.abort", "abort configured, but error type not set")
    delay = fault.delay
    if delay is not None:
        if delay.fixed_delay is not None:
            out.check(f"{path}.delay.fixedDelay", duration(delay.fixed_delay))
        if delay.exponential_delay is not None:
            out.error(f"{path}.delay.exponentialDelay", "exponentialDelay not supported yet")


def _redirect(redirect: net.HTTPRedirect | None, path: str, out: Findings) -> None:
    if redirect is None:
        return
    if not (
        redirect.uri
        or redirect.authority
        or redirect.port
        or redirect.scheme
        or redirect.derive_port
    ):
        out.error(path, "redirect must specify URI, authority, scheme, or port")
    code = redirect.redirect_code
    if code and not 300 <= code <= 399:
        out.error(f"{path}.redirectCode", f"{code} is not a valid redirect code, must be 3xx")
    if redirect.scheme and redirect.scheme not in ("http", "https"):
        out.error(f"{path}.scheme", 'invalid redirect scheme, must be "http" or "https"')
    if redirect.port:
        out.check(f"{path}.port", port(redirect.port))


def _rewrite(rewrite: net.HTTPRewrite | None, path: str, out: Findings) -> None:
    if rewrite is None:
        return
    if rewrite.uri and rewrite.uri_regex_rewrite is not None:
        out.error(path, "rewrite may only contain one of URI or UriRegexRewrite")
    if not rewrite.uri and rewrite.uri_regex_rewrite is None and not rewrite.authority:
        out.error(path, "rewrite must specify at least one of URI, UriRegexRewrite, or authority")
    regex_rewrite = rewrite.uri_regex_rewrite
    if regex_rewrite is not None:
        if not regex_rewrite.match or not regex_rewrite.rewrite:
            out.error(
                f"{path}.uriRegexRewrite", "UriRegexRewrite requires both Rewrite and Match fields"
            )
        elif (problem := regex(regex_rewrite.match)) is not None:
            out.error(f"{path}.uriRegexRewrite.match", problem)


def _cors(cors: net.CorsPolicy | None, path: str, out: Findings) -> None:
    if cors is None:
        return
    for where, origin in _each(cors.allow_origins, f"{path}.allowOrigins"):
        if not (origin.exact or origin.prefix or origin.regex):
            out.error(where, "'' is not a valid match type for CORS allow origins")
        _string_match(origin, where, out)
    for where, method in _each(cors.allow_methods, f"{path}.allowMethods"):
        if method not in CORS_METHODS:
            out.error(where, f"{method!r} is not a supported HTTP method")
    for attr, alias in (("allow_headers", "allowHeaders"), ("expose_headers", "exposeHeaders")):
        for where, name in _each(getattr(cors, attr), f"{path}.{alias}"):
            if name != "*":
                out.check(where, header_name(name))
    if cors.max_age is not None:
        out.check(f"{path}.maxAge", duration(cors.max_age))
        if parse_duration(cors.max_age) % 1_000_000_000:
            out.error(f"{path}.maxAge", "max_age duration is accurate only to seconds precision")


def _routes_l4(routes: list[Any] | None, path: str, out: Findings) -> None:
    for where, route in _each(routes, path):
        if not route.route:
            out.error(f"{where}.route", "TCP/TLS route must have at least one destination")
        _weights(route.route, f"{where}.route", out)
        for match_path, match in _each(route.match, f"{where}.match"):
            if match.port:
                out.check(f"{match_path}.port", port(match.port))
            for subnet_path, subnet in _each(
                match.destination_subnets, f"{match_path}.destinationSubnets"
            ):
                out.check(subnet_path, ip_or_cidr(subnet))
            if getattr(match, "source_subnet", None):
                out.check(f"{match_path}.sourceSubnet", ip_or_cidr(match.source_subnet))
            _gateway_names(match.gateways, f"{match_path}.gateways", out)


def validate_virtual_service(vs: net.VirtualService, out: Findings) -> None:
    """Istio's VirtualService webhook checks."""
    spec = vs.spec
    delegate = not spec.hosts
    if delegate and spec.gateways:
        out.error("spec.gateways", "delegate virtual service must have no gateways specified")
    for where, host in _each(spec.hosts, "spec.hosts"):
        if host != "*" and not is_ip(host) and (problem := wildcard_domain(host)):
            out.error(where, problem)
    _gateway_names(spec.gateways, "spec.gateways", out)
    if not spec.http and not spec.tcp and not spec.tls:
        out.error("spec", "http, tcp or tls must be provided in virtual service")
    for where, route in _each(spec.http, "spec.http"):
        _http_route(route, where, delegate, out)
    _routes_l4(spec.tcp, "spec.tcp", out)
    _routes_l4(spec.tls, "spec.tls", out)
    for where, route in _each(spec.tls, "spec.tls"):
        for match_path, match in _each(route.match, f"{where}.match"):
            if not match.sni_hosts:
                out.error(f"{match_path}.sniHosts", "TLS match must have at least one SNI host")
            for sni_path, sni in _each(match.sni_hosts, f"{match_path}.sniHosts"):
                out.check(sni_path, wildcard_domain(sni))


# DestinationRule ------------------------------------------------------------------------


def _traffic_policy(policy: Any, path: str, out: Findings) -> None:  # noqa: PLR0912 - one branch per Istio check
    if policy is None:
        return
    outlier = policy.outlier_detection
    if outlier is not None:
        for attr, alias in (("interval", "interval"), ("base_ejection_time", "baseEjectionTime")):
            value = getattr(outlier, attr)
            if value is not None:
                out.check(f"{path}.outlierDetection.{alias}", duration(value))
        for attr, alias in (
            ("max_ejection_percent", "maxEjectionPercent"),
            ("min_health_percent", "minHealthPercent"),
        ):
            value = getattr(outlier, attr)
            if value is not None and not 0 <= value <= 100:
                out.error(f"{path}.outlierDetection.{alias}", f"{alias} must be in range [0, 100]")
    tls = policy.tls
    mutual = tls is not None and tls.mode == "MUTUAL" and not tls.credential_name
    if mutual and tls is not None and not (tls.client_certificate and tls.private_key):
        out.error(f"{path}.tls", "client certificate and private key required for mutual tls")
    if tls is not None and tls.mode == "ISTIO_MUTUAL":
        for attr, alias in (
            ("client_certificate", "clientCertificate"),
            ("private_key", "privateKey"),
            ("ca_certificates", "caCertificates"),
            ("credential_name", "credentialName"),
        ):
            if getattr(tls, attr):
                out.error(f"{path}.tls.{alias}", f"cannot specify {alias} with ISTIO_MUTUAL mode")
    pool = policy.connection_pool
    if pool is not None and pool.tcp is not None and pool.tcp.connect_timeout is not None:
        out.check(f"{path}.connectionPool.tcp.connectTimeout", duration(pool.tcp.connect_timeout))
    seen: set[int] = set()
    for where, setting in _each(
        getattr(policy, "port_level_settings", None), f"{path}.portLevelSettings"
    ):
        number = setting.port.number if setting.port is not None else None
        if number is None:
            out.error(f"{where}.port", "port must be specified in portLevelSettings")
            continue
        out.check(f"{where}.port.number", port(number))
        if number in seen:
            out.error(f"{where}.port.number", f"duplicate port level setting for port {number}")
        seen.add(number)
        _traffic_policy(setting, where, out)


def validate_destination_rule(dr: net.DestinationRule, out: Findings) -> None:
    """Istio's DestinationRule webhook checks."""
    spec = dr.spec
    out.check("spec.host", wildcard_domain(spec.host))
    out.check(annotation_path(LOAD_BALANCER), load_balancer_error(dr))
    _traffic_policy(spec.traffic_policy, "spec.trafficPolicy", out)
    names: set[str] = set()
    for where, subset in _each(spec.subsets, "spec.subsets"):
        if not subset.name:
            out.error(f"{where}.name", "subset name cannot be empty")
        elif dns1123_label(subset.name):
            out.error(f"{where}.name", f"subset name is invalid: {subset.name}")
        if subset.name in names:
            out.error(f"{where}.name", f"duplicate subset name {subset.name!r}")
        names.add(subset.name)
        label_map(subset.labels, f"{where}.labels", out)
        _traffic_policy(subset.traffic_policy, f"{where}.trafficPolicy", out)


# Gateway, ServiceEntry, WorkloadEntry, Sidecar --------------------------------------------


def validate_gateway(gw: net.Gateway, out: Findings) -> None:
    """Istio's Gateway webhook checks."""
    spec = gw.spec
    if not spec.servers:
        out.error("spec.servers", "gateway must have at least one server")
    port_names: dict[str, int] = {}
    for where, server in _each(spec.servers, "spec.servers"):
        out.check(f"{where}.port.number", port(server.port.number))
        protocol = server.port.protocol.upper()
        if protocol not in GATEWAY_PROTOCOLS:
            out.error(f"{where}.port.protocol", f"unrecognized protocol {server.port.protocol!r}")
        name = server.port.name
        if name in port_names and port_names[name] != server.port.number:
            out.error(
                f"{where}.port.name", f"port names in servers must be unique: duplicate name {name}"
            )
        port_names[name] = server.port.number
        if not server.hosts:
            out.error(f"{where}.hosts", "server config must contain at least one host")
        for host_path, host in _each(server.hosts, f"{where}.hosts"):
            namespace, slash, dns = host.rpartition("/")
            if slash and namespace not in (".", "*") and dns1123_label(namespace):
                out.error(host_path, f"invalid namespace value {namespace!r} in host {host!r}")
            if dns != "*" and not is_ip(dns):
                out.check(host_path, wildcard_domain(dns))
        tls = server.tls
        if protocol in ("HTTPS", "TLS") and tls is None:
            out.error(f"{where}.tls", "server must have TLS settings for HTTPS/TLS protocols")
        if tls is not None and tls.mode in ("SIMPLE", "MUTUAL", None) and protocol == "HTTPS":
            has_files = bool(tls.server_certificate) and bool(tls.private_key)
            if not (
                tls.credential_name or tls.credential_names or tls.tls_certificates or has_files
            ):
                out.error(
                    f"{where}.tls",
                    "SIMPLE TLS requires credentialName or serverCertificate and privateKey",
                )


def validate_service_entry(se: net.ServiceEntry, out: Findings) -> None:
    """Istio's ServiceEntry webhook checks."""
    spec = se.spec
    resolution = spec.resolution or "NONE"
    for where, host in _each(spec.hosts, "spec.hosts"):
        out.check(where, wildcard_domain(host))
        if resolution.startswith("DNS") and host.startswith("*") and not spec.endpoints:
            out.error(
                where, f"wildcard host {host} is not allowed with DNS resolution and no endpoints"
            )
    for where, address in _each(spec.addresses, "spec.addresses"):
        out.check(where, ip_or_cidr(address))
    for where, service_port in _each(spec.ports, "spec.ports"):
        if service_port.protocol and service_port.protocol.upper() not in SERVICE_PROTOCOLS:
            out.error(f"{where}.protocol", f"unrecognized protocol {service_port.protocol!r}")
    if resolution == "STATIC" and not spec.endpoints and spec.workload_selector is None:
        out.error(
            "spec.endpoints",
            "endpoints must be provided if service entry resolution mode is STATIC",
        )
    port_names = {p.name for p in spec.ports or ()}
    for where, endpoint in _each(spec.endpoints, "spec.endpoints"):
        address = endpoint.address or ""
        if (
            resolution == "STATIC"
            and address
            and not address.startswith("unix://")
            and not is_ip(address)
        ):
            out.error(f"{where}.address", f"endpoint address {address!r} is not a valid IP address")
        elif address and not address.startswith("unix://") and not is_ip(address):
            out.check(f"{where}.address", fqdn(address))
        for name in endpoint.ports or {}:
            if name not in port_names:
                out.error(
                    f"{where}.ports{{{name}}}",
                    f"endpoint port {name} is not defined by the service entry",
                )
        label_map(endpoint.labels, f"{where}.labels", out)


def validate_workload_entry(we: net.WorkloadEntry, out: Findings) -> None:
    """Istio's WorkloadEntry webhook checks."""
    address = we.spec.address or ""
    if address and not address.startswith("unix://") and not is_ip(address) and fqdn(address):
        out.error(
            "spec.address", f"endpoint address {address!r} is not a valid FQDN or an IP address"
        )
    label_map(we.spec.labels, "spec.labels", out)


def validate_sidecar(sidecar: net.Sidecar, out: Findings) -> None:
    """Istio's Sidecar webhook checks."""
    spec = sidecar.spec
    for where, listener in _each(spec.ingress, "spec.ingress"):
        if listener.port is not None:
            out.check(f"{where}.port.number", _sidecar_port(listener.port.number))
        endpoint = listener.default_endpoint or ""
        if endpoint and not endpoint.startswith("unix://"):
            host, _, number = endpoint.rpartition(":")
            if host not in ("127.0.0.1", "0.0.0.0", "[::1]", "[::]") or not number.isdigit():  # noqa: S104
                out.error(
                    f"{where}.defaultEndpoint",
                    "defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, "
                    "[::1]:<port>, [::]:<port> or unix://<path>",
                )
    for where, listener in _each(spec.egress, "spec.egress"):
        if not listener.hosts:
            out.error(f"{where}.hosts", "sidecar: egress listener must contain at least one host")
        for host_path, host in _each(listener.hosts, f"{where}.hosts"):
            namespace, slash, dns = host.partition("/")
            if not slash or not namespace or not dns:
                out.error(host_path, "sidecar: host must be of form namespace/dnsName")
                continue
            if namespace not in (".", "*", "~") and dns1123_label(namespace):
                out.error(host_path, f"sidecar: invalid namespace {namespace!r}")
            if dns != "*":
                out.check(host_path, wildcard_domain(dns))
        if listener.port is not None:
            out.check(f"{where}.port.number", _sidecar_port(listener.port.number))


def _sidecar_port(number: int | None) -> str | None:
    """A Sidecar listener's port: once `port` is given, its number is required."""
    return "sidecar: port number is required" if number is None else port(number)


# Security and telemetry -----------------------------------------------------------------


_CONDITION_KEYS = re.compile(
    r"^(request\.headers\[.+\]|source\.(ip|remote_ip|namespace|principal)|"
    r"request\.auth\.(principal|audiences|presenter|claims\[.+\])|"
    r"destination\.(ip|port)|connection\.sni|experimental\.envoy\.filters\..+)$"
)


def validate_authorization_policy(policy: sec.AuthorizationPolicy, out: Findings) -> None:  # noqa: PLR0912 - one branch per Istio check
    """Istio's AuthorizationPolicy webhook checks."""
    spec = policy.spec
    action = spec.action or "ALLOW"
    if action == "CUSTOM" and spec.provider is None:
        out.error("spec.provider", "a provider must be specified for CUSTOM action")
    if action != "CUSTOM" and spec.provider is not None:
        out.error("spec.provider", "provider can be specified only with CUSTOM action")
    for where, rule in _each(spec.rules, "spec.rules"):
        if rule.from_ is not None and not rule.from_:
            out.error(f"{where}.from", "`from` must not be empty")
        if rule.to is not None and not rule.to:
            out.error(f"{where}.to", "`to` must not be empty")
        for from_path, source in _each(rule.from_, f"{where}.from"):
            if source.source is None or not source.source.model_fields_set:
                out.error(f"{from_path}.source", "`from.source` must not be empty")
                continue
            for attr in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
                for ip_path, block in _each(getattr(source.source, attr), f"{from_path}.source"):
                    out.check(ip_path, ip_or_cidr(block))
        for to_path, target in _each(rule.to, f"{where}.to"):
            operation = target.operation
            if operation is None or not operation.model_fields_set:
                out.error(f"{to_path}.operation", "`to.operation` must not be empty")
                continue
            for attr in ("ports", "not_ports"):
                for port_path, value in _each(
                    getattr(operation, attr), f"{to_path}.operation.{attr}"
                ):
                    if not value.isdigit() or port(int(value)):
                        out.error(port_path, f"invalid port {value!r}")
        for when_path, condition in _each(rule.when, f"{where}.when"):
            if not _CONDITION_KEYS.match(condition.key):
                out.error(f"{when_path}.key", f"unknown attribute {condition.key!r}")
            if not condition.values and not condition.not_values:
                out.error(
                    when_path,
                    f"at least one of values or notValues must be set for key {condition.key}",
                )


def validate_request_authentication(policy: sec.RequestAuthentication, out: Findings) -> None:
    """Istio's RequestAuthentication webhook checks."""
    issuers: set[str] = set()
    for where, rule in _each(policy.spec.jwt_rules, "spec.jwtRules"):
        if not rule.issuer:
            out.error(f"{where}.issuer", "issuer must be set")
        elif rule.issuer in issuers:
            out.error(f"{where}.issuer", f"duplicate issuer {rule.issuer!r}")
        issuers.add(rule.issuer or "")
        for header_path, header in _each(rule.from_headers, f"{where}.fromHeaders"):
            if not header.name:
                out.error(f"{header_path}.name", "location header name must be non-empty")


def validate_peer_authentication(policy: sec.PeerAuthentication, out: Findings) -> None:
    """Istio's PeerAuthentication webhook checks."""
    if policy.spec.selector is not None:
        label_map(policy.spec.selector.match_labels, "spec.selector.matchLabels", out)


def validate_telemetry(telemetry: tel.Telemetry, out: Findings) -> None:
    """Istio's Telemetry webhook checks."""
    for where, tracing in _each(telemetry.spec.tracing, "spec.tracing"):
        value = tracing.random_sampling_percentage
        if value is not None and not 0 <= value <= 100:
            out.error(f"{where}.randomSamplingPercentage", "must be in range [0.0, 100.0]")
        for provider_path, provider in _each(tracing.providers, f"{where}.providers"):
            if not provider.name:
                out.error(f"{provider_path}.name", "must specify a provider name")


VALIDATORS: dict[type[IstioResource], Callable[[Any, Findings], None]] = {
    net.VirtualService: validate_virtual_service,
    net.DestinationRule: validate_destination_rule,
    net.Gateway: validate_gateway,
    net.ServiceEntry: validate_service_entry,
    net.WorkloadEntry: validate_workload_entry,
    net.Sidecar: validate_sidecar,
    sec.AuthorizationPolicy: validate_authorization_policy,
    sec.RequestAuthentication: validate_request_authentication,
    sec.PeerAuthentication: validate_peer_authentication,
    tel.Telemetry: validate_telemetry,
}


def validate(resource: IstioResource) -> list[Diagnostic]:
    """Webhook-layer checks of one parsed object: every finding, as IST0106 diagnostics."""
    out = Findings()
    out.check("metadata.name", dns1123_subdomain(resource.metadata.name))
    out.check("metadata.namespace", dns1123_label(resource.metadata.namespace))
    validator = VALIDATORS.get(type(resource))
    if validator is not None:
        validator(resource, out)
    return [
        Diagnostic.of(
            SCHEMA_VALIDATION_ERROR if level is Level.ERROR else SCHEMA_WARNING,
            message,
            origin=resource.origin,
            path=path,
        )
        for level, path, message in out.items
    ]
