//! Draining (Istio's sidecar shutdown) and the life of downstream HTTP connections, through
//! real sockets: one direction drains while the other serves, HTTP/2 connections get GOAWAY
//! and finish their streams, HTTP/1 responses carry `Connection: close`, idle keep-alive
//! connections close at once, the idle timeout closes connections with no request in
//! flight, and shutdown finishes in-flight requests without waiting for idle connections.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use meshcore_proxy::Direction;
use meshcore_proxy::{DataPlane, Options};
use serde_json::{Value, json};
use support::http::{Conn, HttpUpstream, forward_to, route_config, runtime};
use support::{Upstreams, connect, eventually, free_port, refuses_connections, start};

fn http_listener(name: &str, port: u16, direction: &str, idle_timeout_ms: u64) -> Value {
    json!({
        "name": name, "address": "127.0.0.1", "port": port, "protocol": "http",
        "direction": direction, "route_config": "rc", "idle_timeout_ms": idle_timeout_ms,
    })
}

fn address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Inbound and outbound `http` listeners and an inbound `tcp` one, all to `upstream`.
fn apply_both_directions(
    plane: &DataPlane,
    version: &str,
    upstream: SocketAddr,
    echo: SocketAddr,
    ports: (u16, u16, u16),
) {
    let (inbound, outbound, tcp) = ports;
    let snapshot = json!({
        "version": version,
        "listeners": [
            http_listener("inbound", inbound, "inbound", 0),
            http_listener("outbound", outbound, "outbound", 0),
            {"name": "inbound-tcp", "address": "127.0.0.1", "port": tcp, "protocol": "tcp",
             "direction": "inbound", "tcp_route": {"clusters": [{"name": "echo"}]}},
        ],
        "route_configs": [route_config(&["*"], vec![forward_to("app")])],
        "clusters": [
            {"name": "app", "protocol": "http1", "connect_timeout_ms": 1000, "endpoints": [
                {"address": "127.0.0.1", "port": upstream.port()}]},
            {"name": "echo", "connect_timeout_ms": 1000, "endpoints": [
                {"address": "127.0.0.1", "port": echo.port()}]},
        ],
    });
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("json"))
        .expect("snapshot applies");
}

#[test]
fn draining_inbound_finishes_its_requests_and_leaves_outbound_serving() {
    let rt = runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let tcp_upstreams = Upstreams::new();
    let echo = tcp_upstreams.echo();
    let ports = (free_port(), free_port(), free_port());
    apply_both_directions(&plane, "v1", app.address, echo, ports);
    let (inbound, outbound, tcp) = (address(ports.0), address(ports.1), address(ports.2));

    // Inbound: an idle keep-alive HTTP/1 connection, an HTTP/1 and an HTTP/2 request in
    // flight (held at the upstream's gate), an opaque TCP connection.
    let mut idle_h1 = Conn::open(&rt, inbound, false);
    assert_eq!(idle_h1.get(&rt, "app", "/").status, 200);
    let busy_h1 = std::thread::spawn(move || {
        let rt = runtime();
        let mut conn = Conn::open(&rt, inbound, false);
        conn.get(&rt, "app", "/gate")
    });
    let busy_h2 = std::thread::spawn(move || {
        let rt = runtime();
        let mut conn = Conn::open(&rt, inbound, true);
        let reply = conn.get(&rt, "app", "/gate");
        let after_goaway = conn.try_send(&rt, support::http::get_request("app", "/", &[], true));
        (reply, after_goaway.is_err(), conn.closed_by_proxy(&rt))
    });
    let mut opaque = connect(tcp);
    assert_eq!(support::round_trip(&mut opaque, b"ping"), b"ping");
    // Outbound: an idle keep-alive connection that must survive the inbound drain.
    let mut outbound_conn = Conn::open(&rt, outbound, false);
    assert_eq!(outbound_conn.get(&rt, "app", "/").status, 200);

    assert!(
        eventually(|| app.waiting() == 2),
        "both requests reach the upstream"
    );
    // Four connections and two requests in flight.
    assert!(eventually(|| plane.connections(None) == 7));
    assert_eq!(plane.connections(Some(Direction::Inbound)), 6);
    assert_eq!(plane.connections(Some(Direction::Outbound)), 1);

    plane.drain(Direction::Inbound);

    assert!(refuses_connections(inbound), "inbound stops accepting");
    assert!(
        refuses_connections(tcp),
        "every inbound listener stops accepting"
    );
    assert_eq!(plane.local_addr("inbound"), None);
    assert!(
        idle_h1.closed_by_proxy(&rt),
        "idle keep-alive closes at once"
    );
    // Requests in flight finish, on connections that close after them.
    app.open_gate(2);
    let reply = busy_h1.join().expect("h1 client");
    assert_eq!((reply.status, reply.body.as_str()), (200, "app GET /gate"));
    assert_eq!(reply.header("connection"), "close");
    let (reply, refused_after_goaway, closed) = busy_h2.join().expect("h2 client");
    assert_eq!(reply.status, 200);
    assert!(refused_after_goaway, "no new stream after GOAWAY");
    assert!(closed, "the HTTP/2 connection closes after its streams");
    // Opaque TCP cannot be told to stop: it runs until it ends.
    assert_eq!(support::round_trip(&mut opaque, b"still"), b"still");
    assert_eq!(plane.connections(Some(Direction::Inbound)), 1);
    drop(opaque);
    assert!(eventually(
        || plane.connections(Some(Direction::Inbound)) == 0
    ));

    // Outbound is untouched: the kept connection and new ones work.
    assert_eq!(outbound_conn.get(&rt, "app", "/").status, 200);
    assert_eq!(
        support::http::get(&rt, outbound, "app", "/", &[]).status,
        200
    );
    // The kept connection; the one-off one is gone once the proxy sees it close.
    assert!(eventually(
        || plane.connections(Some(Direction::Outbound)) == 1
    ));
    let stats = plane.stats();
    let draining: Vec<(&str, bool)> = stats
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.draining))
        .collect();
    assert_eq!(draining, [("outbound", false)]);

    // A drained direction stays drained across applies.
    apply_both_directions(&plane, "v2", app.address, echo, ports);
    assert!(refuses_connections(inbound));
    assert_eq!(
        support::http::get(&rt, outbound, "app", "/", &[]).status,
        200
    );
    assert_eq!(plane.shutdown(Duration::from_secs(5)).force_closed, 0);
}

#[test]
fn shutdown_finishes_in_flight_requests_and_does_not_wait_for_idle_connections() {
    let rt = runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let port = free_port();
    let snapshot = json!({
        "version": "v1",
        "listeners": [http_listener("inbound", port, "inbound", 0)],
        "route_configs": [route_config(&["*"], vec![forward_to("app")])],
        "clusters": [{"name": "app", "protocol": "http1", "connect_timeout_ms": 1000, "endpoints": [
            {"address": "127.0.0.1", "port": app.address.port()}]}],
    });
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("json"))
        .expect("applies");
    let proxy = address(port);
    // Idle keep-alive connections the clients never close, of both versions.
    let mut idle_h1 = Conn::open(&rt, proxy, false);
    let mut idle_h2 = Conn::open(&rt, proxy, true);
    assert_eq!(idle_h1.get(&rt, "app", "/").status, 200);
    assert_eq!(idle_h2.get(&rt, "app", "/").status, 200);
    let busy = std::thread::spawn(move || {
        let rt = runtime();
        Conn::open(&rt, proxy, false).get(&rt, "app", "/gate")
    });
    assert!(eventually(|| app.waiting() == 1));

    let plane = std::sync::Arc::new(plane);
    let stopping = std::sync::Arc::clone(&plane);
    let shutdown = std::thread::spawn(move || stopping.shutdown(Duration::from_secs(30)));
    // Closed gracefully once shutdown began (no probe connection before, so the report's
    // count is exact).
    assert!(idle_h1.closed_by_proxy(&rt));
    assert!(idle_h2.closed_by_proxy(&rt));
    assert!(refuses_connections(proxy));
    app.open_gate(1);
    let reply = busy.join().expect("client");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), "close");
    let report = shutdown.join().expect("shutdown");
    assert_eq!(report.in_flight, 3);
    assert_eq!(report.force_closed, 0, "nothing was left for the deadline");
}

#[test]
fn idle_timeout_closes_http_connections_with_no_request_in_flight() {
    let rt = runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let port = free_port();
    let snapshot = json!({
        "version": "v1",
        "listeners": [http_listener("inbound", port, "inbound", 200)],
        "route_configs": [route_config(&["*"], vec![forward_to("app")])],
        "clusters": [{"name": "app", "protocol": "http1", "connect_timeout_ms": 1000, "endpoints": [
            {"address": "127.0.0.1", "port": app.address.port()}]}],
    });
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("json"))
        .expect("applies");
    let proxy = address(port);

    let mut h1 = Conn::open(&rt, proxy, false);
    let mut h2 = Conn::open(&rt, proxy, true);
    assert_eq!(h1.get(&rt, "app", "/").status, 200);
    assert_eq!(h2.get(&rt, "app", "/").status, 200);
    assert!(h1.closed_by_proxy(&rt), "idle HTTP/1 keep-alive closes");
    assert!(h2.closed_by_proxy(&rt), "idle HTTP/2 closes");

    // A connection that never sends a request closes too.
    let mut silent = connect(proxy);
    support::assert_closed_by_proxy(&mut silent);

    // A request in flight for longer than the timeout is not idle.
    let busy = std::thread::spawn(move || {
        let rt = runtime();
        Conn::open(&rt, proxy, true).get(&rt, "app", "/gate")
    });
    assert!(eventually(|| app.waiting() == 1));
    std::thread::sleep(Duration::from_millis(600));
    app.open_gate(1);
    assert_eq!(busy.join().expect("client").status, 200);
    // The three idle ones; the busy one was closed by its client.
    assert_eq!(plane.stats().totals.idle_timeouts, 3);
}

fn admin_request(admin: SocketAddr, method: &str, path: &str) -> u16 {
    let mut stream = connect(admin);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    response[9..12].parse().expect("status code")
}

#[test]
fn admin_drains_one_direction_and_records_quitquitquit() {
    let rt = runtime();
    let admin = address(free_port());
    let plane = DataPlane::start(Options {
        admin_address: Some(admin),
        ..Options::default()
    })
    .expect("starts");
    let app = HttpUpstream::start(&rt, "app", false);
    let tcp_upstreams = Upstreams::new();
    let ports = (free_port(), free_port(), free_port());
    apply_both_directions(&plane, "v1", app.address, tcp_upstreams.echo(), ports);

    assert_eq!(admin_request(admin, "GET", "/drain"), 405);
    assert_eq!(
        admin_request(admin, "POST", "/drain?direction=sideways"),
        400
    );
    assert_eq!(
        admin_request(admin, "POST", "/drain?direction=outbound"),
        200
    );
    assert!(refuses_connections(address(ports.1)));
    assert_eq!(
        support::http::get(&rt, address(ports.0), "app", "/", &[]).status,
        200,
        "inbound still serves"
    );

    assert!(!plane.quit_requested());
    assert_eq!(admin_request(admin, "GET", "/quitquitquit"), 405);
    assert!(!plane.quit_requested());
    assert_eq!(admin_request(admin, "POST", "/quitquitquit"), 200);
    assert!(plane.quit_requested());

    assert_eq!(admin_request(admin, "POST", "/drain"), 200);
    assert!(refuses_connections(address(ports.0)));
    assert!(refuses_connections(address(ports.2)));
}
