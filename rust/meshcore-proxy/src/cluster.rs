//! A cluster as the request path sees it: endpoint socket addresses, the policy's picker,
//! the connect timeout, and the counters of the cluster's name.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::balancer::Balancer;
use crate::stats::ClusterCounters;

#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) name: String,
    pub(crate) connect_timeout: Duration,
    endpoints: Vec<SocketAddr>,
    balancer: Balancer,
    pub(crate) counters: Arc<ClusterCounters>,
}

impl Cluster {
    /// Compiles a validated cluster. `counters` carry over from a previous cluster of the
    /// same name, so they survive applies.
    pub(crate) fn compile(
        spec: &meshcore_snapshot::Cluster,
        counters: Arc<ClusterCounters>,
    ) -> Self {
        let mut endpoints = Vec::with_capacity(spec.endpoints.len());
        let mut weights = Vec::with_capacity(spec.endpoints.len());
        for endpoint in &spec.endpoints {
            // Validation guarantees an IP literal; a stray one is left out rather than guessed at.
            match endpoint.address.parse::<IpAddr>() {
                Ok(ip) => {
                    endpoints.push(SocketAddr::new(ip, endpoint.port));
                    weights.push(endpoint.weight);
                }
                Err(_) => warn!(
                    cluster = %spec.name,
                    address = %endpoint.address,
                    "endpoint address is not an IP literal; skipped"
                ),
            }
        }
        Self {
            name: spec.name.clone(),
            connect_timeout: Duration::from_millis(spec.connect_timeout_ms),
            balancer: Balancer::new(spec.lb_policy, &weights),
            endpoints,
            counters,
        }
    }

    /// The endpoint for a new connection, or `None` when the cluster has none.
    pub(crate) fn pick_endpoint(&self) -> Option<SocketAddr> {
        self.balancer
            .pick()
            .and_then(|i| self.endpoints.get(i).copied())
    }
}
