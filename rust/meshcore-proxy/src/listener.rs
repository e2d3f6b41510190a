//! Listening sockets: binding, the accept loop, and reconciliation by socket address.
//!
//! A listener is identified by its socket (address, port), not its name. Across an apply:
//! - an unchanged socket keeps its socket, its accept loop and its connections; its name,
//!   route and idle timeout come from the routing table, so new connections see the new ones;
//! - a removed socket stops accepting and is closed before `apply` returns (the port is
//!   free), while its connections run on, tracked for shutdown and listed as draining;
//! - a new socket is bound during the prepare step, before anything is published, so a
//!   failed bind rejects the whole apply with nothing changed.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use meshcore_snapshot::Snapshot;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::drain::Drain;
use crate::error::ApplyError;
use crate::http;
use crate::original_dst::OriginalDst;
use crate::routing::{RoutingTable, socket_address};
use crate::stats::{DownstreamMeter, ListenerCounters, ListenerStats, TotalCounters};
use crate::tcp_proxy;
use crate::worker::{self, WorkerSet};

/// Pending connections the kernel queues per socket (Envoy and tokio use 1024 too).
const BACKLOG: i32 = 1024;
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Upper bound on waiting for a removed listener's socket to close.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What every accept loop shares: where routes come from, where counts go, what tracks
/// connections.
#[derive(Debug, Clone)]
pub(crate) struct AcceptContext {
    pub(crate) table: Arc<ArcSwap<RoutingTable>>,
    pub(crate) totals: Arc<TotalCounters>,
    pub(crate) drain: Drain,
    pub(crate) workers: WorkerSet,
}

/// A socket bound by the prepare step of an apply, not accepting yet. Dropping it
/// closes the socket.
#[derive(Debug)]
pub(crate) struct BoundSocket {
    address: SocketAddr,
    socket: TcpListener,
    /// The worker whose runtime the socket is registered with, which runs its accept loop.
    worker: usize,
}

#[derive(Debug)]
struct ServingListener {
    name: String,
    counters: Arc<ListenerCounters>,
    stop: CancellationToken,
    stopped: mpsc::Receiver<()>,
}

#[derive(Debug)]
struct DrainingListener {
    name: String,
    address: SocketAddr,
    counters: Arc<ListenerCounters>,
}

/// One listener as reports and `local_addr` see it.
#[derive(Debug)]
pub(crate) struct ListenerView {
    pub(crate) name: String,
    pub(crate) address: SocketAddr,
    counters: Arc<ListenerCounters>,
    pub(crate) draining: bool,
}

impl ListenerView {
    /// Draining listeners are reported while they still have connections.
    pub(crate) fn report(&self) -> Option<ListenerStats> {
        (!self.draining || self.counters.active() > 0).then(|| {
            self.counters
                .report(&self.name, self.address, self.draining)
        })
    }
}

/// The set of listening sockets. Only `apply` and `shutdown` change it, one at a time.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    serving: HashMap<SocketAddr, ServingListener>,
    /// Serving sockets in snapshot order, for reports.
    order: Vec<SocketAddr>,
    draining: Vec<DrainingListener>,
}

impl Listeners {
    /// Binds every socket of `snapshot` that is not serving yet. On the first failure the
    /// sockets bound so far are dropped (closed) and the error names the listener's port.
    pub(crate) fn bind_new(
        &self,
        snapshot: &Snapshot,
        workers: &WorkerSet,
    ) -> Result<Vec<BoundSocket>, ApplyError> {
        let mut bound = Vec::new();
        for (i, listener) in snapshot.listeners.iter().enumerate() {
            let Some(address) = socket_address(listener) else {
                continue;
            };
            if self.serving.contains_key(&address) {
                continue;
            }
            let worker = workers.next_acceptor();
            let socket =
                bind(address, workers.handle(worker)).map_err(|source| ApplyError::Bind {
                    path: format!("listeners[{i}].port"),
                    address,
                    source,
                })?;
            bound.push(BoundSocket {
                address,
                socket,
                worker,
            });
        }
        Ok(bound)
    }

    /// Stops accepting on every serving socket that `snapshot` no longer has and waits until
    /// each is closed; their connections keep running.
    pub(crate) fn retire_removed(&mut self, snapshot: &Snapshot) {
        let kept: Vec<SocketAddr> = snapshot
            .listeners
            .iter()
            .filter_map(socket_address)
            .collect();
        let removed: Vec<SocketAddr> = self
            .serving
            .keys()
            .filter(|address| !kept.contains(address))
            .copied()
            .collect();
        for address in removed {
            if let Some(listener) = self.serving.remove(&address) {
                info!(name = %listener.name, %address, "listener removed; draining its connections");
                self.draining.push(stop(address, listener));
            }
        }
        self.order
            .retain(|address| self.serving.contains_key(address));
    }

    /// Starts accepting on the sockets bound by [`Listeners::bind_new`] and records the
    /// names of `snapshot`. Call after publishing the routing table that routes them.
    pub(crate) fn start(
        &mut self,
        snapshot: &Snapshot,
        sockets: Vec<BoundSocket>,
        context: &AcceptContext,
    ) {
        for BoundSocket {
            address,
            socket,
            worker,
        } in sockets
        {
            let counters = Arc::new(ListenerCounters::default());
            let stop = CancellationToken::new();
            let (stopped_tx, stopped) = mpsc::channel();
            context.workers.handle(worker).spawn(accept_loop(
                socket,
                address,
                Arc::clone(&counters),
                context.clone(),
                stop.clone(),
                stopped_tx,
            ));
            self.serving.insert(
                address,
                ServingListener {
                    name: String::new(),
                    counters,
                    stop,
                    stopped,
                },
            );
        }
        self.order.clear();
        for listener in &snapshot.listeners {
            let Some(address) = socket_address(listener) else {
                continue;
            };
            if let Some(serving) = self.serving.get_mut(&address) {
                if serving.name != listener.name {
                    info!(name = %listener.name, %address, "listener serving");
                }
                serving.name.clone_from(&listener.name);
                self.order.push(address);
            }
        }
        self.draining.retain(|d| d.counters.active() > 0);
    }

    /// Stops accepting everywhere (shutdown); every listener becomes draining.
    pub(crate) fn stop_all(&mut self) {
        for address in std::mem::take(&mut self.order) {
            if let Some(listener) = self.serving.remove(&address) {
                self.draining.push(stop(address, listener));
            }
        }
        for (address, listener) in std::mem::take(&mut self.serving) {
            self.draining.push(stop(address, listener));
        }
    }

    /// Serving listeners in snapshot order, then draining ones.
    pub(crate) fn view(&self) -> Vec<ListenerView> {
        let serving = self.order.iter().filter_map(|address| {
            self.serving.get(address).map(|l| ListenerView {
                name: l.name.clone(),
                address: *address,
                counters: Arc::clone(&l.counters),
                draining: false,
            })
        });
        let draining = self.draining.iter().map(|d| ListenerView {
            name: d.name.clone(),
            address: d.address,
            counters: Arc::clone(&d.counters),
            draining: true,
        });
        serving.chain(draining).collect()
    }
}

/// Binds like tokio's `TcpListener::bind` (SO_REUSEADDR, so a restarted proxy can rebind
/// a port with connections in TIME_WAIT) and registers the socket with `runtime`.
pub(crate) fn bind(address: SocketAddr, runtime: &Handle) -> std::io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        // `::` and `0.0.0.0` are separate sockets, as validation (and Envoy) treat them.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    let _runtime = runtime.enter();
    TcpListener::from_std(socket.into())
}

fn stop(address: SocketAddr, listener: ServingListener) -> DrainingListener {
    listener.stop.cancel();
    // The accept loop reports once it has dropped the socket; a closed channel means the
    // loop is already gone, which is just as good.
    if let Err(mpsc::RecvTimeoutError::Timeout) = listener.stopped.recv_timeout(STOP_WAIT) {
        warn!(name = %listener.name, %address, "accept loop did not stop in time");
    }
    DrainingListener {
        name: listener.name,
        address,
        counters: listener.counters,
    }
}

async fn accept_loop(
    socket: TcpListener,
    address: SocketAddr,
    counters: Arc<ListenerCounters>,
    context: AcceptContext,
    stop: CancellationToken,
    stopped: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(route) = context.table.load().route(&address) else {
                    // Only between publishing a table without this socket and stopping it.
                    debug!(%address, %peer, "listener has no route; closing");
                    continue;
                };
                let meter =
                    DownstreamMeter::open(Arc::clone(&counters), Arc::clone(&context.totals));
                // A listener on a specific address accepts on that address: no getsockname.
                let local = if address.ip().is_unspecified() {
                    stream.local_addr().unwrap_or(address)
                } else {
                    address
                };
                // Only a listener that can use it asks the kernel (a failing getsockopt per
                // accept otherwise).
                let original_dst = if route.needs_original_dst {
                    OriginalDst::of(&stream, local)
                } else {
                    OriginalDst::Direct
                };
                let accepted = Accepted {
                    peer,
                    local,
                    original_dst,
                    route,
                    table: Arc::clone(&context.table),
                    counters: Arc::clone(&counters),
                    meter,
                };
                dispatch(stream, accepted, &context);
            }
            Err(e) => {
                warn!(%address, error = %e, "accept failed");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
    drop(socket);
    debug!(%address, "listener closed");
    // Nobody waiting is fine: the socket is closed either way.
    let _ = stopped.send(());
}

/// A connection accepted, with what its serving needs, before it is handed to a worker.
struct Accepted {
    peer: SocketAddr,
    local: SocketAddr,
    original_dst: OriginalDst,
    route: Arc<crate::routing::ListenerRoute>,
    table: Arc<ArcSwap<RoutingTable>>,
    counters: Arc<ListenerCounters>,
    meter: DownstreamMeter,
}

/// Runs the connection, L4 or L7 by its listener, on the least-loaded worker.
fn dispatch(stream: TcpStream, accepted: Accepted, context: &AcceptContext) {
    // Two calls rather than one future over both, so an L4 connection's task is the size
    // of L4 serving alone.
    if accepted.route.protocol == meshcore_snapshot::Protocol::Tcp {
        dispatch_with(stream, accepted, context, |stream, a| {
            tcp_proxy::serve(
                stream,
                Bytes::new(),
                a.peer,
                a.original_dst,
                a.route,
                a.meter,
            )
        });
    } else {
        dispatch_with(stream, accepted, context, |stream, a| {
            http::serve_connection(
                stream,
                (a.peer, a.local),
                a.original_dst,
                a.route,
                a.table,
                a.counters,
                a.meter,
            )
        });
    }
}

/// Runs `serve` here, or on another worker with the socket moved to that worker's epoll
/// (deregistered here, registered there).
fn dispatch_with<S, F>(stream: TcpStream, accepted: Accepted, context: &AcceptContext, serve: S)
where
    S: FnOnce(TcpStream, Accepted) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let here = worker::current();
    let target = context.workers.pick(here);
    let load = context.workers.open(target);
    let direction = accepted.route.direction;
    if target == here {
        context.drain.spawn_connection(direction, async move {
            serve(stream, accepted).await;
            drop(load);
        });
        return;
    }
    let peer = accepted.peer;
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            warn!(%peer, error = %e, "cannot hand the connection to a worker; closing");
            return;
        }
    };
    context
        .drain
        .spawn_connection_on(direction, context.workers.handle(target), async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream, accepted).await,
                Err(e) => warn!(%peer, error = %e, "cannot register the connection with its worker; closing"),
            }
            drop(load);
        });
}
