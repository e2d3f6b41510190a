//! Listeners: a socket the proxy accepts on, and the L4 route it forwards to.

use serde::{Deserialize, Serialize};

/// Envoy's tcp_proxy default: an hour without bytes either way closes the connection.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 3_600_000;

fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}

/// What a listener speaks. Version 1 forwards opaque TCP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
}

/// A bound socket. Listeners are reconciled by socket address (`address`, `port`), so a
/// renamed listener keeps its socket and its connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    /// An IP literal (`127.0.0.1`, `0.0.0.0`, `::1`).
    pub address: String,
    pub port: u16,
    pub protocol: Protocol,
    /// Close a connection after this long with no bytes in either direction; 0 disables.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Where connections go; required for `tcp`.
    #[serde(default)]
    pub tcp_route: Option<TcpRoute>,
}

/// An L4 route: each new connection goes to one of these clusters, chosen by weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRoute {
    pub clusters: Vec<WeightedCluster>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub name: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}
