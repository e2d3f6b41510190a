//! Start options, the admin server, and graceful shutdown.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use meshcore_proxy::{ApplyError, DataPlane, Options, ShutdownReport, StartError};
use serde_json::Value;
use support::*;

/// A plain HTTP/1.1 GET; returns the status code and body.
fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(admin).expect("admin connects");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn start_rejects_bad_options() {
    let public = Options {
        admin_address: Some("0.0.0.0:15000".parse().unwrap()),
        ..Options::default()
    };
    assert!(matches!(
        DataPlane::start(public),
        Err(StartError::AdminNotLoopback(_))
    ));
    let no_workers = Options {
        worker_threads: 0,
        ..Options::default()
    };
    assert!(matches!(
        DataPlane::start(no_workers),
        Err(StartError::NoWorkerThreads)
    ));
}

#[test]
fn admin_server_answers_ready_stats_and_config_dump() {
    let upstreams = Upstreams::new();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let plane = DataPlane::start(Options {
        worker_threads: 1,
        admin_address: Some(admin),
    })
    .expect("starts with an admin server");

    assert_eq!(get(admin, "/ready").0, 503);
    let (status, body) = get(admin, "/config_dump");
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON error")["error"],
        "no_snapshot"
    );

    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);
    let mut client = connect(address);
    assert_eq!(round_trip(&mut client, b"hi"), b"hi");

    assert_eq!(get(admin, "/ready"), (200, "ready\n".to_string()));
    let (status, body) = get(admin, "/config_dump");
    assert_eq!(status, 200);
    let dumped: Value = serde_json::from_str(&body).expect("config dump is JSON");
    assert_eq!(dumped["version"], "v1");
    assert_eq!(dumped["listeners"][0]["port"], address.port());

    let (status, body) = get(admin, "/stats");
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&body).expect("stats are JSON");
    assert_eq!(
        keys(&stats),
        [
            "applies_accepted",
            "applies_rejected",
            "clusters",
            "listeners",
            "totals",
            "version"
        ]
    );
    assert_eq!(
        keys(&stats["totals"]),
        [
            "access_log_dropped",
            "bytes_downstream",
            "bytes_upstream",
            "connect_failures",
            "connections_active",
            "connections_closed",
            "connections_opened",
            "http_requests",
            "idle_timeouts",
            "no_healthy_upstream",
            "response_flags"
        ]
    );
    assert_eq!(
        keys(&stats["listeners"][0]),
        [
            "address",
            "connections_active",
            "connections_opened",
            "declared_opaque",
            "detect_timeouts",
            "detected_by_port",
            "detected_http1",
            "detected_http2",
            "detected_tcp",
            "draining",
            "http_requests",
            "name",
            "port"
        ]
    );
    assert_eq!(
        keys(&stats["clusters"][0]),
        [
            "bytes_downstream",
            "bytes_upstream",
            "connect_failures",
            "connections_active",
            "connections_opened",
            "http_requests",
            "http_retries",
            "http_unprocessed_resends",
            "name",
            "no_healthy_upstream",
            "responses_2xx",
            "responses_3xx",
            "responses_4xx",
            "responses_5xx"
        ]
    );
    assert_eq!(stats["version"], "v1");
    assert_eq!(stats["listeners"][0]["address"], "127.0.0.1");
    assert_eq!(stats["totals"]["connections_opened"], 1);

    assert_eq!(get(admin, "/nope").0, 404);
    plane.shutdown(Duration::from_millis(100));
    assert!(
        refuses_connections(admin),
        "admin server still answers after shutdown"
    );
}

#[test]
fn shutdown_drains_within_the_grace_then_force_closes() {
    let upstreams = Upstreams::new();
    let plane = std::sync::Arc::new(start());
    let address = apply_single_route(&plane, &[(upstreams.echo(), 1)], 0);
    let mut finishing = connect(address);
    let mut lingering = connect(address);
    assert_eq!(round_trip(&mut finishing, b"a"), b"a");
    assert_eq!(round_trip(&mut lingering, b"b"), b"b");

    let shutting_down = {
        let plane = std::sync::Arc::clone(&plane);
        std::thread::spawn(move || plane.shutdown(Duration::from_millis(700)))
    };
    assert!(eventually(|| plane
        .stats()
        .listeners
        .iter()
        .all(|l| l.draining)));
    assert!(
        refuses_connections(address),
        "still accepting while draining"
    );
    // In flight during the grace period: still served, then ends on its own.
    assert_eq!(round_trip(&mut finishing, b"during drain"), b"during drain");
    half_close(&finishing);
    let mut rest = Vec::new();
    finishing.read_to_end(&mut rest).expect("clean end");
    assert!(rest.is_empty());

    let report = shutting_down.join().expect("shutdown thread");
    assert_eq!(
        report,
        ShutdownReport {
            in_flight: 2,
            force_closed: 1
        }
    );
    assert_closed_by_proxy(&mut lingering);
    assert_eq!(
        plane.shutdown(Duration::ZERO),
        report,
        "shutdown is idempotent"
    );
    assert!(matches!(
        plane.apply(plane.config_dump().expect("dump kept")),
        Err(ApplyError::ShutDown)
    ));
    let stats = plane.stats();
    assert_eq!(stats.totals.connections_active, 0);
    assert_eq!(stats.totals.connections_closed, 2);
}
