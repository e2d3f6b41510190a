//! meshcore's data plane: L4 and L7 (HTTP/1.1, HTTP/2) listeners, routing, clusters and
//! forwarding on tokio and hyper.
//!
//! The binding (`meshcore-py`) drives it through a few coarse calls on [`DataPlane`]:
//! [`DataPlane::start`], [`DataPlane::apply_json`], [`DataPlane::stats`],
//! [`DataPlane::config_dump`], [`DataPlane::drain`] (one [`Direction`], with
//! [`DataPlane::connections`] to see what is left in flight) and [`DataPlane::shutdown`].
//! How runtimes are laid out and what an apply guarantees is in the [`dataplane`] module
//! docs.
//!
//! An `http` or `auto` listener's connection goes through the L7 phases drawn in the
//! `http` module docs (detect → route → pick upstream → upstream request → response →
//! log). A `tcp` listener's connection (and an `auto` one that is not HTTP) goes its L4
//! way, each step in its own module:
//!
//! ```text
//!  accept            listener.rs   a socket of the last applied snapshot accepts
//!    │
//!  pick route        routing.rs    load() the routing table; the socket's route
//!    │
//!  original dst      original_dst.rs  where a redirected connection was going
//!    │                             (SO_ORIGINAL_DST; not redirected or a loop → none)
//!  pick cluster      routing.rs    weighted random over the route's clusters
//!    │                             (none → no_healthy_upstream, close)
//!  pick endpoint     cluster.rs    the cluster's lb_policy (balancer.rs); an original_dst
//!    │                             cluster takes the original destination instead
//!    │                             (none → no_healthy_upstream, close)
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
mod original_dst;
mod routing;
mod stats;
mod tcp_proxy;
mod worker;

pub use dataplane::{DataPlane, ShutdownReport};
pub use error::{ApplyError, StartError};
pub use meshcore_snapshot::Direction;
pub use options::Options;
pub use stats::{ClusterStats, ListenerStats, PORTS_COUNTED, PortDetections, Stats, TotalStats};
