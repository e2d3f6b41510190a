//! The compiled routing table: what each listening socket routes to, and the clusters
//! with their endpoint pickers, published as one [`ArcSwap`](arc_swap::ArcSwap) value.
//!
//! A table is built completely from a validated snapshot before it is published; the
//! accept path only `load()`s it and never waits on a writer. A connection holds the
//! `Arc`s of the route and cluster it started with, so it keeps them across applies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use meshcore_snapshot::{Listener, Snapshot};

use crate::balancer::WeightedRandom;
use crate::cluster::Cluster;
use crate::stats::ClusterCounters;

/// What one listening socket does with a new connection.
#[derive(Debug)]
pub(crate) struct ListenerRoute {
    pub(crate) name: String,
    /// `None` when the snapshot disables it (0).
    pub(crate) idle_timeout: Option<Duration>,
    clusters: Vec<Arc<Cluster>>,
    picker: WeightedRandom,
}

impl ListenerRoute {
    /// A cluster of the route, chosen at random by weight.
    pub(crate) fn pick_cluster(&self) -> Option<&Arc<Cluster>> {
        self.picker.pick().and_then(|i| self.clusters.get(i))
    }
}

#[derive(Debug, Default)]
pub(crate) struct RoutingTable {
    routes: HashMap<SocketAddr, Arc<ListenerRoute>>,
    /// In snapshot order, for reports.
    clusters: Vec<Arc<Cluster>>,
}

impl RoutingTable {
    /// Builds the table of a validated snapshot, carrying cluster counters over from
    /// `previous` by cluster name.
    pub(crate) fn compile(snapshot: &Snapshot, previous: &RoutingTable) -> Self {
        let mut by_name: HashMap<&str, Arc<Cluster>> = HashMap::new();
        let mut clusters = Vec::with_capacity(snapshot.clusters.len());
        for spec in &snapshot.clusters {
            let counters = previous
                .cluster(&spec.name)
                .map(|c| Arc::clone(&c.counters))
                .unwrap_or_else(|| Arc::new(ClusterCounters::default()));
            let cluster = Arc::new(Cluster::compile(spec, counters));
            by_name
                .entry(spec.name.as_str())
                .or_insert_with(|| Arc::clone(&cluster));
            clusters.push(cluster);
        }
        let mut routes = HashMap::with_capacity(snapshot.listeners.len());
        for listener in &snapshot.listeners {
            if let Some(address) = socket_address(listener) {
                routes.insert(address, Arc::new(compile_route(listener, &by_name)));
            }
        }
        Self { routes, clusters }
    }

    pub(crate) fn route(&self, address: &SocketAddr) -> Option<Arc<ListenerRoute>> {
        self.routes.get(address).cloned()
    }

    pub(crate) fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

fn compile_route(listener: &Listener, clusters: &HashMap<&str, Arc<Cluster>>) -> ListenerRoute {
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for target in listener.tcp_route.iter().flat_map(|r| &r.clusters) {
        // Validation rejects unknown names, so every target resolves.
        if let Some(cluster) = clusters.get(target.name.as_str()) {
            targets.push(Arc::clone(cluster));
            weights.push(target.weight);
        }
    }
    ListenerRoute {
        name: listener.name.clone(),
        idle_timeout: (listener.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(listener.idle_timeout_ms)),
        clusters: targets,
        picker: WeightedRandom::new(&weights),
    }
}

/// The socket a listener binds; listeners are reconciled by it. `None` only for a listener
/// that failed validation.
pub(crate) fn socket_address(listener: &Listener) -> Option<SocketAddr> {
    let ip: IpAddr = listener.address.parse().ok()?;
    Some(SocketAddr::new(ip, listener.port))
}
