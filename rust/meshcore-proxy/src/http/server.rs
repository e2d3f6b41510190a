//! The phases of each request (limits → route → (local reply | forward) → response →
//! log, [`handle`]) and hyper's server for the connections the own HTTP/1 server
//! (`h1_server.rs`) does not keep: HTTP/2 (prior knowledge) and the HTTP/1.1 connections
//! it hands over at a request it leaves to hyper (upgrades, CONNECT, an expectation other
//! than `100-continue`, more fields than it parses).
//!
//! On hyper's HTTP/1.1: keep-alive, chunked bodies, pipelining (answered in order),
//! `Expect: 100-continue` (the 100 when the body is first read; the `expect` header itself
//! is not forwarded) and upgrades. Its parse limits are set above the configured ones, so
//! requests over the configured header size or count reach the limits phase and get an
//! explained 431. A handed-over connection serves that one request and closes (unless it
//! upgraded): a later bad request would get hyper's bare 400, written before any phase of
//! ours runs.
//!
//! A connection ends gracefully (HTTP/2 GOAWAY, then its streams finish; HTTP/1 closes when
//! idle, else after the current response, sent with `Connection: close`) when no request
//! has been in flight for the listener's `idle_timeout_ms` (Envoy's HTTP idle timeout, not
//! the byte-level one of opaque TCP), or when its direction drains or the data plane shuts
//! down.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::access_log::Record;
use super::activity::{ActiveRequest, Activity, Dormant, stopped};
use super::body::{self, Body};
use super::detect::Prefixed;
use super::headers::X_REQUEST_ID;
use super::matcher::RequestView;
use super::raw_headers::{RawHeaders, Writer};
use super::respond::{Decision, LocalReply, ResponseFlag};
use super::rewrite::{redirect_location, split_authority};
use super::router::{Action, RouteTable};
use super::upstream::{self, Forwarded, Forwarding};
use super::{HttpSettings, tunnel};
use crate::original_dst::OriginalDst;
use crate::routing::{ListenerRoute, RoutingTable};
use crate::stats::{ListenerCounters, TotalCounters};

/// One downstream connection, as its requests see it.
#[derive(Debug)]
pub(crate) struct Downstream {
    pub(crate) peer: SocketAddr,
    /// The peer's address as `x-forwarded-for` carries it (formatted once).
    pub(crate) forwarded_for: HeaderValue,
    /// The connection's local address.
    pub(crate) local: SocketAddr,
    /// Where the connection was going before capture redirected it.
    pub(crate) original_dst: OriginalDst,
    /// The listener's route when the connection was accepted (name, tcp_route, flags).
    pub(crate) listener: Arc<ListenerRoute>,
    pub(crate) table: Arc<ArcSwap<RoutingTable>>,
    pub(crate) totals: Arc<TotalCounters>,
    pub(crate) counters: Arc<ListenerCounters>,
}

/// Serves HTTP/1.1 with hyper on a connection the own server (`h1_server.rs`) handed over:
/// for the request it leaves to hyper (an upgrade, CONNECT, an odd expectation), then the
/// tunnel if it upgraded, else the close. When the listener's idle timeout passes with no
/// request in flight, or its direction drains, the connection closes when idle, else after
/// the current response.
pub(crate) async fn serve_http1<I>(io: I, downstream: Arc<Downstream>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = Arc::clone(&downstream.table.load().http);
    let activity = Arc::new(Activity::new());
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No hyper header-read timeout: hyper arms it whenever it waits for a request head,
    // idle keep-alive included, so its 30 s default closed idle keep-alive connections
    // long before the listener's idle timeout. What ends a connection that sends no
    // complete request is the idle timeout, as in Envoy (whose request_headers_timeout is
    // off by default).
    // One request, then the connection closes (unless it upgraded): a later request would
    // meet hyper's parser, whose refusals are bare 400s the proxy cannot explain. The
    // requests handed over (an upgrade, CONNECT, an odd expectation, a very long head)
    // are rare enough that a new connection after them costs nothing that matters.
    builder
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(None)
        .preserve_header_case(settings.preserve_header_case)
        .max_buf_size(settings.parser_buffer())
        .max_headers(settings.parser_headers());
    let service = service(&downstream, &activity);
    let connection = pin!(
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
    );
    let served = Supervision::of(&downstream, &activity)
        .run(connection, |c| c.graceful_shutdown())
        .await;
    ended(served, &downstream);
}

/// Serves HTTP/2 (prior knowledge) on a detected connection until it closes; when the
/// listener's idle timeout passes with no request in flight, or its direction drains, the
/// connection sends GOAWAY and its streams finish.
pub(crate) async fn serve_http2(io: Prefixed, downstream: Arc<Downstream>) {
    let settings = Arc::clone(&downstream.table.load().http);
    let activity = Arc::new(Activity::new());
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.parser_buffer()).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.http2_max_concurrent_streams)
        .serve_connection(TokioIo::new(io), service(&downstream, &activity));
    // Boxed: HTTP/2's connection state is several KiB that an idle connection's task
    // would otherwise keep inline.
    let mut connection = Box::pin(connection);
    let served = Supervision::of(&downstream, &activity)
        .run(connection.as_mut(), |c| c.graceful_shutdown())
        .await;
    ended(served, &downstream);
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// What hyper calls per request: [`handle`].
fn service(
    downstream: &Arc<Downstream>,
    activity: &Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = ResponseFuture,
> + Clone {
    let (downstream, activity) = (Arc::clone(downstream), Arc::clone(activity));
    // Each request's future is boxed: hyper keeps the service's future inline in its
    // connection state, and ours (routing, the upstream pool, the retry loop) is several
    // KiB that an idle keep-alive connection would otherwise keep resident.
    service_fn(move |request: Request<Incoming>| -> ResponseFuture {
        let downstream = Arc::clone(&downstream);
        let active = activity.start();
        let mut request = request.map(body::from_incoming);
        // The own HTTP/1 server adds it while parsing; hyper's requests get it here.
        if !request.headers().contains_key(&X_REQUEST_ID) {
            request
                .headers_mut()
                .insert(X_REQUEST_ID, super::request_id::next());
        }
        Box::pin(async move { Ok(handle(request, downstream, active, Writer::Hyper).await.0) })
    })
}

/// Counts a connection that hyper ended on a request it could not parse.
fn ended(served: Result<(), hyper::Error>, downstream: &Downstream) {
    if let Err(e) = served {
        if e.is_parse() || e.is_parse_too_large() {
            downstream
                .totals
                .flag(ResponseFlag::DownstreamProtocolError);
        }
        debug!(peer = %downstream.peer, error = %e, "downstream HTTP connection ended with an error");
    }
}

/// What ends a downstream HTTP connection besides the client: the idle timeout and drain.
struct Supervision<'a> {
    activity: &'a Activity,
    idle_timeout: Option<Duration>,
    draining: &'a CancellationToken,
    totals: &'a TotalCounters,
}

impl<'a> Supervision<'a> {
    fn of(downstream: &'a Downstream, activity: &'a Activity) -> Self {
        Self {
            activity,
            idle_timeout: downstream.listener.idle_timeout,
            draining: downstream.listener.draining(),
            totals: &downstream.totals,
        }
    }

    /// Drives `connection` to its end, asking it once to shut down gracefully when it has
    /// been idle for the timeout or its direction drains.
    ///
    /// `connection` is pinned by the caller: taken by value, the async fn would hold it
    /// twice (as its argument and as the pinned local), doubling what every idle
    /// connection keeps.
    async fn run<C>(
        self,
        mut connection: Pin<&mut C>,
        graceful_shutdown: impl FnOnce(Pin<&mut C>),
    ) -> Result<(), hyper::Error>
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let stop = pin!(stopped(self.activity, self.idle_timeout, self.draining));
        let stop = Dormant::new(stop);
        // Stop first: a drain that fired before a response was ready must mark that
        // response `Connection: close`.
        tokio::select! {
            biased;
            idle = stop => {
                if idle {
                    self.totals.idle_timeout();
                }
            }
            served = connection.as_mut() => return served,
        }
        graceful_shutdown(connection.as_mut());
        connection.await
    }
}

/// One request through the phases; the response, with the upstream's fields as they
/// arrived when `writer` takes them (`raw_headers.rs`).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
pub(crate) fn handle(
    request: Request<Body>,
    downstream: Arc<Downstream>,
    active: ActiveRequest,
    writer: Writer,
) -> impl Future<Output = (Response<Body>, Option<RawHeaders>)> {
    // Not an `async fn`: an async fn keeps each by-value argument twice in its state
    // (as argument and as the body's binding), a `Request` is 240 bytes, and this
    // future nests the request path's: written this way, from here down to the
    // client's `send`, the boxed request future is 24 % smaller (6,056 -> 4,608
    // bytes), and so is what each request copies and allocates.
    async move {
        let in_flight = (active, downstream.listener.request());
        let table = downstream.table.load_full();
        let logger = table.http.access_log.clone();
        let mut record = Record::new(downstream.local, downstream.peer);
        // What only the access log reads (durations included) is gathered only when there
        // is one.
        let mut started = None;
        if logger.is_some() {
            started = Some(Instant::now());
            record.timed = true;
            describe(&request, &mut record);
        }
        downstream.counters.http_request();
        downstream.totals.http_request();
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));

        let forwarded = match phases(request, &downstream, &table, writer, &mut record).await {
            Ok(forwarded) => forwarded,
            Err(reply) => {
                record.flags = record.flags.with_all(reply.flags);
                record.details = reply.log_details();
                Forwarded::reply(reply.into_response(grpc))
            }
        };
        let Forwarded {
            response,
            raw,
            end: upstream_end,
        } = forwarded;
        record.status = response.status().as_u16();

        let totals = Arc::clone(&downstream.totals);
        let (parts, body) = response.into_parts();
        let body = body::watch(body, move |end| {
            if let Some(upstream_end) = upstream_end {
                upstream_end.settle(end);
            }
            drop(in_flight);
            record.bytes_sent = end.bytes;
            if let Some(started) = started {
                record.duration = started.elapsed();
            }
            if !end.completed {
                record.flags = record
                    .flags
                    .with(ResponseFlag::DownstreamConnectionTermination);
            }
            for flag in record.flags.iter() {
                totals.flag(flag);
            }
            if let Some(logger) = logger {
                logger.log(record);
            }
        });
        (Response::from_parts(parts, body), raw)
    }
}

fn describe<B>(request: &Request<B>, record: &mut Record) {
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    record.start = std::time::SystemTime::now();
    record.method = request.method().to_string();
    record.path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().to_string(), |p| p.to_string());
    record.protocol = match request.version() {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    record.authority = authority(request);
    record.user_agent = header(header::USER_AGENT);
    record.forwarded_for = header(super::headers::X_FORWARDED_FOR);
    record.request_id = header(X_REQUEST_ID);
    record.bytes_received = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
}

/// The request's authority: the URI's (absolute-form, HTTP/2, CONNECT), else `Host`.
fn authority<B>(request: &Request<B>) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
}

/// Limits → route → action.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn phases(
    request: Request<Body>,
    downstream: &Downstream,
    table: &RoutingTable,
    writer: Writer,
    record: &mut Record,
) -> impl Future<Output = Result<Forwarded, LocalReply>> {
    // Not an `async fn`: see `server::handle`.
    async move {
        check_limits(&request, &table.http)?;
        let routes = downstream
            .listener
            .route_config
            .as_deref()
            .and_then(|name| table.route_config(name));
        if request.method() == Method::CONNECT {
            if !downstream.listener.http_proxy {
                return Err(LocalReply::bad_request(format!(
                    "CONNECT is accepted only by http_proxy listeners; {} is not one",
                    downstream.listener.name
                )));
            }
            return tunnel::connect(request, routes.as_deref(), downstream, record)
                .await
                .map(Forwarded::reply);
        }
        let Some(authority) = authority(&request) else {
            return Err(LocalReply::bad_request(
                "request has no authority (Host header)".into(),
            ));
        };
        let Some(routes) = routes else {
            return Err(LocalReply::no_route(
                format!("listener {} has no route config", downstream.listener.name),
                Decision {
                    by: format!("Listener/{}", downstream.listener.name).into(),
                    target: None,
                },
            ));
        };
        route_request(request, authority, &routes, downstream, writer, record).await
    }
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn route_request(
    request: Request<Body>,
    authority: String,
    routes: &RouteTable,
    downstream: &Downstream,
    writer: Writer,
    record: &mut Record,
) -> impl Future<Output = Result<Forwarded, LocalReply>> {
    // Not an `async fn`: see `server::handle`.
    async move {
        let config = || Decision {
            by: format!("RouteConfig/{}", routes.name).into(),
            target: None,
        };
        let Some(host) = routes.host(&authority) else {
            return Err(LocalReply::no_route(
                format!("no virtual host for {authority}"),
                config(),
            ));
        };
        let (_, port) = split_authority(&authority);
        // A cheap clone (shared bytes) the matchers and rewrites borrow from while the
        // request itself moves on.
        let uri = request.uri().clone();
        let (path, query) = (uri.path(), uri.query());
        let scheme = uri.scheme_str().unwrap_or("http");
        // A Host without a port: the port the client dialled (before capture redirected it).
        let port =
            port.or(downstream.original_dst.port())
                .unwrap_or(if downstream.listener.http_proxy {
                    80
                } else {
                    downstream.local.port()
                });
        let view = RequestView {
            path,
            query,
            method: request.method().as_str(),
            authority: &authority,
            scheme,
            headers: request.headers(),
            port,
        };
        let Some((route, matched)) = host.route(&view) else {
            return Err(LocalReply::no_route(
                format!(
                    "no route of virtual host {} matched {} {path}",
                    host.name,
                    request.method()
                ),
                config(),
            ));
        };
        record.route_name = Some(Arc::clone(&route.origin));
        let decision = || Decision {
            by: Arc::clone(&route.origin),
            target: None,
        };
        match &route.action {
            Action::Direct { status, body } => {
                record.details = "direct_response".into();
                let mut response =
                    LocalReply::direct(*status, body.clone(), decision()).into_response(false);
                route.response_headers.apply(response.headers_mut());
                Ok(Forwarded::reply(response))
            }
            Action::Redirect(redirect) => {
                record.details = "redirect".into();
                let status = StatusCode::from_u16(redirect.response_code)
                    .unwrap_or(StatusCode::MOVED_PERMANENTLY);
                let Some(location) = redirect_location(redirect, scheme, &authority, path, query)
                else {
                    return Err(LocalReply::bad_request(format!(
                        "cannot build a redirect location from {authority}{path}"
                    )));
                };
                let mut response =
                    LocalReply::redirect(status, location, decision()).into_response(false);
                route.response_headers.apply(response.headers_mut());
                Ok(Forwarded::reply(response))
            }
            Action::Forward(action) => {
                let forwarding = Forwarding {
                    route,
                    action,
                    matched_prefix: matched.map_or("/", |m| m.rewritable_prefix(path)),
                    authority,
                    writer,
                };
                let forwarded = upstream::forward(request, forwarding, downstream, record);
                let response = match action.timeout {
                    Some(limit) => match tokio::time::timeout(limit, forwarded).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(LocalReply::timeout(
                            format!("route timeout after {limit:?}"),
                            Decision {
                                by: Arc::clone(&route.origin),
                                target: record.upstream_cluster.clone(),
                            },
                        )),
                    },
                    None => forwarded.await,
                }?;
                record.details = "via_upstream".into();
                Ok(response)
            }
        }
    }
}

/// The limits phase, then the authority the route phase looks the virtual host up by: for
/// the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_limits_and_authority<B>(
    request: &Request<B>,
    settings: &HttpSettings,
) -> Result<Option<String>, LocalReply> {
    check_limits(request, settings)?;
    Ok(authority(request))
}

/// The configured header limits (`max_request_headers_kb`, `max_request_headers`).
fn check_limits<B>(request: &Request<B>, settings: &HttpSettings) -> Result<(), LocalReply> {
    let headers = request.headers();
    if headers.len() > settings.max_headers {
        return Err(LocalReply::headers_too_large(format!(
            "{} request headers, more than max_request_headers {}",
            headers.len(),
            settings.max_headers
        )));
    }
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > settings.max_header_bytes {
        return Err(LocalReply::headers_too_large(format!(
            "request headers of {size} bytes, more than max_request_headers_kb {}",
            settings.max_header_bytes / 1024
        )));
    }
    Ok(())
}
