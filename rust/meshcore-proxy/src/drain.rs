//! Connection tracking for graceful shutdown.
//!
//! Every proxied connection runs as a task of one [`TaskTracker`], and races its work
//! against one force-close [`CancellationToken`]. Draining waits for the tracker to empty
//! for the grace period, then cancels the token: each remaining connection drops both of
//! its sockets at its next poll, and the count of those is the shutdown report.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long force-closed connections get to drop their sockets before the runtime stops.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub(crate) struct Drain {
    connections: TaskTracker,
    force_close: CancellationToken,
}

/// What a drain found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DrainOutcome {
    pub(crate) in_flight: u64,
    pub(crate) force_closed: u64,
}

impl Drain {
    /// Runs one connection as a tracked task on the current runtime; it is dropped (and its
    /// sockets closed) when the force-close token fires.
    pub(crate) fn spawn_connection(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let force_close = self.force_close.clone();
        self.connections.spawn(async move {
            tokio::select! {
                () = connection => {}
                () = force_close.cancelled() => {}
            }
        });
    }

    /// Waits up to `grace` for tracked connections to end, then force-closes the rest.
    /// Callers stop every accept loop first, so no connection starts meanwhile.
    pub(crate) async fn drain(&self, grace: Duration) -> DrainOutcome {
        self.connections.close();
        let in_flight = self.connections.len() as u64;
        info!(in_flight, ?grace, "draining connections");
        if tokio::time::timeout(grace, self.connections.wait())
            .await
            .is_ok()
        {
            return DrainOutcome {
                in_flight,
                force_closed: 0,
            };
        }
        let force_closed = self.connections.len() as u64;
        info!(force_closed, "grace period over; force-closing connections");
        self.force_close.cancel();
        if tokio::time::timeout(FORCE_CLOSE_WAIT, self.connections.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.connections.len(),
                "connections still open after force-close; the runtime will drop them"
            );
        }
        DrainOutcome {
            in_flight,
            force_closed,
        }
    }
}
