//! The requests in flight on a downstream HTTP connection, and what ends the connection
//! besides its client: the listener's idle timeout (Envoy's HTTP idle timeout, the time
//! with no active request) and the drain of its direction.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Resolves when the connection should stop taking requests: `true` when no request has
/// been in flight for `idle_timeout`, `false` when `draining` fires.
pub(crate) async fn stopped(
    activity: &Activity,
    idle_timeout: Option<Duration>,
    draining: &CancellationToken,
) -> bool {
    let idle = async {
        match idle_timeout {
            Some(timeout) => activity.idle_for(timeout).await,
            None => std::future::pending().await,
        }
    };
    // Biased: no random branch order to draw on every poll of the connection.
    tokio::select! {
        biased;
        () = idle => true,
        () = draining.cancelled() => false,
    }
}

/// The requests in flight on one connection, for its idle timeout: Envoy's HTTP idle
/// timeout, the time with no active request (not with no bytes, as for opaque TCP).
///
/// The request path only counts (an atomic in-flight count and when the last request
/// ended); nothing is notified. The idle timer is one `Sleep` per connection that looks
/// at the counts when it fires and re-arms itself.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended, in microseconds since `epoch`.
    last_end: AtomicU64,
    epoch: tokio::time::Instant,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn start(self: &Arc<Self>) -> ActiveRequest {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ActiveRequest(Arc::clone(self))
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(sleep);
        loop {
            sleep.as_mut().await;
            let now = tokio::time::Instant::now();
            let deadline = if self.in_flight.load(Ordering::Acquire) > 0 {
                now + timeout
            } else {
                self.epoch + Duration::from_micros(self.last_end.load(Ordering::Acquire)) + timeout
            };
            if deadline <= now {
                return;
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

/// One request of a connection, from its headers to the end of its response body.
#[derive(Debug)]
pub(crate) struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = u64::try_from(activity.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        activity.last_end.fetch_max(ended, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A future polled only after its own waker fired: the connection's task is woken for
/// every read and write, and polling the idle timer and the drain token on each of those
/// wake-ups cost more than the rest of the supervision (callgrind: about 1,100
/// instructions per request). As `FuturesUnordered` does, the inner future gets a waker of
/// its own that records the wake-up and passes it on to the task.
pub(crate) struct Dormant<F> {
    future: F,
    signal: Arc<Signal>,
}

impl<F> std::fmt::Debug for Dormant<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dormant")
            .field("woken", &self.signal.woken)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Signal {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

impl<F: Future + Unpin> Dormant<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            future,
            // Woken at first: the first poll registers the inner future's interest.
            signal: Arc::new(Signal {
                woken: AtomicBool::new(true),
                task: Mutex::new(None),
            }),
        }
    }
}

impl<F: Future + Unpin> Future for Dormant<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            // The task to wake is kept current (it is the same on every poll of one task).
            let mut task = this
                .signal
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(Arc::clone(&this.signal));
        Pin::new(&mut this.future).poll(&mut Context::from_waker(&waker))
    }
}
