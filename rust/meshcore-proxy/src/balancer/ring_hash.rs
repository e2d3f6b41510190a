//! Envoy's ring hash: each endpoint owns points on a 64-bit ring in proportion to its
//! weight (at least 1024 points in all); a request goes to the first point at or after
//! its hash. Adding or removing an endpoint moves only the keys next to its points.

use super::stable_hash;

/// Envoy's `minimum_ring_size` default.
const MIN_RING_SIZE: u64 = 1024;

#[derive(Debug)]
pub(crate) struct RingHash {
    /// (point, endpoint index), sorted by point.
    ring: Vec<(u64, usize)>,
}

impl RingHash {
    pub(crate) fn new(weights: &[u32], keys: &[String]) -> Self {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut ring = Vec::new();
        if total > 0 {
            for (i, (weight, key)) in weights.iter().zip(keys).enumerate() {
                let points = (MIN_RING_SIZE * u64::from(*weight)).div_ceil(total);
                for replica in 0..points {
                    ring.push((stable_hash(format!("{key}_{replica}").as_bytes()), i));
                }
            }
        }
        ring.sort_unstable();
        Self { ring }
    }

    pub(crate) fn pick(&self, hash: u64) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let at = self.ring.partition_point(|(point, _)| *point < hash);
        Some(self.ring[at % self.ring.len()].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    #[test]
    fn the_same_key_goes_to_the_same_endpoint() {
        let ring = RingHash::new(&[1, 1, 1], &keys(3));
        for user in 0..100 {
            let hash = stable_hash(format!("user-{user}").as_bytes());
            assert_eq!(ring.pick(hash), ring.pick(hash));
        }
    }

    #[test]
    fn removing_an_endpoint_moves_few_other_keys() {
        // The remaining endpoints get more points (the ring keeps its size), so a few of
        // their keys move between them too, as in Envoy; far fewer than a modulo hash moves.
        let before = RingHash::new(&[1, 1, 1], &keys(3));
        let after = RingHash::new(&[1, 1], &keys(2));
        let (mut kept, mut moved) = (0, 0);
        for user in 0..3_000 {
            let hash = stable_hash(format!("user-{user}").as_bytes());
            let was = before.pick(hash).unwrap();
            if was != 2 {
                kept += 1;
                if after.pick(hash) != Some(was) {
                    moved += 1;
                }
            }
        }
        assert!(moved * 5 < kept, "{moved} of {kept} kept keys moved");
    }

    #[test]
    fn keys_spread_by_weight() {
        let ring = RingHash::new(&[1, 3], &keys(2));
        let mut seen = [0u32; 2];
        for user in 0..4_000 {
            seen[ring
                .pick(stable_hash(format!("u{user}").as_bytes()))
                .unwrap()] += 1;
        }
        assert!((600..=1_400).contains(&seen[0]), "{seen:?}");
    }
}
