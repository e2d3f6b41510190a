//! Clusters: a named set of endpoints and how to balance over them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Istio's default `connectTimeout` (10s).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

fn default_endpoint_weight() -> u32 {
    1
}

/// How a cluster picks an endpoint for a new connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Weighted round robin (smooth, in the manner of nginx).
    #[default]
    RoundRobin,
    /// Weighted random.
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
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
