//! Least request as Envoy does it: power of two choices. Two endpoints are drawn at random
//! and the one with fewer requests in flight (relative to its weight) wins, which avoids
//! the herd that "always the least loaded" causes when many proxies see the same counts.

use std::sync::Arc;

use super::{EndpointLoad, WeightedRandom, two_choices};

#[derive(Debug)]
pub(crate) struct LeastRequest {
    weights: Vec<u32>,
    /// With unequal weights, candidates are drawn by weight.
    draw: Option<WeightedRandom>,
}

impl LeastRequest {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        Self {
            weights: weights.to_vec(),
            draw: (!equal).then(|| WeightedRandom::new(weights)),
        }
    }

    pub(crate) fn pick(&self, loads: &[Arc<EndpointLoad>]) -> Option<usize> {
        let n = self.weights.len().min(loads.len());
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let (a, b) = match &self.draw {
                    None => two_choices(n),
                    Some(draw) => (draw.pick()?, draw.pick()?),
                };
                let score =
                    |i: usize| (loads[i].active() as f64 + 1.0) / f64::from(self.weights[i].max(1));
                Some(if score(b) < score(a) { b } else { a })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::loads;

    #[test]
    fn the_busy_endpoint_is_never_chosen_over_an_idle_one() {
        let loads = loads(2);
        let _busy: Vec<_> = (0..5).map(|_| loads[0].start(false)).collect();
        let picker = LeastRequest::new(&[1, 1]);
        for _ in 0..100 {
            assert_eq!(picker.pick(&loads), Some(1));
        }
    }

    #[test]
    fn idle_endpoints_share_evenly() {
        let loads = loads(3);
        let picker = LeastRequest::new(&[1, 1, 1]);
        let mut seen = [0u32; 3];
        for _ in 0..3_000 {
            seen[picker.pick(&loads).unwrap()] += 1;
        }
        // Expected 1000 each, sigma ~26.
        assert!(seen.iter().all(|n| (750..=1_250).contains(n)), "{seen:?}");
    }
}
