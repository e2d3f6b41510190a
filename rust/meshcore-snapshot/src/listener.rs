//! Listeners: a socket the proxy accepts on, what it speaks, and where traffic goes.

use serde::{Deserialize, Serialize};

use crate::route::Origin;

/// Envoy's tcp_proxy default: an hour without bytes either way closes the connection.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 3_600_000;

/// How long an `auto` listener waits for the client's first bytes before treating the
/// connection as opaque TCP (server-first protocols never send first).
pub const DEFAULT_DETECT_TIMEOUT_MS: u64 = 5_000;

fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}

fn default_detect_timeout_ms() -> u64 {
    DEFAULT_DETECT_TIMEOUT_MS
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Opaque TCP through `tcp_route`.
    Tcp,
    /// HTTP/1.1 or HTTP/2 (prior knowledge) through `route_config`.
    Http,
    /// Detect HTTP from the first bytes; anything else goes through `tcp_route`.
    Auto,
}

/// Which way traffic flows through the listener, as Istio's metrics and flags name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the local app to the mesh.
    #[default]
    Outbound,
    /// From the mesh to the local app.
    Inbound,
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
    #[serde(default)]
    pub direction: Direction,
    /// Accept absolute-form requests and `CONNECT` (an HTTP proxy for apps that are not
    /// captured by iptables: the local mesh's outbound listener).
    #[serde(default)]
    pub http_proxy: bool,
    /// `auto` only: how long to wait for the client's first bytes before treating the
    /// connection as opaque TCP. 0 waits without a timeout (Istio's
    /// `protocolDetectionTimeout: 0s`): a silent connection is closed after
    /// `idle_timeout_ms`, as any idle one, and never becomes opaque for its silence.
    #[serde(default = "default_detect_timeout_ms")]
    pub detect_timeout_ms: u64,
    /// Close a connection after this long with no bytes in either direction; 0 disables.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Where opaque TCP goes: required for `tcp`, the fallback for `auto`.
    #[serde(default)]
    pub tcp_route: Option<TcpRoute>,
    /// The [`crate::RouteConfig`] HTTP requests are routed by: required for `http` and `auto`.
    #[serde(default)]
    pub route_config: Option<String>,
    /// The Istio object that asked for this listener (a Sidecar's egress or ingress entry).
    #[serde(default)]
    pub origin: Option<Origin>,
    /// `auto` only: destination ports declared opaque TCP (a service port of protocol
    /// `tcp`, `mysql`, `mongo`, ...). A connection to one of them (its original destination
    /// when captured, else the listener's port) goes to `tcp_route` at once, without
    /// waiting for bytes: a server-first protocol (MySQL, SMTP) sends none.
    #[serde(default)]
    pub opaque_ports: Vec<u16>,
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

pub(crate) fn default_weight() -> u32 {
    1
}
