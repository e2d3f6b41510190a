//! The upstream side of L7 through real sockets and hyper upstreams: pool limits
//! (`max_requests_per_connection`, `max_connections`, the pool idle timeout), endpoint sets
//! changed while requests are in flight, hash policies that keep a client on one endpoint,
//! retries on refused streams and resets, and requests an HTTP/2 GOAWAY left unprocessed.

mod support;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};
use support::http::{
    Conn, Explained, HttpUpstream, assert_explained, assert_flag_counted, forward_to, get,
    raw_upstream, read_head, route_config, runtime,
};
use support::{eventually, free_port, start, start_one_worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

fn endpoints(upstreams: &[SocketAddr]) -> Value {
    upstreams
        .iter()
        .map(|a| json!({"address": "127.0.0.1", "port": a.port()}))
        .collect()
}

/// One `http` listener on `port` routing everything (with `route`'s extra fields) to
/// cluster `app` (with `cluster`'s extra fields).
fn apply(
    plane: &meshcore_proxy::DataPlane,
    version: &str,
    port: u16,
    route: Value,
    cluster: Value,
) -> SocketAddr {
    let mut action = forward_to("app");
    if let (Some(action), Value::Object(extra)) = (action["route"].as_object_mut(), route) {
        action.extend(extra);
    }
    let mut app = json!({"name": "app", "protocol": "http1", "connect_timeout_ms": 1000});
    if let (Some(app), Value::Object(extra)) = (app.as_object_mut(), cluster) {
        app.extend(extra);
    }
    let snapshot = json!({
        "version": version,
        "listeners": [{"name": "http", "address": "127.0.0.1", "port": port,
                       "protocol": "http", "route_config": "rc"}],
        "route_configs": [route_config(&["*"], vec![action])],
        "clusters": [app],
    });
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("json"))
        .expect("snapshot applies");
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn max_requests_per_connection_retires_upstream_connections() {
    let rt = runtime();
    let plane = start_one_worker();
    let h1 = HttpUpstream::start(&rt, "h1", false);
    let h2 = HttpUpstream::start(&rt, "h2", true);
    let proxy = apply(
        &plane,
        "v1",
        free_port(),
        json!({}),
        json!({"endpoints": endpoints(&[h1.address]),
               "pool": {"max_requests_per_connection": 2}}),
    );
    let mut client = Conn::open(&rt, proxy, false);
    for _ in 0..6 {
        assert_eq!(client.get(&rt, "app", "/").status, 200);
    }
    assert_eq!(
        h1.connections(),
        3,
        "HTTP/1: a new connection every 2 requests"
    );

    let proxy = apply(
        &plane,
        "v2",
        free_port(),
        json!({}),
        json!({"protocol": "http2", "endpoints": endpoints(&[h2.address]),
               "pool": {"max_requests_per_connection": 2}}),
    );
    let mut client = Conn::open(&rt, proxy, false);
    for _ in 0..6 {
        assert_eq!(client.get(&rt, "app", "/").status, 200);
    }
    assert_eq!(
        h2.connections(),
        3,
        "HTTP/2: a new connection every 2 streams"
    );
}

#[test]
fn a_full_pool_answers_503_uo_with_proxy_status() {
    let rt = runtime();
    let plane = start_one_worker();
    let app = HttpUpstream::start(&rt, "app", false);
    let proxy = apply(
        &plane,
        "v1",
        free_port(),
        json!({}),
        json!({"endpoints": endpoints(&[app.address]), "connect_timeout_ms": 200,
               "pool": {"max_connections": 1}}),
    );
    let holder = std::thread::spawn(move || {
        let rt = runtime();
        get(&rt, proxy, "app", "/gate", &[])
    });
    assert!(eventually(|| app.waiting() == 1));
    assert_explained(
        &get(&rt, proxy, "app", "/", &[]),
        &Explained {
            status: 503,
            flags: "UO",
            error: "connection_limit_reached",
            by: "RouteConfig/rc vh routes[0] -> app",
            details: &format!("max_connections 1 reached for {}", app.address),
        },
    );
    assert_flag_counted(&plane, "UO", 1);

    app.open_gate(1);
    assert_eq!(holder.join().expect("holder").status, 200);
    assert_eq!(get(&rt, proxy, "app", "/", &[]).status, 200);
    assert_eq!(
        app.connections(),
        1,
        "the one connection is reused once free"
    );
}

#[test]
fn the_pool_idle_timeout_closes_idle_upstream_connections() {
    let rt = runtime();
    let plane = start_one_worker();
    let h1 = HttpUpstream::start(&rt, "h1", false);
    let h2 = HttpUpstream::start(&rt, "h2", true);
    for (upstream, protocol) in [(&h1, "http1"), (&h2, "http2")] {
        let proxy = apply(
            &plane,
            protocol,
            free_port(),
            json!({}),
            json!({"protocol": protocol, "endpoints": endpoints(&[upstream.address]),
                   "pool": {"idle_timeout_ms": 100}}),
        );
        assert_eq!(get(&rt, proxy, "app", "/", &[]).status, 200);
        // No further request: the proxy closes the idle connection on its own.
        assert!(
            eventually(|| upstream.closed() == 1),
            "{protocol}: idle connection closed"
        );
        assert_eq!(get(&rt, proxy, "app", "/", &[]).status, 200);
        assert_eq!(
            upstream.connections(),
            2,
            "{protocol}: a new connection after"
        );
    }
}

#[test]
fn endpoint_changes_while_requests_are_in_flight_fail_none() {
    let rt = runtime();
    let plane = Arc::new(start());
    let upstreams: Vec<HttpUpstream> = ["a", "b", "c"]
        .into_iter()
        .map(|tag| HttpUpstream::start(&rt, tag, false))
        .collect();
    let addresses: Vec<SocketAddr> = upstreams.iter().map(|u| u.address).collect();
    let port = free_port();
    let apply_set = |version: &str, set: &[SocketAddr]| {
        apply(
            &plane,
            version,
            port,
            json!({}),
            json!({"endpoints": endpoints(set)}),
        )
    };

    // A request held at endpoint a while a is removed finishes on a.
    let proxy = apply_set("only-a", &addresses[..1]);
    let held = std::thread::spawn(move || {
        let rt = runtime();
        get(&rt, proxy, "app", "/gate", &[])
    });
    assert!(eventually(|| upstreams[0].waiting() == 1));
    apply_set("only-b", &addresses[1..2]);
    upstreams[0].open_gate(1);
    let reply = held.join().expect("held request");
    assert_eq!((reply.status, reply.body.as_str()), (200, "a GET /gate"));
    assert_eq!(get(&rt, proxy, "app", "/", &[]).header("x-upstream"), "b");

    // Clients on keep-alive and fresh connections while the set keeps changing.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let rt = runtime();
                let mut kept = Conn::open(&rt, proxy, i % 2 == 0);
                (0..60)
                    .map(|n| {
                        if n % 3 == 0 {
                            get(&rt, proxy, "app", "/", &[]).status
                        } else {
                            kept.get(&rt, "app", "/").status
                        }
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let sets: [&[SocketAddr]; 4] = [
        &[addresses[0], addresses[1]],
        &[addresses[1], addresses[2]],
        &[addresses[2]],
        &[addresses[0], addresses[2]],
    ];
    let mut applies = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        apply_set(&format!("v{applies}"), sets[applies % sets.len()]);
        applies += 1;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for client in clients {
        let statuses = client.join().expect("client");
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert!(applies > 1, "the endpoint set changed during the traffic");
}

fn hashed(
    cluster_hash: Value,
) -> (
    Runtime,
    Arc<meshcore_proxy::DataPlane>,
    SocketAddr,
    Vec<HttpUpstream>,
) {
    let rt = runtime();
    let plane = Arc::new(start());
    let upstreams: Vec<HttpUpstream> = ["a", "b", "c"]
        .into_iter()
        .map(|tag| HttpUpstream::start(&rt, tag, false))
        .collect();
    let addresses: Vec<SocketAddr> = upstreams.iter().map(|u| u.address).collect();
    let proxy = apply(
        &plane,
        "v1",
        free_port(),
        json!({}),
        json!({"endpoints": endpoints(&addresses), "lb_policy": "ring_hash",
               "hash_policy": cluster_hash}),
    );
    (rt, plane, proxy, upstreams)
}

#[test]
fn cookie_hashing_sets_a_cookie_and_sticks_to_it() {
    let (rt, _plane, proxy, _upstreams) =
        hashed(json!({"cookie": {"name": "session", "ttl_ms": 60000, "path": "/"}}));
    let mut seen = HashSet::new();
    for _ in 0..12 {
        let first = get(&rt, proxy, "app", "/", &[]);
        let set_cookie = first.header("set-cookie");
        assert!(
            set_cookie.starts_with("session=\"")
                && set_cookie.ends_with("\"; Max-Age=60; Path=/; HttpOnly"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().expect("name=value");
        let endpoint = first.header("x-upstream").to_string();
        for _ in 0..3 {
            let again = get(&rt, proxy, "app", "/", &[("cookie", cookie)]);
            assert_eq!(again.header("x-upstream"), endpoint, "{cookie}");
            assert_eq!(again.header("set-cookie"), "", "no new cookie once sent");
        }
        seen.insert(endpoint);
    }
    assert!(
        seen.len() > 1,
        "different cookies reach different endpoints"
    );
}

#[test]
fn source_ip_hashing_keeps_each_client_address_on_one_endpoint() {
    let (rt, _plane, proxy, _upstreams) = hashed(json!({"source_ip": true}));
    let mut seen = HashSet::new();
    for last in 1..=12u8 {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let endpoints: HashSet<String> = (0..3)
            .map(|_| {
                Conn::open_from(&rt, proxy, false, Some(source))
                    .get(&rt, "app", "/")
                    .header("x-upstream")
                    .to_string()
            })
            .collect();
        assert_eq!(endpoints.len(), 1, "{source}: {endpoints:?}");
        seen.extend(endpoints);
    }
    assert!(
        seen.len() > 1,
        "different addresses reach different endpoints"
    );
}

#[test]
fn query_parameter_hashing_keeps_each_value_on_one_endpoint() {
    let (rt, _plane, proxy, _upstreams) = hashed(json!({"query_parameter": "user"}));
    let mut seen = HashSet::new();
    for user in 0..12 {
        let path = format!("/items?page=1&user={user}");
        let endpoints: HashSet<String> = (0..3)
            .map(|_| {
                get(&rt, proxy, "app", &path, &[])
                    .header("x-upstream")
                    .to_string()
            })
            .collect();
        assert_eq!(endpoints.len(), 1, "user {user}: {endpoints:?}");
        seen.extend(endpoints);
    }
    assert!(seen.len() > 1, "different values reach different endpoints");
}

/// An HTTP/2 upstream that refuses its first stream (REFUSED_STREAM) and answers the rest.
fn refusing_h2_upstream(rt: &Runtime) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let address = listener.local_addr().expect("address");
    let streams = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&streams);
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let response = http::Response::new(());
                    if let Ok(mut body) = respond.send_response(response, false) {
                        let _ = body.send_data(Bytes::from_static(b"served"), true);
                    }
                }
            });
        }
    });
    (address, streams)
}

/// An HTTP/1 upstream that closes its first connection after reading the request (a
/// reset before any response) and answers on the others.
fn resetting_h1_upstream(rt: &Runtime) -> (SocketAddr, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    let address = raw_upstream(rt, move |mut stream| {
        let first = count.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if read_head(&mut stream).await.is_some() && !first {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nserved")
                    .await;
                let _ = stream.read(&mut [0u8; 1024]).await;
            }
        }
    });
    (address, connections)
}

#[test]
fn refused_streams_and_resets_are_retried_when_the_policy_says_so() {
    let rt = runtime();
    let plane = start_one_worker();
    let (refusing, streams) = refusing_h2_upstream(&rt);
    let proxy = apply(
        &plane,
        "refused",
        free_port(),
        json!({"retries": {"attempts": 1, "retry_on": ["refused-stream"]}}),
        json!({"protocol": "http2", "endpoints": endpoints(&[refusing])}),
    );
    let reply = get(&rt, proxy, "app", "/", &[]);
    assert_eq!((reply.status, reply.body.as_str()), (200, "served"));
    assert_eq!(streams.load(Ordering::SeqCst), 2);
    assert_eq!(plane.stats().clusters[0].http_retries, 1);

    let (resetting, connections) = resetting_h1_upstream(&rt);
    let proxy = apply(
        &plane,
        "reset",
        free_port(),
        json!({"retries": {"attempts": 1, "retry_on": ["reset"]}}),
        json!({"endpoints": endpoints(&[resetting])}),
    );
    let reply = get(&rt, proxy, "app", "/", &[]);
    assert_eq!((reply.status, reply.body.as_str()), (200, "served"));
    assert_eq!(connections.load(Ordering::SeqCst), 2);

    // Without a policy, the same reset is the client's 503 UC.
    let (resetting, _) = resetting_h1_upstream(&rt);
    let proxy = apply(
        &plane,
        "no-retry",
        free_port(),
        json!({}),
        json!({"endpoints": endpoints(&[resetting])}),
    );
    assert_explained(
        &get(&rt, proxy, "app", "/", &[]),
        &Explained {
            status: 503,
            flags: "UC",
            error: "connection_terminated",
            by: "RouteConfig/rc vh routes[0] -> app",
            details: "upstream reset: upstream closed the connection before a complete response head",
        },
    );
    assert_flag_counted(&plane, "UC", 1);

    // Nor is a refused stream retried without one: 503 UC too, naming the HTTP/2 error
    // (hyper's own text is only "http2 error").
    let (refusing, _) = refusing_h2_upstream(&rt);
    let proxy = apply(
        &plane,
        "no-retry-h2",
        free_port(),
        json!({}),
        json!({"protocol": "http2", "endpoints": endpoints(&[refusing])}),
    );
    assert_explained(
        &get(&rt, proxy, "app", "/", &[]),
        &Explained {
            status: 503,
            flags: "UC",
            error: "connection_terminated",
            by: "RouteConfig/rc vh routes[0] -> app",
            details: "upstream refused stream: http2 error: stream error received: \
                      refused stream before processing any application logic",
        },
    );
    assert_flag_counted(&plane, "UC", 2);
}

/// An HTTP/2 upstream whose first connection answers the first request's HEADERS with
/// GOAWAY(last-stream-id 0, NO_ERROR), so that request was not processed (RFC 9113 §6.8),
/// as nginx does past `keepalive_requests`; later connections answer every stream.
fn going_away_h2_upstream(rt: &Runtime) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let address = listener.local_addr().expect("address");
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::spawn(async move {
                    let mut preface = [0u8; 24];
                    if stream.read_exact(&mut preface).await.is_err() {
                        return;
                    }
                    // Frames until the first HEADERS (type 1).
                    loop {
                        let mut head = [0u8; 9];
                        if stream.read_exact(&mut head).await.is_err() {
                            return;
                        }
                        let length = usize::from(head[0]) << 16
                            | usize::from(head[1]) << 8
                            | usize::from(head[2]);
                        let mut payload = vec![0u8; length];
                        if stream.read_exact(&mut payload).await.is_err() {
                            return;
                        }
                        if head[3] == 1 {
                            break;
                        }
                    }
                    let settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
                    let go_away = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                    let _ = stream.write_all(&settings).await;
                    let _ = stream.write_all(&go_away).await;
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest).await;
                });
                continue;
            }
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    if let Ok(mut body) = respond.send_response(http::Response::new(()), false) {
                        let _ = body.send_data(Bytes::from_static(b"served"), true);
                    }
                }
            });
        }
    });
    (address, connections)
}

#[test]
fn a_request_past_an_http2_goaway_goes_out_again_without_a_retry_policy() {
    let rt = runtime();
    let plane = start_one_worker();
    let (upstream, connections) = going_away_h2_upstream(&rt);
    let proxy = apply(
        &plane,
        "goaway",
        free_port(),
        json!({}),
        json!({"protocol": "http2", "endpoints": endpoints(&[upstream])}),
    );
    let reply = get(&rt, proxy, "app", "/", &[]);
    assert_eq!((reply.status, reply.body.as_str()), (200, "served"));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "sent again on a new connection"
    );
    let stats = &plane.stats().clusters[0];
    assert_eq!((stats.http_unprocessed_resends, stats.http_retries), (1, 0));
    assert_eq!(plane.stats().totals.response_flags.get("UC"), Some(&0));
    // The next request uses the new connection; the one that went away is not taken again.
    let reply = get(&rt, proxy, "app", "/", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(plane.stats().clusters[0].http_unprocessed_resends, 1);
}
