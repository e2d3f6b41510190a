//! Endpoint pickers of a cluster's `lb_policy`, and the weighted cluster picker of routes.
//!
//! Every picker returns an index into the endpoints (or weights) it was built from. The
//! load-aware ones (least request, peak EWMA) read each endpoint's [`EndpointLoad`], which
//! the request path updates; the hashing ones (ring hash, maglev) take the request's hash
//! from the cluster's hash policy and fall back to a random point without one.
//!
//! | policy | file | as in |
//! |---|---|---|
//! | `round_robin` | `round_robin.rs` | nginx's smooth weighted round robin |
//! | `random` | `random.rs` | weighted random |
//! | `least_request` | `least_request.rs` | Envoy: power of two choices on active requests |
//! | `ring_hash` | `ring_hash.rs` | Envoy's ketama-style ring, 1024 points at least |
//! | `maglev` | `maglev.rs` | Envoy: weighted Maglev table of 65537 entries |
//! | `peak_ewma` | `peak_ewma.rs` | Linkerd: P2C on peak-sensitive RTT EWMA × pending |

mod least_request;
pub(crate) mod load;
mod maglev;
mod peak_ewma;
mod random;
mod ring_hash;
mod round_robin;

use std::sync::Arc;

pub(crate) use least_request::LeastRequest;
pub(crate) use load::EndpointLoad;
pub(crate) use maglev::Maglev;
pub(crate) use peak_ewma::PeakEwma;
pub(crate) use random::WeightedRandom;
pub(crate) use ring_hash::RingHash;
pub(crate) use round_robin::SmoothRoundRobin;

/// A cluster's load-balancing policy, as the data plane implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    RoundRobin,
    Random,
    LeastRequest,
    RingHash,
    Maglev,
    PeakEwma,
}

impl From<meshcore_snapshot::LbPolicy> for Policy {
    fn from(policy: meshcore_snapshot::LbPolicy) -> Self {
        use meshcore_snapshot::LbPolicy as P;
        match policy {
            P::RoundRobin => Self::RoundRobin,
            P::Random => Self::Random,
            P::LeastRequest => Self::LeastRequest,
            P::RingHash => Self::RingHash,
            P::Maglev => Self::Maglev,
            P::PeakEwma => Self::PeakEwma,
        }
    }
}

/// An endpoint picker of a cluster's load-balancing policy.
#[derive(Debug)]
pub(crate) enum Balancer {
    RoundRobin(SmoothRoundRobin),
    Random(WeightedRandom),
    LeastRequest(LeastRequest),
    RingHash(RingHash),
    Maglev(Maglev),
    PeakEwma(PeakEwma),
}

impl Balancer {
    /// `keys` name the endpoints (their socket addresses) for the hashing policies, so the
    /// same endpoint keeps its place on the ring across applies.
    pub(crate) fn new(policy: Policy, weights: &[u32], keys: &[String]) -> Self {
        match policy {
            Policy::RoundRobin => Self::RoundRobin(SmoothRoundRobin::new(weights)),
            Policy::Random => Self::Random(WeightedRandom::new(weights)),
            Policy::LeastRequest => Self::LeastRequest(LeastRequest::new(weights)),
            Policy::RingHash => Self::RingHash(RingHash::new(weights, keys)),
            Policy::Maglev => Self::Maglev(Maglev::new(weights, keys)),
            Policy::PeakEwma => Self::PeakEwma(PeakEwma::new(weights.len())),
        }
    }

    /// The endpoint for a request (or connection). `hash` is the hash policy's value, if
    /// it produced one; `loads` are the endpoints' live loads, in the same order.
    pub(crate) fn pick(&self, hash: Option<u64>, loads: &[Arc<EndpointLoad>]) -> Option<usize> {
        match self {
            Self::RoundRobin(picker) => picker.pick(),
            Self::Random(picker) => picker.pick(),
            Self::LeastRequest(picker) => picker.pick(loads),
            Self::RingHash(picker) => picker.pick(hash.unwrap_or_else(rand::random)),
            Self::Maglev(picker) => picker.pick(hash.unwrap_or_else(rand::random)),
            Self::PeakEwma(picker) => picker.pick(loads),
        }
    }
}

/// A 64-bit hash that is the same in every process and every release (unlike std's
/// `DefaultHasher`), so that consistent hashing stays consistent across proxies: FNV-1a,
/// then the splitmix64 finaliser to spread FNV's weak low bits.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two distinct random indices below `n` (n ≥ 2), for power-of-two-choices pickers.
fn two_choices(n: usize) -> (usize, usize) {
    use rand::Rng;
    let mut rng = rand::rng();
    let a = rng.random_range(0..n);
    let b = (a + rng.random_range(1..n)) % n;
    (a, b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn loads(n: usize) -> Vec<Arc<EndpointLoad>> {
        (0..n).map(|_| Arc::new(EndpointLoad::default())).collect()
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(b"user-1"), stable_hash(b"user-1"));
        assert_ne!(stable_hash(b"user-1"), stable_hash(b"user-2"));
    }

    #[test]
    fn two_choices_are_distinct() {
        for _ in 0..1000 {
            let (a, b) = two_choices(2);
            assert_ne!(a, b);
        }
    }
}
