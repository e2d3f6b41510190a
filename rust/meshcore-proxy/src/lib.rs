//! meshcore's data plane: L4 listeners, clusters and forwarding on tokio.
//!
//! The binding (`meshcore-py`) drives it through a few coarse calls on [`DataPlane`]:
//! [`DataPlane::start`], [`DataPlane::apply_json`], [`DataPlane::stats`],
//! [`DataPlane::config_dump`] and [`DataPlane::shutdown`]. How runtimes are laid out and
//! what an apply guarantees is in the [`dataplane`] module docs.
//!
//! One connection's way through, each step in its own module:
//!
//! ```text
//!  accept            listener.rs   a socket of the last applied snapshot accepts
//!    │
//!  pick route        routing.rs    load() the routing table; the socket's route
//!    │
//!  pick cluster      routing.rs    weighted random over the route's clusters
//!    │                             (none → no_healthy_upstream, close)
//!  pick endpoint     cluster.rs    the cluster's lb_policy (balancer.rs)
//!    │                             (no endpoint → no_healthy_upstream, close)
//!  connect           tcp_proxy.rs  within connect_timeout_ms
//!    │                             (failed / timed out → connect_failures, close)
//!  copy              copy.rs       both ways, half-close, idle timeout, live byte counts
//!    │
//!  close             tcp_proxy.rs  counted in stats.rs; tracked for shutdown by drain.rs
//! ```

mod admin;
mod balancer;
mod cluster;
mod copy;
pub mod dataplane;
mod drain;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod listener;
mod options;
mod routing;
mod stats;
mod tcp_proxy;

pub use dataplane::{DataPlane, ShutdownReport};
pub use error::{ApplyError, StartError};
pub use options::Options;
pub use stats::{ClusterStats, ListenerStats, Stats, TotalStats};
