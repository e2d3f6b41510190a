//! The own HTTP/1 server with raw client bytes: request bodies by length and chunked on one
//! keep-alive connection, `Connection: close`, a body the route never reads, chunked
//! responses with trailers, an oversized head, HTTP/1.0 (keep-alive by header, close
//! by default), and the hand-over to hyper mid-connection.

mod support;

use std::io::{Read, Write};

use serde_json::json;
use support::http::{
    Explained, HttpUpstream, Reply, apply_http, assert_explained, assert_flag_counted, forward_to,
    http_cluster, malformed, read_raw_response,
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

/// A request with an expectation other than `100-continue` after a plain one on the same
/// connection: hyper takes the connection over at that request (the bytes read so far
/// replayed) and answers it after the first.
#[test]
fn the_connection_moves_to_hyper_at_a_request_left_to_it() {
    let mut s = serving(json!({}));
    s.client
        .write_all(
            b"GET /own HTTP/1.1\r\nHost: app\r\n\r\n\
              GET /hyper HTTP/1.1\r\nHost: app\r\nExpect: something\r\nConnection: close\r\n\r\n",
        )
        .expect("two requests");
    let response = read_to_close(&mut s.client);
    let first = response
        .find("app GET /own")
        .unwrap_or_else(|| panic!("{response}"));
    let second = response
        .find("\r\n\r\napp GET /hyper")
        .unwrap_or_else(|| panic!("{response}"));
    assert!(first < second, "{response}");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
}

/// HTTP/1.0 is served by the own server: answered in kind, kept open only when asked with
/// `Connection: keep-alive` (and then said so), and a malformed request later on such a
/// connection is an explained 400 (it was hyper's bare one).
#[test]
fn http_1_0_keep_alive_is_served_and_a_later_malformed_request_is_explained() {
    let mut s = serving(json!({}));
    for path in ["/one", "/two"] {
        s.client
            .write_all(
                format!("GET {path} HTTP/1.0\r\nHost: app\r\nConnection: keep-alive\r\n\r\n")
                    .as_bytes(),
            )
            .expect("request");
        let (head, body) = read_raw_response(&mut s.client);
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: keep-alive\r\n"), "{head}");
        assert_eq!(body, format!("app GET {path}").as_bytes());
    }
    s.client
        .write_all(b"GET / HTTP/1.0\r\nHost: app\r\nno colon here\r\n\r\n")
        .expect("malformed request");
    let response = read_to_close(&mut s.client);
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert_explained(
        &Reply::from_raw(&response),
        &malformed("malformed request head: invalid header name"),
    );
    assert_flag_counted(&s.plane, "DPE", 1);
    assert_eq!(s.app.requests.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Without `Connection: keep-alive` an HTTP/1.0 connection closes after its answer; a
/// body sent by length reaches the upstream; transfer-encoding, which HTTP/1.0 does not
/// have, is refused before the upstream sees anything.
#[test]
fn http_1_0_closes_by_default_and_may_not_send_chunked() {
    let mut s = serving(json!({}));
    s.client
        .write_all(b"POST /echo-body HTTP/1.0\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello")
        .expect("request");
    let response = read_to_close(&mut s.client);
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");

    let mut client = connect(s.client.peer_addr().expect("proxy address"));
    client
        .write_all(b"POST / HTTP/1.0\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .expect("request");
    let response = read_to_close(&mut client);
    assert_explained(
        &Reply::from_raw(&response),
        &malformed("transfer-encoding in an HTTP/1.0 request"),
    );
    assert_eq!(s.app.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
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

/// An upgrade the upstream declines: the answer comes with `connection: close` and the
/// connection ends there, so the malformed request sent after it never meets hyper's
/// parser (whose bare 400 nothing would explain).
#[test]
fn a_declined_upgrade_closes_the_connection_after_its_answer() {
    let mut s = serving(json!({}));
    s.client
        .write_all(
            b"GET /status/404 HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n\
              GET / HTTP/1.1\r\nHost: app\r\nno colon here\r\n\r\n",
        )
        .expect("declined upgrade, then a malformed request");
    let response = read_to_close(&mut s.client);
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    assert_eq!(s.app.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}
