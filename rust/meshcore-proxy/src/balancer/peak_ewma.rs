//! Linkerd's balancer: power of two choices on each endpoint's cost, its peak-sensitive
//! RTT moving average times (requests in flight + 1). A slow endpoint's cost jumps at its
//! first slow answer and comes back down only as fast answers accumulate.

use std::sync::Arc;

use super::{EndpointLoad, two_choices};

#[derive(Debug)]
pub(crate) struct PeakEwma {
    endpoints: usize,
}

impl PeakEwma {
    pub(crate) fn new(endpoints: usize) -> Self {
        Self { endpoints }
    }

    pub(crate) fn pick(&self, loads: &[Arc<EndpointLoad>]) -> Option<usize> {
        let n = self.endpoints.min(loads.len());
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let (a, b) = two_choices(n);
                Some(if loads[b].cost() < loads[a].cost() {
                    b
                } else {
                    a
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::balancer::tests::loads;

    #[test]
    fn prefers_the_faster_endpoint() {
        let loads = loads(2);
        loads[0].set_rtt(Duration::from_millis(200));
        loads[1].set_rtt(Duration::from_millis(2));
        let picker = PeakEwma::new(2);
        for _ in 0..100 {
            assert_eq!(picker.pick(&loads), Some(1));
        }
    }

    #[test]
    fn pending_requests_raise_the_cost() {
        let loads = loads(2);
        loads[0].set_rtt(Duration::from_millis(10));
        loads[1].set_rtt(Duration::from_millis(10));
        let _pending: Vec<_> = (0..3).map(|_| loads[1].start(false)).collect();
        assert_eq!(PeakEwma::new(2).pick(&loads), Some(0));
    }
}
