//! `original_dst` clusters: a captured connection goes where the client was going
//! (SO_ORIGINAL_DST), one that was not redirected or would loop is refused.
//!
//! The refusals run in-process. The captured case needs an iptables `REDIRECT`: as root it
//! runs this test binary again inside a fresh network namespace (`unshare --net`), where it
//! may install rules without touching the host; otherwise it says why it is skipped.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use serde_json::{Value, json};
use socket2::{Domain, Socket, Type};
use support::http::{HttpUpstream, runtime};
use support::{
    IO_TIMEOUT, Upstreams, assert_closed_by_proxy, cluster_stats, connect, eventually, free_port,
    read_byte, start,
};

/// Set in the child that runs inside its own network namespace.
const IN_NETNS: &str = "MESHCORE_TEST_IN_NETNS";

fn passthrough_cluster() -> Value {
    json!({"name": "PassthroughCluster", "kind": "original_dst", "connect_timeout_ms": 1000})
}

/// A `tcp` listener to PassthroughCluster on `tcp_port`, and an `auto` one on `auto_port`
/// whose HTTP goes by Host: `reviews` to the static cluster of `reviews`, anything else
/// through.
fn capture_snapshot(tcp_port: u16, auto_port: u16, reviews: SocketAddr) -> Vec<u8> {
    let passthrough = json!({"clusters": [{"name": "PassthroughCluster", "weight": 1}]});
    serde_json::to_vec(&json!({
        "version": "v1",
        "listeners": [
            {"name": "tcp", "address": "127.0.0.1", "port": tcp_port, "protocol": "tcp",
             "tcp_route": passthrough},
            {"name": "outbound", "address": "127.0.0.1", "port": auto_port, "protocol": "auto",
             "route_config": "outbound", "tcp_route": passthrough},
        ],
        "route_configs": [{"name": "outbound", "virtual_hosts": [
            {"name": "reviews", "domains": ["reviews", "reviews:9080"],
             "routes": [{"route": {"clusters": [{"name": "reviews", "weight": 1}]}}]},
            {"name": "allow_any", "domains": ["*"],
             "routes": [{"route": {"clusters": [{"name": "PassthroughCluster", "weight": 1}]}}]},
        ]}],
        "clusters": [
            passthrough_cluster(),
            {"name": "reviews", "protocol": "http1", "connect_timeout_ms": 1000,
             "endpoints": [{"address": reviews.ip().to_string(), "port": reviews.port()}]},
        ],
    }))
    .expect("snapshot serialises")
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn http_get(mut stream: TcpStream, host: &str) -> (u16, String) {
    write!(
        stream,
        "GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .expect("request written");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_tcp_connection_that_was_not_redirected_is_closed_as_no_healthy_upstream() {
    let plane = start();
    let port = free_port();
    let snapshot = json!({
        "version": "v1",
        "listeners": [{"name": "tcp", "address": "127.0.0.1", "port": port, "protocol": "tcp",
                       "tcp_route": {"clusters": [{"name": "PassthroughCluster", "weight": 1}]}}],
        "clusters": [passthrough_cluster()],
    });
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("json"))
        .expect("snapshot applies");
    let mut client = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_closed_by_proxy(&mut client);
    assert!(eventually(|| {
        cluster_stats(&plane.stats(), "PassthroughCluster").no_healthy_upstream == 1
    }));
    let stats = plane.stats();
    assert_eq!(stats.totals.no_healthy_upstream, 1);
    assert_eq!(
        cluster_stats(&stats, "PassthroughCluster").connections_opened,
        0,
        "the proxy must not connect to itself"
    );
}

#[test]
fn an_http_request_to_original_dst_without_redirect_is_503_uh_and_explained() {
    let rt = runtime();
    let plane = start();
    let reviews = HttpUpstream::start(&rt, "reviews", false);
    let (tcp_port, auto_port) = (free_port(), free_port());
    plane
        .apply_json(&capture_snapshot(tcp_port, auto_port, reviews.address))
        .expect("snapshot applies");
    let proxy = SocketAddr::from(([127, 0, 0, 1], auto_port));

    let (status, body) = http_get(connect(proxy), "reviews:9080");
    assert_eq!((status, body.as_str()), (200, "reviews GET /"));

    let (status, body) = http_get(connect(proxy), "example.com");
    assert_eq!(status, 503);
    assert!(body.contains("not redirected"), "{body}");
    let stats = plane.stats();
    assert_eq!(stats.totals.response_flags.get("UH"), Some(&1));
    assert_eq!(
        cluster_stats(&stats, "PassthroughCluster").connections_opened,
        0
    );
}

/// A client connection from `source`, so that the namespace's REDIRECT rule (which matches
/// that source only) captures it while the proxy's own connections pass.
fn connect_from(source: [u8; 4], destination: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("client binds its source");
    socket
        .connect_timeout(&destination.into(), IO_TIMEOUT)
        .expect("client connects");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
}

fn run(command: &str, args: &[&str]) {
    let status = Command::new(command)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(status.success(), "{command} {args:?} failed: {status}");
}

fn can_make_network_namespaces() -> Result<(), String> {
    let id = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        return Err("needs root to create a network namespace".into());
    }
    for tool in ["unshare", "iptables", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_err(|e| e.to_string())?;
        if !found.status.success() {
            return Err(format!("needs {tool}"));
        }
    }
    Ok(())
}

#[test]
fn captured_connections_reach_their_original_destination() {
    if std::env::var_os(IN_NETNS).is_none() {
        if let Err(why) = can_make_network_namespaces() {
            eprintln!("skipped: {why}");
            return;
        }
        let status = Command::new("unshare")
            .args(["--net", "--"])
            .arg(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "captured_connections_reach_their_original_destination",
                "--nocapture",
            ])
            .env(IN_NETNS, "1")
            .status()
            .expect("unshare runs");
        assert!(
            status.success(),
            "the test failed inside its namespace: {status}"
        );
        return;
    }

    // Inside a new network namespace: only loopback, and it is ours.
    run("ip", &["link", "set", "lo", "up"]);
    let rt = runtime();
    let plane = start();
    let upstreams = Upstreams::new();
    let echo = upstreams.tagged_echo(b'E');
    let reviews = HttpUpstream::start(&rt, "reviews", false);
    let elsewhere = HttpUpstream::start(&rt, "elsewhere", false);
    let (tcp_port, auto_port) = (free_port(), free_port());
    plane
        .apply_json(&capture_snapshot(tcp_port, auto_port, reviews.address))
        .expect("snapshot applies");
    // Capture only the client's connections (from 127.0.0.2): to the "elsewhere" port into
    // the auto listener, anything else into the tcp one. The proxy's own connections come
    // from 127.0.0.1 and pass, as `meshcore iptables` lets the proxy's uid pass.
    let (elsewhere_port, auto, tcp) = (
        elsewhere.address.port().to_string(),
        auto_port.to_string(),
        tcp_port.to_string(),
    );
    let capture = ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-s", "127.0.0.2"];
    run(
        "iptables",
        &[
            &capture[..],
            &[
                "--dport",
                &elsewhere_port,
                "-j",
                "REDIRECT",
                "--to-ports",
                &auto,
            ],
        ]
        .concat(),
    );
    run(
        "iptables",
        &[&capture[..], &["-j", "REDIRECT", "--to-ports", &tcp]].concat(),
    );

    // L4: the tagged echo answers, though the client reached the proxy's tcp listener.
    let mut client = connect_from([127, 0, 0, 2], echo);
    assert_eq!(read_byte(&mut client), b'E');
    client.write_all(b"ping").expect("client writes");
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).expect("echo replies");
    assert_eq!(&reply, b"ping");
    drop(client);
    assert_eq!(
        cluster_stats(&plane.stats(), "PassthroughCluster").connections_opened,
        1
    );

    // L7: the Host header routes, whatever the client dialled; a host the route config
    // does not know goes through to where the client dialled.
    let (status, body) = http_get(
        connect_from([127, 0, 0, 2], elsewhere.address),
        "reviews:9080",
    );
    assert_eq!((status, body.as_str()), (200, "reviews GET /"));
    let (status, body) = http_get(
        connect_from([127, 0, 0, 2], elsewhere.address),
        "example.com",
    );
    assert_eq!((status, body.as_str()), (200, "elsewhere GET /"));
    let stats = plane.stats();
    assert_eq!(cluster_stats(&stats, "reviews").http_requests, 1);
    assert_eq!(cluster_stats(&stats, "PassthroughCluster").http_requests, 1);

    // A destination on the listener's own port would come straight back: refused.
    let before = plane.stats().totals.no_healthy_upstream;
    let mut looped = connect_from([127, 0, 0, 2], SocketAddr::from(([127, 0, 0, 3], tcp_port)));
    assert_closed_by_proxy(&mut looped);
    assert!(eventually(
        || plane.stats().totals.no_healthy_upstream == before + 1
    ));
}
