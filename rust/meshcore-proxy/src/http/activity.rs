//! The requests in flight on a downstream HTTP connection, and what ends the connection
//! besides its client: the listener's idle timeout (Envoy's HTTP idle timeout, the time
//! with no active request) and the drain of its direction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
