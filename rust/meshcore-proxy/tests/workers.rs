//! Several workers: accepted connections spread over them evenly, and each worker reuses
//! its own pooled upstream connections.

mod support;

use meshcore_proxy::{DataPlane, Options};
use support::http::{
    Conn, HttpUpstream, apply_http, forward_to, http_cluster, route_config, runtime,
};

#[test]
fn connections_spread_over_workers_and_each_worker_pools_its_own_upstream_connection() {
    let rt = runtime();
    let plane = DataPlane::start(Options {
        worker_threads: 2,
        ..Options::default()
    })
    .expect("data plane starts");
    let upstream = HttpUpstream::start(&rt, "v1", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], vec![forward_to("c")])],
        vec![http_cluster("c", "http1", &[upstream.address])],
        serde_json::json!({}),
    );
    // Held open, so the balance sees them all: the first stays on the accepting worker,
    // the second goes to the other, and so on.
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::open(&rt, proxy, false)).collect();
    for round in 0..3 {
        for (i, conn) in conns.iter_mut().enumerate() {
            let reply = conn.get(&rt, "reviews", &format!("/r{round}/c{i}"));
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(reply.body, format!("v1 GET /r{round}/c{i}"));
        }
    }
    // Sequential requests: one worker would reuse a single upstream connection; two
    // workers each open and reuse their own.
    assert_eq!(
        upstream.connections(),
        2,
        "one pooled connection per worker"
    );
    let stats = plane.stats();
    assert_eq!(stats.totals.http_requests, 12);
    assert_eq!(stats.clusters[0].connections_opened, 2);
    drop(conns);
    plane.shutdown(std::time::Duration::from_secs(1));
}
