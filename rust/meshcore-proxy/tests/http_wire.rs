//! HTTP/1 on the wire, with raw client bytes: header case kept when
//! `preserve_header_case` is on, pipelined requests answered in order, `Expect:
//! 100-continue`, and malformed requests (an explained 400, first or later).

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;

use serde_json::json;
use support::http::{
    HttpUpstream, Reply, apply_http, assert_explained, assert_flag_counted, forward_to,
    http_cluster, malformed, raw_upstream, read_head, read_raw_response,
};
use support::{connect, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that hands the raw request head it read to `heads` and answers with a
/// mixed-case header.
fn mixed_case_upstream(rt: &tokio::runtime::Runtime, heads: mpsc::Sender<String>) -> SocketAddr {
    raw_upstream(rt, move |mut stream| {
        let heads = heads.clone();
        async move {
            let Some(head) = read_head(&mut stream).await else {
                return;
            };
            let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nX-Upstream-Case: Kept\r\nContent-Length: 2\r\n\r\nok",
                )
                .await;
            let _ = stream.read(&mut [0u8; 1024]).await;
        }
    })
}

#[test]
fn preserve_header_case_keeps_the_case_both_ways() {
    let rt = support::http::runtime();
    for preserve in [true, false] {
        let plane = start();
        let (heads, upstream_heads) = mpsc::channel();
        let upstream = mixed_case_upstream(&rt, heads);
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

/// With `preserve_header_case` the own server still serves the connection, so a malformed
/// request after a good one is explained like any other (hyper's server would have sent a
/// bare 400), and names the proxy adds or edits go out in lower case next to kept ones.
#[test]
fn preserve_header_case_explains_a_malformed_request_after_a_good_one() {
    let rt = support::http::runtime();
    let plane = start();
    let (heads, upstream_heads) = mpsc::channel();
    let upstream = mixed_case_upstream(&rt, heads);
    let route = json!({
        "matches": [{"uri": {"prefix": "/"}}],
        "request_headers": {"set": {"X-Added": "1"}},
        "response_headers": {"set": {"X-Edited": "2"}},
        "route": {"clusters": [{"name": "raw"}]}
    });
    let proxy = apply_http(
        &plane,
        vec![support::http::route_config(&["*"], vec![route])],
        vec![http_cluster("raw", "http1", &[upstream])],
        json!({"preserve_header_case": true}),
    );
    let mut client = connect(proxy);
    client
        .write_all(
            b"GET / HTTP/1.1\r\nHost: app\r\nX-Custom-Header: A\r\nx-CUSTOM-header: B\r\n\r\n",
        )
        .expect("writes");
    let (head, body) = read_raw_response(&mut client);
    assert_eq!(body, b"ok");
    let upstream_head = upstream_heads.recv().expect("upstream read a request");
    assert!(
        upstream_head.contains("\r\nX-Custom-Header: A\r\nx-CUSTOM-header: B\r\n"),
        "{upstream_head}"
    );
    assert!(
        upstream_head.contains("\r\nx-added: 1\r\n"),
        "{upstream_head}"
    );
    // The response's fields went through the map (a field was edited): case still kept.
    assert!(head.contains("\r\nX-Upstream-Case: Kept\r\n"), "{head}");
    assert!(head.contains("\r\nx-edited: 2\r\n"), "{head}");

    client
        .write_all(b"GET / HTTP/1.1\r\nHost: app\r\nno colon here\r\n\r\n")
        .expect("writes");
    let mut response = Vec::new();
    client.read_to_end(&mut response).expect("reads to close");
    let response = String::from_utf8_lossy(&response);
    assert_explained(
        &Reply::from_raw(&response),
        &malformed("malformed request head: invalid header name"),
    );
    assert_flag_counted(&plane, "DPE", 1);
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

/// Applies an HTTP listener to `app` with a JSON access log; returns the proxy's address
/// and the log's path.
fn with_access_log(
    plane: &meshcore_proxy::DataPlane,
    app: SocketAddr,
) -> (SocketAddr, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("meshcore-wire-{}", support::free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("access.log");
    let proxy = apply_http(
        plane,
        vec![support::http::route_config(&["*"], vec![forward_to("app")])],
        vec![http_cluster("app", "http1", &[app])],
        json!({"access_log": {"path": path.to_string_lossy(), "format": "json"}}),
    );
    (proxy, path)
}

fn log_lines(path: &std::path::Path, at_least: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    assert!(support::eventually(|| {
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        lines.len() >= at_least
    }));
    lines
}

fn send_raw(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut client = connect(proxy);
    client.write_all(bytes).expect("writes");
    let mut response = Vec::new();
    client.read_to_end(&mut response).expect("reads to close");
    String::from_utf8_lossy(&response).into_owned()
}

/// A first request that cannot parse, bytes that are not HTTP at all, and a body framed
/// two ways (the request smuggling shape) are answered by the malformed phase before
/// hyper: 400 DPE with proxy-status, the decision header, a body saying why, `connection:
/// close` and an access log line; the upstream never sees them.
#[test]
fn a_malformed_first_request_gets_an_explained_400_dpe() {
    let rt = support::http::runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let (proxy, log) = with_access_log(&plane, app.address);

    let cases: [(&[u8], &str); 3] = [
        (
            b"GET / HTTP/1.1\r\nHost: app\r\nno colon here\r\n\r\n",
            "malformed request head: invalid header name",
        ),
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
            "TLS handshake on a plaintext HTTP listener",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 3\r\n\r\n0\r\n\r\n",
            "both transfer-encoding and content-length",
        ),
    ];
    for (request, details) in cases {
        let response = send_raw(proxy, request);
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
        assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
        assert_explained(&Reply::from_raw(&response), &malformed(details));
    }

    let lines = log_lines(&log, cases.len());
    for line in &lines {
        assert_eq!(line["response_code"], 400, "{line}");
        assert_eq!(line["response_flags"], "DPE", "{line}");
        assert_eq!(
            line["response_code_details"], "downstream_protocol_error",
            "{line}"
        );
    }
    assert_flag_counted(&plane, "DPE", 3);
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    let _ = std::fs::remove_dir_all(log.parent().expect("dir"));
}

/// A bad request later on a keep-alive connection is explained as the first one is (the
/// own HTTP/1 server parses every head): 400 DPE with the decision header, a log line,
/// and the connection closed; the request before it was served.
#[test]
fn a_malformed_later_request_gets_an_explained_400_too() {
    let rt = support::http::runtime();
    let plane = start();
    let app = HttpUpstream::start(&rt, "app", false);
    let (proxy, log) = with_access_log(&plane, app.address);
    let response = send_raw(
        proxy,
        b"GET /first HTTP/1.1\r\nHost: app\r\n\r\nGET / HTTP/1.1\r\nHost: app\r\nno colon here\r\n\r\n",
    );
    let second = response
        .find("HTTP/1.1 400 Bad Request\r\n")
        .unwrap_or_else(|| panic!("{response}"));
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let second = &response[second..];
    assert!(second.contains("\r\nconnection: close\r\n"), "{second}");
    assert_explained(
        &Reply::from_raw(second),
        &malformed("malformed request head: invalid header name"),
    );
    assert_flag_counted(&plane, "DPE", 1);
    let lines = log_lines(&log, 2);
    assert!(
        lines
            .iter()
            .any(|l| l["response_code"] == 400 && l["response_flags"] == "DPE"),
        "{lines:?}"
    );
    assert_eq!(app.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}
