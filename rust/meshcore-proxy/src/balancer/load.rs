//! What the load-aware policies know about an endpoint: requests in flight and a
//! peak-sensitive moving average of response time. Shared by the cluster's balancer and
//! its connection pool, and carried across applies with the endpoint's address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Linkerd's default: an endpoint with no sample yet is assumed to answer in 30 ms.
const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Linkerd's default decay: old samples lose weight with a 10 s time constant.
const DECAY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct EndpointLoad {
    active: AtomicU64,
    rtt: Mutex<Option<Ewma>>,
}

#[derive(Debug, Clone, Copy)]
struct Ewma {
    nanos: f64,
    updated: Instant,
}

impl EndpointLoad {
    pub(crate) fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops; `timed` when its round trip
    /// will be observed (the peak-EWMA balancer), the only reader of the clock here.
    pub(crate) fn start(self: &std::sync::Arc<Self>, timed: bool) -> InFlight {
        self.active.fetch_add(1, Ordering::Relaxed);
        InFlight {
            load: std::sync::Arc::clone(self),
            started: timed.then(Instant::now),
        }
    }

    /// Peak-sensitive EWMA: a slower sample replaces the estimate at once, a faster one
    /// pulls it down with weight decaying over [`DECAY`].
    fn observe(&self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        let mut ewma = self.rtt.lock().unwrap_or_else(PoisonError::into_inner);
        *ewma = Some(match *ewma {
            Some(previous) if sample < previous.nanos => {
                let elapsed = now
                    .saturating_duration_since(previous.updated)
                    .as_secs_f64();
                let keep = (-elapsed / DECAY.as_secs_f64()).exp();
                Ewma {
                    nanos: previous.nanos * keep + sample * (1.0 - keep),
                    updated: now,
                }
            }
            _ => Ewma {
                nanos: sample,
                updated: now,
            },
        });
    }

    /// Linkerd's cost: estimated RTT × (requests in flight + 1).
    pub(crate) fn cost(&self) -> f64 {
        let rtt = self
            .rtt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(DEFAULT_RTT.as_nanos() as f64, |e| e.nanos);
        rtt * (self.active() as f64 + 1.0)
    }

    #[cfg(test)]
    pub(crate) fn set_rtt(&self, rtt: Duration) {
        *self.rtt.lock().unwrap_or_else(PoisonError::into_inner) = Some(Ewma {
            nanos: rtt.as_nanos() as f64,
            updated: Instant::now(),
        });
    }
}

/// A request in flight to an endpoint.
#[derive(Debug)]
pub(crate) struct InFlight {
    load: std::sync::Arc<EndpointLoad>,
    started: Option<Instant>,
}

impl InFlight {
    /// The response head arrived: a round-trip sample for the EWMA.
    pub(crate) fn responded(&self) {
        if let Some(started) = self.started {
            let now = Instant::now();
            self.load.observe(now - started, now);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slower_sample_is_taken_at_once_a_faster_one_decays_in() {
        let load = EndpointLoad::default();
        let t0 = Instant::now();
        load.observe(Duration::from_millis(10), t0);
        load.observe(Duration::from_millis(50), t0);
        assert!((load.cost() - 50e6).abs() < 1.0);
        load.observe(Duration::from_millis(10), t0 + Duration::from_secs(10));
        let cost = load.cost();
        assert!(cost < 50e6 && cost > 10e6, "{cost}");
    }
}
