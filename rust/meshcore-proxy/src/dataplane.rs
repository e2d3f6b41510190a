//! The data plane: its two runtimes, and the coarse calls the binding makes (start,
//! apply, stats, config dump, shutdown).
//!
//! # Runtimes
//!
//! Traffic runs on a multi-thread *worker* runtime of `worker_threads` threads. Admin work
//! (the admin HTTP server, drain coordination at shutdown) runs on a separate
//! single-thread *admin* runtime on its own OS thread, so scraping stats never takes a
//! worker thread from traffic. Neither runtime ever touches Python. The calls below are
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
//! Known limit: a new socket that overlaps a socket being removed in the same apply (say
//! `127.0.0.1:p` replaced by `0.0.0.0:p`) fails to bind, because binding happens before
//! anything is removed; apply the removal first, then the addition.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use meshcore_snapshot::Snapshot;
use serde::Serialize;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin;
use crate::drain::{Drain, DrainOutcome};
use crate::error::{ApplyError, StartError};
use crate::listener::{AcceptContext, ListenerView, Listeners, bind};
use crate::options::Options;
use crate::routing::RoutingTable;
use crate::stats::{Stats, TotalCounters};

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
    control: Mutex<Control>,
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

/// The single writer's state: changed only by `apply` and `shutdown`, one at a time.
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
    worker: Runtime,
    admin: Handle,
    admin_stop: CancellationToken,
    admin_thread: Option<JoinHandle<()>>,
}

impl Runtimes {
    /// Stops the admin thread, then the worker runtime, without blocking inside a runtime.
    fn stop(mut self) {
        self.admin_stop.cancel();
        if let Some(thread) = self.admin_thread.take()
            && thread.join().is_err()
        {
            warn!("admin thread panicked");
        }
        if Handle::try_current().is_ok() {
            self.worker.shutdown_background();
        } else {
            self.worker.shutdown_timeout(RUNTIME_STOP_WAIT);
        }
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
        let worker = Builder::new_multi_thread()
            .worker_threads(options.worker_threads)
            .thread_name("meshcore-worker")
            .enable_all()
            .build()
            .map_err(|source| StartError::Runtime {
                runtime: "worker",
                source,
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
        if let Some(address) = options.admin_address {
            let listener = bind(address, &admin)
                .map_err(|source| StartError::AdminBind { address, source })?;
            admin.spawn(admin::serve(
                listener,
                Arc::clone(&shared),
                admin_stop.clone(),
            ));
        }
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
            drain: Drain::default(),
            runtime: worker.handle().clone(),
        };
        info!(
            worker_threads = options.worker_threads,
            admin_address = ?options.admin_address,
            "data plane started"
        );
        Ok(DataPlane {
            shared,
            control: Mutex::new(Control {
                listeners: Listeners::default(),
                accept,
                runtimes: Some(Runtimes {
                    worker,
                    admin,
                    admin_stop,
                    admin_thread: Some(admin_thread),
                }),
                report: None,
            }),
        })
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
        let table =
            RoutingTable::compile(&snapshot, &self.shared.table.load(), &self.shared.totals)
                .map_err(|e| self.shared.reject(e))?;
        let sockets = control
            .listeners
            .bind_new(&snapshot, &control.accept.runtime)
            .map_err(|e| self.shared.reject(e))?;
        control.listeners.retire_removed(&snapshot);
        self.shared.table.store(Arc::new(table));
        control.listeners.start(&snapshot, sockets, &control.accept);
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
        let control = self
            .control
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(runtimes) = control.runtimes.take() {
            runtimes.admin_stop.cancel();
            runtimes.worker.shutdown_background();
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
