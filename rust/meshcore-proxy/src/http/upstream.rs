//! The pick-upstream and upstream-request phases of a forwarded request: weighted cluster,
//! header edits and rewrites, endpoint by the cluster's policy (and hash policy), a pooled
//! connection, the request, retries and timeouts; then the response's own edits.
//!
//! Retries follow Envoy's `retry_on`: `5xx` (a 5xx answer, a connect failure, a reset, a
//! refused stream or a per-try timeout), `gateway-error` (502/503/504, connect failures and
//! per-try timeouts), `connect-failure`, `refused-stream`, `reset`, `retriable-4xx` (409)
//! and plain status codes. A body is only replayed when it could be kept: empty, or
//! announced by `content-length` at most [`REPLAY_LIMIT`] and read in full before the
//! first try. A streamed body is sent once.
//!
//! A request on an HTTP/2 stream past the upstream's GOAWAY last-stream-id was not
//! processed (RFC 9113 §6.8): it counts as a refused stream, and it goes out once more on
//! another connection before any retry policy applies (not a retry; counted as
//! `http_unprocessed_resends`), when its body can be sent again (empty or kept).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{self, PathAndQuery};
use hyper::{Request, Response, StatusCode, Uri, Version};
use meshcore_snapshot::{ClusterKind, ClusterProtocol};
use tokio::time::Instant;
use tracing::debug;

use super::access_log::Record;
use super::body::{self, Body, BodyEnd, BoxError};
use super::h1_client::H1Error;
use super::headers::{add_forwarding, remove_hop_by_hop};
use super::pool::{Lease, Meters, PoolError, Received, SendError, Wire};
use super::raw_headers::{RawHeaders, Writer};
use super::respond::{Decision, LocalReply, ResponseFlag};
use super::router::{Forward, Retries, Route, Target};
use super::server::Downstream;
use crate::cluster::{Cluster, Endpoint, HashInput};
use crate::stats::{ClusterCounters, TotalCounters};

/// The largest body kept in memory so that it can be sent again on a retry.
pub(crate) const REPLAY_LIMIT: u64 = 64 * 1024;

/// What the routing phase hands over: the request and what matched it.
pub(crate) struct Forwarding<'a> {
    pub(crate) route: &'a Route,
    pub(crate) action: &'a Forward,
    /// The part of the path the route's uri match matched (for prefix rewrites).
    pub(crate) matched_prefix: &'a str,
    pub(crate) authority: String,
    /// Who writes the response out (whether its fields may stay as they arrived).
    pub(crate) writer: Writer,
}

/// One failed try.
#[derive(Debug)]
enum Failure {
    NoEndpoint,
    Pool(PoolError),
    Reset(hyper::Error),
    RefusedStream(hyper::Error),
    Protocol(hyper::Error),
    /// The own HTTP/1 client's exchange failed.
    Direct(H1Error),
    Timeout(Duration),
}

impl Failure {
    fn retried_by(&self, retries: &Retries) -> bool {
        match self {
            Self::NoEndpoint => false,
            Self::Pool(PoolError::Overflow(..)) => false,
            Self::Pool(_) => {
                retries.on_connect_failure || retries.on_5xx || retries.on_gateway_error
            }
            Self::Reset(_) | Self::Protocol(_) | Self::Direct(_) => {
                retries.on_reset || retries.on_5xx
            }
            Self::RefusedStream(_) => retries.on_refused_stream || retries.on_5xx,
            Self::Timeout(_) => retries.on_5xx || retries.on_gateway_error,
        }
    }

    /// The upstream never processed the request: its stream was past the last-stream-id
    /// of a GOAWAY the upstream sent.
    fn unprocessed(&self) -> bool {
        matches!(self, Self::RefusedStream(e) if beyond_go_away(e))
    }

    fn reply(&self, cluster: &Cluster, decision: Decision) -> LocalReply {
        match self {
            Self::NoEndpoint => LocalReply::no_healthy_upstream(
                format!("cluster {} has no endpoint", cluster.name),
                decision,
            ),
            Self::Pool(PoolError::Refused(address)) => {
                LocalReply::connect_failed(true, format!("connect refused {address}"), decision)
            }
            Self::Pool(PoolError::Timeout(address, after)) => LocalReply::connect_timeout(
                format!("connect timeout {address} after {after:?}"),
                decision,
            ),
            Self::Pool(PoolError::Overflow(address, max)) => LocalReply::overflow(
                format!("max_connections {max} reached for {address}"),
                decision,
            ),
            Self::Pool(e) => LocalReply::connect_failed(false, e.to_string(), decision),
            Self::Reset(e) => {
                LocalReply::upstream_reset(format!("upstream reset: {}", cause(e)), decision)
            }
            Self::RefusedStream(e) => LocalReply::upstream_reset(
                format!("upstream refused stream: {}", cause(e)),
                decision,
            ),
            Self::Protocol(e) => LocalReply::upstream_protocol_error(
                format!("bad upstream response: {}", cause(e)),
                decision,
            ),
            Self::Direct(H1Error::Protocol(why)) => LocalReply::upstream_protocol_error(
                format!("bad upstream response: {why}"),
                decision,
            ),
            Self::Direct(e) => LocalReply::upstream_reset(format!("upstream reset: {e}"), decision),
            Self::Timeout(after) => {
                LocalReply::timeout(format!("per-try timeout after {after:?}"), decision)
            }
        }
    }
}

/// A hyper error and its cause: for an HTTP/2 error hyper says only `http2 error`, its cause
/// (h2's) says which, e.g. `stream error received: refused stream before processing any
/// application logic`.
fn cause(e: &hyper::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Forwards one request; returns the upstream's response or the local reply explaining why
/// there is none. `record` gets the cluster, upstream host and flags.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
pub(crate) fn forward(
    mut request: Request<Body>,
    forwarding: Forwarding<'_>,
    downstream: &Downstream,
    record: &mut Record,
) -> impl Future<Output = Result<Forwarded, LocalReply>> {
    // Not an `async fn`: see `server::handle`.
    async move {
        let Forwarding {
            route,
            action,
            matched_prefix,
            authority,
            writer,
        } = forwarding;
        let Some(target) = action.pick() else {
            return Err(LocalReply::no_healthy_upstream(
                "route has no cluster".into(),
                Decision {
                    by: Arc::clone(&route.origin),
                    target: None,
                },
            ));
        };
        let cluster = &target.cluster;
        record.upstream_cluster = Some(Arc::clone(&cluster.name));
        let decision = Decision {
            by: Arc::clone(&route.origin),
            target: Some(Arc::clone(&cluster.name)),
        };
        cluster.counters.request();
        // An original_dst cluster has one endpoint per request: where the client was going,
        // i.e. the connection's original destination, else (explicit proxy, absolute-form)
        // the request's authority.
        let original_dst = match cluster.kind {
            ClusterKind::Static => None,
            ClusterKind::OriginalDst => {
                let target = match downstream.original_dst.target() {
                    Ok(address) => Ok(address),
                    Err(why) => match request.uri().authority() {
                        Some(requested) if downstream.listener.http_proxy => {
                            super::tunnel::requested(
                                requested.as_str(),
                                Some(80),
                                downstream,
                                cluster.connect_timeout,
                            )
                            .await
                        }
                        _ => Err(why.to_string()),
                    },
                };
                match target {
                    Ok(address) => Some(cluster.original_dst_endpoint(address)),
                    Err(why) => {
                        return Err(LocalReply::no_healthy_upstream(
                            format!("cluster {} has no endpoint: {why}", cluster.name),
                            decision,
                        ));
                    }
                }
            }
        };

        // (The own HTTP/1 server hands every upgrade to hyper: no need to look.)
        let upgrade = writer == Writer::Hyper && is_upgrade(&request);
        let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, incoming) = request.into_parts();
        // An origin-form request's authority is its Host header; unless an edit or a rewrite
        // changes either, Host needs no second look below.
        let host_is_authority = parts.uri.authority().is_none()
            && target.request_headers.is_empty()
            && route.request_headers.is_empty()
            && action
                .rewrite
                .as_ref()
                .is_none_or(|rewrite| rewrite.authority.is_none());
        remove_hop_by_hop(&mut parts.headers, upgrade);
        add_forwarding(&mut parts.headers, &downstream.forwarded_for);
        target.request_headers.apply(&mut parts.headers);
        route.request_headers.apply(&mut parts.headers);

        let (hash, set_cookie) = cluster.request_hash(&HashInput {
            headers: &parts.headers,
            query: parts.uri.query(),
            source: downstream.peer.ip(),
        });
        // Fields nothing edits can go out as they arrived (`raw_headers.rs`).
        let raw = writer == Writer::OwnHttp1
            && !upgrade
            && set_cookie.is_none()
            && target.response_headers.is_empty()
            && route.response_headers.is_empty();
        let mut authority = authority;
        // The path goes as it came (a shared, already parsed value) unless a rewrite changes it.
        let mut rewritten = None;
        if let Some(rewrite) = &action.rewrite {
            rewritten = Some(rewrite.path(parts.uri.path(), parts.uri.query(), matched_prefix));
            if let Some(new_authority) = &rewrite.authority {
                authority.clone_from(new_authority);
            }
        }
        let path_and_query = match rewritten {
            Some(text) => match PathAndQuery::try_from(text.as_str()) {
                Ok(path_and_query) => path_and_query,
                Err(_) => {
                    return Err(LocalReply::bad_request(format!(
                        "cannot build the upstream uri from {authority} and {text}"
                    )));
                }
            },
            None => parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };
        let wire = match (upgrade, cluster.protocol, parts.version) {
            (true, _, _) => Wire::Http1,
            (_, ClusterProtocol::Http1, _) => Wire::Http1,
            (_, ClusterProtocol::Http2, _) => Wire::Http2,
            (_, ClusterProtocol::Inherit, Version::HTTP_2) => Wire::Http2,
            _ => Wire::Http1,
        };
        let uri = match wire {
            Wire::Http1 => {
                let mut uri = uri::Parts::default();
                uri.path_and_query = Some(path_and_query.clone());
                Uri::from_parts(uri).ok()
            }
            Wire::Http2 => Uri::builder()
                .scheme("http")
                .authority(authority.as_str())
                .path_and_query(path_and_query.clone())
                .build()
                .ok(),
        };
        let Some(uri) = uri else {
            return Err(LocalReply::bad_request(format!(
                "cannot build the upstream uri from {authority} and {path_and_query}"
            )));
        };
        parts.uri = uri;
        match wire {
            Wire::Http1 => {
                parts.version = Version::HTTP_11;
                let same_host = host_is_authority
                    || parts
                        .headers
                        .get(header::HOST)
                        .is_some_and(|host| host.as_bytes() == authority.as_bytes());
                if !same_host && let Ok(host) = HeaderValue::from_str(&authority) {
                    parts.headers.insert(header::HOST, host);
                }
            }
            Wire::Http2 => {
                parts.version = Version::HTTP_2;
                parts.headers.remove(header::HOST);
            }
        }

        let no_retries = Retries::default();
        let retries = action.retries.as_ref().unwrap_or(&no_retries);
        // An empty body can always be sent again (an unprocessed request goes out once more).
        let (mut streamed, replay) = if retries.attempts > 0 || incoming.is_end_stream() {
            match replayable(incoming).await {
                Ok(Replay::Kept(bytes)) => (None, Some(bytes)),
                Ok(Replay::Streamed(body)) => (Some(body), None),
                Err(e) => {
                    return Err(LocalReply::bad_request(format!("request body failed: {e}")));
                }
            }
        } else {
            (Some(incoming), None)
        };
        let tries = if replay.is_some() {
            1 + retries.attempts
        } else {
            1
        };
        let meters = Meters {
            cluster: Arc::clone(&cluster.counters),
            totals: Arc::clone(&downstream.totals),
        };
        // Only the access log reads the upstream service time.
        let started = record.timed.then(Instant::now);
        let mut attempt = 0;
        let mut resent = false;
        let mut parts = Some(parts);
        loop {
            attempt += 1;
            if attempt > 1 {
                cluster.counters.retry();
            }
            let body = match (&replay, streamed.take()) {
                // No body (most requests): the empty body is a zero-sized type, boxed without
                // an allocation.
                (Some(bytes), _) if bytes.is_empty() => body::empty(),
                (Some(bytes), _) => body::full(bytes.clone()),
                (None, Some(body)) => body,
                (None, None) => body::empty(),
            };
            // The head is copied only while another send may need it: a retry, or the one
            // re-send of a request an HTTP/2 GOAWAY left unprocessed.
            let needed_again =
                attempt < tries || (wire == Wire::Http2 && replay.is_some() && !resent);
            let request = match parts.take() {
                Some(head) if needed_again => {
                    let mut request = Request::from_parts(clone_parts(&head), body);
                    *request.extensions_mut() = head.extensions.clone();
                    parts = Some(head);
                    request
                }
                Some(head) => Request::from_parts(head, body),
                // Never: the head is only given away for the last send.
                None => return Err(LocalReply::bad_request("request already sent".into())),
            };
            let endpoint = match &original_dst {
                Some(endpoint) => Some(&**endpoint),
                None => cluster.pick(hash),
            };
            if let Some(endpoint) = endpoint {
                record.upstream_host = Some(endpoint.address);
            }
            let one_try = try_once(cluster, endpoint, wire, upgrade, raw, request, &meters);
            let outcome = match retries.per_try_timeout {
                Some(limit) => match tokio::time::timeout(limit, one_try).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Failure::Timeout(limit)),
                },
                None => one_try.await,
            };
            let last = attempt >= tries;
            match outcome {
                Ok(answer) if !last && retries.retries_status(answer.response.status()) => {
                    debug!(status = %answer.response.status(), attempt, "retrying on status");
                    answer.discard();
                }
                Ok(answer) => {
                    if attempt > 1 && retries.retries_status(answer.response.status()) {
                        record.flags = record.flags.with(ResponseFlag::UpstreamRetryLimitExceeded);
                    }
                    record.upstream_service_time = started.map(|t| t.elapsed());
                    return Ok(answer.into_response(
                        target,
                        route,
                        downstream,
                        set_cookie,
                        downstream_upgrade,
                        &meters,
                    ));
                }
                // Not processed upstream: once more, on another connection, not as a retry.
                Err(failure) if failure.unprocessed() && !resent && replay.is_some() => {
                    debug!(
                        ?failure,
                        attempt, "upstream did not process the request; sending again"
                    );
                    resent = true;
                    cluster.counters.unprocessed_resend();
                    attempt -= 1;
                }
                Err(failure) if !last && failure.retried_by(retries) => {
                    debug!(?failure, attempt, "retrying after failure");
                }
                Err(failure) => {
                    let reply = failure.reply(cluster, decision);
                    return Err(if attempt > 1 {
                        reply.also(ResponseFlag::UpstreamRetryLimitExceeded)
                    } else {
                        reply
                    });
                }
            }
        }
    }
}

/// A response from one try, with what has to be let go when its body ends.
struct Answer {
    response: Response<Received>,
    lease: Lease,
    in_flight: crate::balancer::load::InFlight,
}

impl Answer {
    /// A response that is not used (it will be retried): its connection is not reused.
    fn discard(self) {
        self.lease.release(false);
    }

    fn into_response(
        self,
        target: &Target,
        route: &Route,
        downstream: &Downstream,
        set_cookie: Option<String>,
        downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
        meters: &Meters,
    ) -> Forwarded {
        let Answer {
            mut response,
            lease,
            in_flight,
        } = self;
        target.cluster.counters.response(response.status());
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(downstream_upgrade) = downstream_upgrade
        {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let meters = meters.clone();
            downstream.listener.spawn_connection(async move {
                super::tunnel::splice_upgrades(downstream_upgrade, upstream_upgrade, &meters).await;
                drop((lease, in_flight));
            });
            let (mut parts, _) = response.into_parts();
            route.response_headers.apply(&mut parts.headers);
            return Forwarded::reply(Response::from_parts(parts, body::empty()));
        }
        let (mut parts, received) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers, false);
        target.response_headers.apply(&mut parts.headers);
        route.response_headers.apply(&mut parts.headers);
        if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            parts.headers.append(header::SET_COOKIE, cookie);
        }
        // The own client's body gives its connection back itself; hyper's is given back
        // when its body ends.
        let (received, lease, raw) = match received {
            Received::Hyper(incoming) => (body::from_incoming(incoming), Some(lease), None),
            Received::Direct {
                framing,
                keep_alive,
                raw,
            } => (lease.direct_body(framing, keep_alive), None, raw),
        };
        let end = UpstreamEnd {
            lease,
            _in_flight: in_flight,
            totals: Arc::clone(&downstream.totals),
            cluster: Arc::clone(&target.cluster.counters),
        };
        Forwarded {
            response: Response::from_parts(parts, received),
            raw,
            end: Some(end),
        }
    }
}

/// A forwarded response, with what the end of its body settles upstream (none for a
/// local reply or an upgrade, whose tunnel settles it).
#[derive(Debug)]
pub(crate) struct Forwarded {
    pub(crate) response: Response<Body>,
    /// The upstream's header fields as they arrived, written before the map's (only when
    /// [`Forwarding::writer`] is the own HTTP/1 server).
    pub(crate) raw: Option<RawHeaders>,
    pub(crate) end: Option<UpstreamEnd>,
}

impl Forwarded {
    /// A response made here (a local reply, an upgrade's 101): nothing to settle upstream.
    pub(crate) fn reply(response: Response<Body>) -> Self {
        Self {
            response,
            raw: None,
            end: None,
        }
    }
}

/// What the end of a forwarded response's body settles upstream: hyper's connection lease,
/// the balancer's in-flight count, the byte counters. Settled by the one watcher that
/// also logs the request (`server::handle`), so the body is wrapped once, not twice.
#[derive(Debug)]
pub(crate) struct UpstreamEnd {
    lease: Option<Lease>,
    _in_flight: crate::balancer::load::InFlight,
    totals: Arc<TotalCounters>,
    cluster: Arc<ClusterCounters>,
}

impl UpstreamEnd {
    pub(crate) fn settle(self, end: BodyEnd) {
        if let Some(lease) = self.lease {
            lease.release(end.completed);
        }
        self.totals.add_bytes_downstream(end.bytes);
        self.cluster.add_bytes_downstream(end.bytes);
    }
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn try_once(
    cluster: &Cluster,
    endpoint: Option<&Endpoint>,
    wire: Wire,
    upgrade: bool,
    raw: bool,
    mut request: Request<Body>,
    meters: &Meters,
) -> impl Future<Output = Result<Answer, Failure>> {
    // Not an `async fn`: see `server::handle`.
    async move {
        let endpoint = endpoint.ok_or(Failure::NoEndpoint)?;
        // A pooled connection can close just as it is taken; the request then never left and
        // goes out once more on a new connection (not a retry: nothing reached the upstream).
        for _ in 0..2 {
            let mut lease = if upgrade {
                endpoint.pool.dedicated(&cluster.pool, meters).await
            } else {
                endpoint.pool.checkout(wire, &cluster.pool, meters).await
            }
            .map_err(Failure::Pool)?;
            let in_flight = endpoint.load.start(cluster.measures_latency());
            match lease.send(request, raw).await {
                Ok(response) => {
                    in_flight.responded();
                    return Ok(Answer {
                        response,
                        lease,
                        in_flight,
                    });
                }
                Err(SendError::NotSent(not_sent)) if lease.reused => {
                    debug!(endpoint = %endpoint.address, error = %not_sent.1, "pooled connection closed; sending again");
                    if beyond_go_away(&not_sent.1) {
                        lease.retire();
                    } else {
                        lease.release(false);
                    }
                    request = not_sent.0;
                }
                Err(SendError::NotSent(not_sent)) => return Err(failed(lease, not_sent.1)),
                Err(SendError::Failed(e)) => return Err(failed(lease, e)),
                Err(SendError::Direct(e)) => return Err(Failure::Direct(e)),
                Err(SendError::Closed) => {
                    return Err(Failure::NoEndpoint);
                }
            }
        }
        Err(Failure::Pool(PoolError::Refused(endpoint.address)))
    }
}

/// A failed send: the connection leaves the pool when the upstream is going away.
fn failed(lease: Lease, error: hyper::Error) -> Failure {
    if beyond_go_away(&error) {
        lease.retire();
    }
    classify(error)
}

/// The h2 error under a hyper error, if any.
fn h2_error(error: &hyper::Error) -> Option<&h2::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return Some(h2);
        }
        source = cause.source();
    }
    None
}

/// The upstream's GOAWAY ended the stream: h2 fails only the streams past its
/// last-stream-id with the remote GOAWAY itself (streams it had taken end with a reset, a
/// broken pipe or their response), so the request was never processed (RFC 9113 §6.8).
/// A request sent on a connection that had already received GOAWAY fails the same way.
fn beyond_go_away(error: &hyper::Error) -> bool {
    h2_error(error).is_some_and(|e| e.is_go_away() && e.is_remote())
}

fn classify(error: hyper::Error) -> Failure {
    let refused = h2_error(&error).and_then(h2::Error::reason) == Some(h2::Reason::REFUSED_STREAM);
    if refused || beyond_go_away(&error) {
        Failure::RefusedStream(error)
    } else if error.is_parse() || error.is_parse_status() {
        Failure::Protocol(error)
    } else {
        Failure::Reset(error)
    }
}

enum Replay {
    Kept(Bytes),
    Streamed(Body),
}

async fn replayable(body: Body) -> Result<Replay, BoxError> {
    if body.is_end_stream() {
        return Ok(Replay::Kept(Bytes::new()));
    }
    match body.size_hint().exact() {
        Some(length) if length <= REPLAY_LIMIT => {
            Ok(Replay::Kept(body.collect().await?.to_bytes()))
        }
        _ => Ok(Replay::Streamed(body)),
    }
}

fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let (mut clone, ()) = Request::new(()).into_parts();
    clone.method = parts.method.clone();
    clone.uri = parts.uri.clone();
    clone.version = parts.version;
    clone.headers = parts.headers.clone();
    clone
}

/// An HTTP/1 upgrade request (WebSocket and the like), not CONNECT.
fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(header::UPGRADE)
        && request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The endpoint address a record names, for the access log.
pub(crate) fn host(address: Option<SocketAddr>) -> String {
    address.map_or_else(|| "-".to_string(), |a| a.to_string())
}
