"""The Snapshot's types: settings, listeners, HTTP route configs and clusters.

Field names, defaults and ranges match ``rust/meshcore-snapshot`` exactly. Models are strict
(no coercion of ``"9000"`` to ``9000``) and reject unknown fields, as serde does there.
Semantic rules (references, exactly-one-of, regex syntax) live in ``validate.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_IDLE_TIMEOUT_MS = 3_600_000
"""Envoy's tcp_proxy default: an hour without bytes either way closes the connection."""

DEFAULT_DETECT_TIMEOUT_MS = 5_000
"""How long an ``auto`` listener waits for the client's first bytes."""

DEFAULT_CONNECT_TIMEOUT_MS = 10_000
"""Istio's default ``connectTimeout``."""

DEFAULT_POOL_IDLE_TIMEOUT_MS = 3_600_000
DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS = 100
DEFAULT_MAX_REQUEST_HEADERS_KB = 60
DEFAULT_MAX_REQUEST_HEADERS = 100
# hyper's default SETTINGS_MAX_CONCURRENT_STREAMS for a server connection.
DEFAULT_DOWNSTREAM_HTTP2_MAX_CONCURRENT_STREAMS = 200

U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
U32 = Annotated[int, Field(ge=0, le=0xFFFF_FFFF)]
U64 = Annotated[int, Field(ge=0, le=0xFFFF_FFFF_FFFF_FFFF)]

Protocol = Literal["tcp", "http", "auto"]
Direction = Literal["outbound", "inbound"]
ClusterKind = Literal["static", "original_dst"]
ClusterProtocol = Literal["inherit", "http1", "http2"]
LbPolicy = Literal["round_robin", "random", "least_request", "ring_hash", "maglev", "peak_ewma"]
AccessLogFormat = Literal["text", "json"]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AccessLog(_Contract):
    """Where access log lines go (``/dev/stdout`` for standard output) and in which format."""

    path: str
    format: AccessLogFormat = "text"


class ProxySettings(_Contract):
    """Proxy-wide HTTP limits and switches."""

    preserve_header_case: bool = False
    max_request_headers_kb: U32 = DEFAULT_MAX_REQUEST_HEADERS_KB
    max_request_headers: U32 = DEFAULT_MAX_REQUEST_HEADERS
    http2_max_concurrent_streams: U32 = DEFAULT_DOWNSTREAM_HTTP2_MAX_CONCURRENT_STREAMS
    """Streams one downstream HTTP/2 connection may have open at once."""
    access_log: AccessLog | None = None


class WeightedCluster(_Contract):
    """One target of an L4 route; new connections are spread by weight."""

    name: str
    weight: U32 = 1


class TcpRoute(_Contract):
    """Where a TCP listener sends each new connection."""

    clusters: list[WeightedCluster]


class Origin(_Contract):
    """The Istio object (and rule) a piece of compiled config came from."""

    kind: str
    namespace: str
    name: str
    rule: str = ""

    def __str__(self) -> str:
        rule = f" {self.rule}" if self.rule else ""
        return f"{self.kind}/{self.namespace}/{self.name}{rule}"


class Listener(_Contract):
    """A bound socket, reconciled by (address, port) so a rename keeps its connections."""

    name: str
    address: str
    port: U16
    protocol: Protocol
    direction: Direction = "outbound"
    http_proxy: bool = False
    detect_timeout_ms: U64 = DEFAULT_DETECT_TIMEOUT_MS
    """``auto`` only: how long to wait for the first bytes before calling the connection
    opaque TCP; 0 waits without a timeout (closed after ``idle_timeout_ms`` of silence)."""
    idle_timeout_ms: U64 = DEFAULT_IDLE_TIMEOUT_MS
    tcp_route: TcpRoute | None = None
    route_config: str | None = None
    origin: Origin | None = None
    """The Istio object that asked for this listener (a Sidecar's egress or ingress entry)."""
    opaque_ports: list[U16] = Field(default_factory=list)
    """``auto`` only: destination ports declared opaque TCP; connections to them are not
    detected (a server-first protocol such as MySQL or SMTP sends nothing to detect)."""


class StringMatch(_Contract):
    """Exactly one of ``exact``, ``prefix``, ``regex`` (RE2, whole-value match)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class KeyMatch(_Contract):
    """A header or query parameter by name; ``value=None`` tests presence only."""

    name: str
    value: StringMatch | None = None


class RouteMatch(_Contract):
    """All conditions must hold (Istio's HTTPMatchRequest)."""

    uri: StringMatch | None = None
    ignore_uri_case: bool = False
    method: StringMatch | None = None
    authority: StringMatch | None = None
    scheme: StringMatch | None = None
    headers: list[KeyMatch] = Field(default_factory=list)
    without_headers: list[KeyMatch] = Field(default_factory=list)
    query_params: list[KeyMatch] = Field(default_factory=list)
    port: U16 | None = None


class HeaderOps(_Contract):
    """Header edits, applied in the order remove, set, add."""

    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class HttpWeightedCluster(_Contract):
    name: str
    weight: U32 = 1
    request_headers: HeaderOps = Field(default_factory=HeaderOps)
    response_headers: HeaderOps = Field(default_factory=HeaderOps)


class RegexRewrite(_Contract):
    pattern: str
    substitution: str


class Rewrite(_Contract):
    """At most one of ``uri_prefix`` and ``uri_regex``; ``authority`` replaces the host."""

    uri_prefix: str | None = None
    uri_regex: RegexRewrite | None = None
    authority: str | None = None


class RetryPolicy(_Contract):
    attempts: U32
    per_try_timeout_ms: U64 | None = None
    retry_on: list[str] = Field(default_factory=list)


class ForwardAction(_Contract):
    """Forward to one of ``clusters``, chosen by weight per request."""

    clusters: list[HttpWeightedCluster]
    rewrite: Rewrite | None = None
    timeout_ms: U64 | None = None
    retries: RetryPolicy | None = None


class Redirect(_Contract):
    """Answer with a redirect; unset parts keep the request's own."""

    scheme: str | None = None
    authority: str | None = None
    port: U16 | None = None
    path: str | None = None
    response_code: U16 = 301


class DirectResponse(_Contract):
    status: U16
    body: str | None = None


class Route(_Contract):
    """One rule: matches, then exactly one of ``route``, ``redirect``, ``direct_response``."""

    origin: Origin | None = None
    matches: list[RouteMatch] = Field(default_factory=list)
    request_headers: HeaderOps = Field(default_factory=HeaderOps)
    response_headers: HeaderOps = Field(default_factory=HeaderOps)
    route: ForwardAction | None = None
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None


class VirtualHost(_Contract):
    """Requests whose authority matches one of ``domains`` (``host``, ``host:port``,
    ``*.suffix``, ``prefix.*``, ``*``)."""

    name: str
    domains: list[str]
    routes: list[Route] = Field(default_factory=list)


class RouteConfig(_Contract):
    name: str
    virtual_hosts: list[VirtualHost] = Field(default_factory=list)


class CookieHash(_Contract):
    name: str
    ttl_ms: U64 | None = None
    path: str | None = None


class HashPolicy(_Contract):
    """What consistent hashing hashes: exactly one source."""

    header: str | None = None
    cookie: CookieHash | None = None
    source_ip: bool = False
    query_parameter: str | None = None


class ConnectionPool(_Contract):
    """Upstream connection reuse and limits; 0 means unlimited where noted."""

    max_requests_per_connection: U32 = 0
    idle_timeout_ms: U64 = DEFAULT_POOL_IDLE_TIMEOUT_MS
    max_connections: U32 = 0
    http2_max_concurrent_streams: U32 = DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS


class Endpoint(_Contract):
    """One upstream address; the compiler resolves names, so ``address`` is an IP literal."""

    address: str
    port: U16
    weight: U32 = 1
    labels: dict[str, str] = Field(default_factory=dict)


class Cluster(_Contract):
    """A named set of endpoints, how to reach them and how to balance over them."""

    name: str
    kind: ClusterKind = "static"
    origin: Origin | None = None
    protocol: ClusterProtocol = "inherit"
    lb_policy: LbPolicy = "round_robin"
    hash_policy: HashPolicy | None = None
    connect_timeout_ms: U64 = DEFAULT_CONNECT_TIMEOUT_MS
    pool: ConnectionPool = Field(default_factory=ConnectionPool)
    endpoints: list[Endpoint] = Field(default_factory=list)


class Snapshot(_Contract):
    """One proxy's complete configuration at one version."""

    version: str
    settings: ProxySettings = Field(default_factory=ProxySettings)
    listeners: list[Listener] = Field(default_factory=list)
    route_configs: list[RouteConfig] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)

    def to_json(self) -> bytes:
        """The wire form the data plane's ``apply`` takes: compact, every field present."""
        return self.model_dump_json().encode()

    def cluster(self, name: str) -> Cluster | None:
        """Looks a cluster up by name."""
        return next((c for c in self.clusters if c.name == name), None)

    def route_config(self, name: str) -> RouteConfig | None:
        """Looks a route config up by name."""
        return next((r for r in self.route_configs if r.name == name), None)
