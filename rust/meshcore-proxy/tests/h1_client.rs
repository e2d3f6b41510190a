//! meshcore's own HTTP/1 upstream client against a scripted upstream that writes exact
//! bytes: chunked bodies with extensions and trailers, bodies delimited by the close,
//! HEAD, 204 and 1xx heads, a connection the upstream closed while it sat idle (seen at
//! checkout, and by the reaper with no request at all), a chunked request body, and
//! responses that are not HTTP — each with the connection reuse the framing allows, as the
//! upstream counts connections.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::http::{
    Explained, apply_http, assert_explained, assert_flag_counted, forward_to, http_cluster,
    raw_upstream, route_config,
};
use support::{connect, start_one_worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One scripted reply: the bytes written back, and whether the upstream then closes.
type Reply = (&'static [u8], bool);

/// What the scripted upstream saw.
#[derive(Clone, Default)]
struct Seen {
    connections: Arc<AtomicUsize>,
    /// Each request as read (head and body).
    requests: Arc<Mutex<Vec<String>>>,
}

/// An upstream answering request n (counted over all connections) with `replies[n]`.
fn scripted_upstream(rt: &tokio::runtime::Runtime, replies: Vec<Reply>) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let replies = Arc::new(replies);
    let next = Arc::new(AtomicUsize::new(0));
    let state = seen.clone();
    let address = raw_upstream(rt, move |stream| {
        state.connections.fetch_add(1, Ordering::SeqCst);
        serve(
            stream,
            state.clone(),
            Arc::clone(&replies),
            Arc::clone(&next),
        )
    });
    (address, seen)
}

async fn serve(
    mut stream: TcpStream,
    seen: Seen,
    replies: Arc<Vec<Reply>>,
    next: Arc<AtomicUsize>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        seen.requests.lock().expect("lock").push(request);
        let n = next.fetch_add(1, Ordering::SeqCst);
        let Some(&(reply, close)) = replies.get(n) else {
            return;
        };
        if stream.write_all(reply).await.is_err() || close {
            return;
        }
    }
}

/// One request: its head, and its body by content-length or up to the last chunk.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    let end = loop {
        let body = &buffer[head_end..];
        let complete = match (length, chunked) {
            (Some(n), _) => (body.len() >= n).then_some(head_end + n),
            (None, true) => body
                .windows(5)
                .position(|w| w == b"0\r\n\r\n")
                .map(|at| head_end + at + 5),
            (None, false) => Some(head_end),
        };
        if let Some(end) = complete {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let request = String::from_utf8_lossy(&buffer[..end]).into_owned();
    buffer.drain(..end);
    Some(request)
}

fn proxy_to(plane: &meshcore_proxy::DataPlane, upstream: SocketAddr) -> SocketAddr {
    apply_http(
        plane,
        vec![route_config(&["*"], vec![forward_to("raw")])],
        vec![http_cluster("raw", "http1", &[upstream])],
        json!({}),
    )
}

/// Sends raw bytes on a new client connection and reads the answer to its close (the
/// requests are HTTP/1.0 or say `connection: close`, so bodies arrive unframed).
fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut client = connect(proxy);
    client.write_all(request).expect("writes");
    let mut response = Vec::new();
    client.read_to_end(&mut response).expect("reads to close");
    String::from_utf8_lossy(&response).into_owned()
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

const GET: &[u8] = b"GET / HTTP/1.0\r\nHost: app\r\n\r\n";

#[test]
fn chunked_and_close_delimited_bodies_arrive_whole_and_reuse_what_they_can() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, seen) = scripted_upstream(
        &rt,
        vec![
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                  5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 1\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfive!", false),
            // No length: the body runs to the close.
            (b"HTTP/1.1 200 OK\r\n\r\nuntil the close", true),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
        ],
    );
    let proxy = proxy_to(&plane, upstream);

    let first = exchange(proxy, GET);
    assert!(first.starts_with("HTTP/1.0 200 OK\r\n"), "{first}");
    assert_eq!(body(&first), "hello world");
    assert_eq!(body(&exchange(proxy, GET)), "five!");
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "chunked body reused"
    );
    assert_eq!(body(&exchange(proxy, GET)), "until the close");
    assert_eq!(body(&exchange(proxy, GET)), "ok");
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        2,
        "a close-delimited body spends its connection"
    );
}

#[test]
fn head_204_and_informational_responses_are_framed_without_a_body() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, seen) = scripted_upstream(
        &rt,
        vec![
            // HEAD: the length describes the body a GET would get; none follows.
            (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", false),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (
                b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
                  HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
                false,
            ),
        ],
    );
    let proxy = proxy_to(&plane, upstream);

    let head = exchange(proxy, b"HEAD / HTTP/1.0\r\nHost: app\r\n\r\n");
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(head.contains("content-length: 10\r\n"), "{head}");
    assert_eq!(body(&head), "");
    let no_content = exchange(proxy, GET);
    assert!(
        no_content.starts_with("HTTP/1.0 204 No Content\r\n"),
        "{no_content}"
    );
    let hinted = exchange(proxy, GET);
    assert!(hinted.starts_with("HTTP/1.0 200 OK\r\n"), "{hinted}");
    assert_eq!(body(&hinted), "final");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_connection_the_upstream_closed_while_idle_costs_no_request() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, seen) = scripted_upstream(
        &rt,
        vec![
            // Framed and keep-alive by its headers, yet the upstream closes right after.
            (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none", true),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntwo", false),
        ],
    );
    let proxy = proxy_to(&plane, upstream);
    assert_eq!(body(&exchange(proxy, GET)), "one");
    // The close reaches the proxy's idle connection before the next request.
    std::thread::sleep(Duration::from_millis(200));
    let second = exchange(proxy, GET);
    assert!(second.starts_with("HTTP/1.0 200 OK\r\n"), "{second}");
    assert_eq!(body(&second), "two");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    let flags = plane.stats().totals.response_flags;
    assert_eq!(flags.get("UC").copied().unwrap_or_default(), 0, "{flags:?}");
}

#[test]
fn a_chunked_request_body_goes_out_chunked() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, seen) = scripted_upstream(
        &rt,
        vec![(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", false)],
    );
    let proxy = proxy_to(&plane, upstream);
    let response = exchange(
        proxy,
        b"POST /upload HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\
          Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
    );
    assert!(
        response.starts_with("HTTP/1.1 201 Created\r\n"),
        "{response}"
    );
    let requests = seen.requests.lock().expect("lock");
    let request = &requests[0];
    assert!(
        request.starts_with("POST /upload HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("transfer-encoding: chunked\r\n"),
        "{request}"
    );
    let sent = body(request);
    let unchunked: String = sent
        .split("\r\n")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| pair.get(1).copied())
        .collect();
    assert_eq!(unchunked, "abcdefg", "{sent:?}");
}

#[test]
fn a_response_that_is_not_http_is_a_502_upe_naming_why() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, _seen) = scripted_upstream(
        &rt,
        vec![
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabc",
                true,
            ),
            (b"SSH-2.0-OpenSSH_9.6\r\n", true),
        ],
    );
    let proxy = proxy_to(&plane, upstream);
    for why in ["conflicting content-length values", "invalid HTTP version"] {
        let response = exchange(proxy, GET);
        assert!(
            response.starts_with("HTTP/1.0 502 Bad Gateway\r\n"),
            "{response}"
        );
        assert_explained(
            &support::http::Reply::from_raw(&response),
            &Explained {
                status: 502,
                flags: "UPE",
                error: "http_protocol_error",
                by: "RouteConfig/rc vh routes[0] -> raw",
                details: &format!("bad upstream response: {why}"),
            },
        );
    }
    assert_flag_counted(&plane, "UPE", 2);
}

/// With `preserve_header_case` (names noted as spelled both ways) a response that is not
/// HTTP is the same explained 502 UPE.
#[test]
fn a_response_that_is_not_http_with_preserve_header_case_is_a_502_upe_too() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, _seen) = scripted_upstream(&rt, vec![(b"SSH-2.0-OpenSSH_9.6\r\n", true)]);
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], vec![forward_to("raw")])],
        vec![http_cluster("raw", "http1", &[upstream])],
        json!({"preserve_header_case": true}),
    );
    let response = exchange(proxy, GET);
    assert_explained(
        &support::http::Reply::from_raw(&response),
        &Explained {
            status: 502,
            flags: "UPE",
            error: "http_protocol_error",
            by: "RouteConfig/rc vh routes[0] -> raw",
            details: "bad upstream response: invalid HTTP version",
        },
    );
    assert_flag_counted(&plane, "UPE", 1);
}

/// An idle connection has no task watching it: the pool's reaper looks every 5 s, so a
/// close by the upstream is let go of (and counted closed) with no request to notice it.
#[test]
fn the_reaper_lets_go_of_idle_connections_the_upstream_closed() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let (upstream, _seen) = scripted_upstream(
        &rt,
        vec![(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none", true)],
    );
    let proxy = proxy_to(&plane, upstream);
    assert_eq!(body(&exchange(proxy, GET)), "one");
    let active = || {
        plane
            .stats()
            .clusters
            .iter()
            .find(|c| c.name == "raw")
            .map(|c| c.connections_active)
    };
    assert_eq!(active(), Some(1), "pooled after the response");
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while active() != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(active(), Some(0), "the reaper closed it");
}

/// An HTTP/1.1 request the own server answers (HTTP/1.0 ones are handed to hyper).
const GET_11: &[u8] = b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

#[test]
fn upstream_fields_pass_through_in_lower_case_without_connection_fields() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nServer: Up\r\nSet-Cookie: a=1\r\n\
        Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nSet-Cookie: b=2\r\n\
        Content-Length: 2\r\nX-Empty:\r\n\r\nok";
    let private: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: secret\r\n\
        X-Public: 1\r\nContent-Length: 2\r\n\r\nok";
    let (upstream, _) = scripted_upstream(
        &rt,
        vec![(response, false), (private, false), (response, false)],
    );
    // As they arrived (no edit applies).
    let proxy = proxy_to(&plane, upstream);
    let passed = exchange(proxy, GET_11);
    let head = passed.split_once("\r\n\r\n").expect("a head").0;
    let fields: Vec<&str> = head
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("date:"))
        .collect();
    assert_eq!(
        fields,
        [
            "server: Up",
            "set-cookie: a=1",
            "set-cookie: b=2",
            "x-empty: ",
            "content-length: 2",
            "connection: close"
        ],
        "{passed}"
    );
    assert!(passed.ends_with("\r\n\r\nok"), "{passed}");

    // A field the upstream names in `connection` stays on its hop.
    let answer = exchange(proxy, GET_11);
    assert!(answer.contains("\r\nx-public: 1\r\n"), "{answer}");
    assert!(!answer.contains("x-private"), "{answer}");
    assert!(!answer.contains("secret"), "{answer}");

    // With a response edit the fields go through a map: the same fields, and the edit.
    let edited = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![
                json!({"route": {"clusters": [{"name": "raw", "weight": 1}]},
                        "response_headers": {"set": {"server": "edited"}, "add": {"x-route": "r"}}}),
            ],
        )],
        vec![http_cluster("raw", "http1", &[upstream])],
        json!({}),
    );
    let answer = exchange(edited, GET_11);
    assert!(answer.contains("\r\nserver: edited\r\n"), "{answer}");
    assert!(answer.contains("\r\nx-route: r\r\n"), "{answer}");
    assert_eq!(answer.matches("set-cookie: ").count(), 2, "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("keep-alive"),
        "{answer}"
    );
}

/// An upstream that sends each response's head at once and its `length`-byte body
/// 200 ms later (two segments, as nginx's `writev` and `sendfile` often make them).
fn late_body_upstream(rt: &tokio::runtime::Runtime, length: usize) -> SocketAddr {
    raw_upstream(rt, move |mut stream| async move {
        let mut buffer = Vec::new();
        while read_request(&mut stream, &mut buffer).await.is_some() {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream.write_all(&vec![b'b'; length]).await.is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_small_response_goes_out_in_one_write_and_a_large_one_head_first() {
    let rt = support::http::runtime();
    let plane = start_one_worker();
    for (length, whole) in [(1024, true), (16 * 1024, true), (16 * 1024 + 1, false)] {
        let proxy = proxy_to(&plane, late_body_upstream(&rt, length));
        let mut client = connect(proxy);
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
            .expect("writes");
        // The first read returns what the proxy's first write sent: all of a gathered
        // response, only the head of a streamed one (its body is 200 ms behind).
        let mut first = vec![0u8; 64 * 1024];
        let n = client.read(&mut first).expect("reads");
        let text = String::from_utf8_lossy(&first[..n]).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        if whole {
            assert_eq!(body.len(), length, "{length} bytes gathered with the head");
        } else {
            assert!(body.is_empty(), "{length} bytes: the head went out first");
        }
    }
}
