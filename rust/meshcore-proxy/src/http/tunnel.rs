//! Byte tunnels after HTTP: `CONNECT host:port` on an HTTP proxy listener, and upgraded
//! connections (WebSocket) once both sides have switched protocols.
//!
//! A CONNECT goes where the route config sends its authority (the first endpoint picked
//! from the routed cluster); with no virtual host for it, to the listener's `tcp_route`
//! cluster, and an `original_dst` cluster there means the requested host:port itself
//! (Istio's PassthroughCluster). An absolute-form request an `original_dst` cluster
//! forwards on such a listener goes to its authority the same way ([`requested`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use meshcore_snapshot::ClusterKind;
use tokio::net::TcpStream;
use tracing::debug;

use super::access_log::Record;
use super::body::{self, Body};
use super::matcher::RequestView;
use super::pool::Meters;
use super::respond::{Decision, LocalReply};
use super::rewrite::split_authority;
use super::router::{Action, RouteTable};
use super::server::Downstream;
use crate::cluster::Cluster;
use crate::original_dst::OriginalDst;
use crate::stats::UpstreamMeter;

/// Answers a CONNECT: 200 and a tunnel, or the local reply saying why not.
pub(crate) async fn connect(
    mut request: Request<Body>,
    routes: Option<&RouteTable>,
    downstream: &Downstream,
    record: &mut Record,
) -> Result<Response<Body>, LocalReply> {
    let Some(authority) = request.uri().authority().map(|a| a.as_str().to_string()) else {
        return Err(LocalReply::bad_request(
            "CONNECT needs an authority-form target (host:port)".into(),
        ));
    };
    let (cluster, by) = match routed_cluster(routes, &authority, &request) {
        Some(found) => found,
        None => match downstream.listener.pick_cluster() {
            Some(cluster) => (
                Arc::clone(cluster),
                format!("Listener/{} tcp_route", downstream.listener.name).into(),
            ),
            None => {
                return Err(LocalReply::no_route(
                    format!("no route for CONNECT {authority}"),
                    Decision {
                        by: format!("Listener/{}", downstream.listener.name).into(),
                        target: None,
                    },
                ));
            }
        },
    };
    record.upstream_cluster = Some(cluster.name.clone());
    let decision = Decision {
        by,
        target: Some(cluster.name.clone()),
    };
    let destination = match cluster.kind {
        ClusterKind::OriginalDst => {
            requested(&authority, None, downstream, cluster.connect_timeout).await
        }
        ClusterKind::Static => cluster
            .pick_endpoint(downstream.peer.ip())
            .ok_or_else(|| "no endpoint".to_string()),
    };
    let destination = match destination {
        Ok(destination) => destination,
        Err(why) => {
            return Err(LocalReply::no_healthy_upstream(
                format!(
                    "no destination for CONNECT {authority} in cluster {}: {why}",
                    cluster.name
                ),
                decision,
            ));
        }
    };
    record.upstream_host = Some(destination);
    let upstream = match tokio::time::timeout(
        cluster.connect_timeout,
        TcpStream::connect(destination),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(LocalReply::connect_failed(
                true,
                format!("connect refused {destination}"),
                decision,
            ));
        }
        Ok(Err(e)) => {
            return Err(LocalReply::connect_failed(
                false,
                format!("connect {destination}: {e}"),
                decision,
            ));
        }
        Err(_) => {
            return Err(LocalReply::connect_timeout(
                format!(
                    "connect timeout {destination} after {:?}",
                    cluster.connect_timeout
                ),
                decision,
            ));
        }
    };
    let _ = upstream.set_nodelay(true);
    let on_upgrade = hyper::upgrade::on(&mut request);
    let meters = Meters {
        cluster: Arc::clone(&cluster.counters),
        totals: Arc::clone(&downstream.totals),
    };
    downstream.listener.spawn_connection(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let meter = UpstreamMeter::open(meters.cluster, meters.totals);
                let mut client = TokioIo::new(upgraded);
                let mut server = upstream;
                match tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    Ok((up, down)) => {
                        meter.upstream(up);
                        meter.downstream(down);
                    }
                    Err(e) => debug!(%destination, error = %e, "CONNECT tunnel ended"),
                }
            }
            Err(e) => debug!(%destination, error = %e, "CONNECT upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .body(body::empty())
        .unwrap_or_else(|_| Response::new(body::empty())))
}

/// The cluster the route config forwards `authority` to, with the deciding rule.
fn routed_cluster(
    routes: Option<&RouteTable>,
    authority: &str,
    request: &Request<Body>,
) -> Option<(Arc<Cluster>, Arc<str>)> {
    let host = routes?.host(authority)?;
    let (_, port) = split_authority(authority);
    let view = RequestView {
        path: "",
        query: None,
        method: request.method().as_str(),
        authority,
        scheme: "http",
        headers: request.headers(),
        port: port.unwrap_or(80),
    };
    let (route, _) = host.route(&view)?;
    match &route.action {
        Action::Forward(forward) => forward
            .pick()
            .map(|t| (Arc::clone(&t.cluster), route.origin.clone())),
        _ => None,
    }
}

/// Where an explicit-proxy request (CONNECT, or absolute-form on an `http_proxy`
/// listener) asked to go: its authority resolved (`default_port` when it names none),
/// within `timeout`. Never a listener of this proxy: a destination on the accepting
/// listener's port, or any socket a listener binds, would loop back into the proxy.
pub(crate) async fn requested(
    authority: &str,
    default_port: Option<u16>,
    downstream: &Downstream,
    timeout: Duration,
) -> Result<SocketAddr, String> {
    let (host, port) = split_authority(authority);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Some(port) = port.or(default_port) else {
        return Err(format!("{authority} names no port"));
    };
    let address = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(mut addresses)) => addresses
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?,
        Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
        Err(_) => return Err(format!("resolving {host} timed out after {timeout:?}")),
    };
    let own_listener = |address: SocketAddr| {
        let table = downstream.table.load();
        table.route(&address).is_some()
            || table
                .route(&SocketAddr::new(unspecified(address.ip()), address.port()))
                .is_some()
    };
    if let OriginalDst::Loop(address) = OriginalDst::requested(address, downstream.local) {
        return Err(OriginalDst::Loop(address).to_string());
    }
    if own_listener(address) {
        return Err(format!(
            "{address} is a listener of this proxy (forwarding there would loop back into it)"
        ));
    }
    Ok(address)
}

fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Copies bytes between two upgraded connections until both ends close.
pub(crate) async fn splice_upgrades(downstream: OnUpgrade, upstream: OnUpgrade, meters: &Meters) {
    let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
        Ok(both) => both,
        Err(e) => {
            debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let meter = UpstreamMeter::open(Arc::clone(&meters.cluster), Arc::clone(&meters.totals));
    let mut client = TokioIo::new(downstream);
    let mut server = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => {
            meter.upstream(up);
            meter.downstream(down);
        }
        Err(e) => debug!(error = %e, "upgraded connection ended"),
    }
}
