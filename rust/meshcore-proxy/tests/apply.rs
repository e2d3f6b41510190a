//! Apply semantics: listeners reconciled by socket, all-or-nothing binds, invalid snapshots
//! rejected, counters kept across applies.

mod support;

use std::net::{SocketAddr, TcpListener as StdListener};

use meshcore_proxy::ApplyError;
use support::*;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn an_unchanged_socket_keeps_its_connections_while_name_and_route_change() {
    let upstreams = Upstreams::new();
    let plain = upstreams.echo();
    let tagged = upstreams.tagged_echo(7);
    let plane = start();
    let (port, other_port) = (free_port(), free_port());
    plane
        .apply_json(&snapshot(
            "v1",
            vec![listener("main", port, &[("plain", 1)], 0)],
            vec![cluster("plain", "round_robin", &[(plain, 1)])],
        ))
        .expect("v1 applies");
    let mut before = connect(local(port));
    assert_eq!(round_trip(&mut before, b"one"), b"one");

    let version = plane
        .apply_json(&snapshot(
            "v2",
            vec![
                listener("renamed", port, &[("tagged", 1)], 0),
                listener("other", other_port, &[("plain", 1)], 0),
            ],
            vec![
                cluster("plain", "round_robin", &[(plain, 1)]),
                cluster("tagged", "round_robin", &[(tagged, 1)]),
            ],
        ))
        .expect("v2 applies");
    assert_eq!(version, "v2");

    // The connection from before keeps the route it started with.
    assert_eq!(round_trip(&mut before, b"two"), b"two");
    // A new connection on the same socket takes the new route.
    let mut after = connect(local(port));
    assert_eq!(read_byte(&mut after), 7);
    assert_eq!(plane.local_addr("renamed"), Some(local(port)));
    assert_eq!(plane.local_addr("main"), None);
    assert_eq!(plane.local_addr("other"), Some(local(other_port)));

    let stats = plane.stats();
    let serving = &stats.listeners[0];
    assert_eq!(
        (serving.name.as_str(), serving.port, serving.draining),
        ("renamed", port, false)
    );
    assert_eq!(
        serving.connections_opened, 2,
        "the socket's counters carry over"
    );
    assert_eq!(serving.connections_active, 2);
    assert_eq!(
        cluster_stats(&stats, "plain").connections_opened,
        1,
        "cluster counters carry over"
    );
    assert_eq!(stats.version.as_deref(), Some("v2"));
    assert_eq!(stats.applies_accepted, 2);
}

#[test]
fn a_removed_listener_stops_accepting_while_its_connection_keeps_working() {
    let upstreams = Upstreams::new();
    let echo = upstreams.echo();
    let plane = start();
    let (kept, removed) = (free_port(), free_port());
    let backend = || vec![cluster("backend", "round_robin", &[(echo, 1)])];
    plane
        .apply_json(&snapshot(
            "v1",
            vec![
                listener("kept", kept, &[("backend", 1)], 0),
                listener("removed", removed, &[("backend", 1)], 0),
            ],
            backend(),
        ))
        .expect("v1 applies");
    let mut open = connect(local(removed));
    assert_eq!(round_trip(&mut open, b"before"), b"before");

    plane
        .apply_json(&snapshot(
            "v2",
            vec![listener("kept", kept, &[("backend", 1)], 0)],
            backend(),
        ))
        .expect("v2 applies");

    assert!(
        refuses_connections(local(removed)),
        "removed port still accepts"
    );
    assert!(
        StdListener::bind(local(removed)).is_ok(),
        "removed port is not free"
    );
    assert_eq!(round_trip(&mut open, b"after"), b"after");
    let stats = plane.stats();
    let draining = stats
        .listeners
        .iter()
        .find(|l| l.name == "removed")
        .expect("draining listed");
    assert!(draining.draining);
    assert_eq!(draining.connections_active, 1);
    assert_eq!(plane.local_addr("removed"), None);

    drop(open);
    assert!(eventually(|| plane
        .stats()
        .listeners
        .iter()
        .all(|l| l.name != "removed")));
    let mut fresh = connect(local(kept));
    assert_eq!(round_trip(&mut fresh, b"kept"), b"kept");
}

#[test]
fn a_failed_bind_rejects_the_whole_apply_and_the_old_config_keeps_serving() {
    let upstreams = Upstreams::new();
    let echo = upstreams.echo();
    let plane = start();
    let (port, would_bind) = (free_port(), free_port());
    let held = StdListener::bind("127.0.0.1:0").expect("hold a port");
    let held_port = held.local_addr().expect("held address").port();
    let backend = || vec![cluster("backend", "round_robin", &[(echo, 1)])];
    plane
        .apply_json(&snapshot(
            "v1",
            vec![listener("main", port, &[("backend", 1)], 0)],
            backend(),
        ))
        .expect("v1 applies");

    let error = plane
        .apply_json(&snapshot(
            "v2",
            vec![
                listener("main", port, &[("backend", 1)], 0),
                listener("fine", would_bind, &[("backend", 1)], 0),
                listener("taken", held_port, &[("backend", 1)], 0),
            ],
            backend(),
        ))
        .expect_err("v2 is rejected");
    assert!(matches!(error, ApplyError::Bind { .. }), "{error:?}");
    assert_eq!(error.path(), "listeners[2].port");
    assert_eq!(error.code(), "bind_failed");
    let expected = format!("listeners[2].port: cannot bind 127.0.0.1:{held_port}: ");
    assert!(error.to_string().starts_with(&expected), "{error}");

    // Nothing of v2 happened: its other new socket was closed again, v1 still serves.
    assert!(
        StdListener::bind(local(would_bind)).is_ok(),
        "a socket of the rejected apply stayed bound"
    );
    let mut client = connect(local(port));
    assert_eq!(round_trip(&mut client, b"still v1"), b"still v1");
    let stats = plane.stats();
    assert_eq!(stats.version.as_deref(), Some("v1"));
    assert_eq!((stats.applies_accepted, stats.applies_rejected), (1, 1));
    assert_eq!(stats.listeners.len(), 1);
    assert_eq!(
        plane.config_dump().map(|s| s.version),
        Some("v1".to_string())
    );
    drop(held);
}

#[test]
fn an_invalid_snapshot_is_rejected_and_the_old_config_keeps_serving() {
    let upstreams = Upstreams::new();
    let plane = start();
    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);

    let syntax = plane.apply_json(b"{not json").expect_err("not JSON");
    assert!(matches!(syntax, ApplyError::Invalid(_)));
    assert_eq!(syntax.code(), "syntax");

    let unknown = plane
        .apply_json(&snapshot(
            "v2",
            vec![listener("main", free_port(), &[("missing", 1)], 0)],
            vec![],
        ))
        .expect_err("unknown cluster");
    assert_eq!(unknown.path(), "listeners[0].tcp_route.clusters[0].name");
    assert_eq!(unknown.code(), "unknown_reference");
    assert!(
        unknown
            .to_string()
            .starts_with("listeners[0].tcp_route.clusters[0].name: "),
        "{unknown}"
    );

    let mut typed = plane.config_dump().expect("v1 is applied");
    typed.version = " ".into();
    let empty_version = plane.apply(typed).expect_err("empty version");
    assert_eq!(
        (empty_version.path(), empty_version.code()),
        ("version", "invalid_value")
    );

    let mut client = connect(address);
    assert_eq!(round_trip(&mut client, b"v1"), b"v1");
    let stats = plane.stats();
    assert_eq!(stats.version.as_deref(), Some("v1"));
    assert_eq!((stats.applies_accepted, stats.applies_rejected), (1, 3));
}

#[test]
fn applying_a_typed_snapshot_returns_its_version_and_is_dumped() {
    let upstreams = Upstreams::new();
    let plane = start();
    assert!(plane.config_dump().is_none());
    assert_eq!(plane.stats().version, None);
    apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);
    let mut dumped = plane.config_dump().expect("dumped");
    dumped.version = "v9".into();
    assert_eq!(plane.apply(dumped.clone()).expect("typed apply"), "v9");
    assert_eq!(plane.config_dump(), Some(dumped));
}
