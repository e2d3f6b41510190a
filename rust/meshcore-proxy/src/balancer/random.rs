//! Weighted random: each pick is independent, with probability proportional to weight.

use rand::Rng;

/// Zero weights are never chosen.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_pick_from() {
        assert_eq!(WeightedRandom::new(&[]).pick(), None);
        assert_eq!(WeightedRandom::new(&[0, 0]).pick(), None);
    }

    #[test]
    fn never_picks_a_zero_weight() {
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
