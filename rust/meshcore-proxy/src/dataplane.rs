//! The data plane: its two runtimes, and the coarse calls the binding makes (start,
//! apply, stats, config dump, drain, shutdown).
//!
//! # Runtimes
//!
//! Traffic runs on `worker_threads` *workers*, each a single-threaded runtime on its own
//! OS thread that keeps a connection from accept to close (see `worker.rs`). Admin work
//! (the admin HTTP server, drain coordination at shutdown) runs on a separate
//! single-thread *admin* runtime on its own OS thread, so scraping stats never takes a
//! worker from traffic. No runtime ever touches Python. The calls below are
//! made from arbitrary (non-tokio) threads and block only their caller.
//!
//! # Apply
//!
//! 1. Validate ([`meshcore_snapshot::parse`] / [`Snapshot::validate`]); on failure
//!    [`ApplyError::Invalid`] and nothing changes.
//! 2. Build the new [`RoutingTable`] completely (clusters with their endpoint pickers,
//!    per-listener routes); cluster counters carry over by cluster name.
//! 3. Bind every listener socket (address, port) not serving yet. If any bind fails, the
//!    sockets bound in this step are closed, [`ApplyError::Bind`] names the listener's port
//!    field and address, and nothing changes: the previous state keeps serving.
//! 4. Commit, which cannot fail: removed sockets stop accepting and are closed (their
//!    connections run on until they end), the table is swapped in with one atomic store,
//!    new sockets start accepting, and the snapshot becomes the config dump.
//!
//! Applies are serialised; readers never wait for them. A connection keeps the route and
//! cluster it started with, so no config change drops a connection. A socket that is kept
//! keeps its connections even if the listener is renamed or re-routed.
//!
//! # Drain and shutdown
//!
//! [`DataPlane::drain`] is Istio's sidecar shutdown, one direction at a time: the
//! listeners of that [`Direction`] stop accepting and close their sockets (the other
//! direction keeps serving), and its HTTP connections are told to finish (HTTP/2 GOAWAY,
//! `Connection: close` on HTTP/1, idle keep-alive connections closed at once; see
//! `drain.rs`). The drain is sticky: a later apply does not bind that direction's
//! listeners again. [`DataPlane::connections`] counts what is still in flight, so the
//! agent can exit when it reaches zero or its deadline passes.
//! [`DataPlane::shutdown`] does the same for both directions, waits up to its grace
//! period, then force-closes what is left and stops the runtimes.
//!
//! Known limit: a new socket that overlaps a socket being removed in the same apply (say
//! `127.0.0.1:p` replaced by `0.0.0.0:p`) fails to bind, because binding happens before
//! anything is removed; apply the removal first, then the addition.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use meshcore_snapshot::{Direction, Snapshot};
use serde::Serialize;
use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin;
use crate::drain::{Drain, DrainOutcome};
use crate::error::{ApplyError, StartError};
use crate::listener::{AcceptContext, ListenerView, Listeners, bind};
use crate::options::Options;
use crate::routing::RoutingTable;
use crate::stats::{Stats, TotalCounters};
use crate::worker::Workers;

/// How long runtimes get to stop their remaining tasks at shutdown.
const RUNTIME_STOP_WAIT: Duration = Duration::from_secs(1);

/// What [`DataPlane::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Connections open when accepting stopped.
    pub in_flight: u64,
    /// Of those, the ones still open when the grace period ended, closed by force.
    pub force_closed: u64,
}

/// A running data plane. `Send + Sync`; every method takes `&self` and may be called from
/// any thread that is not a tokio runtime thread.
#[derive(Debug)]
pub struct DataPlane {
    shared: Arc<Shared>,
    /// Shared with the admin server's drain endpoint, which holds it weakly.
    control: Arc<Mutex<Control>>,
}

/// What the request path, the admin server and the reporting calls read without locks.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    table: Arc<ArcSwap<RoutingTable>>,
    totals: Arc<TotalCounters>,
    applied: ArcSwapOption<Snapshot>,
    listeners: ArcSwap<Vec<ListenerView>>,
    applies_accepted: AtomicU64,
    applies_rejected: AtomicU64,
    shut_down: AtomicBool,
    /// Tracks every connection; counts them and HTTP requests per direction.
    pub(crate) drain: Drain,
    /// Set by the admin server's `/quitquitquit`; the agent polls it.
    pub(crate) quit_requested: AtomicBool,
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        let table = self.table.load();
        Stats {
            version: self.applied.load().as_ref().map(|s| s.version.clone()),
            applies_accepted: self.applies_accepted.load(Ordering::Relaxed),
            applies_rejected: self.applies_rejected.load(Ordering::Relaxed),
            totals: self.totals.report(),
            listeners: self
                .listeners
                .load()
                .iter()
                .filter_map(ListenerView::report)
                .collect(),
            clusters: table
                .clusters()
                .iter()
                .map(|c| c.counters.report(&c.name))
                .collect(),
        }
    }

    pub(crate) fn applied(&self) -> Option<Arc<Snapshot>> {
        self.applied.load_full()
    }

    fn reject(&self, error: ApplyError) -> ApplyError {
        self.applies_rejected.fetch_add(1, Ordering::Relaxed);
        warn!(path = error.path(), code = error.code(), %error, "snapshot rejected");
        error
    }
}

/// The single writer's state: changed only by `apply`, `drain` and `shutdown`, one at a
/// time.
#[derive(Debug)]
struct Control {
    listeners: Listeners,
    accept: AcceptContext,
    /// `None` once shut down.
    runtimes: Option<Runtimes>,
    report: Option<ShutdownReport>,
}

#[derive(Debug)]
struct Runtimes {
    workers: Workers,
    admin: Handle,
    admin_stop: CancellationToken,
    admin_thread: Option<JoinHandle<()>>,
}

impl Runtimes {
    /// Stops the admin thread, then the workers.
    fn stop(mut self) {
        self.admin_stop.cancel();
        if let Some(thread) = self.admin_thread.take()
            && thread.join().is_err()
        {
            warn!("admin thread panicked");
        }
        self.workers.stop();
    }
}

impl DataPlane {
    /// Starts both runtimes and, if configured, the admin server. Serves nothing until the
    /// first apply.
    pub fn start(options: Options) -> Result<DataPlane, StartError> {
        if options.worker_threads == 0 {
            return Err(StartError::NoWorkerThreads);
        }
        if let Some(address) = options.admin_address
            && !address.ip().is_loopback()
        {
            return Err(StartError::AdminNotLoopback(address));
        }
        let workers =
            Workers::start(options.worker_threads, RUNTIME_STOP_WAIT).map_err(|source| {
                StartError::Runtime {
                    runtime: "worker",
                    source,
                }
            })?;
        let admin_runtime =
            Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| StartError::Runtime {
                    runtime: "admin",
                    source,
                })?;
        let admin = admin_runtime.handle().clone();
        let shared = Arc::new(Shared::default());
        let admin_stop = CancellationToken::new();
        let admin_listener = options
            .admin_address
            .map(|address| {
                bind(address, &admin).map_err(|source| StartError::AdminBind { address, source })
            })
            .transpose()?;
        let stopped = admin_stop.clone();
        let admin_thread = std::thread::Builder::new()
            .name("meshcore-admin".into())
            .spawn(move || admin_runtime.block_on(stopped.cancelled_owned()))
            .map_err(|source| StartError::Runtime {
                runtime: "admin",
                source,
            })?;
        let accept = AcceptContext {
            table: Arc::clone(&shared.table),
            totals: Arc::clone(&shared.totals),
            drain: shared.drain.clone(),
            workers: workers.set().clone(),
        };
        info!(
            worker_threads = options.worker_threads,
            admin_address = ?options.admin_address,
            "data plane started"
        );
        let control = Arc::new(Mutex::new(Control {
            listeners: Listeners::default(),
            accept,
            runtimes: Some(Runtimes {
                workers,
                admin: admin.clone(),
                admin_stop: admin_stop.clone(),
                admin_thread: Some(admin_thread),
            }),
            report: None,
        }));
        if let Some(listener) = admin_listener {
            let drainer = Drainer {
                control: Arc::downgrade(&control),
                shared: Arc::clone(&shared),
            };
            admin.spawn(admin::serve(listener, drainer, admin_stop));
        }
        Ok(DataPlane { shared, control })
    }

    /// Parses, validates and applies a JSON snapshot. Returns the applied version.
    pub fn apply_json(&self, bytes: &[u8]) -> Result<String, ApplyError> {
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(self.shared.reject(ApplyError::ShutDown));
        }
        match meshcore_snapshot::parse(bytes) {
            Ok(snapshot) => self.apply_valid(snapshot),
            Err(errors) => Err(self.shared.reject(ApplyError::Invalid(errors))),
        }
    }

    /// Validates and applies a snapshot. Returns the applied version.
    pub fn apply(&self, snapshot: Snapshot) -> Result<String, ApplyError> {
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(self.shared.reject(ApplyError::ShutDown));
        }
        match snapshot.validate() {
            Ok(()) => self.apply_valid(snapshot),
            Err(errors) => Err(self.shared.reject(ApplyError::Invalid(errors))),
        }
    }

    fn apply_valid(&self, snapshot: Snapshot) -> Result<String, ApplyError> {
        let mut control = lock(&self.control);
        let control = &mut *control;
        if control.runtimes.is_none() {
            return Err(self.shared.reject(ApplyError::ShutDown));
        }
        let table = RoutingTable::compile(
            &snapshot,
            &self.shared.table.load(),
            &self.shared.totals,
            &self.shared.drain,
        )
        .map_err(|e| self.shared.reject(e))?;
        let serving = serving_listeners(&snapshot, &self.shared.drain);
        let sockets = control
            .listeners
            .bind_new(&serving, &control.accept.workers)
            .map_err(|e| self.shared.reject(e))?;
        control.listeners.retire_removed(&serving);
        self.shared.table.store(Arc::new(table));
        control.listeners.start(&serving, sockets, &control.accept);
        self.shared
            .listeners
            .store(Arc::new(control.listeners.view()));
        let version = snapshot.version.clone();
        self.shared.applied.store(Some(Arc::new(snapshot)));
        self.shared.applies_accepted.fetch_add(1, Ordering::Relaxed);
        info!(%version, "snapshot applied");
        Ok(version)
    }

    /// A point-in-time report of every counter.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The last applied snapshot.
    pub fn config_dump(&self) -> Option<Snapshot> {
        self.shared.applied().map(|s| (*s).clone())
    }

    /// The socket address of the serving listener named `listener_name`.
    pub fn local_addr(&self, listener_name: &str) -> Option<SocketAddr> {
        self.shared
            .listeners
            .load()
            .iter()
            .find(|l| !l.draining && l.name == listener_name)
            .map(|l| l.address)
    }

    /// Drains one direction: its listeners stop accepting (the other direction's keep
    /// serving), its HTTP connections finish their requests and close, and later applies
    /// do not bind its listeners again. Returns at once; poll [`DataPlane::connections`]
    /// to learn when nothing is left. Does nothing once shut down.
    pub fn drain(&self, direction: Direction) {
        drain_direction(&self.control, &self.shared, direction);
    }

    /// Downstream connections (HTTP, TCP, upgraded) plus HTTP requests in flight on them,
    /// of one direction or (`None`) both: zero means nothing is left to wait for.
    pub fn connections(&self, direction: Option<Direction>) -> u64 {
        self.shared.drain.active(direction)
    }

    /// Whether the admin server received `POST /quitquitquit`.
    pub fn quit_requested(&self) -> bool {
        self.shared.quit_requested.load(Ordering::Acquire)
    }

    /// Stops accepting on every listener, waits up to `grace` for connections in flight to
    /// end, force-closes the rest and stops both runtimes. Blocks the calling thread.
    /// Idempotent: later calls wait for the first to finish and return its report.
    pub fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let mut control = lock(&self.control);
        if let Some(report) = control.report {
            return report;
        }
        self.shared.shut_down.store(true, Ordering::Release);
        let Some(runtimes) = control.runtimes.take() else {
            return ShutdownReport::default();
        };
        info!(?grace, "data plane shutting down");
        control.listeners.stop_all();
        self.shared
            .listeners
            .store(Arc::new(control.listeners.view()));
        let outcome = drain_on(&runtimes.admin, control.accept.drain.clone(), grace);
        runtimes.stop();
        let report = ShutdownReport {
            in_flight: outcome.in_flight,
            force_closed: outcome.force_closed,
        };
        info!(
            in_flight = report.in_flight,
            force_closed = report.force_closed,
            "data plane stopped"
        );
        control.report = Some(report);
        report
    }
}

impl Drop for DataPlane {
    /// A data plane dropped without `shutdown` closes everything at once.
    fn drop(&mut self) {
        let mut control = lock(&self.control);
        if let Some(runtimes) = control.runtimes.take() {
            // Both stop in the background: their threads end on their own.
            runtimes.admin_stop.cancel();
            drop(runtimes.workers);
        }
    }
}

/// Drains one direction's listeners; shared by [`DataPlane::drain`] and the admin server.
fn drain_direction(control: &Mutex<Control>, shared: &Shared, direction: Direction) {
    let mut control = lock(control);
    let control = &mut *control;
    if control.runtimes.is_none() || shared.drain.is_draining(direction) {
        return;
    }
    info!(?direction, "draining listeners");
    // Stop accepting first, so no connection is accepted only to be told to close.
    if let Some(applied) = shared.applied() {
        let mut serving = serving_listeners(&applied, &shared.drain).into_owned();
        serving.listeners.retain(|l| l.direction != direction);
        control.listeners.retire_removed(&serving);
        control
            .listeners
            .start(&serving, Vec::new(), &control.accept);
        shared.listeners.store(Arc::new(control.listeners.view()));
    }
    shared.drain.start_draining(direction);
}

/// `snapshot` without the listeners of drained directions: the sockets to serve.
fn serving_listeners<'a>(snapshot: &'a Snapshot, drain: &Drain) -> Cow<'a, Snapshot> {
    let drained = |l: &meshcore_snapshot::Listener| drain.is_draining(l.direction);
    if !snapshot.listeners.iter().any(drained) {
        return Cow::Borrowed(snapshot);
    }
    let mut serving = snapshot.clone();
    serving.listeners.retain(|l| !drained(l));
    Cow::Owned(serving)
}

/// What the admin server's `/drain` holds: the data plane's single writer, weakly, so a
/// dropped data plane is not kept alive by its own admin task.
#[derive(Debug)]
pub(crate) struct Drainer {
    control: Weak<Mutex<Control>>,
    pub(crate) shared: Arc<Shared>,
}

impl Drainer {
    /// Drains `direction` (blocks: it waits for accept loops to stop; call it off the
    /// admin runtime).
    pub(crate) fn drain(&self, direction: Direction) {
        if let Some(control) = self.control.upgrade() {
            drain_direction(&control, &self.shared, direction);
        }
    }
}

/// Runs the drain on the admin runtime and waits for it from the calling thread.
fn drain_on(admin: &Handle, drain: Drain, grace: Duration) -> DrainOutcome {
    let (done, outcome) = mpsc::channel();
    admin.spawn(async move {
        // The receiver only goes away if the caller did, and then nobody needs the outcome.
        let _ = done.send(drain.drain(grace).await);
    });
    outcome.recv().unwrap_or_else(|_| {
        warn!("drain task did not finish; connections are closed with the runtime");
        DrainOutcome::default()
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_plane_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DataPlane>();
    }
}
