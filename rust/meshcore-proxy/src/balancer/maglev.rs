//! Envoy's Maglev: a lookup table of 65537 entries (a prime) that endpoints fill in turn
//! from their own permutation of it, each taking turns in proportion to its weight. A
//! request's hash indexes the table: O(1) picks and near-minimal disruption on change.

use super::stable_hash;

/// Envoy's default table size.
const TABLE_SIZE: u64 = 65_537;

#[derive(Debug)]
pub(crate) struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    pub(crate) fn new(weights: &[u32], keys: &[String]) -> Self {
        let max_weight = weights.iter().copied().max().unwrap_or(0);
        let live: Vec<usize> = (0..weights.len().min(keys.len()))
            .filter(|i| weights[*i] > 0)
            .collect();
        if live.is_empty() || max_weight == 0 {
            return Self { table: Vec::new() };
        }
        let size = TABLE_SIZE as usize;
        let permutation: Vec<(u64, u64)> = live
            .iter()
            .map(|i| {
                let key = keys[*i].as_bytes();
                let offset = stable_hash(key) % TABLE_SIZE;
                let skip = stable_hash(&[key, b"#skip"].concat()) % (TABLE_SIZE - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; live.len()];
        let mut credit = vec![0f64; live.len()];
        let mut table = vec![u32::MAX; size];
        let mut filled = 0;
        while filled < size {
            for (slot, endpoint) in live.iter().enumerate() {
                credit[slot] += f64::from(weights[*endpoint]) / f64::from(max_weight);
                if credit[slot] < 1.0 {
                    continue;
                }
                credit[slot] -= 1.0;
                let (offset, skip) = permutation[slot];
                loop {
                    let entry = ((offset + next[slot] * skip) % TABLE_SIZE) as usize;
                    next[slot] += 1;
                    if table[entry] == u32::MAX {
                        table[entry] = *endpoint as u32;
                        filled += 1;
                        break;
                    }
                }
                if filled == size {
                    break;
                }
            }
        }
        Self { table }
    }

    pub(crate) fn pick(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(hash % TABLE_SIZE) as usize] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    #[test]
    fn entries_follow_weights() {
        let maglev = Maglev::new(&[1, 2, 1], &keys(3));
        let mut seen = [0u32; 3];
        for entry in &maglev.table {
            seen[*entry as usize] += 1;
        }
        // Exact shares are 16384 / 32768 / 16384.
        assert!(
            (seen[1] as f64 / seen[0] as f64 - 2.0).abs() < 0.05,
            "{seen:?}"
        );
    }

    #[test]
    fn removing_an_endpoint_moves_few_other_keys() {
        let before = Maglev::new(&[1, 1, 1, 1], &keys(4));
        let after = Maglev::new(&[1, 1, 1], &keys(3));
        let mut moved = 0;
        for user in 0..2_000 {
            let hash = stable_hash(format!("user-{user}").as_bytes());
            let was = before.pick(hash).unwrap();
            if was != 3 && after.pick(hash) != Some(was) {
                moved += 1;
            }
        }
        assert!(moved < 200, "{moved} of the kept keys moved");
    }
}
