//! How a data plane is started: worker threads and the optional admin address.

use std::net::SocketAddr;

/// Start-time settings of a [`DataPlane`](crate::DataPlane). They cannot change while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Worker threads that carry traffic, one runtime each (Istio's `concurrency`); at least 1.
    pub worker_threads: usize,
    /// Where the admin HTTP server listens. Must be a loopback address; `None` runs no server.
    pub admin_address: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker_threads: 2,
            admin_address: None,
        }
    }
}
