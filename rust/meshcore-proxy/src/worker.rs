//! Workers: one single-threaded tokio runtime per OS thread (Istio's `concurrency`), the
//! way Envoy runs one event loop per worker thread.
//!
//! A connection lives on one worker from the moment it is handed over until it closes,
//! and so do the upstream connections its requests open (pools prefer a connection of the
//! worker asking, see `http/pool.rs`). A request therefore never crosses threads, and an
//! idle worker parks on its own epoll with no work-stealing scheduler to wake and
//! coordinate: at low request rates that wake-up is most of a request's cost.
//!
//! Each listening socket is accepted on one worker (spread over the workers by bind
//! order). An accepted connection goes to the worker with the fewest open connections —
//! ties go to the accepting worker, which needs no hand-off — like Envoy's exact connection
//! balance. Handing a connection to another worker moves its socket from the accepting
//! worker's epoll to the other's.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;
use tracing::warn;

thread_local! {
    /// The index of the worker this thread runs; 0 on any other thread.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running the caller (0 off the workers, e.g. in tests).
pub(crate) fn current() -> usize {
    CURRENT.with(Cell::get)
}

/// What the accept loops share: each worker's handle and open-connection count.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSet {
    slots: Arc<[Slot]>,
    /// Round-robin over the workers for accept loops.
    next_acceptor: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct Slot {
    handle: Handle,
    connections: AtomicUsize,
}

impl WorkerSet {
    pub(crate) fn handle(&self, worker: usize) -> &Handle {
        &self.slots[worker].handle
    }

    /// The worker the next listening socket accepts on.
    pub(crate) fn next_acceptor(&self) -> usize {
        self.next_acceptor.fetch_add(1, Ordering::Relaxed) % self.slots.len()
    }

    /// The worker that should run a connection accepted on worker `here`: the one with the
    /// fewest open connections, `here` when it is among them.
    pub(crate) fn pick(&self, here: usize) -> usize {
        let load = |worker: usize| self.slots[worker].connections.load(Ordering::Relaxed);
        let mut best = here.min(self.slots.len() - 1);
        let mut best_load = load(best);
        for worker in 0..self.slots.len() {
            let l = load(worker);
            if l < best_load {
                best = worker;
                best_load = l;
            }
        }
        best
    }

    /// Counts a connection on `worker` until the guard drops.
    pub(crate) fn open(&self, worker: usize) -> WorkerLoad {
        self.slots[worker]
            .connections
            .fetch_add(1, Ordering::Relaxed);
        WorkerLoad {
            set: self.clone(),
            worker,
        }
    }
}

/// One connection counted on a worker.
#[derive(Debug)]
pub(crate) struct WorkerLoad {
    set: WorkerSet,
    worker: usize,
}

impl Drop for WorkerLoad {
    fn drop(&mut self) {
        self.set.slots[self.worker]
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The worker threads. Dropping this without [`Workers::stop`] stops them in the
/// background.
#[derive(Debug)]
pub(crate) struct Workers {
    set: WorkerSet,
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers, each a current-thread runtime on a thread of its own named
    /// `meshcore-worker-<i>`. On failure the workers started so far are stopped.
    pub(crate) fn start(count: usize, stop_wait: Duration) -> std::io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut slots = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let started = Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    let handle = runtime.handle().clone();
                    let stopped = stop.clone();
                    let thread = std::thread::Builder::new()
                        .name(format!("meshcore-worker-{index}"))
                        .spawn(move || run(index, runtime, stopped, stop_wait))?;
                    Ok((handle, thread))
                });
            match started {
                Ok((handle, thread)) => {
                    slots.push(Slot {
                        handle,
                        connections: AtomicUsize::new(0),
                    });
                    threads.push(thread);
                }
                Err(e) => {
                    stop.cancel();
                    join(threads);
                    return Err(e);
                }
            }
        }
        Ok(Workers {
            set: WorkerSet {
                slots: slots.into(),
                next_acceptor: Arc::new(AtomicUsize::new(0)),
            },
            stop,
            threads,
        })
    }

    pub(crate) fn set(&self) -> &WorkerSet {
        &self.set
    }

    /// Runs `task` on every worker (not awaited).
    #[cfg(test)]
    fn spawn_everywhere<F>(&self, task: impl Fn(usize) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        for (i, slot) in self.set.slots.iter().enumerate() {
            slot.handle.spawn(task(i));
        }
    }

    /// Stops every worker: their remaining tasks are dropped (closing their sockets), and
    /// the call returns when every thread has ended.
    pub(crate) fn stop(mut self) {
        self.stop.cancel();
        join(std::mem::take(&mut self.threads));
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A worker thread: serves until stopped, then drops its tasks.
fn run(
    index: usize,
    runtime: tokio::runtime::Runtime,
    stop: CancellationToken,
    stop_wait: Duration,
) {
    CURRENT.with(|current| current.set(index));
    runtime.block_on(stop.cancelled_owned());
    runtime.shutdown_timeout(stop_wait);
}

fn join(threads: Vec<JoinHandle<()>>) {
    for thread in threads {
        if thread.join().is_err() {
            warn!("worker thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn each_worker_knows_its_index_and_runs_on_its_own_thread() {
        let workers = Workers::start(3, Duration::from_secs(1)).unwrap();
        let (tx, rx) = mpsc::channel();
        workers.spawn_everywhere(|i| {
            let tx = tx.clone();
            async move {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((i, current(), name)).unwrap();
            }
        });
        let mut seen: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        seen.sort();
        for (i, (spawned_on, current, name)) in seen.into_iter().enumerate() {
            assert_eq!((spawned_on, current), (i, i));
            assert_eq!(
                name.as_deref(),
                Some(format!("meshcore-worker-{i}").as_str())
            );
        }
        workers.stop();
    }

    #[test]
    fn connections_go_to_the_least_loaded_worker_ties_stay_put() {
        let workers = Workers::start(3, Duration::from_secs(1)).unwrap();
        let set = workers.set().clone();
        assert_eq!(set.pick(1), 1, "all idle: no hand-off");
        let a = set.open(1);
        assert_eq!(set.pick(1), 0, "0 and 2 idle: the first of them");
        let b = set.open(0);
        assert_eq!(set.pick(1), 2);
        let c = set.open(2);
        assert_eq!(set.pick(2), 2, "all equal: stay");
        drop((a, b));
        assert_eq!(set.pick(2), 0);
        drop(c);
        workers.stop();
    }

    #[test]
    fn stop_drops_the_tasks_left_on_each_worker() {
        let workers = Workers::start(2, Duration::from_secs(1)).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        workers.spawn_everywhere(|_| {
            let tx = tx.clone();
            async move {
                let _held = tx;
                std::future::pending::<()>().await;
            }
        });
        drop(tx);
        workers.stop();
        assert!(rx.recv().is_err(), "every sender was dropped with its task");
    }

    #[test]
    fn acceptors_rotate_over_the_workers() {
        let workers = Workers::start(2, Duration::from_secs(1)).unwrap();
        let set = workers.set();
        let picks: Vec<_> = (0..4).map(|_| set.next_acceptor()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        workers.stop();
    }
}
