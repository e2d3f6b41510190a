//! The compiled routing table: what each listening socket does, the route configs, the
//! clusters with their endpoint pickers and pools, and the HTTP settings, published as
//! one [`ArcSwap`](arc_swap::ArcSwap) value.
//!
//! A table is built completely from a validated snapshot before it is published (regexes
//! compiled, virtual hosts indexed, balancers built, the access log opened); the request
//! path only `load()`s it and never waits on a writer. A connection holds the `Arc`s of
//! the listener route and cluster it started with; an HTTP request loads the table when
//! it arrives, so keep-alive connections see new routes at their next request.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use meshcore_snapshot::{
    ClusterKind, Direction, ErrorCode, Listener, Protocol, Snapshot, SnapshotError,
};
use tokio_util::sync::CancellationToken;

use crate::balancer::WeightedRandom;
use crate::cluster::Cluster;
use crate::drain::{Drain, InFlight};
use crate::error::ApplyError;
use crate::http::HttpSettings;
use crate::http::access_log::AccessLogger;
use crate::http::router::RouteTable;
use crate::stats::{ClusterCounters, TotalCounters};

/// What one listening socket does with a new connection.
#[derive(Debug)]
pub(crate) struct ListenerRoute {
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) direction: Direction,
    pub(crate) http_proxy: bool,
    /// `auto` only: `None` when the snapshot disables it (0: wait for the first bytes
    /// without a detection timeout, as Istio's `protocolDetectionTimeout: 0s`).
    pub(crate) detect_timeout: Option<Duration>,
    /// Destination ports declared opaque: no detection (sorted).
    opaque_ports: Box<[u16]>,
    /// The route config HTTP requests are routed by.
    pub(crate) route_config: Option<String>,
    /// `None` when the snapshot disables it (0).
    pub(crate) idle_timeout: Option<Duration>,
    /// Something on this listener can use a connection's original destination (an
    /// `original_dst` cluster in its tcp_route or route config, or a route matching on
    /// the port); otherwise accept skips `getsockopt(SO_ORIGINAL_DST)`.
    pub(crate) needs_original_dst: bool,
    clusters: Vec<Arc<Cluster>>,
    picker: WeightedRandom,
    drain: Drain,
}

impl ListenerRoute {
    /// Fires when the listener's direction drains or the data plane shuts down.
    pub(crate) fn draining(&self) -> &CancellationToken {
        self.drain.direction(self.direction).draining()
    }

    /// Whether a connection to `port` skips detection: it is declared opaque TCP.
    pub(crate) fn declared_opaque(&self, port: u16) -> bool {
        self.opaque_ports.binary_search(&port).is_ok()
    }

    /// Counts one HTTP request as in flight in the listener's direction until dropped.
    pub(crate) fn request(&self) -> InFlight {
        self.drain.direction(self.direction).request()
    }

    /// Runs a connection that outlives its HTTP connection (an upgrade or a CONNECT
    /// tunnel), tracked and counted like an accepted one.
    pub(crate) fn spawn_connection(&self, connection: impl Future<Output = ()> + Send + 'static) {
        self.drain.spawn_connection(self.direction, connection);
    }

    /// A cluster of the listener's `tcp_route`, chosen at random by weight.
    pub(crate) fn pick_cluster(&self) -> Option<&Arc<Cluster>> {
        self.picker.pick().and_then(|i| self.clusters.get(i))
    }
}

#[derive(Debug, Default)]
pub(crate) struct RoutingTable {
    routes: HashMap<SocketAddr, Arc<ListenerRoute>>,
    route_configs: HashMap<String, Arc<RouteTable>>,
    /// In snapshot order, for reports.
    clusters: Vec<Arc<Cluster>>,
    pub(crate) http: Arc<HttpSettings>,
}

impl RoutingTable {
    /// Builds the table of a validated snapshot, carrying cluster counters, endpoint pools
    /// and the access log writer over from `previous`. Connections of its listeners are
    /// tracked by `drain`.
    pub(crate) fn compile(
        snapshot: &Snapshot,
        previous: &RoutingTable,
        totals: &Arc<TotalCounters>,
        drain: &Drain,
    ) -> Result<Self, ApplyError> {
        let settings = &snapshot.settings;
        let mut by_name: HashMap<&str, Arc<Cluster>> = HashMap::new();
        let mut clusters = Vec::with_capacity(snapshot.clusters.len());
        for spec in &snapshot.clusters {
            let before = previous.cluster(&spec.name);
            let counters = before
                .map(|c| Arc::clone(&c.counters))
                .unwrap_or_else(|| Arc::new(ClusterCounters::default()));
            let cluster = Arc::new(Cluster::compile(
                spec,
                counters,
                before.map(|c| &**c),
                settings.preserve_header_case,
            ));
            by_name
                .entry(spec.name.as_str())
                .or_insert_with(|| Arc::clone(&cluster));
            clusters.push(cluster);
        }
        let mut route_configs = HashMap::with_capacity(snapshot.route_configs.len());
        for (i, spec) in snapshot.route_configs.iter().enumerate() {
            let table = RouteTable::compile(i, spec, &by_name).map_err(|e| {
                ApplyError::Invalid(vec![SnapshotError::new(
                    e.path.clone(),
                    ErrorCode::InvalidValue,
                    e.source.to_string(),
                )])
            })?;
            route_configs.insert(spec.name.clone(), Arc::new(table));
        }
        let access_log = match &settings.access_log {
            None => None,
            Some(config) => match previous
                .http
                .access_log
                .as_ref()
                .filter(|l| l.config == *config)
            {
                Some(kept) => Some(Arc::clone(kept)),
                None => Some(Arc::new(
                    AccessLogger::start(config, Arc::clone(totals)).map_err(|e| {
                        ApplyError::Invalid(vec![SnapshotError::new(
                            "settings.access_log.path",
                            ErrorCode::InvalidValue,
                            format!("cannot open {}: {e}", config.path),
                        )])
                    })?,
                )),
            },
        };
        let http = Arc::new(HttpSettings {
            preserve_header_case: settings.preserve_header_case,
            max_header_bytes: settings.max_request_headers_kb as usize * 1024,
            max_headers: settings.max_request_headers as usize,
            http2_max_concurrent_streams: settings.http2_max_concurrent_streams,
            access_log,
        });
        let mut routes = HashMap::with_capacity(snapshot.listeners.len());
        for listener in &snapshot.listeners {
            if let Some(address) = socket_address(listener) {
                let route_config = listener
                    .route_config
                    .as_deref()
                    .and_then(|name| route_configs.get(name));
                routes.insert(
                    address,
                    Arc::new(compile_route(listener, route_config, &by_name, drain)),
                );
            }
        }
        Ok(Self {
            routes,
            route_configs,
            clusters,
            http,
        })
    }

    pub(crate) fn route(&self, address: &SocketAddr) -> Option<Arc<ListenerRoute>> {
        self.routes.get(address).cloned()
    }

    pub(crate) fn route_config(&self, name: &str) -> Option<Arc<RouteTable>> {
        self.route_configs.get(name).cloned()
    }

    pub(crate) fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| &*c.name == name)
    }
}

fn compile_route(
    listener: &Listener,
    route_config: Option<&Arc<RouteTable>>,
    clusters: &HashMap<&str, Arc<Cluster>>,
    drain: &Drain,
) -> ListenerRoute {
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for target in listener.tcp_route.iter().flat_map(|r| &r.clusters) {
        // Validation rejects unknown names, so every target resolves.
        if let Some(cluster) = clusters.get(target.name.as_str()) {
            targets.push(Arc::clone(cluster));
            weights.push(target.weight);
        }
    }
    let mut opaque_ports = listener.opaque_ports.clone();
    opaque_ports.sort_unstable();
    opaque_ports.dedup();
    let needs_original_dst = targets.iter().any(|c| c.kind == ClusterKind::OriginalDst)
        || route_config.is_some_and(|routes| routes.uses_original_dst())
        || !opaque_ports.is_empty();
    ListenerRoute {
        needs_original_dst,
        opaque_ports: opaque_ports.into(),
        name: listener.name.clone(),
        protocol: listener.protocol,
        direction: listener.direction,
        http_proxy: listener.http_proxy,
        detect_timeout: (listener.detect_timeout_ms > 0)
            .then(|| Duration::from_millis(listener.detect_timeout_ms)),
        route_config: listener.route_config.clone(),
        idle_timeout: (listener.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(listener.idle_timeout_ms)),
        clusters: targets,
        picker: WeightedRandom::new(&weights),
        drain: drain.clone(),
    }
}

/// The socket a listener binds; listeners are reconciled by it. `None` only for a listener
/// that failed validation.
pub(crate) fn socket_address(listener: &Listener) -> Option<SocketAddr> {
    let ip: IpAddr = listener.address.parse().ok()?;
    Some(SocketAddr::new(ip, listener.port))
}
