//! L7 routing through real sockets: virtual hosts, every match kind, every action, header
//! edits, the headers Envoy adds, and the explained local replies.

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::http::{
    HttpUpstream, apply_http, forward_to, get, http_cluster, route_config, runtime,
};
use support::{closed_endpoint, start, start_one_worker};

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
    let no_host = get(&rt, proxy, "ratings", "/", &[]);
    assert_eq!(no_host.status, 404);
    assert_eq!(
        no_host.header("proxy-status"),
        "meshcore; error=destination_not_found; details=\"no virtual host for ratings\""
    );
    assert_eq!(
        no_host.header("x-meshcore-decision"),
        "RouteConfig/rc; NR no virtual host for ratings"
    );
    let no_route = get(&rt, proxy, "reviews", "/other", &[]);
    assert_eq!(no_route.status, 404);
    assert!(
        no_route
            .header("x-meshcore-decision")
            .contains("NR no route of virtual host vh matched GET /other")
    );
    assert_eq!(plane.stats().totals.response_flags["NR"], 2);
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
    assert_eq!(
        redirect.header("x-meshcore-decision"),
        "VirtualService/default/reviews http[0]"
    );
    let direct = get(&rt, proxy, "a", "/healthz", &[]);
    assert_eq!((direct.status, direct.body.as_str()), (418, "teapot\n"));
    assert_eq!(direct.header("x-route"), "healthz");
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

#[test]
fn upstream_failures_carry_flags_proxy_status_and_decision() {
    let rt = runtime();
    let plane = start();
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
    ];
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], routes)],
        vec![
            http_cluster("closed", "http1", &[closed]),
            http_cluster("empty", "http1", &[]),
            http_cluster("slow", "http1", &[slow.address]),
        ],
        json!({}),
    );
    let refused = get(&rt, proxy, "a", "/refused", &[]);
    assert_eq!(refused.status, 503);
    assert_eq!(
        refused.header("proxy-status"),
        format!("meshcore; error=connection_refused; details=\"connect refused {closed}\"")
    );
    assert_eq!(
        refused.header("x-meshcore-decision"),
        format!("VirtualService/default/reviews http[0] -> closed; UF connect refused {closed}")
    );
    let empty = get(&rt, proxy, "a", "/empty", &[]);
    assert_eq!(empty.status, 503);
    assert!(
        empty
            .header("x-meshcore-decision")
            .ends_with("-> empty; UH cluster empty has no endpoint")
    );
    let timed_out = get(&rt, proxy, "a", "/slow", &[]);
    assert_eq!(timed_out.status, 504);
    assert!(
        timed_out
            .header("proxy-status")
            .starts_with("meshcore; error=http_response_timeout")
    );
    let retried = get(&rt, proxy, "a", "/retry-refused", &[]);
    assert_eq!(retried.status, 503);
    assert!(
        retried.header("x-meshcore-decision").contains("UF,URX"),
        "{:?}",
        retried.headers
    );
    let stats = plane.stats();
    assert_eq!(stats.totals.response_flags["UF"], 2);
    assert_eq!(stats.totals.response_flags["UH"], 1);
    assert_eq!(stats.totals.response_flags["UT"], 1);
    assert_eq!(stats.totals.response_flags["URX"], 1);
    let closed_stats = stats.clusters.iter().find(|c| c.name == "closed").unwrap();
    assert_eq!(closed_stats.http_retries, 2);
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
    assert_eq!(plane.stats().totals.response_flags["URX"], 1);
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
    let reply = get(&rt, proxy, "a", "/", &many);
    assert_eq!(reply.status, 431);
    assert!(
        reply
            .header("proxy-status")
            .contains("error=http_request_error")
    );
    let big = "x".repeat(2048);
    assert_eq!(get(&rt, proxy, "a", "/", &[("x-big", &big)]).status, 431);
    assert_eq!(get(&rt, proxy, "a", "/", &[]).status, 200);
    assert_eq!(plane.stats().totals.response_flags["DPE"], 2);
}
