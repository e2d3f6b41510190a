//! Upstream connections of one endpoint: an HTTP/1 keep-alive pool and multiplexed
//! HTTP/2 connections, with the cluster's limits.
//!
//! - HTTP/1: a connection carries one request at a time; it goes back to the idle list
//!   when its response body has been read to the end (a body dropped midway leaves the
//!   connection in an unknown state, so it is closed). Checkout takes the most recently
//!   used idle connection (warm, and lets the others reach their idle timeout). Pooled
//!   HTTP/1 connections use meshcore's own client ([`super::h1_client`]), which runs in
//!   the request's task; hyper's (a task per connection) serves upgrades, which need its
//!   upgrade machinery, and clusters that preserve header case, which need its case map.
//! - HTTP/2: requests share a connection up to `http2_max_concurrent_streams`; a new
//!   connection opens when every open one is full.
//! - `max_requests_per_connection` retires a connection after that many requests;
//!   `idle_timeout` closes connections idle that long (HTTP/2: with no stream): a reaper
//!   task runs while the pool has idle connections, so the upstream sees them close
//!   whether or not the pool is used again; it also drops, every [`SWEEP`], idle HTTP/1
//!   connections the upstream has closed (nobody reads those in between);
//!   `max_connections` caps the endpoint's connections: a request that finds none free
//!   waits up to the connect timeout for one, then fails as overflow (Envoy's `UO`).
//!
//! The pool belongs to the endpoint's address and outlives applies, so a config change
//! keeps warm connections and in-flight requests. It is shared by the workers, but each
//! connection's task runs on the worker that opened it, and a checkout takes a connection
//! of its own worker (so a request never crosses threads) unless the endpoint's
//! `max_connections` are all open, when any free one will do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::debug;

use super::body::{self, Body};
use super::h1_client::{H1Connection, H1Error, ResponseHead};
use super::h1_codec::Framing;
use super::raw_headers::RawHeaders;
use crate::stats::{ClusterCounters, TotalCounters, UpstreamMeter};
use crate::worker;

/// How often the reaper looks for idle HTTP/1 connections the upstream has closed.
const SWEEP: Duration = Duration::from_secs(5);

/// What the pool speaks to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Http1,
    Http2,
}

/// The cluster's pool settings, passed at each checkout so the pool itself can outlive
/// the cluster config it was made under.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    /// 0 = unlimited.
    pub(crate) max_requests_per_connection: u32,
    pub(crate) idle_timeout: Option<Duration>,
    /// 0 = unlimited.
    pub(crate) max_connections: u32,
    /// 0 = as many as the server allows.
    pub(crate) max_concurrent_streams: u32,
    pub(crate) preserve_header_case: bool,
}

/// Where a connection's counts go.
#[derive(Debug, Clone)]
pub(crate) struct Meters {
    pub(crate) cluster: Arc<ClusterCounters>,
    pub(crate) totals: Arc<TotalCounters>,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    #[error("connect {0}: refused")]
    Refused(SocketAddr),
    #[error("connect {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connect {0}: timed out after {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
    #[error("{0}: all {1} connections busy")]
    Overflow(SocketAddr, u32),
}

#[derive(Debug)]
pub(crate) struct EndpointPool {
    address: SocketAddr,
    state: Mutex<State>,
    /// Connections open or being opened (raised under `state`'s lock, lowered anywhere).
    open: AtomicU32,
    /// Woken when a connection goes idle, frees a stream or closes.
    available: Notify,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<IdleConnection>,
    multiplexed: Vec<Multiplexed>,
    /// A reaper task is scheduled.
    reaping: bool,
    /// The idle timeout of the last release, for the reaper.
    idle_timeout: Option<Duration>,
}

#[derive(Debug)]
struct IdleConnection {
    connection: IdleHttp1,
    served: u32,
    since: Instant,
    /// The worker running the connection's task.
    worker: usize,
}

/// An idle HTTP/1 connection: meshcore's own client, or hyper's.
#[derive(Debug)]
enum IdleHttp1 {
    Direct(Box<H1Connection>),
    Hyper(http1::SendRequest<Body>),
}

impl IdleHttp1 {
    /// Known closed, without waiting: hyper's task has seen the close; the own client
    /// looks at its socket.
    fn closed(&mut self) -> bool {
        match self {
            Self::Direct(connection) => connection.closed_while_idle(),
            Self::Hyper(sender) => sender.is_closed(),
        }
    }
}

#[derive(Debug)]
struct Multiplexed {
    sender: http2::SendRequest<Body>,
    streams: Arc<Streams>,
    worker: usize,
}

#[derive(Debug)]
struct Streams {
    active: AtomicU32,
    served: AtomicU32,
    idle_since: Mutex<Instant>,
}

/// A connection (or an HTTP/2 stream slot) lent to one request.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<EndpointPool>,
    sender: Option<Sender>,
    served: u32,
    max_requests: u32,
    idle_timeout: Option<Duration>,
    /// Taken from the idle list or shared, rather than opened for this request.
    pub(crate) reused: bool,
    /// Upgrades use a connection of their own that never returns to the pool.
    pooled: bool,
    /// The worker running the connection's task.
    worker: usize,
}

#[derive(Debug)]
enum Sender {
    /// meshcore's own HTTP/1 client: the request's task does the I/O.
    Direct(Box<H1Connection>),
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>, Arc<Streams>),
}

/// A request the connection never sent, handed back so it can go out on another one.
/// (The own client's idle connections are looked at when taken, in `take_free`.)
#[derive(Debug)]
pub(crate) struct NotSent(pub(crate) Request<Body>, pub(crate) hyper::Error);

/// What a sent request got back: hyper's response, or the own client's response head
/// (its body is read from the lease's connection, [`Lease::direct_body`]).
#[derive(Debug)]
pub(crate) enum Received {
    Hyper(Incoming),
    Direct {
        framing: Framing,
        keep_alive: bool,
        /// The header fields as they arrived (`raw_headers.rs`), when asked for.
        raw: Option<RawHeaders>,
    },
}

impl EndpointPool {
    pub(crate) fn new(address: SocketAddr) -> Self {
        Self {
            address,
            state: Mutex::new(State::default()),
            open: AtomicU32::new(0),
            available: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for one request: a free pooled one, else a new one within the limits,
    /// else the first to free up within the connect timeout.
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        wire: Wire,
        settings: &PoolSettings,
        meters: &Meters,
    ) -> Result<Lease, PoolError> {
        let deadline = Instant::now() + settings.connect_timeout;
        loop {
            let notified = self.available.notified();
            tokio::pin!(notified);
            {
                let mut state = self.state();
                if let Some(lease) = self.take_free(&mut state, wire, settings) {
                    return Ok(lease);
                }
                let open = self.open.load(Ordering::Acquire);
                if settings.max_connections == 0 || open < settings.max_connections {
                    self.open.fetch_add(1, Ordering::AcqRel);
                    break;
                }
                notified.as_mut().enable();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(PoolError::Overflow(self.address, settings.max_connections));
            }
        }
        self.open(wire, settings, meters, true).await
    }

    /// A new connection for an upgrade (WebSocket): never pooled, still counted.
    pub(crate) async fn dedicated(
        self: &Arc<Self>,
        settings: &PoolSettings,
        meters: &Meters,
    ) -> Result<Lease, PoolError> {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.open(Wire::Http1, settings, meters, false).await
    }

    fn take_free(
        self: &Arc<Self>,
        state: &mut State,
        wire: Wire,
        settings: &PoolSettings,
    ) -> Option<Lease> {
        let now = Instant::now();
        let expired = |since: Instant| settings.idle_timeout.is_some_and(|t| now - since >= t);
        let here = worker::current();
        // At the connection limit no new one can open here: another worker's will do.
        let any_worker = settings.max_connections != 0
            && self.open.load(Ordering::Acquire) >= settings.max_connections;
        let usable = |worker: usize| any_worker || worker == here;
        match wire {
            Wire::Http1 => {
                // Most recently used first; with one worker that is always the last one.
                while let Some(position) = state.idle.iter().rposition(|c| usable(c.worker)) {
                    let mut idle = state.idle.remove(position);
                    if expired(idle.since) || idle.connection.closed() {
                        continue;
                    }
                    let sender = match idle.connection {
                        IdleHttp1::Direct(connection) => Sender::Direct(connection),
                        IdleHttp1::Hyper(sender) => Sender::Http1(sender),
                    };
                    return Some(Lease {
                        pool: Arc::clone(self),
                        sender: Some(sender),
                        served: idle.served + 1,
                        max_requests: settings.max_requests_per_connection,
                        idle_timeout: settings.idle_timeout,
                        reused: true,
                        pooled: true,
                        worker: idle.worker,
                    });
                }
                None
            }
            Wire::Http2 => {
                state.multiplexed.retain(|c| {
                    let idle = c.streams.active.load(Ordering::Relaxed) == 0;
                    let stale = idle && expired(*lock(&c.streams.idle_since));
                    !(c.sender.is_closed() || stale)
                });
                let max_streams = settings.max_concurrent_streams;
                let max_requests = settings.max_requests_per_connection;
                let position = state.multiplexed.iter().position(|c| {
                    usable(c.worker)
                        && (max_streams == 0
                            || c.streams.active.load(Ordering::Relaxed) < max_streams)
                        && (max_requests == 0
                            || c.streams.served.load(Ordering::Relaxed) < max_requests)
                })?;
                let connection = &state.multiplexed[position];
                let lease = self.stream_lease(
                    connection.sender.clone(),
                    Arc::clone(&connection.streams),
                    settings,
                    true,
                    connection.worker,
                );
                if max_requests != 0 && lease.served >= max_requests {
                    // Retired: in-flight streams finish; the connection closes after them.
                    state.multiplexed.remove(position);
                }
                Some(lease)
            }
        }
    }

    fn stream_lease(
        self: &Arc<Self>,
        sender: http2::SendRequest<Body>,
        streams: Arc<Streams>,
        settings: &PoolSettings,
        reused: bool,
        worker: usize,
    ) -> Lease {
        streams.active.fetch_add(1, Ordering::Relaxed);
        let served = streams.served.fetch_add(1, Ordering::Relaxed) + 1;
        Lease {
            pool: Arc::clone(self),
            sender: Some(Sender::Http2(sender, streams)),
            served,
            max_requests: settings.max_requests_per_connection,
            idle_timeout: settings.idle_timeout,
            reused,
            pooled: true,
            worker,
        }
    }

    /// The lease of a connection just opened for this request, on this worker.
    fn fresh(self: &Arc<Self>, sender: Sender, settings: &PoolSettings, pooled: bool) -> Lease {
        Lease {
            pool: Arc::clone(self),
            sender: Some(sender),
            served: 1,
            max_requests: settings.max_requests_per_connection,
            idle_timeout: settings.idle_timeout,
            reused: false,
            pooled,
            worker: worker::current(),
        }
    }

    /// Opens a connection; `open` was already counted by the caller.
    async fn open(
        self: &Arc<Self>,
        wire: Wire,
        settings: &PoolSettings,
        meters: &Meters,
        pooled: bool,
    ) -> Result<Lease, PoolError> {
        let closed = Closed(Arc::clone(self));
        let stream =
            match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(self.address))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(PoolError::Refused(self.address));
                }
                Ok(Err(e)) => return Err(PoolError::Connect(self.address, e)),
                Err(_) => return Err(PoolError::Timeout(self.address, settings.connect_timeout)),
            };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(endpoint = %self.address, error = %e, "cannot set TCP_NODELAY");
        }
        let meter = UpstreamMeter::open(Arc::clone(&meters.cluster), Arc::clone(&meters.totals));
        let address = self.address;
        if wire == Wire::Http1 && pooled {
            let connection = H1Connection::new(stream, address, meter, closed);
            return Ok(self.fresh(Sender::Direct(Box::new(connection)), settings, pooled));
        }
        let io = TokioIo::new(stream);
        match wire {
            Wire::Http1 => {
                let (sender, connection) = http1::Builder::new()
                    .preserve_header_case(settings.preserve_header_case)
                    .handshake(io)
                    .await
                    .map_err(|e| PoolError::Handshake(address, e))?;
                tokio::spawn(async move {
                    if let Err(e) = connection.with_upgrades().await {
                        debug!(endpoint = %address, error = %e, "upstream connection ended");
                    }
                    drop((meter, closed));
                });
                Ok(self.fresh(Sender::Http1(sender), settings, pooled))
            }
            Wire::Http2 => {
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .map_err(|e| PoolError::Handshake(address, e))?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        debug!(endpoint = %address, error = %e, "upstream connection ended");
                    }
                    drop((meter, closed));
                });
                let streams = Arc::new(Streams {
                    active: AtomicU32::new(0),
                    served: AtomicU32::new(0),
                    idle_since: Mutex::new(Instant::now()),
                });
                let here = worker::current();
                let lease =
                    self.stream_lease(sender.clone(), Arc::clone(&streams), settings, false, here);
                let max_requests = settings.max_requests_per_connection;
                if max_requests == 0 || lease.served < max_requests {
                    self.state().multiplexed.push(Multiplexed {
                        sender,
                        streams,
                        worker: here,
                    });
                }
                Ok(lease)
            }
        }
    }
}

impl EndpointPool {
    /// Makes sure a reaper will close idle connections once `idle_timeout` passes, and
    /// drop those the upstream closes meanwhile.
    fn reap_later(self: &Arc<Self>, idle_timeout: Option<Duration>) {
        let mut state = self.state();
        state.idle_timeout = idle_timeout;
        if state.reaping {
            return;
        }
        // A release outside any runtime happens only while the runtime stops.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.reaping = true;
        drop(state);
        let first = Instant::now() + idle_timeout.map_or(SWEEP, |t| t.min(SWEEP));
        runtime.spawn(Arc::clone(self).reap(first));
    }

    /// Closes idle connections as they expire; ends when none is left idle.
    async fn reap(self: Arc<Self>, first: Instant) {
        let mut next = first;
        loop {
            tokio::time::sleep_until(next).await;
            let mut state = self.state();
            let timeout = state.idle_timeout;
            let now = Instant::now();
            let expired = |since: Instant| timeout.is_some_and(|t| now - since >= t);
            // Dropping a connection (an HTTP/2 one's last sender) closes it.
            state
                .idle
                .retain_mut(|c| !expired(c.since) && !c.connection.closed());
            state.multiplexed.retain(|c| {
                let idle = c.streams.active.load(Ordering::Relaxed) == 0;
                !(c.sender.is_closed() || idle && expired(*lock(&c.streams.idle_since)))
            });
            let idle_since = state.idle.iter().map(|c| c.since).chain(
                state
                    .multiplexed
                    .iter()
                    .filter(|c| c.streams.active.load(Ordering::Relaxed) == 0)
                    .map(|c| *lock(&c.streams.idle_since)),
            );
            // HTTP/1 idle connections are looked at every SWEEP; all expire on time.
            let sweep = (!state.idle.is_empty()).then_some(now + SWEEP);
            let expiry = timeout.and_then(|t| idle_since.min().map(|oldest| oldest + t));
            match expiry.into_iter().chain(sweep).min() {
                Some(at) => next = at,
                None => {
                    // Busy connections schedule a reaper again when they go idle.
                    state.reaping = false;
                    return;
                }
            }
        }
    }
}

/// Counts a connection closed when it ends (or its open failed), and wakes a waiter.
pub(crate) struct Closed(Arc<EndpointPool>);

impl Drop for Closed {
    fn drop(&mut self) {
        let pool = &self.0;
        // Not under the state lock: a connection can end while the lock is held to look
        // at it (the reaper, a checkout).
        pool.open.fetch_sub(1, Ordering::AcqRel);
        pool.available.notify_one();
    }
}

impl Lease {
    /// Sends a request. A request that never left (the connection was closed under it) is
    /// handed back in [`NotSent`] so it can go out on another connection. `raw`: the own
    /// client keeps the response's fields as they arrived (hyper always parses them).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn stores its arguments twice"
    )]
    pub(crate) fn send(
        &mut self,
        request: Request<Body>,
        raw: bool,
    ) -> impl Future<Output = Result<Response<Received>, SendError>> {
        // Not an `async fn`: see `server::handle`.
        async move {
            match self.sender.as_mut() {
                Some(Sender::Direct(connection)) => {
                    let (parts, body) = request.into_parts();
                    let ResponseHead {
                        response,
                        framing,
                        keep_alive,
                        raw,
                    } = connection
                        .send(&parts, body, raw)
                        .await
                        .map_err(SendError::Direct)?;
                    Ok(response.map(|()| Received::Direct {
                        framing,
                        keep_alive,
                        raw,
                    }))
                }
                Some(Sender::Http1(sender)) => {
                    if let Err(e) = sender.ready().await {
                        return Err(SendError::NotSent(Box::new(NotSent(request, e))));
                    }
                    sender
                        .try_send_request(request)
                        .await
                        .map(|response| response.map(Received::Hyper))
                        .map_err(|mut e| match e.take_message() {
                            Some(request) => {
                                SendError::NotSent(Box::new(NotSent(request, e.into_error())))
                            }
                            None => SendError::Failed(e.into_error()),
                        })
                }
                Some(Sender::Http2(sender, _)) => {
                    if let Err(e) = sender.ready().await {
                        return Err(SendError::NotSent(Box::new(NotSent(request, e))));
                    }
                    sender
                        .try_send_request(request)
                        .await
                        .map(|response| response.map(Received::Hyper))
                        .map_err(|mut e| match e.take_message() {
                            Some(request) => {
                                SendError::NotSent(Box::new(NotSent(request, e.into_error())))
                            }
                            None => SendError::Failed(e.into_error()),
                        })
                }
                None => Err(SendError::Closed),
            }
        }
    }

    /// Gives the connection back: to the idle list when `reusable` (its response was read
    /// to the end) and it has requests left, else it is closed.
    pub(crate) fn release(mut self, reusable: bool) {
        let pool = Arc::clone(&self.pool);
        let keep =
            reusable && self.pooled && (self.max_requests == 0 || self.served < self.max_requests);
        let idle = match self.sender.take() {
            Some(Sender::Direct(connection)) if keep => Some(IdleHttp1::Direct(connection)),
            Some(Sender::Http1(sender)) if keep && !sender.is_closed() => {
                Some(IdleHttp1::Hyper(sender))
            }
            Some(Sender::Http2(_, streams)) => {
                release_stream(&streams);
                pool.available.notify_one();
                pool.reap_later(self.idle_timeout);
                None
            }
            _ => None,
        };
        if let Some(connection) = idle {
            pool.state().idle.push(IdleConnection {
                connection,
                served: self.served,
                since: Instant::now(),
                worker: self.worker,
            });
            pool.available.notify_one();
            pool.reap_later(self.idle_timeout);
        }
    }

    /// The body of a response the own client received: read from this lease's connection,
    /// which goes back to the pool when the body has been read to its end.
    pub(crate) fn direct_body(mut self, framing: Framing, keep_alive: bool) -> Body {
        let Some(Sender::Direct(connection)) = self.sender.take() else {
            return body::empty();
        };
        let body =
            super::h1_client::H1Body::new(connection, framing, keep_alive, move |c, reusable| {
                self.sender = Some(Sender::Direct(c));
                self.release(reusable);
            });
        http_body_util::BodyExt::boxed_unsync(body)
    }
}

impl Lease {
    /// Takes the connection out of the pool for good (the upstream said GOAWAY): no new
    /// request goes to it; requests already on it finish.
    pub(crate) fn retire(mut self) {
        match self.sender.take() {
            Some(Sender::Http2(_, streams)) => {
                self.pool
                    .state()
                    .multiplexed
                    .retain(|c| !Arc::ptr_eq(&c.streams, &streams));
                release_stream(&streams);
                self.pool.available.notify_one();
            }
            // An HTTP/1 connection not released is closed when it drops.
            Some(Sender::Direct(_) | Sender::Http1(_)) | None => {}
        }
    }
}

impl Drop for Lease {
    /// A lease dropped without `release` (the request was abandoned) closes an HTTP/1
    /// connection and frees an HTTP/2 stream.
    fn drop(&mut self) {
        if let Some(Sender::Http2(_, streams)) = self.sender.take() {
            release_stream(&streams);
            self.pool.available.notify_one();
            self.pool.reap_later(self.idle_timeout);
        }
    }
}

fn release_stream(streams: &Streams) {
    if streams.active.fetch_sub(1, Ordering::Relaxed) == 1 {
        *lock(&streams.idle_since) = Instant::now();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a request on a leased connection failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The own HTTP/1 client's exchange failed.
    Direct(H1Error),
    /// The request never left; it can be sent elsewhere.
    NotSent(Box<NotSent>),
    /// Sent (at least partly), then the connection or stream failed.
    Failed(hyper::Error),
    /// The lease was already released.
    Closed,
}
