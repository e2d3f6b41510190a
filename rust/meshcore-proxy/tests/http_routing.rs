//! L7 routing through real sockets: virtual hosts, every match kind, every action, header
//! edits, the headers Envoy adds, and the explained local replies.

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::http::{
    AccessLog, Explained, HttpUpstream, apply_http, assert_answered_by, assert_explained,
    assert_flag_counted, forward_to, get, http_cluster, route_config, runtime,
};
use support::{Blackhole, closed_endpoint, start, start_one_worker};

fn with_match(matches: Value, action: Value, rule: &str) -> Value {
    let mut route = action;
    route["matches"] = matches;
    route["origin"] =
        json!({"kind": "VirtualService", "namespace": "default", "name": "reviews", "rule": rule});
    route
}

#[test]
fn forwards_with_request_id_forwarded_headers_and_pool_reuse() {
    let rt = runtime();
    let plane = start_one_worker();
    let upstream = HttpUpstream::start(&rt, "v1", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["reviews", "reviews:9080"],
            vec![forward_to("c")],
        )],
        vec![http_cluster("c", "http1", &[upstream.address])],
        json!({}),
    );
    for _ in 0..3 {
        let reply = get(&rt, proxy, "reviews:9080", "/books?id=1", &[]);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "v1 GET /books?id=1");
        assert_eq!(reply.header("echo-host"), "reviews:9080");
        assert_eq!(reply.header("echo-x-forwarded-for"), "127.0.0.1");
        assert_eq!(reply.header("echo-x-forwarded-proto"), "http");
        assert_eq!(reply.header("echo-x-request-id").len(), 36);
    }
    let kept = get(&rt, proxy, "reviews", "/", &[("x-request-id", "abc")]);
    assert_eq!(kept.header("echo-x-request-id"), "abc");
    assert_eq!(
        upstream.connections(),
        1,
        "keep-alive pool reuses one connection"
    );
    let stats = plane.stats();
    assert_eq!(stats.totals.http_requests, 4);
    assert_eq!(stats.clusters[0].http_requests, 4);
    assert_eq!(stats.clusters[0].responses_2xx, 4);
    assert_eq!(stats.clusters[0].connections_opened, 1);
}

#[test]
fn unknown_host_and_unmatched_route_are_404_nr_and_explained() {
    let rt = runtime();
    let plane = start();
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["reviews"],
            vec![with_match(
                json!([{"uri": {"exact": "/only"}}]),
                json!({"direct_response": {"status": 200}}),
                "http[0]",
            )],
        )],
        vec![],
        json!({}),
    );
    assert_explained(
        &get(&rt, proxy, "ratings", "/", &[]),
        &Explained {
            status: 404,
            flags: "NR",
            error: "destination_not_found",
            by: "RouteConfig/rc",
            details: "no virtual host for ratings",
        },
    );
    assert_explained(
        &get(&rt, proxy, "reviews", "/other", &[]),
        &Explained {
            status: 404,
            flags: "NR",
            error: "destination_not_found",
            by: "RouteConfig/rc",
            details: "no route of virtual host vh matched GET /other",
        },
    );
    assert_flag_counted(&plane, "NR", 2);
}

#[test]
fn every_match_kind_selects_its_route() {
    let rt = runtime();
    let plane = start();
    let direct = |body: &str| json!({"direct_response": {"status": 200, "body": body}});
    let routes = vec![
        with_match(
            json!([{"uri": {"exact": "/exact"}}]),
            direct("exact"),
            "http[0]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/CASE/"}, "ignore_uri_case": true}]),
            direct("case"),
            "http[1]",
        ),
        with_match(
            json!([{"uri": {"regex": "/re/[0-9]+"}}]),
            direct("regex"),
            "http[2]",
        ),
        with_match(
            json!([{"method": {"exact": "POST"}}]),
            direct("method"),
            "http[3]",
        ),
        with_match(
            json!([{"headers": [{"name": "end-user", "value": {"exact": "jason"}}]}]),
            direct("header-exact"),
            "http[4]",
        ),
        with_match(
            json!([{"headers": [{"name": "x-pre", "value": {"prefix": "ab"}}]}]),
            direct("header-prefix"),
            "http[5]",
        ),
        with_match(
            json!([{"headers": [{"name": "x-re", "value": {"regex": "v[0-9]"}}]}]),
            direct("header-regex"),
            "http[6]",
        ),
        with_match(
            json!([{"headers": [{"name": "x-present"}]}]),
            direct("header-present"),
            "http[7]",
        ),
        with_match(
            json!([{"query_params": [{"name": "debug", "value": {"exact": "1"}}]}]),
            direct("query"),
            "http[8]",
        ),
        with_match(
            json!([{"authority": {"prefix": "admin."}}]),
            direct("authority"),
            "http[9]",
        ),
        with_match(
            json!([{"scheme": {"exact": "https"}}]),
            direct("scheme"),
            "http[10]",
        ),
        with_match(json!([{"port": 8443}]), direct("port"), "http[11]"),
        with_match(
            json!([{"uri": {"prefix": "/w"}, "without_headers": [{"name": "x-canary"}]}]),
            direct("without"),
            "http[12]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/"}}]),
            direct("fallback"),
            "http[13]",
        ),
    ];
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], routes)],
        vec![],
        json!({}),
    );
    let body = |host: &str, path: &str, headers: &[(&str, &str)]| {
        get(&rt, proxy, host, path, headers).body
    };
    assert_eq!(body("a", "/exact", &[]), "exact");
    assert_eq!(body("a", "/case/x", &[]), "case");
    assert_eq!(body("a", "/re/42", &[]), "regex");
    assert_eq!(body("a", "/re/x", &[]), "fallback");
    assert_eq!(body("a", "/x", &[("end-user", "jason")]), "header-exact");
    assert_eq!(body("a", "/x", &[("x-pre", "abc")]), "header-prefix");
    assert_eq!(body("a", "/x", &[("x-re", "v2")]), "header-regex");
    assert_eq!(body("a", "/x", &[("x-present", "")]), "header-present");
    assert_eq!(body("a", "/x?debug=1", &[]), "query");
    assert_eq!(body("admin.example", "/x", &[]), "authority");
    assert_eq!(body("a:8443", "/x", &[]), "port");
    assert_eq!(body("a", "/w", &[]), "without");
    assert_eq!(body("a", "/w", &[("x-canary", "1")]), "fallback");
    let post = support::http::send(
        &rt,
        proxy,
        hyper::Request::post("/x")
            .header("host", "a")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"data",
            )))
            .unwrap(),
        false,
    );
    assert_eq!(post.body, "method");
}

#[test]
fn redirect_direct_response_rewrite_and_header_edits() {
    let rt = runtime();
    let plane = start();
    let upstream = HttpUpstream::start(&rt, "v1", false);
    let routes = vec![
        with_match(
            json!([{"uri": {"prefix": "/old/"}}]),
            json!({"redirect": {"path": "/new/", "response_code": 302}}),
            "http[0]",
        ),
        with_match(
            json!([{"uri": {"exact": "/healthz"}}]),
            json!({"direct_response": {"status": 418, "body": "teapot\n"}, "response_headers": {"set": {"x-route": "healthz"}}}),
            "http[1]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/api/v1/"}}]),
            json!({
                "request_headers": {"set": {"x-mesh": "meshcore"}, "add": {"x-added": "1"}, "remove": ["x-debug"]},
                "response_headers": {"set": {"x-route": "api"}},
                "route": {
                    "clusters": [{"name": "c", "weight": 1, "request_headers": {"set": {"x-cluster": "c"}}, "response_headers": {"add": {"x-cluster-resp": "c"}}}],
                    "rewrite": {"uri_prefix": "/v2/", "authority": "reviews.internal"}
                }
            }),
            "http[2]",
        ),
        with_match(
            json!([{"uri": {"regex": "/re/.*"}}]),
            json!({"route": {"clusters": [{"name": "c"}], "rewrite": {"uri_regex": {"pattern": "^/re/(.*)$", "substitution": "/\\1/done"}}}}),
            "http[3]",
        ),
    ];
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], routes)],
        vec![http_cluster("c", "inherit", &[upstream.address])],
        json!({}),
    );
    let redirect = get(&rt, proxy, "reviews:9080", "/old/x?q=1", &[]);
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("location"), "http://reviews:9080/new/?q=1");
    assert_answered_by(&redirect, "VirtualService/default/reviews http[0]");
    let direct = get(&rt, proxy, "a", "/healthz", &[]);
    assert_eq!((direct.status, direct.body.as_str()), (418, "teapot\n"));
    assert_eq!(direct.header("x-route"), "healthz");
    assert_answered_by(&direct, "VirtualService/default/reviews http[1]");
    let api = get(
        &rt,
        proxy,
        "a",
        "/api/v1/books",
        &[("x-debug", "1"), ("x-mesh", "old")],
    );
    assert_eq!(api.body, "v1 GET /v2/books");
    assert_eq!(api.header("echo-host"), "reviews.internal");
    assert_eq!(api.header("echo-x-mesh"), "meshcore");
    assert_eq!(api.header("echo-x-added"), "1");
    assert_eq!(api.header("echo-x-cluster"), "c");
    assert_eq!(api.header("echo-x-debug"), "");
    assert_eq!(api.header("x-route"), "api");
    assert_eq!(api.header("x-cluster-resp"), "c");
    let regex = get(&rt, proxy, "a", "/re/a/b", &[]);
    assert_eq!(regex.body, "v1 GET /a/b/done");
}

#[test]
fn weighted_clusters_split_by_weight() {
    let rt = runtime();
    let plane = start();
    let a = HttpUpstream::start(&rt, "a", false);
    let b = HttpUpstream::start(&rt, "b", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![
                json!({"route": {"clusters": [{"name": "a", "weight": 80}, {"name": "b", "weight": 20}]}}),
            ],
        )],
        vec![
            http_cluster("a", "http1", &[a.address]),
            http_cluster("b", "http1", &[b.address]),
        ],
        json!({}),
    );
    let mut seen: HashMap<String, u32> = HashMap::new();
    for _ in 0..400 {
        *seen
            .entry(
                get(&rt, proxy, "x", "/", &[])
                    .header("x-upstream")
                    .to_string(),
            )
            .or_default() += 1;
    }
    // Expected 320 / 80, sigma 8: 8 sigma of slack.
    let a_count = seen.get("a").copied().unwrap_or(0);
    assert!((256..=384).contains(&a_count), "{seen:?}");
}

/// Each failure on the way upstream is a local reply that explains itself: its Envoy flag
/// in the reply, the access log and the counters, `proxy-status` with the RFC 9209 error
/// type and the details, and the decision header naming the rule and the cluster.
#[test]
fn upstream_failures_carry_flags_proxy_status_and_decision() {
    let rt = runtime();
    let plane = start();
    let log = AccessLog::new();
    let closed = closed_endpoint();
    let slow = HttpUpstream::start(&rt, "slow", false);
    let routes = vec![
        with_match(
            json!([{"uri": {"prefix": "/refused"}}]),
            forward_to("closed"),
            "http[0]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/empty"}}]),
            forward_to("empty"),
            "http[1]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/slow"}}]),
            json!({"route": {"clusters": [{"name": "slow"}], "timeout_ms": 200}}),
            "http[2]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/retry-refused"}}]),
            json!({"route": {"clusters": [{"name": "closed"}], "retries": {"attempts": 2, "retry_on": ["connect-failure"]}}}),
            "http[3]",
        ),
        with_match(
            json!([{"uri": {"prefix": "/per-try"}}]),
            json!({"route": {"clusters": [{"name": "slow"}], "rewrite": {"uri_prefix": "/slow"},
                          "retries": {"attempts": 1, "retry_on": ["5xx"], "per_try_timeout_ms": 100}}}),
            "http[4]",
        ),
    ];
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], routes)],
        vec![
            http_cluster("closed", "http1", &[closed]),
            http_cluster("empty", "http1", &[]),
            http_cluster("slow", "http1", &[slow.address]),
        ],
        log.settings(),
    );
    let refused_details = format!("connect refused {closed}");
    let cases = [
        (
            "/refused",
            Explained {
                status: 503,
                flags: "UF",
                error: "connection_refused",
                by: "VirtualService/default/reviews http[0] -> closed",
                details: &refused_details,
            },
            "upstream_connect_failure",
        ),
        (
            "/empty",
            Explained {
                status: 503,
                flags: "UH",
                error: "destination_unavailable",
                by: "VirtualService/default/reviews http[1] -> empty",
                details: "cluster empty has no endpoint",
            },
            "no_healthy_upstream",
        ),
        (
            "/slow",
            Explained {
                status: 504,
                flags: "UT",
                error: "http_response_timeout",
                by: "VirtualService/default/reviews http[2] -> slow",
                details: "route timeout after 200ms",
            },
            "upstream_response_timeout",
        ),
        (
            "/retry-refused",
            Explained {
                status: 503,
                flags: "UF,URX",
                error: "connection_refused",
                by: "VirtualService/default/reviews http[3] -> closed",
                details: &refused_details,
            },
            "upstream_connect_failure",
        ),
        (
            "/per-try",
            Explained {
                status: 504,
                flags: "UT,URX",
                error: "http_response_timeout",
                by: "VirtualService/default/reviews http[4] -> slow",
                details: "per-try timeout after 100ms",
            },
            "upstream_response_timeout",
        ),
    ];
    for (path, expected, _) in &cases {
        assert_explained(&get(&rt, proxy, "a", path, &[]), expected);
    }
    let lines = log.lines(cases.len());
    for (path, expected, log_details) in &cases {
        let line = lines
            .iter()
            .find(|l| l["path"] == *path)
            .unwrap_or_else(|| panic!("a log line for {path}: {lines:?}"));
        assert_eq!(line["response_code"], expected.status, "{line}");
        assert_eq!(line["response_flags"], expected.flags, "{line}");
        assert_eq!(line["response_code_details"], *log_details, "{line}");
    }
    assert_flag_counted(&plane, "UF", 2);
    assert_flag_counted(&plane, "UH", 1);
    assert_flag_counted(&plane, "UT", 2);
    assert_flag_counted(&plane, "URX", 2);
    let stats = plane.stats();
    let closed_stats = stats.clusters.iter().find(|c| c.name == "closed").unwrap();
    assert_eq!(closed_stats.http_retries, 2);
}

/// A connect the upstream never answers ends at the cluster's connect timeout: 503 UF,
/// `proxy-status` error `connection_timeout` (RFC 9209 §2.3.5), as Envoy answers
/// `upstream connect error ... reset reason: connection timeout`. The endpoint is a
/// loopback listener whose full accept queue drops the proxy's SYN ([`Blackhole`]).
#[test]
fn a_connect_timeout_is_503_uf_connection_timeout() {
    let rt = runtime();
    let plane = start();
    let log = AccessLog::new();
    let hole = Blackhole::new();
    let mut cluster = http_cluster("hole", "http1", &[hole.address]);
    cluster["connect_timeout_ms"] = json!(250);
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![with_match(
                json!([{"uri": {"prefix": "/"}}]),
                forward_to("hole"),
                "http[0]",
            )],
        )],
        vec![cluster],
        log.settings(),
    );
    assert_explained(
        &get(&rt, proxy, "reviews", "/books", &[]),
        &Explained {
            status: 503,
            flags: "UF",
            error: "connection_timeout",
            by: "VirtualService/default/reviews http[0] -> hole",
            details: &format!("connect timeout {} after 250ms", hole.address),
        },
    );
    let line = &log.lines(1)[0];
    assert_eq!(line["response_code"], 503, "{line}");
    assert_eq!(line["response_flags"], "UF", "{line}");
    assert_eq!(
        line["response_code_details"], "upstream_connect_failure",
        "{line}"
    );
    assert_eq!(line["upstream_cluster"], "hole", "{line}");
    assert_flag_counted(&plane, "UF", 1);
    let stats = plane.stats();
    assert_eq!(stats.clusters[0].connections_opened, 0, "{stats:?}");
}

#[test]
fn a_5xx_is_retried_when_the_policy_says_so() {
    let rt = runtime();
    let plane = start();
    let upstream = HttpUpstream::start(&rt, "v1", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![
                json!({"route": {"clusters": [{"name": "c"}], "retries": {"attempts": 1, "retry_on": ["5xx"]}}}),
            ],
        )],
        vec![http_cluster("c", "http1", &[upstream.address])],
        json!({}),
    );
    let reply = get(&rt, proxy, "a", "/fail-once", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(plane.stats().clusters[0].http_retries, 1);
    let still_failing = get(&rt, proxy, "a", "/status/503", &[]);
    assert_eq!(
        still_failing.status, 503,
        "the upstream's own answer after the last try"
    );
    // Not a local reply: URX is in the log and counters only, as in Envoy.
    assert_eq!(still_failing.body, "v1 GET /status/503");
    assert!(
        !still_failing.headers.contains_key("proxy-status"),
        "{still_failing:?}"
    );
    assert_flag_counted(&plane, "URX", 1);
}

#[test]
fn headers_over_the_limits_are_431() {
    let rt = runtime();
    let plane = start();
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![json!({"direct_response": {"status": 200}})],
        )],
        vec![],
        json!({"max_request_headers": 5, "max_request_headers_kb": 1}),
    );
    let many: Vec<(String, String)> = (0..8).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // The eight, `host`, and the `x-request-id` the proxy adds.
    assert_explained(
        &get(&rt, proxy, "a", "/", &many),
        &Explained {
            status: 431,
            flags: "DPE",
            error: "http_request_error",
            by: "ProxySettings",
            details: "10 request headers, more than max_request_headers 5",
        },
    );
    // More fields than the own server parses: over the limit all the same, explained (not
    // handed to hyper, whose answer would be bare).
    let lots: Vec<(String, String)> = (0..300).map(|i| (format!("x-{i}"), "v".into())).collect();
    let lots: Vec<(&str, &str)> = lots.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_explained(
        &get(&rt, proxy, "a", "/", &lots),
        &Explained {
            status: 431,
            flags: "DPE",
            error: "http_request_error",
            by: "ProxySettings",
            details: "more than 128 request headers, more than max_request_headers 5",
        },
    );
    let big = "x".repeat(2048);
    // Each field's name, value and 4 bytes: x-big 2057, host 9, x-request-id 52.
    assert_explained(
        &get(&rt, proxy, "a", "/", &[("x-big", &big)]),
        &Explained {
            status: 431,
            flags: "DPE",
            error: "http_request_error",
            by: "ProxySettings",
            details: "request headers of 2118 bytes, more than max_request_headers_kb 1",
        },
    );
    assert_eq!(get(&rt, proxy, "a", "/", &[]).status, 200);
    assert_flag_counted(&plane, "DPE", 3);
}

/// Requests the listener takes but cannot route are 400 DPE, explained by the listener: a
/// CONNECT on a listener that is not an HTTP proxy, and an HTTP/1.1 request without Host.
#[test]
fn requests_the_listener_cannot_route_are_400_dpe() {
    use std::io::Write;
    let plane = start();
    let proxy = apply_http(
        &plane,
        vec![route_config(
            &["*"],
            vec![json!({"direct_response": {"status": 200}})],
        )],
        vec![],
        json!({}),
    );
    let bad_request = |details| Explained {
        status: 400,
        flags: "DPE",
        error: "http_request_error",
        by: "Listener",
        details,
    };
    let exchange = |request: &str| {
        let mut client = support::connect(proxy);
        client.write_all(request.as_bytes()).expect("writes");
        let (head, body) = support::http::read_raw_response(&mut client);
        support::http::Reply::from_raw(&format!("{head}{}", String::from_utf8_lossy(&body)))
    };
    assert_explained(
        &exchange("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        &bad_request("CONNECT is accepted only by http_proxy listeners; http is not one"),
    );
    assert_explained(
        &exchange("GET / HTTP/1.1\r\n\r\n"),
        &bad_request("request has no authority (Host header)"),
    );
    assert_flag_counted(&plane, "DPE", 2);
}
