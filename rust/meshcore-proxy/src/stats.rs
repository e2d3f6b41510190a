//! Counters of the data plane and the shape [`DataPlane::stats`](crate::DataPlane::stats)
//! reports them in.
//!
//! Counters are plain atomics updated on the request path (bytes as they are forwarded, not
//! only when a connection ends); a report is a point-in-time read of them. Per-cluster
//! counters belong to the cluster *name*, so they persist across applies while the name
//! does. Per-listener counters belong to the *socket*, like the listener itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hyper::StatusCode;
use serde::Serialize;

use crate::http::Detected;
use crate::http::respond::ResponseFlag;

/// A point-in-time report of the data plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Version of the last applied snapshot; `None` before the first apply.
    pub version: Option<String>,
    pub applies_accepted: u64,
    pub applies_rejected: u64,
    pub totals: TotalStats,
    /// Serving listeners, then removed ones that still have connections (`draining`).
    pub listeners: Vec<ListenerStats>,
    /// Clusters of the last applied snapshot, in its order.
    pub clusters: Vec<ClusterStats>,
}

/// Counters over every listener and cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TotalStats {
    /// Downstream connections accepted.
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub connections_active: u64,
    /// Bytes forwarded client → server.
    pub bytes_upstream: u64,
    /// Bytes forwarded server → client.
    pub bytes_downstream: u64,
    /// Upstream connects that failed or timed out (L4).
    pub connect_failures: u64,
    /// Connections closed because the chosen cluster had no endpoint (L4).
    pub no_healthy_upstream: u64,
    /// Connections closed because no bytes moved for the listener's idle timeout.
    pub idle_timeouts: u64,
    /// HTTP requests received (both versions, all listeners).
    pub http_requests: u64,
    /// Requests by Envoy response flag (`NR`, `UH`, `UF`, `UC`, `UT`, `URX`, `DPE`, `DC`,
    /// `UO`, `UPE`); every flag is listed, zero or not.
    pub response_flags: BTreeMap<String, u64>,
    /// Access log records dropped because the writer fell behind.
    pub access_log_dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerStats {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub connections_opened: u64,
    pub connections_active: u64,
    /// Removed from the config: no longer accepting, listed while connections remain.
    pub draining: bool,
    /// Protocol detection outcomes (`http` and `auto` listeners): HTTP/1, HTTP/2 preface,
    /// other bytes, and no bytes within `detect_timeout_ms`.
    pub detected_http1: u64,
    pub detected_http2: u64,
    pub detected_tcp: u64,
    pub detect_timeouts: u64,
    /// `auto` listeners: connections to a declared opaque port, passed to TCP undetected.
    pub declared_opaque: u64,
    /// The same outcomes by the port the client asked for (the original destination's on
    /// a capturing listener, else the listener's): up to [`PORTS_COUNTED`] ports, the
    /// rest under port 0.
    pub detected_by_port: BTreeMap<u16, PortDetections>,
    pub http_requests: u64,
}

/// Distinct destination ports a listener counts detection outcomes for.
pub const PORTS_COUNTED: usize = 256;

/// Protocol detection outcomes of connections to one destination port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortDetections {
    pub http1: u64,
    pub http2: u64,
    pub tcp: u64,
    pub timeouts: u64,
    pub declared_opaque: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStats {
    pub name: String,
    /// Upstream connections established to the cluster's endpoints.
    pub connections_opened: u64,
    pub connections_active: u64,
    pub bytes_upstream: u64,
    pub bytes_downstream: u64,
    pub connect_failures: u64,
    pub no_healthy_upstream: u64,
    /// HTTP requests routed to the cluster, retries, and upstream responses by class.
    pub http_requests: u64,
    pub http_retries: u64,
    /// Requests the upstream did not process (streams past an HTTP/2 GOAWAY's
    /// last-stream-id) sent once more on another connection; not retries.
    pub http_unprocessed_resends: u64,
    pub responses_2xx: u64,
    pub responses_3xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Whole-data-plane counters.
#[derive(Debug, Default)]
pub(crate) struct TotalCounters {
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    bytes_upstream: AtomicU64,
    bytes_downstream: AtomicU64,
    connect_failures: AtomicU64,
    no_healthy_upstream: AtomicU64,
    idle_timeouts: AtomicU64,
    http_requests: AtomicU64,
    flags: [AtomicU64; ResponseFlag::ALL.len()],
    access_log_dropped: AtomicU64,
}

impl TotalCounters {
    pub(crate) fn report(&self) -> TotalStats {
        let opened = read(&self.connections_opened);
        let closed = read(&self.connections_closed);
        TotalStats {
            connections_opened: opened,
            connections_closed: closed,
            connections_active: opened.saturating_sub(closed),
            bytes_upstream: read(&self.bytes_upstream),
            bytes_downstream: read(&self.bytes_downstream),
            connect_failures: read(&self.connect_failures),
            no_healthy_upstream: read(&self.no_healthy_upstream),
            idle_timeouts: read(&self.idle_timeouts),
            http_requests: read(&self.http_requests),
            response_flags: ResponseFlag::ALL
                .iter()
                .map(|f| (f.code().to_string(), read(&self.flags[*f as usize])))
                .collect(),
            access_log_dropped: read(&self.access_log_dropped),
        }
    }

    pub(crate) fn idle_timeout(&self) {
        add(&self.idle_timeouts, 1);
    }

    pub(crate) fn http_request(&self) {
        add(&self.http_requests, 1);
    }

    pub(crate) fn flag(&self, flag: ResponseFlag) {
        add(&self.flags[flag as usize], 1);
    }

    pub(crate) fn access_log_dropped(&self) {
        add(&self.access_log_dropped, 1);
    }

    pub(crate) fn add_bytes_downstream(&self, n: u64) {
        add(&self.bytes_downstream, n);
    }
}

/// Counters of one cluster name.
#[derive(Debug, Default)]
pub(crate) struct ClusterCounters {
    connections_opened: AtomicU64,
    connections_active: AtomicU64,
    bytes_upstream: AtomicU64,
    bytes_downstream: AtomicU64,
    connect_failures: AtomicU64,
    no_healthy_upstream: AtomicU64,
    http_requests: AtomicU64,
    http_retries: AtomicU64,
    http_unprocessed_resends: AtomicU64,
    responses: [AtomicU64; 4],
}

impl ClusterCounters {
    pub(crate) fn report(&self, name: &str) -> ClusterStats {
        ClusterStats {
            name: name.to_string(),
            connections_opened: read(&self.connections_opened),
            connections_active: read(&self.connections_active),
            bytes_upstream: read(&self.bytes_upstream),
            bytes_downstream: read(&self.bytes_downstream),
            connect_failures: read(&self.connect_failures),
            no_healthy_upstream: read(&self.no_healthy_upstream),
            http_requests: read(&self.http_requests),
            http_retries: read(&self.http_retries),
            http_unprocessed_resends: read(&self.http_unprocessed_resends),
            responses_2xx: read(&self.responses[0]),
            responses_3xx: read(&self.responses[1]),
            responses_4xx: read(&self.responses[2]),
            responses_5xx: read(&self.responses[3]),
        }
    }

    pub(crate) fn request(&self) {
        add(&self.http_requests, 1);
    }

    pub(crate) fn retry(&self) {
        add(&self.http_retries, 1);
    }

    pub(crate) fn unprocessed_resend(&self) {
        add(&self.http_unprocessed_resends, 1);
    }

    pub(crate) fn response(&self, status: StatusCode) {
        let class = (status.as_u16() / 100) as usize;
        if (2..=5).contains(&class) {
            add(&self.responses[class - 2], 1);
        }
    }

    pub(crate) fn add_bytes_downstream(&self, n: u64) {
        add(&self.bytes_downstream, n);
    }
}

/// Counters of one listening socket.
#[derive(Debug, Default)]
pub(crate) struct ListenerCounters {
    connections_opened: AtomicU64,
    connections_active: AtomicU64,
    detected_http1: AtomicU64,
    detected_http2: AtomicU64,
    detected_tcp: AtomicU64,
    detect_timeouts: AtomicU64,
    declared_opaque: AtomicU64,
    /// Once per connection, not per request: a lock is cheap there.
    by_port: Mutex<BTreeMap<u16, PortDetections>>,
    http_requests: AtomicU64,
}

impl ListenerCounters {
    pub(crate) fn active(&self) -> u64 {
        read(&self.connections_active)
    }

    /// What a connection to destination `port` turned out to speak.
    pub(crate) fn detected(&self, detected: Detected, port: u16) {
        let (total, of_port): (_, fn(&mut PortDetections) -> &mut u64) = match detected {
            Detected::Http1 => (&self.detected_http1, |p| &mut p.http1),
            Detected::Http2 => (&self.detected_http2, |p| &mut p.http2),
            Detected::Opaque => (&self.detected_tcp, |p| &mut p.tcp),
            Detected::Timeout => (&self.detect_timeouts, |p| &mut p.timeouts),
            Detected::Closed => return,
        };
        add(total, 1);
        self.count_port(port, of_port);
    }

    /// A connection to a declared opaque `port`: passed to TCP without detection.
    pub(crate) fn declared_opaque(&self, port: u16) {
        add(&self.declared_opaque, 1);
        self.count_port(port, |p| &mut p.declared_opaque);
    }

    fn count_port(&self, port: u16, outcome: fn(&mut PortDetections) -> &mut u64) {
        let mut ports = self.by_port.lock().unwrap_or_else(PoisonError::into_inner);
        let port = if ports.len() >= PORTS_COUNTED && !ports.contains_key(&port) {
            0
        } else {
            port
        };
        *outcome(ports.entry(port).or_default()) += 1;
    }

    pub(crate) fn http_request(&self) {
        add(&self.http_requests, 1);
    }

    pub(crate) fn report(
        &self,
        name: &str,
        address: std::net::SocketAddr,
        draining: bool,
    ) -> ListenerStats {
        ListenerStats {
            name: name.to_string(),
            address: address.ip().to_string(),
            port: address.port(),
            connections_opened: read(&self.connections_opened),
            connections_active: read(&self.connections_active),
            draining,
            detected_http1: read(&self.detected_http1),
            detected_http2: read(&self.detected_http2),
            detected_tcp: read(&self.detected_tcp),
            detect_timeouts: read(&self.detect_timeouts),
            declared_opaque: read(&self.declared_opaque),
            detected_by_port: self
                .by_port
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            http_requests: read(&self.http_requests),
        }
    }
}

/// A downstream connection's place in the counters: counted open on creation, closed on drop,
/// so a connection ended any way (including a force-close at shutdown) is counted once.
#[derive(Debug)]
pub(crate) struct DownstreamMeter {
    listener: Arc<ListenerCounters>,
    totals: Arc<TotalCounters>,
}

impl DownstreamMeter {
    pub(crate) fn open(listener: Arc<ListenerCounters>, totals: Arc<TotalCounters>) -> Self {
        add(&listener.connections_opened, 1);
        add(&listener.connections_active, 1);
        add(&totals.connections_opened, 1);
        Self { listener, totals }
    }

    pub(crate) fn totals(&self) -> &TotalCounters {
        &self.totals
    }

    pub(crate) fn totals_arc(&self) -> Arc<TotalCounters> {
        Arc::clone(&self.totals)
    }

    pub(crate) fn no_healthy_upstream(&self, cluster: Option<&ClusterCounters>) {
        add(&self.totals.no_healthy_upstream, 1);
        if let Some(cluster) = cluster {
            add(&cluster.no_healthy_upstream, 1);
        }
    }

    pub(crate) fn connect_failure(&self, cluster: &ClusterCounters) {
        add(&self.totals.connect_failures, 1);
        add(&cluster.connect_failures, 1);
    }
}

impl Drop for DownstreamMeter {
    fn drop(&mut self) {
        self.listener
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
        add(&self.totals.connections_closed, 1);
    }
}

/// An established upstream connection: counts bytes per cluster and in total as they move.
#[derive(Debug)]
pub(crate) struct UpstreamMeter {
    cluster: Arc<ClusterCounters>,
    totals: Arc<TotalCounters>,
}

impl UpstreamMeter {
    pub(crate) fn open(cluster: Arc<ClusterCounters>, totals: Arc<TotalCounters>) -> Self {
        add(&cluster.connections_opened, 1);
        add(&cluster.connections_active, 1);
        Self { cluster, totals }
    }

    /// Bytes forwarded client → server.
    pub(crate) fn upstream(&self, n: u64) {
        add(&self.cluster.bytes_upstream, n);
        add(&self.totals.bytes_upstream, n);
    }

    /// Bytes forwarded server → client.
    pub(crate) fn downstream(&self, n: u64) {
        add(&self.cluster.bytes_downstream, n);
        add(&self.totals.bytes_downstream, n);
    }
}

impl Drop for UpstreamMeter {
    fn drop(&mut self) {
        self.cluster
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_outcomes_are_counted_by_port_and_past_the_cap_under_port_0() {
        let counters = ListenerCounters::default();
        for port in 1..=u16::try_from(PORTS_COUNTED).unwrap() {
            counters.detected(Detected::Http1, port);
        }
        counters.detected(Detected::Opaque, 9080);
        counters.detected(Detected::Timeout, 1);
        counters.declared_opaque(3306);
        counters.detected(Detected::Closed, 60_000);
        let report = counters.report("l", "127.0.0.1:15001".parse().unwrap(), false);
        let by_port = &report.detected_by_port;
        assert_eq!(by_port.len(), PORTS_COUNTED + 1);
        assert_eq!(by_port[&1].http1, 1);
        assert_eq!(by_port[&1].timeouts, 1);
        assert_eq!(by_port[&0].tcp, 1);
        assert_eq!(by_port[&0].declared_opaque, 1);
        assert!(!by_port.contains_key(&9080) && !by_port.contains_key(&60_000));
        assert_eq!(report.detected_http1, PORTS_COUNTED as u64);
        assert_eq!((report.detected_tcp, report.declared_opaque), (1, 1));
    }
}
