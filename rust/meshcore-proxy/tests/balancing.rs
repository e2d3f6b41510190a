//! How connections spread: weighted clusters of a route, and endpoints of a cluster by
//! lb_policy and endpoint weight.

mod support;

use std::net::SocketAddr;

use support::*;

/// Opens `n` connections one after another and counts which tagged endpoint answered.
fn tags_of(address: SocketAddr, n: usize) -> [usize; 256] {
    let mut counts = [0usize; 256];
    for _ in 0..n {
        let mut client = connect(address);
        counts[usize::from(read_byte(&mut client))] += 1;
    }
    counts
}

/// `observed` is within five standard deviations of a binomial(n, p) count.
fn within_five_sigma(observed: usize, n: usize, p: f64) -> bool {
    let n = n as f64;
    let mean = n * p;
    let sigma = (n * p * (1.0 - p)).sqrt();
    (observed as f64 - mean).abs() <= 5.0 * sigma
}

#[test]
fn a_90_10_route_splits_connections_by_weight() {
    const N: usize = 2_000;
    let upstreams = Upstreams::new();
    let plane = start();
    let port = free_port();
    plane
        .apply_json(&snapshot(
            "v1",
            vec![listener("main", port, &[("major", 90), ("minor", 10)], 0)],
            vec![
                cluster("major", "round_robin", &[(upstreams.tagged_echo(1), 1)]),
                cluster("minor", "round_robin", &[(upstreams.tagged_echo(2), 1)]),
            ],
        ))
        .expect("snapshot applies");
    let counts = tags_of(SocketAddr::from(([127, 0, 0, 1], port)), N);
    assert_eq!(counts[1] + counts[2], N);
    assert!(
        within_five_sigma(counts[2], N, 0.1),
        "minor got {} of {N}",
        counts[2]
    );
    let stats = plane.stats();
    assert_eq!(
        cluster_stats(&stats, "major").connections_opened,
        counts[1] as u64
    );
    assert_eq!(
        cluster_stats(&stats, "minor").connections_opened,
        counts[2] as u64
    );
}

#[test]
fn round_robin_with_equal_weights_is_exactly_even() {
    let upstreams = Upstreams::new();
    let plane = start();
    let endpoints: Vec<_> = (1..=3).map(|tag| (upstreams.tagged_echo(tag), 1)).collect();
    let address = apply_single_route(&plane, &endpoints, 0);
    let counts = tags_of(address, 30);
    assert_eq!(counts[1..=3], [10, 10, 10]);
}

#[test]
fn round_robin_honours_endpoint_weights() {
    let upstreams = Upstreams::new();
    let plane = start();
    let endpoints = [(upstreams.tagged_echo(1), 3), (upstreams.tagged_echo(2), 1)];
    let address = apply_single_route(&plane, &endpoints, 0);
    let counts = tags_of(address, 40);
    assert_eq!(counts[1..=2], [30, 10]);
}

#[test]
fn random_honours_endpoint_weights() {
    const N: usize = 2_000;
    let upstreams = Upstreams::new();
    let plane = start();
    let port = free_port();
    plane
        .apply_json(&snapshot(
            "v1",
            vec![listener("main", port, &[("backend", 1)], 0)],
            vec![cluster(
                "backend",
                "random",
                &[(upstreams.tagged_echo(1), 3), (upstreams.tagged_echo(2), 1)],
            )],
        ))
        .expect("snapshot applies");
    let counts = tags_of(SocketAddr::from(([127, 0, 0, 1], port)), N);
    assert_eq!(counts[1] + counts[2], N);
    assert!(
        within_five_sigma(counts[2], N, 0.25),
        "light endpoint got {} of {N}",
        counts[2]
    );
}
