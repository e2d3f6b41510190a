//! Weighted pickers: smooth weighted round robin (as nginx does it) and weighted random.
//!
//! Both return an index into the weights they were built from, so the same pickers choose
//! a cluster of a route and an endpoint of a cluster.

use std::sync::{Mutex, PoisonError};

use rand::Rng;

/// Chooses with probability proportional to weight. Zero weights are never chosen.
#[derive(Debug)]
pub(crate) struct WeightedRandom {
    /// Running sums of the weights; the last one is the total.
    cumulative: Vec<u64>,
}

impl WeightedRandom {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let mut sum = 0u64;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += u64::from(*w);
                sum
            })
            .collect();
        Self { cumulative }
    }

    pub(crate) fn pick(&self) -> Option<usize> {
        let total = self.cumulative.last().copied().filter(|t| *t > 0)?;
        let point = rand::rng().random_range(0..total);
        Some(self.cumulative.partition_point(|sum| *sum <= point))
    }
}

/// nginx's smooth weighted round robin: every pick raises each candidate by its weight and
/// lowers the chosen one by the total, so weights {5, 1, 1} give a a b a c a a rather than
/// a a a a a b c: the heavy endpoint's turns are spread out, and over any `total`
/// consecutive picks each endpoint is chosen exactly `weight` times.
#[derive(Debug)]
pub(crate) struct SmoothRoundRobin {
    weights: Vec<i64>,
    total: i64,
    /// Picks are once per connection, so a short uncontended lock costs less than the
    /// connect that follows it.
    current: Mutex<Vec<i64>>,
}

impl SmoothRoundRobin {
    pub(crate) fn new(weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|w| i64::from(*w)).collect();
        let total = weights.iter().sum();
        let current = Mutex::new(vec![0; weights.len()]);
        Self {
            weights,
            total,
            current,
        }
    }

    pub(crate) fn pick(&self) -> Option<usize> {
        if self.total <= 0 {
            return None;
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut best: Option<(usize, i64)> = None;
        for (i, (value, weight)) in current.iter_mut().zip(&self.weights).enumerate() {
            *value += weight;
            if *weight > 0 && best.is_none_or(|(_, top)| *value > top) {
                best = Some((i, *value));
            }
        }
        let (chosen, _) = best?;
        current[chosen] -= self.total;
        Some(chosen)
    }
}

/// An endpoint picker of a cluster's load-balancing policy.
#[derive(Debug)]
pub(crate) enum Balancer {
    RoundRobin(SmoothRoundRobin),
    Random(WeightedRandom),
}

impl Balancer {
    pub(crate) fn new(policy: meshcore_snapshot::LbPolicy, weights: &[u32]) -> Self {
        match policy {
            meshcore_snapshot::LbPolicy::RoundRobin => {
                Self::RoundRobin(SmoothRoundRobin::new(weights))
            }
            meshcore_snapshot::LbPolicy::Random => Self::Random(WeightedRandom::new(weights)),
        }
    }

    pub(crate) fn pick(&self) -> Option<usize> {
        match self {
            Self::RoundRobin(picker) => picker.pick(),
            Self::Random(picker) => picker.pick(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(picker: &SmoothRoundRobin, n: usize) -> Vec<usize> {
        (0..n).map(|_| picker.pick().unwrap()).collect()
    }

    #[test]
    fn smooth_round_robin_spreads_the_heavy_endpoint_like_nginx() {
        let picker = SmoothRoundRobin::new(&[5, 1, 1]);
        assert_eq!(sequence(&picker, 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(sequence(&picker, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn smooth_round_robin_with_equal_weights_rotates() {
        let picker = SmoothRoundRobin::new(&[1, 1, 1]);
        assert_eq!(sequence(&picker, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn nothing_to_pick_from() {
        assert_eq!(SmoothRoundRobin::new(&[]).pick(), None);
        assert_eq!(WeightedRandom::new(&[]).pick(), None);
        assert_eq!(WeightedRandom::new(&[0, 0]).pick(), None);
    }

    #[test]
    fn weighted_random_never_picks_a_zero_weight() {
        let picker = WeightedRandom::new(&[0, 3, 0, 1]);
        let mut seen = [0u32; 4];
        for _ in 0..4_000 {
            seen[picker.pick().unwrap()] += 1;
        }
        assert_eq!(seen[0], 0);
        assert_eq!(seen[2], 0);
        // Expected 3000 / 1000, sigma ~27: 10 sigma of slack keeps this from flaking.
        assert!((2_700..=3_300).contains(&seen[1]), "{seen:?}");
    }
}
