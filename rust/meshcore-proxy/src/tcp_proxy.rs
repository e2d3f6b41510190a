//! One opaque TCP connection's life (a `tcp` listener, or an `auto` listener's non-HTTP
//! connection, whose already-read bytes come as `prefix`): pick a cluster → pick an endpoint → connect →
//! copy both ways → close.
//!
//! An `original_dst` cluster (Istio's PassthroughCluster) connects to where the client was
//! going before capture redirected it ([`OriginalDst`]); a connection that was not
//! redirected, or would loop back into the proxy, has no such endpoint.
//!
//! A connection that cannot be forwarded (no endpoint, connect failed or timed out) is
//! counted and closed; the client sees the connection close without data. One connect
//! attempt is made: retrying other endpoints is a policy the route does not express yet.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use meshcore_snapshot::ClusterKind;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::copy::{CopyEnd, copy_bidirectional};
use crate::original_dst::OriginalDst;
use crate::routing::ListenerRoute;
use crate::stats::{DownstreamMeter, UpstreamMeter};

/// Serves one accepted connection with the route the listener had when it was accepted.
pub(crate) async fn serve(
    downstream: TcpStream,
    prefix: Bytes,
    peer: SocketAddr,
    original_dst: OriginalDst,
    route: Arc<ListenerRoute>,
    meter: DownstreamMeter,
) {
    if let Err(e) = downstream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY downstream");
    }
    let Some(cluster) = route.pick_cluster().cloned() else {
        debug!(%peer, listener = %route.name, "route has no cluster to pick");
        meter.no_healthy_upstream(None);
        return;
    };
    let endpoint = match cluster.kind {
        ClusterKind::Static => cluster.pick_endpoint(peer.ip()),
        ClusterKind::OriginalDst => match original_dst.target() {
            Ok(address) => Some(address),
            Err(why) => {
                warn!(%peer, listener = %route.name, cluster = %cluster.name, "closing: {why}");
                meter.no_healthy_upstream(Some(&cluster.counters));
                return;
            }
        },
    };
    let Some(endpoint) = endpoint else {
        debug!(%peer, listener = %route.name, cluster = %cluster.name, "no healthy upstream");
        meter.no_healthy_upstream(Some(&cluster.counters));
        return;
    };
    let mut upstream = match tokio::time::timeout(
        cluster.connect_timeout,
        TcpStream::connect(endpoint),
    )
    .await
    {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            debug!(%peer, cluster = %cluster.name, %endpoint, error = %e, "upstream connect failed");
            meter.connect_failure(&cluster.counters);
            return;
        }
        Err(_) => {
            debug!(%peer, cluster = %cluster.name, %endpoint, timeout = ?cluster.connect_timeout, "upstream connect timed out");
            meter.connect_failure(&cluster.counters);
            return;
        }
    };
    if let Err(e) = upstream.set_nodelay(true) {
        debug!(%endpoint, error = %e, "cannot set TCP_NODELAY upstream");
    }
    let upstream_meter = UpstreamMeter::open(Arc::clone(&cluster.counters), meter.totals_arc());
    // Bytes read while detecting the protocol go first.
    if !prefix.is_empty() {
        if let Err(e) = upstream.write_all(&prefix).await {
            debug!(%peer, %endpoint, error = %e, "connection failed");
            return;
        }
        upstream_meter.upstream(prefix.len() as u64);
    }
    match copy_bidirectional(downstream, upstream, route.idle_timeout, &upstream_meter).await {
        CopyEnd::Completed => debug!(%peer, %endpoint, "connection completed"),
        CopyEnd::IdleTimeout => {
            debug!(%peer, %endpoint, listener = %route.name, "idle timeout");
            meter.totals().idle_timeout();
        }
        CopyEnd::Failed(e) => debug!(%peer, %endpoint, error = %e, "connection failed"),
    }
}
