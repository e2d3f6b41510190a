//! The own HTTP/1 server with raw client bytes: request bodies by length and chunked on one
//! keep-alive connection, `Connection: close`, a body the route never reads, chunked
//! responses with trailers, an oversized head, and the hand-over to hyper mid-connection.

mod support;

use std::io::{Read, Write};

use serde_json::json;
use support::http::{
    Explained, HttpUpstream, Reply, apply_http, assert_explained, assert_flag_counted, forward_to,
    http_cluster, read_raw_response,
};
use support::{connect, start};

/// A data plane with an HTTP listener routing host `app` to one upstream, and a client
/// connected to it. The runtime, plane and upstream live as long as the returned values.
struct Serving {
    _rt: tokio::runtime::Runtime,
    plane: meshcore_proxy::DataPlane,
    app: HttpUpstream,
    client: std::net::TcpStream,
}

fn serving(settings: serde_json::Value) -> Serving {
    let rt = support::http::runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let proxy = apply_http(
        &plane,
        vec![support::http::route_config(
            &["app"],
            vec![forward_to("app")],
        )],
        vec![http_cluster("app", "http1", &[app.address])],
        settings,
    );
    Serving {
        client: connect(proxy),
        _rt: rt,
        plane,
        app,
    }
}

fn read_to_close(client: &mut std::net::TcpStream) -> String {
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("reads to close");
    String::from_utf8_lossy(&rest).into_owned()
}

#[test]
fn request_bodies_by_length_and_chunked_share_one_keep_alive_connection() {
    let mut s = serving(json!({}));
    s.client
        .write_all(b"POST /echo-body HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello")
        .expect("length-framed request");
    let (head, body) = read_raw_response(&mut s.client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello");
    // A chunked body sent in pieces, as a streaming s.client would.
    s.client
        .write_all(b"POST /echo-body HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel")
        .expect("first piece");
    std::thread::sleep(std::time::Duration::from_millis(50));
    s.client
        .write_all(b"lo\r\n6\r\n world\r\n0\r\n\r\n")
        .expect("rest");
    let (head, body) = read_raw_response(&mut s.client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello world");
    s.client
        .write_all(b"GET /third HTTP/1.1\r\nHost: app\r\n\r\n")
        .expect("third");
    let (head, body) = read_raw_response(&mut s.client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(body, b"app GET /third");
    assert_eq!(s.app.connections(), 1, "one upstream connection, reused");
}

#[test]
fn connection_close_is_honoured_after_the_response() {
    let mut s = serving(json!({}));
    s.client
        .write_all(b"GET /last HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .expect("request");
    let response = read_to_close(&mut s.client);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(response.ends_with("app GET /last"), "{response}");
}

/// A POST to a host no route serves: the 404 comes without reading the body, the body
/// (already arrived) is skipped, and the next request on the connection is served.
#[test]
fn a_body_the_route_never_reads_is_skipped_and_the_connection_kept() {
    let mut s = serving(json!({}));
    s.client
        .write_all(b"POST /x HTTP/1.1\r\nHost: elsewhere\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: app\r\n\r\n")
        .expect("two requests");
    let (head, body) = read_raw_response(&mut s.client);
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_explained(
        &Reply::from_raw(&format!("{head}{}", String::from_utf8_lossy(&body))),
        &Explained {
            status: 404,
            flags: "NR",
            error: "destination_not_found",
            by: "RouteConfig/rc",
            details: "no virtual host for elsewhere",
        },
    );
    let (head, body) = read_raw_response(&mut s.client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"app GET /after");
}

/// A body still to come when the answer is ready cannot be skipped: the answer says
/// `connection: close` and the connection ends.
#[test]
fn a_body_still_to_come_closes_the_connection_after_the_answer() {
    let mut s = serving(json!({}));
    s.client
        .write_all(b"POST /x HTTP/1.1\r\nHost: elsewhere\r\nContent-Length: 100\r\n\r\nhello")
        .expect("a partial body");
    let response = read_to_close(&mut s.client);
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
}

#[test]
fn a_response_of_unknown_length_goes_chunked_with_its_trailers() {
    let mut s = serving(json!({}));
    s.client
        .write_all(
            b"GET /trailers HTTP/1.1\r\nHost: app\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        )
        .expect("request");
    let response = read_to_close(&mut s.client).to_ascii_lowercase();
    assert!(
        response.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\n7\r\npayload\r\n0\r\ngrpc-status: 0\r\n\r\n"),
        "{response}"
    );
}

/// A head that grows past the parser's buffer without ending is answered with an
/// explained 431 and the connection closed (before, hyper's bare 431).
#[test]
fn a_head_that_never_ends_is_an_explained_431() {
    let mut s = serving(json!({"max_request_headers_kb": 1}));
    let long = format!(
        "GET / HTTP/1.1\r\nHost: app\r\nx-long: {}",
        "a".repeat(16 * 1024)
    );
    let _ = s.client.write_all(long.as_bytes());
    let response = read_to_close(&mut s.client);
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert_explained(
        &Reply::from_raw(&response),
        &Explained {
            status: 431,
            flags: "DPE",
            error: "http_request_error",
            by: "ProxySettings",
            // The parser's buffer: twice max_request_headers_kb, and 8 KiB.
            details: "request head larger than 10240 bytes",
        },
    );
    assert_flag_counted(&s.plane, "DPE", 1);
    assert_eq!(s.app.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// An HTTP/1.0 request after an HTTP/1.1 one on the same connection: hyper takes the
/// connection over at that request (the bytes read so far replayed) and answers it.
#[test]
fn the_connection_moves_to_hyper_at_a_request_left_to_it() {
    let mut s = serving(json!({}));
    s.client
        .write_all(
            b"GET /own HTTP/1.1\r\nHost: app\r\n\r\nGET /hyper HTTP/1.0\r\nHost: app\r\n\r\n",
        )
        .expect("two requests");
    let response = read_to_close(&mut s.client);
    let first = response
        .find("app GET /own")
        .unwrap_or_else(|| panic!("{response}"));
    let second = response
        .find("app GET /hyper")
        .unwrap_or_else(|| panic!("{response}"));
    assert!(first < second, "{response}");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    // hyper answers an HTTP/1.0 request in kind.
    assert!(response.contains("HTTP/1.0 200 OK\r\n"), "{response}");
}

/// A WebSocket-style upgrade after a plain request on the same connection: hyper takes
/// over and the bytes after the 101 flow both ways.
#[test]
fn an_upgrade_after_a_plain_request_still_tunnels() {
    let mut s = serving(json!({}));
    s.client
        .write_all(b"GET /plain HTTP/1.1\r\nHost: app\r\n\r\n")
        .expect("plain");
    let (head, body) = read_raw_response(&mut s.client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"app GET /plain");
    s.client
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .expect("upgrade");
    let (head, _) = read_raw_response(&mut s.client);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    s.client.write_all(b"ping").expect("tunnel write");
    let mut echoed = [0u8; 4];
    s.client.read_exact(&mut echoed).expect("tunnel read");
    assert_eq!(&echoed, b"ping");
}
