//! nginx's smooth weighted round robin: every pick raises each candidate by its weight and
//! lowers the chosen one by the total, so weights {5, 1, 1} give a a b a c a a rather than
//! a a a a a b c: the heavy endpoint's turns are spread out, and over any `total`
//! consecutive picks each endpoint is chosen exactly `weight` times.

use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub(crate) struct SmoothRoundRobin {
    weights: Vec<i64>,
    total: i64,
    /// A short uncontended lock costs less than the request that follows the pick.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(picker: &SmoothRoundRobin, n: usize) -> Vec<usize> {
        (0..n).map(|_| picker.pick().unwrap()).collect()
    }

    #[test]
    fn spreads_the_heavy_endpoint_like_nginx() {
        let picker = SmoothRoundRobin::new(&[5, 1, 1]);
        assert_eq!(sequence(&picker, 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(sequence(&picker, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn equal_weights_rotate() {
        let picker = SmoothRoundRobin::new(&[1, 1, 1]);
        assert_eq!(sequence(&picker, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn nothing_to_pick_from() {
        assert_eq!(SmoothRoundRobin::new(&[]).pick(), None);
    }
}
