//! The Snapshot: everything one proxy needs to serve traffic, as plain data.
//!
//! This crate is the contract between the control plane (Python, which compiles Istio
//! resources into a Snapshot and serialises it as JSON) and the data plane (Rust, which
//! turns a validated Snapshot into live listeners and clusters). It has no runtime, no I/O
//! and no Python: the same types are checked against the golden fixtures in
//! `tests/fixtures/snapshots/` that the pydantic mirror in `meshcore.compile.snapshot`
//! is checked against, so the two sides cannot drift.
//!
//! Flow: bytes → [`parse`] (structure, types, unknown fields) → [`Snapshot::validate`]
//! (references, duplicates, ranges) → the data plane.

mod cluster;
mod error;
mod listener;
mod parse;
mod route;
mod settings;
mod validate;

pub use cluster::{
    Cluster, ClusterKind, ClusterProtocol, ConnectionPool, CookieHash, DEFAULT_CONNECT_TIMEOUT_MS,
    Endpoint, HashPolicy, LbPolicy,
};
pub use error::{ErrorCode, SnapshotError};
pub use listener::{
    DEFAULT_DETECT_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, Direction, Listener, Protocol, TcpRoute,
    WeightedCluster,
};
pub use parse::{parse, parse_unvalidated};
pub use route::{
    DirectResponse, ForwardAction, HeaderOps, HttpWeightedCluster, KeyMatch, Origin, Redirect,
    RegexRewrite, RetryPolicy, Rewrite, Route, RouteConfig, RouteMatch, StringMatch, VirtualHost,
};
pub use settings::{AccessLog, AccessLogFormat, ProxySettings};

use serde::{Deserialize, Serialize};

/// The schema generation this crate implements; bumped on incompatible changes
/// (2 added HTTP routing; every version-1 document is still a valid version-2 one).
pub const SCHEMA_VERSION: u32 = 2;

/// One proxy's complete configuration at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Opaque version chosen by the producer (the compiler uses a content hash).
    pub version: String,
    #[serde(default)]
    pub settings: ProxySettings,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub route_configs: Vec<RouteConfig>,
    #[serde(default)]
    pub clusters: Vec<Cluster>,
}

impl Snapshot {
    /// Checks what the types alone cannot: references, duplicates and value ranges.
    ///
    /// Returns every problem found, in document order (settings, listeners, route configs,
    /// then clusters).
    pub fn validate(&self) -> Result<(), Vec<SnapshotError>> {
        validate::validate(self)
    }

    /// Looks a cluster up by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Looks a route config up by name.
    pub fn route_config(&self, name: &str) -> Option<&RouteConfig> {
        self.route_configs.iter().find(|r| r.name == name)
    }
}
