//! HTTP/1 on the wire, with raw client bytes: header case kept when
//! `preserve_header_case` is on, pipelined requests answered in order, `Expect:
//! 100-continue`, and requests hyper cannot parse.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;

use serde_json::json;
use support::http::{HttpUpstream, apply_http, forward_to, http_cluster, read_raw_response};
use support::{connect, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that hands the raw request head it read to `heads` and answers with a
/// mixed-case header.
fn raw_upstream(rt: &tokio::runtime::Runtime, heads: mpsc::Sender<String>) -> SocketAddr {
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let address = listener.local_addr().expect("address");
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nX-Upstream-Case: Kept\r\nContent-Length: 2\r\n\r\nok",
                    )
                    .await;
                let _ = stream.read(&mut buffer).await;
            });
        }
    });
    address
}

#[test]
fn preserve_header_case_keeps_the_case_both_ways() {
    let rt = support::http::runtime();
    for preserve in [true, false] {
        let plane = start();
        let (heads, upstream_heads) = mpsc::channel();
        let upstream = raw_upstream(&rt, heads);
        let proxy = apply_http(
            &plane,
            vec![support::http::route_config(&["*"], vec![forward_to("raw")])],
            vec![http_cluster("raw", "http1", &[upstream])],
            json!({"preserve_header_case": preserve}),
        );
        let mut client = connect(proxy);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: app\r\nX-Custom-Header: Value\r\n\r\n")
            .expect("writes");
        let (head, body) = read_raw_response(&mut client);
        assert_eq!(body, b"ok");
        let upstream_head = upstream_heads.recv().expect("upstream read a request");
        if preserve {
            assert!(
                upstream_head.contains("\r\nX-Custom-Header: Value\r\n"),
                "{upstream_head}"
            );
            assert!(head.contains("\r\nX-Upstream-Case: Kept\r\n"), "{head}");
        } else {
            assert!(
                upstream_head.contains("\r\nx-custom-header: Value\r\n"),
                "{upstream_head}"
            );
            assert!(head.contains("\r\nx-upstream-case: Kept\r\n"), "{head}");
        }
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let rt = support::http::runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let proxy = apply_http(
        &plane,
        vec![support::http::route_config(&["*"], vec![forward_to("app")])],
        vec![http_cluster("app", "http1", &[app.address])],
        json!({}),
    );
    let mut client = connect(proxy);
    client
        .write_all(b"GET /one HTTP/1.1\r\nHost: app\r\n\r\nGET /two HTTP/1.1\r\nHost: app\r\n\r\n")
        .expect("both requests in one write");
    let (first_head, first) = read_raw_response(&mut client);
    let (second_head, second) = read_raw_response(&mut client);
    assert!(first_head.starts_with("HTTP/1.1 200"), "{first_head}");
    assert!(second_head.starts_with("HTTP/1.1 200"), "{second_head}");
    assert_eq!(first, b"app GET /one");
    assert_eq!(second, b"app GET /two");
}

#[test]
fn expect_100_continue_gets_a_100_before_the_body_is_sent() {
    let rt = support::http::runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let proxy = apply_http(
        &plane,
        vec![support::http::route_config(&["*"], vec![forward_to("app")])],
        vec![http_cluster("app", "http1", &[app.address])],
        json!({}),
    );
    let mut client = connect(proxy);
    client
        .write_all(
            b"POST /echo-body HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .expect("head");
    let (interim, _) = read_raw_response(&mut client);
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    client.write_all(b"hello").expect("body after the 100");
    let (head, body) = read_raw_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello");
    assert!(!head.to_ascii_lowercase().contains("echo-expect"), "{head}");
}

/// Hyper answers a request it cannot parse itself, before any phase of ours runs: a bare
/// 400 with no body, proxy-status or decision header (documented in `http/server.rs`). It
/// is still counted as DPE.
#[test]
fn a_request_hyper_cannot_parse_is_a_400_counted_as_dpe() {
    let rt = support::http::runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let proxy = apply_http(
        &plane,
        vec![support::http::route_config(&["*"], vec![forward_to("app")])],
        vec![http_cluster("app", "http1", &[app.address])],
        json!({}),
    );
    let mut client = connect(proxy);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\nno colon here\r\n\r\n")
        .expect("writes");
    let mut response = String::new();
    client
        .read_to_string(&mut response)
        .expect("reads to close");
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(support::eventually(|| plane.stats().totals.response_flags
        ["DPE"]
        == 1));
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}
