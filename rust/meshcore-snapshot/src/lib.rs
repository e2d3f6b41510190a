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
mod validate;

pub use cluster::{Cluster, Endpoint, LbPolicy};
pub use error::{ErrorCode, SnapshotError};
pub use listener::{Listener, Protocol, TcpRoute, WeightedCluster};
pub use parse::{parse, parse_unvalidated};

use serde::{Deserialize, Serialize};

/// The schema generation this crate implements; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One proxy's complete configuration at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Opaque version chosen by the producer (the compiler uses a content hash).
    pub version: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub clusters: Vec<Cluster>,
}

impl Snapshot {
    /// Checks what the types alone cannot: references, duplicates and value ranges.
    ///
    /// Returns every problem found, in document order (listeners, then clusters).
    pub fn validate(&self) -> Result<(), Vec<SnapshotError>> {
        validate::validate(self)
    }

    /// Looks a cluster up by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}
