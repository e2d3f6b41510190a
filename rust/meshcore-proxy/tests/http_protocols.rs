//! L7 protocols through real sockets: HTTP/2 both ways with trailers, protocol detection on
//! `auto` listeners, HTTP proxy mode (absolute-form and CONNECT), upgrades, load-balancing
//! policies and the access log.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};
use support::http::{
    AccessLog, Explained, HttpUpstream, Reply, apply_http, assert_explained, assert_flag_counted,
    forward_to, get, http_cluster, read_raw_response, route_config, runtime, send,
};
use support::{Blackhole, Upstreams, closed_endpoint, connect, free_port, start, start_one_worker};

fn apply(plane: &meshcore_proxy::DataPlane, snapshot: Value) {
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("snapshot serialises"))
        .expect("snapshot applies");
}

#[test]
fn http2_downstream_and_upstream_with_trailers() {
    let rt = runtime();
    let plane = start_one_worker();
    let h2 = HttpUpstream::start(&rt, "h2", true);
    let h1 = HttpUpstream::start(&rt, "h1", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![
                json!({"matches": [{"uri": {"prefix": "/to-h1"}}], "route": {"clusters": [{"name": "h1"}]}}),
                json!({"matches": [{"uri": {"prefix": "/to-h2"}}], "route": {"clusters": [{"name": "h2-only"}]}}),
                forward_to("h2"),
            ],
        )],
        vec![
            http_cluster("h2", "inherit", &[h2.address]),
            http_cluster("h1", "http1", &[h1.address]),
            http_cluster("h2-only", "http2", &[h2.address]),
        ],
        json!({}),
    );
    let request = |path: &str| {
        Request::get(format!("http://svc{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let reply = send(&rt, proxy, request("/trailers"), true);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "payload");
    assert_eq!(
        reply
            .trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .unwrap(),
        "0"
    );
    for _ in 0..3 {
        assert_eq!(
            send(&rt, proxy, request("/x"), true).header("x-upstream"),
            "h2"
        );
    }
    assert_eq!(h2.connections(), 1, "requests share one HTTP/2 connection");
    // HTTP/2 downstream, HTTP/1.1 upstream.
    let downgraded = send(&rt, proxy, request("/to-h1"), true);
    assert_eq!(downgraded.body, "h1 GET /to-h1");
    assert_eq!(downgraded.header("echo-host"), "svc");
    // HTTP/1.1 downstream, HTTP/2 upstream via the cluster's protocol.
    let upgraded = get(&rt, proxy, "svc", "/to-h2", &[]);
    assert_eq!(upgraded.body, "h2 GET /to-h2");
    assert_eq!(upgraded.header("echo-host"), "");
    assert_eq!(plane.stats().listeners[0].detected_http2, 5);
}

#[test]
fn downstream_http2_advertises_the_configured_stream_limit() {
    let rt = runtime();
    let plane = start_one_worker();
    let routes = vec![route_config(
        &["*"],
        vec![json!({"direct_response": {"status": 204}})],
    )];
    let limited = apply_http(
        &plane,
        routes.clone(),
        vec![],
        json!({"http2_max_concurrent_streams": 3}),
    );
    assert_eq!(advertised_streams(&rt, limited), 3);
    let default = apply_http(&plane, routes, vec![], json!({}));
    assert_eq!(advertised_streams(&rt, default), 200);
}

/// The SETTINGS_MAX_CONCURRENT_STREAMS the proxy's HTTP/2 server sends, read after one
/// request (by then the server's SETTINGS have arrived).
fn advertised_streams(rt: &tokio::runtime::Runtime, proxy: SocketAddr) -> usize {
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(proxy)
            .await
            .expect("connect");
        let (mut client, mut connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let request = Request::get("http://svc/").body(()).expect("request");
        let (response, _) = client.send_request(request, true).expect("send");
        let response = tokio::select! {
            response = response => response.expect("response"),
            ended = &mut connection => panic!("connection ended first: {ended:?}"),
        };
        assert_eq!(response.status(), 204);
        connection.max_concurrent_send_streams()
    })
}

/// A snapshot of `auto` listeners, each `(name, port, fields)` with `fields` (detect
/// timeout and the like) added, routing HTTP to `http` and opaque TCP to `tcp`.
fn auto_snapshot(listeners: &[(&str, u16, Value)], http: SocketAddr, tcp: SocketAddr) -> Value {
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|(name, port, fields)| {
            let mut listener = json!({
                "name": name, "address": "127.0.0.1", "port": port, "protocol": "auto",
                "route_config": "rc", "tcp_route": {"clusters": [{"name": "tcp"}]}
            });
            let fields = fields.as_object().expect("fields are an object").clone();
            listener.as_object_mut().expect("an object").extend(fields);
            listener
        })
        .collect();
    json!({
        "version": "v1",
        "listeners": listeners,
        "route_configs": [route_config(&["*"], vec![forward_to("http")])],
        "clusters": [http_cluster("http", "http1", &[http]), http_cluster("tcp", "inherit", &[tcp])],
    })
}

#[test]
fn auto_listener_detects_http_and_falls_back_to_tcp() {
    let rt = runtime();
    let plane = start();
    let http = HttpUpstream::start(&rt, "http", false);
    let tcp = Upstreams::new();
    let echo = tcp.echo();
    let port = free_port();
    let fields = json!({"detect_timeout_ms": 50});
    apply(
        &plane,
        auto_snapshot(&[("auto", port, fields)], http.address, echo),
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(get(&rt, proxy, "a", "/", &[]).body, "http GET /");
    let mut opaque = connect(proxy);
    assert_eq!(
        support::round_trip(&mut opaque, b"\x16\x03\x01 not http\n"),
        b"\x16\x03\x01 not http\n"
    );
    // Server-first: nothing sent, so after the detect timeout it is opaque TCP.
    let silent = connect(proxy);
    let mut quiet_then_talk = connect(proxy);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        support::round_trip(&mut quiet_then_talk, b"GET / HTTP/1.1\r\n\r\n"),
        b"GET / HTTP/1.1\r\n\r\n"
    );
    drop(silent);
    let listener = &plane.stats().listeners[0];
    assert_eq!(listener.detected_http1, 1);
    assert_eq!(listener.detected_tcp, 1);
    assert!(listener.detect_timeouts >= 1);
    // Not captured: every connection counts under the listener's own port.
    let by_port = &listener.detected_by_port;
    assert_eq!(by_port.keys().collect::<Vec<_>>(), [&port]);
    assert_eq!((by_port[&port].http1, by_port[&port].tcp), (1, 1));
    assert_eq!(by_port[&port].timeouts, listener.detect_timeouts);
}

#[test]
fn auto_listener_with_detect_timeout_0_waits_for_the_first_bytes_without_a_deadline() {
    let rt = runtime();
    let plane = start();
    let http = HttpUpstream::start(&rt, "http", false);
    let tcp = Upstreams::new();
    let echo = tcp.echo();
    let port = free_port();
    let fields = json!({"detect_timeout_ms": 0, "idle_timeout_ms": 300});
    apply(
        &plane,
        auto_snapshot(&[("auto", port, fields)], http.address, echo),
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    // Quiet for a while, then HTTP: still detected as HTTP. Had 0 meant "give up at
    // once", the connection would have gone to the echo cluster and the request come back.
    let mut late = connect(proxy);
    std::thread::sleep(std::time::Duration::from_millis(150));
    late.write_all(b"GET /late HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    late.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("http GET /late"), "{reply}");
    // Silent for the idle timeout: closed as idle, not sent on as opaque TCP.
    let mut silent = connect(proxy);
    support::assert_closed_by_proxy(&mut silent);
    let stats = plane.stats();
    let listener = &stats.listeners[0];
    assert_eq!(listener.detected_http1, 1);
    assert_eq!(listener.detected_tcp + listener.detect_timeouts, 0);
    assert_eq!(stats.totals.idle_timeouts, 1);
}

#[test]
fn a_declared_opaque_port_is_not_detected_so_a_server_first_protocol_greets_at_once() {
    let rt = runtime();
    let plane = start();
    let http = HttpUpstream::start(&rt, "http", false);
    // A server-first upstream (SMTP, MySQL): it speaks first, then echoes.
    let server_first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let greeter = server_first.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in server_first.incoming() {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || {
                stream.write_all(b"220 ready\r\n").unwrap();
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    stream.write_all(&buf[..n]).unwrap();
                }
            });
        }
    });
    let (declared, undeclared) = (free_port(), free_port());
    // Long enough that waiting for it would stall the test for a minute.
    let fields = |opaque: &[u16]| json!({"detect_timeout_ms": 60_000, "opaque_ports": opaque});
    // Not captured here, so the destination port is the listener's own.
    let listeners = [
        ("declared", declared, fields(&[declared, 3306])),
        ("undeclared", undeclared, fields(&[])),
    ];
    apply(&plane, auto_snapshot(&listeners, http.address, greeter));
    let mut client = connect(SocketAddr::from(([127, 0, 0, 1], declared)));
    // Were the connection detected, the greeting would come only after the detect timeout:
    // the read timeout turns that into a failure rather than a minute's wait.
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut greeting = [0u8; 11];
    client
        .read_exact(&mut greeting)
        .expect("greeted before sending anything");
    assert_eq!(&greeting, b"220 ready\r\n");
    assert_eq!(
        support::round_trip(&mut client, b"HELO x\r\n"),
        b"HELO x\r\n"
    );
    // The same protocol on an undeclared port is detected: a client-first one still is.
    let mut detected = connect(SocketAddr::from(([127, 0, 0, 1], undeclared)));
    detected.write_all(b"\x16\x03\x01 not http\n").unwrap();
    let mut greeting = [0u8; 11];
    detected.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"220 ready\r\n");
    let stats = plane.stats();
    let by_name = |name: &str| {
        stats
            .listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap()
            .clone()
    };
    let (declared, undeclared) = (by_name("declared"), by_name("undeclared"));
    assert_eq!(declared.declared_opaque, 1);
    assert_eq!(declared.detected_tcp + declared.detect_timeouts, 0);
    assert_eq!(undeclared.declared_opaque, 0);
    assert_eq!(undeclared.detected_tcp, 1);
    let port = declared.port;
    assert_eq!(declared.detected_by_port[&port].declared_opaque, 1);
    assert_eq!(undeclared.detected_by_port[&undeclared.port].tcp, 1);
}

#[test]
fn http_proxy_mode_absolute_form_and_connect() {
    let rt = runtime();
    let plane = start();
    let reviews = HttpUpstream::start(&rt, "reviews", false);
    let tcp = Upstreams::new();
    let outside = tcp.echo();
    let port = free_port();
    apply(
        &plane,
        json!({
            "version": "v1",
            "listeners": [{
                "name": "outbound", "address": "127.0.0.1", "port": port, "protocol": "auto",
                "http_proxy": true, "route_config": "outbound",
                "tcp_route": {"clusters": [{"name": "PassthroughCluster"}]}
            }],
            "route_configs": [{"name": "outbound", "virtual_hosts": [
                {"name": "reviews", "domains": ["reviews", "reviews:9080"], "routes": [forward_to("reviews")]}
            ]}],
            "clusters": [
                {"name": "PassthroughCluster", "kind": "original_dst"},
                http_cluster("reviews", "http1", &[reviews.address]),
            ],
        }),
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    // curl -x http://proxy http://reviews:9080/books
    let absolute = send(
        &rt,
        proxy,
        Request::get("http://reviews:9080/books")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        false,
    );
    assert_eq!(absolute.body, "reviews GET /books");
    // CONNECT to an address no route knows: the original destination.
    let mut tunnel = connect(proxy);
    write!(
        tunnel,
        "CONNECT {outside} HTTP/1.1\r\nHost: {outside}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tunnel.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        support::round_trip(&mut tunnel, b"through the tunnel"),
        b"through the tunnel"
    );
    // An absolute-form authority without a port matches the port-less domain.
    let reply = send(
        &rt,
        proxy,
        Request::get("http://reviews/")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        false,
    );
    assert_eq!(reply.header("x-upstream"), "reviews");
}

#[test]
fn http_proxy_mode_passes_an_absolute_form_request_through_to_its_authority() {
    let rt = runtime();
    let plane = start();
    let outside = HttpUpstream::start(&rt, "outside", false);
    let port = free_port();
    apply(
        &plane,
        json!({
            "version": "v1",
            "listeners": [{
                "name": "outbound", "address": "127.0.0.1", "port": port, "protocol": "http",
                "http_proxy": true, "route_config": "outbound"
            }],
            "route_configs": [{"name": "outbound", "virtual_hosts": [
                {"name": "allow_any", "domains": ["*"], "routes": [forward_to("PassthroughCluster")]}
            ]}],
            "clusters": [{"name": "PassthroughCluster", "kind": "original_dst", "connect_timeout_ms": 1000}],
        }),
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    // curl -x http://proxy http://127.0.0.1:<outside>/books: no SO_ORIGINAL_DST (the
    // client dialled the proxy), so the authority is the destination.
    let target = format!("http://127.0.0.1:{}/books", outside.address.port());
    let reply = send(
        &rt,
        proxy,
        Request::get(target.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap(),
        false,
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "outside GET /books")
    );
    // The proxy's own listener is never a destination.
    let reply = send(
        &rt,
        proxy,
        Request::get(format!("http://127.0.0.1:{port}/").as_str())
            .body(Full::new(Bytes::new()))
            .unwrap(),
        false,
    );
    assert_explained(
        &reply,
        &Explained {
            status: 503,
            flags: "UH",
            error: "destination_unavailable",
            by: "RouteConfig/outbound allow_any routes[0] -> PassthroughCluster",
            details: &format!(
                "cluster PassthroughCluster has no endpoint: original destination \
                 127.0.0.1:{port} is on the listener's own port (forwarding it would loop \
                 back into the proxy)"
            ),
        },
    );
    assert_flag_counted(&plane, "UH", 1);
    assert_eq!(plane.stats().clusters[0].connections_opened, 1);
}

/// Sends `CONNECT <authority>` on a new connection and reads the answer (a refused
/// CONNECT's reply has a body framed by content-length).
fn connect_to(proxy: SocketAddr, authority: &str) -> Reply {
    let mut client = connect(proxy);
    write!(
        client,
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    )
    .expect("writes");
    let (head, body) = read_raw_response(&mut client);
    Reply::from_raw(&format!("{head}{}", String::from_utf8_lossy(&body)))
}

/// A CONNECT the proxy cannot tunnel is a local reply that explains itself, as a request
/// is: no route (and no `tcp_route`) is 404 NR, a cluster without endpoints 503 UH, a
/// refused connect and a connect timeout 503 UF (`connection_refused`,
/// `connection_timeout`), each with its flag in the access log and the counters.
#[test]
fn connect_failures_are_explained_with_flag_proxy_status_and_decision() {
    let plane = start();
    let log = AccessLog::new();
    let hole = Blackhole::new();
    let closed = closed_endpoint();
    let port = free_port();
    let vhost = |name: &str| json!({"name": name, "domains": [format!("{name}:443")], "routes": [forward_to(name)]});
    let mut hole_cluster = http_cluster("hole", "http1", &[hole.address]);
    hole_cluster["connect_timeout_ms"] = json!(250);
    apply(
        &plane,
        json!({
            "version": "v1",
            "settings": log.settings(),
            "listeners": [{
                "name": "outbound", "address": "127.0.0.1", "port": port, "protocol": "http",
                "http_proxy": true, "route_config": "outbound"
            }],
            "route_configs": [{"name": "outbound", "virtual_hosts": [
                vhost("refused"), vhost("hole"), vhost("empty")
            ]}],
            "clusters": [
                http_cluster("refused", "http1", &[closed]),
                hole_cluster,
                http_cluster("empty", "http1", &[]),
            ],
        }),
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let refused_details = format!("connect refused {closed}");
    let hole_details = format!("connect timeout {} after 250ms", hole.address);
    let cases = [
        (
            "nowhere:443",
            Explained {
                status: 404,
                flags: "NR",
                error: "destination_not_found",
                by: "Listener/outbound",
                details: "no route for CONNECT nowhere:443",
            },
        ),
        (
            "empty:443",
            Explained {
                status: 503,
                flags: "UH",
                error: "destination_unavailable",
                by: "RouteConfig/outbound empty routes[0] -> empty",
                details: "no destination for CONNECT empty:443 in cluster empty: no endpoint",
            },
        ),
        (
            "refused:443",
            Explained {
                status: 503,
                flags: "UF",
                error: "connection_refused",
                by: "RouteConfig/outbound refused routes[0] -> refused",
                details: &refused_details,
            },
        ),
        (
            "hole:443",
            Explained {
                status: 503,
                flags: "UF",
                error: "connection_timeout",
                by: "RouteConfig/outbound hole routes[0] -> hole",
                details: &hole_details,
            },
        ),
    ];
    for (authority, expected) in &cases {
        assert_explained(&connect_to(proxy, authority), expected);
    }
    let lines = log.lines(cases.len());
    for (authority, expected) in &cases {
        let line = lines
            .iter()
            .find(|l| l["authority"] == *authority)
            .unwrap_or_else(|| panic!("a log line for {authority}: {lines:?}"));
        assert_eq!(line["response_code"], expected.status, "{line}");
        assert_eq!(line["response_flags"], expected.flags, "{line}");
    }
    assert_flag_counted(&plane, "NR", 1);
    assert_flag_counted(&plane, "UH", 1);
    assert_flag_counted(&plane, "UF", 2);
}

/// A gRPC request's local reply also says it the way gRPC clients read: `grpc-status`
/// (gRPC's mapping of the HTTP status) and `grpc-message`, content-type
/// `application/grpc` and no body, with the same flag, proxy-status and decision.
#[test]
fn a_grpc_request_gets_its_local_reply_in_grpc_status_too() {
    let rt = runtime();
    let plane = start();
    let proxy = apply_http(
        &plane,
        vec![route_config(&["svc"], vec![forward_to("empty")])],
        vec![http_cluster("empty", "http2", &[])],
        json!({}),
    );
    let grpc = |host: &str| {
        Request::post(format!("http://{host}/pkg.Service/Method"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let unrouted = send(&rt, proxy, grpc("elsewhere"), true);
    assert_explained(
        &unrouted,
        &Explained {
            status: 404,
            flags: "NR",
            error: "destination_not_found",
            by: "RouteConfig/rc",
            details: "no virtual host for elsewhere",
        },
    );
    assert_eq!(unrouted.header("grpc-status"), "12", "UNIMPLEMENTED");
    let unavailable = send(&rt, proxy, grpc("svc"), true);
    assert_explained(
        &unavailable,
        &Explained {
            status: 503,
            flags: "UH",
            error: "destination_unavailable",
            by: "RouteConfig/rc vh routes[0] -> empty",
            details: "cluster empty has no endpoint",
        },
    );
    assert_eq!(unavailable.header("grpc-status"), "14", "UNAVAILABLE");
    assert_flag_counted(&plane, "NR", 1);
    assert_flag_counted(&plane, "UH", 1);
}

#[test]
fn upgrades_flow_both_ways_after_101() {
    let rt = runtime();
    let plane = start();
    let upstream = HttpUpstream::start(&rt, "ws", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], vec![forward_to("ws")])],
        vec![http_cluster("ws", "inherit", &[upstream.address])],
        json!({}),
    );
    let mut client = connect(proxy);
    client
        .write_all(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    assert_eq!(
        support::round_trip(&mut client, b"ping over websocket"),
        b"ping over websocket"
    );
    assert_eq!(support::round_trip(&mut client, b"and again"), b"and again");
}

fn spread(
    rt: &tokio::runtime::Runtime,
    proxy: SocketAddr,
    n: usize,
    header: Option<(&str, String)>,
) -> HashMap<String, u32> {
    let mut seen = HashMap::new();
    for i in 0..n {
        let value = header
            .as_ref()
            .map(|(_, v)| v.replace("{i}", &i.to_string()));
        let headers: Vec<(&str, &str)> = header
            .as_ref()
            .zip(value.as_deref())
            .map(|((name, _), v)| vec![(*name, v)])
            .unwrap_or_default();
        *seen
            .entry(
                get(rt, proxy, "a", "/", &headers)
                    .header("x-upstream")
                    .to_string(),
            )
            .or_default() += 1;
    }
    seen
}

fn balanced(
    policy: &str,
    hash_policy: Value,
) -> (
    tokio::runtime::Runtime,
    meshcore_proxy::DataPlane,
    SocketAddr,
    Vec<HttpUpstream>,
) {
    let rt = runtime();
    let plane = start();
    let upstreams: Vec<HttpUpstream> = ["e0", "e1", "e2"]
        .iter()
        .map(|t| HttpUpstream::start(&rt, t, false))
        .collect();
    let mut cluster = http_cluster(
        "c",
        "http1",
        &upstreams.iter().map(|u| u.address).collect::<Vec<_>>(),
    );
    cluster["lb_policy"] = json!(policy);
    if !hash_policy.is_null() {
        cluster["hash_policy"] = hash_policy;
    }
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], vec![forward_to("c")])],
        vec![cluster],
        json!({}),
    );
    (rt, plane, proxy, upstreams)
}

#[test]
fn round_robin_random_and_least_request_spread_load() {
    for policy in ["round_robin", "random", "least_request"] {
        let (rt, _plane, proxy, _upstreams) = balanced(policy, Value::Null);
        let seen = spread(&rt, proxy, 300, None);
        if policy == "round_robin" {
            assert!(seen.values().all(|n| *n == 100), "{policy}: {seen:?}");
        } else {
            // Expected 100 each, sigma ~8: 6 sigma of slack.
            assert!(
                seen.len() == 3 && seen.values().all(|n| (50..=150).contains(n)),
                "{policy}: {seen:?}"
            );
        }
    }
}

#[test]
fn peak_ewma_sends_clearly_fewer_requests_to_a_slow_endpoint() {
    let rt = runtime();
    let plane = start();
    let fast: Vec<HttpUpstream> = ["e0", "e1", "e2"]
        .iter()
        .map(|t| HttpUpstream::start(&rt, t, false))
        .collect();
    // Answers every request 60 ms late: slower than a loopback answer, and than the 30 ms
    // an endpoint without a sample is assumed to take.
    let slow = support::http::raw_upstream(&rt, |mut stream| async move {
        use tokio::io::AsyncWriteExt;
        while support::http::read_head(&mut stream).await.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            let answer = b"HTTP/1.1 200 OK\r\nx-upstream: slow\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(answer).await.is_err() {
                return;
            }
        }
    });
    let mut endpoints: Vec<SocketAddr> = fast.iter().map(|u| u.address).collect();
    endpoints.push(slow);
    let mut cluster = http_cluster("c", "http1", &endpoints);
    cluster["lb_policy"] = json!("peak_ewma");
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], vec![forward_to("c")])],
        vec![cluster],
        json!({}),
    );
    let seen = spread(&rt, proxy, 400, None);
    assert_eq!(seen.values().sum::<u32>(), 400, "{seen:?}");
    // Round robin gives the slow endpoint exactly 100 of 400, random 100 with sigma ~9.
    // Peak EWMA picks it only when a two-choice draw pairs it with a fast endpoint whose
    // estimate is higher still: once it has answered slowly, that takes a fast answer
    // slower than 60 ms, and even with one such endpoint it would get about 1 in 12
    // (~33). Half its fair share separates the two by more than 5 sigma.
    let slow_share = seen.get("slow").copied().unwrap_or(0);
    assert!(slow_share < 50, "{seen:?}");
    assert!(
        ["e0", "e1", "e2"].iter().all(|t| seen.contains_key(*t)),
        "{seen:?}"
    );
}

#[test]
fn ring_hash_and_maglev_keep_a_key_on_one_endpoint() {
    for policy in ["ring_hash", "maglev"] {
        let (rt, _plane, proxy, _upstreams) = balanced(policy, json!({"header": "x-user"}));
        for user in 0..5 {
            let same = spread(&rt, proxy, 10, Some(("x-user", format!("user-{user}"))));
            assert_eq!(same.len(), 1, "{policy}: user-{user} went to {same:?}");
        }
        let many = spread(&rt, proxy, 300, Some(("x-user", "user-{i}".into())));
        assert_eq!(many.len(), 3, "{policy}: different keys spread: {many:?}");
    }
}

#[test]
fn access_log_is_written_in_json() {
    let rt = runtime();
    let plane = start();
    let dir = std::env::temp_dir().join(format!("meshcore-access-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["known"],
            vec![json!({"direct_response": {"status": 204}})],
        )],
        vec![],
        json!({"access_log": {"path": path.to_string_lossy(), "format": "json"}}),
    );
    assert_eq!(
        get(&rt, proxy, "unknown", "/x", &[("user-agent", "test")]).status,
        404
    );
    let mut lines = Vec::new();
    assert!(support::eventually(|| {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        !lines.is_empty()
    }));
    let record: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(record["response_code"], 404);
    assert_eq!(record["response_flags"], "NR");
    assert_eq!(record["response_code_details"], "route_not_found");
    assert_eq!(record["authority"], "unknown");
    assert_eq!(record["user_agent"], "test");
    let _ = std::fs::remove_dir_all(&dir);
}
