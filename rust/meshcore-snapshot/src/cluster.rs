//! Clusters: a named set of endpoints, how to reach them and how to balance over them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::route::Origin;

/// Istio's default `connectTimeout` (10s).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Envoy's default idle timeout for upstream connections (1h).
pub const DEFAULT_POOL_IDLE_TIMEOUT_MS: u64 = 3_600_000;
/// HTTP/2's usual SETTINGS_MAX_CONCURRENT_STREAMS.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

fn default_endpoint_weight() -> u32 {
    1
}

fn default_pool_idle_timeout_ms() -> u64 {
    DEFAULT_POOL_IDLE_TIMEOUT_MS
}

fn default_http2_max_concurrent_streams() -> u32 {
    DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS
}

/// Where a cluster's endpoints come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterKind {
    /// The `endpoints` listed.
    #[default]
    Static,
    /// The connection's original destination (SO_ORIGINAL_DST, or the target of an HTTP
    /// proxy request): Istio's PassthroughCluster. Has no endpoints.
    OriginalDst,
}

/// The protocol spoken to the cluster's endpoints (HTTP routes only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterProtocol {
    /// Whatever the client spoke (Istio's `USE_CLIENT_PROTOCOL`).
    #[default]
    Inherit,
    Http1,
    Http2,
}

/// How a cluster picks an endpoint for a new connection or request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Weighted round robin (smooth, in the manner of nginx).
    #[default]
    RoundRobin,
    /// Weighted random.
    Random,
    /// Fewest requests in flight of two endpoints picked at random.
    LeastRequest,
    /// Consistent hashing on `hash_policy` over a ring (Envoy's ring hash).
    RingHash,
    /// Consistent hashing on `hash_policy` with Maglev's lookup table.
    Maglev,
    /// Lowest peak-EWMA latency of two random endpoints (Linkerd's default; a meshcore extension).
    PeakEwma,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default)]
    pub kind: ClusterKind,
    /// The DestinationRule (and subset) that shaped this cluster, if any.
    #[serde(default)]
    pub origin: Option<Origin>,
    #[serde(default)]
    pub protocol: ClusterProtocol,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Required by `ring_hash` and `maglev`.
    #[serde(default)]
    pub hash_policy: Option<HashPolicy>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub pool: ConnectionPool,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// What consistent hashing hashes: exactly one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashPolicy {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<CookieHash>,
    #[serde(default)]
    pub source_ip: bool,
    #[serde(default)]
    pub query_parameter: Option<String>,
}

/// Hash on a cookie; with `ttl_ms` the proxy sets the cookie when the request lacks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieHash {
    pub name: String,
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    #[serde(default)]
    pub path: Option<String>,
}

/// Upstream connection reuse and limits (Istio's connectionPool settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPool {
    /// Requests per upstream connection before it is retired; 0 = unlimited.
    #[serde(default)]
    pub max_requests_per_connection: u32,
    #[serde(default = "default_pool_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Connections per endpoint; 0 = unlimited.
    #[serde(default)]
    pub max_connections: u32,
    #[serde(default = "default_http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: u32,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        Self {
            max_requests_per_connection: 0,
            idle_timeout_ms: DEFAULT_POOL_IDLE_TIMEOUT_MS,
            max_connections: 0,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// One upstream address. The compiler resolves names, so `address` is an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    #[serde(default = "default_endpoint_weight")]
    pub weight: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
