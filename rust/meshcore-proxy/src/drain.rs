//! Connection tracking for draining (one direction, Istio's sidecar shutdown) and for
//! graceful shutdown.
//!
//! Every proxied connection runs as a task of one [`TaskTracker`] and races its work
//! against one force-close [`CancellationToken`]. Each connection, and each HTTP request in
//! flight on it, is also counted under its listener's [`Direction`], and each direction has
//! a *draining* token that the HTTP server of every connection of that direction watches:
//! when it fires, HTTP/2 connections send GOAWAY and finish their streams, HTTP/1
//! connections answer the request in progress with `Connection: close` and close, and idle
//! keep-alive connections close at once. Opaque TCP and upgraded connections (WebSocket,
//! CONNECT) cannot be told to stop; they run until they end or are force-closed.
//!
//! - [`Drain::start_draining`] (the data plane's `drain(direction)`, after it stopped that
//!   direction's accept loops) fires one direction's token; it stays fired.
//! - [`Drain::drain`] (shutdown, after every accept loop stopped) fires both, waits for the
//!   tracker to empty for the grace period, then cancels the force-close token: each
//!   remaining connection drops both of its sockets at its next poll, and the count of
//!   those is the shutdown report.
//! - [`Drain::active`] is what an agent polls to exit as soon as nothing is in flight
//!   rather than after a fixed sleep.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use meshcore_snapshot::Direction;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long force-closed connections get to drop their sockets before the runtime stops.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub(crate) struct Drain {
    connections: TaskTracker,
    force_close: CancellationToken,
    inbound: Arc<DirectionState>,
    outbound: Arc<DirectionState>,
}

/// One direction's counts and draining signal.
#[derive(Debug, Default)]
pub(crate) struct DirectionState {
    connections: AtomicU64,
    requests: AtomicU64,
    draining: CancellationToken,
}

impl DirectionState {
    /// Counts one HTTP request until the guard is dropped (when its response body ends).
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        InFlight::open(self, Counted::Request)
    }

    /// Fires when the direction starts draining (or the data plane shuts down).
    pub(crate) fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    fn active(&self) -> u64 {
        self.connections.load(Ordering::Acquire) + self.requests.load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone, Copy)]
enum Counted {
    Connection,
    Request,
}

/// A connection or request counted under its direction while it lives.
#[derive(Debug)]
pub(crate) struct InFlight {
    state: Arc<DirectionState>,
    counted: Counted,
}

impl InFlight {
    fn open(state: &Arc<DirectionState>, counted: Counted) -> Self {
        Self::counter(state, counted).fetch_add(1, Ordering::AcqRel);
        Self {
            state: Arc::clone(state),
            counted,
        }
    }

    fn counter(state: &DirectionState, counted: Counted) -> &AtomicU64 {
        match counted {
            Counted::Connection => &state.connections,
            Counted::Request => &state.requests,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Self::counter(&self.state, self.counted).fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a drain found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DrainOutcome {
    pub(crate) in_flight: u64,
    pub(crate) force_closed: u64,
}

impl Drain {
    /// The counts and draining signal of connections accepted by `direction`'s listeners.
    pub(crate) fn direction(&self, direction: Direction) -> &Arc<DirectionState> {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// Runs one connection (an accepted one, or an upgraded one that outlives its HTTP
    /// connection) as a tracked task on the current runtime, counted under `direction`. It
    /// is dropped (and its sockets closed) when the force-close token fires.
    pub(crate) fn spawn_connection(
        &self,
        direction: Direction,
        connection: impl Future<Output = ()> + Send + 'static,
    ) {
        self.connections.spawn(self.tracked(direction, connection));
    }

    /// [`Drain::spawn_connection`] on another worker's runtime.
    pub(crate) fn spawn_connection_on(
        &self,
        direction: Direction,
        runtime: &tokio::runtime::Handle,
        connection: impl Future<Output = ()> + Send + 'static,
    ) {
        self.connections
            .spawn_on(self.tracked(direction, connection), runtime);
    }

    /// `connection`, counted under `direction` until it ends, and ended by force-close.
    fn tracked(
        &self,
        direction: Direction,
        connection: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let counted = InFlight::open(self.direction(direction), Counted::Connection);
        let force_close = self.force_close.clone();
        // Boxed: an async block awaiting a future it captured keeps it twice (the capture
        // and the awaited copy), which an idle connection would pay for its whole life.
        let connection = Box::pin(connection);
        async move {
            tokio::select! {
                () = connection => {}
                () = force_close.cancelled() => {}
            }
            drop(counted);
        }
    }

    /// Tells `direction`'s HTTP connections to finish what they are doing and close.
    pub(crate) fn start_draining(&self, direction: Direction) {
        self.direction(direction).draining.cancel();
    }

    pub(crate) fn is_draining(&self, direction: Direction) -> bool {
        self.direction(direction).draining.is_cancelled()
    }

    /// Downstream connections plus HTTP requests in flight, of one direction or both.
    pub(crate) fn active(&self, direction: Option<Direction>) -> u64 {
        match direction {
            Some(direction) => self.direction(direction).active(),
            None => self.inbound.active() + self.outbound.active(),
        }
    }

    /// Asks every HTTP connection to close gracefully, waits up to `grace` for tracked
    /// connections to end, then force-closes the rest. Callers stop every accept loop
    /// first, so no connection starts meanwhile.
    pub(crate) async fn drain(&self, grace: Duration) -> DrainOutcome {
        self.connections.close();
        let in_flight = self.connections.len() as u64;
        info!(in_flight, ?grace, "draining connections");
        self.start_draining(Direction::Inbound);
        self.start_draining(Direction::Outbound);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_by_direction_and_drains_one_direction_only() {
        let drain = Drain::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        drain.spawn_connection(Direction::Inbound, async move {
            let _ = released.await;
        });
        let request = drain.direction(Direction::Outbound).request();
        assert_eq!(drain.active(Some(Direction::Inbound)), 1);
        assert_eq!(drain.active(Some(Direction::Outbound)), 1);
        assert_eq!(drain.active(None), 2);

        drain.start_draining(Direction::Inbound);
        assert!(drain.is_draining(Direction::Inbound));
        assert!(!drain.is_draining(Direction::Outbound));

        drop(request);
        release.send(()).unwrap();
        drain.connections.close();
        drain.connections.wait().await;
        assert_eq!(drain.active(None), 0);
    }
}
