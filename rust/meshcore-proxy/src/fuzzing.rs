//! Entry points for the fuzz targets (`fuzz/fuzz_targets/http1_request.rs`,
//! `route_match.rs`, `http1_response.rs`); built only with the `fuzzing` feature. Each must
//! never panic; the checks they make are `assert!`s, so a broken invariant is a crash too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use hyper::header::{HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{HeaderMap, Request, StatusCode, Uri, Version};
use meshcore_snapshot::{
    DirectResponse, ForwardAction, KeyMatch, Redirect, RegexRewrite, Rewrite, Route as RouteSpec,
    RouteConfig, RouteMatch, StringMatch, VirtualHost as HostSpec,
};

use crate::http::body::Body;
use crate::http::matcher::RequestView;
use crate::http::respond::{Decision, LocalReply};
use crate::http::rewrite::{redirect_location, split_authority};
use crate::http::router::{Action, RouteTable};
use crate::http::server::fuzz_limits_and_authority;
use crate::http::{FuzzHead, HttpSettings, Remaining, fuzz_heads};

/// Parses arbitrary bytes as an upstream's HTTP/1 response head and decodes its body
/// (content-length, chunked with trailers, or to the close) as the own client does.
pub fn http1_response(data: &[u8]) {
    crate::http::decode_response(data);
}

/// How many bytes at the front of an `http1_request` input choose the settings and the
/// route table; the rest is what the client sent.
pub const HTTP1_CONFIG_BYTES: usize = 4;

/// What a client's first bytes go through on an HTTP/1 listener: protocol detection and the
/// malformed phase's 400, then the own server's heads one after another (pipelined, bodies
/// decoded between them), each through the limits phase, the virtual host and route lookup
/// and its route's action (direct response, redirect, or the forward's rewrite), up to the
/// upstream request's path.
///
/// The first [`HTTP1_CONFIG_BYTES`] bytes choose the settings and the routes: the most
/// header fields (0: the default), the most header bytes (in 64-byte steps; 0: the default),
/// which virtual hosts and routes of a fixed palette exist, the listener's port and whether
/// it preserves header case.
///
/// Checked: each head the own parser takes is what `httparse` reads in the same bytes
/// (method, target, every field but the connection's own, in order), framed as RFC 9112
/// §6.3 says; a 431 exactly when the request is over a limit; local replies are well-formed
/// HTTP/1.1; a redirect's location is a URI; a rewritten path keeps the query.
pub fn http1_request(data: &[u8]) {
    let split = data.len().min(HTTP1_CONFIG_BYTES);
    let (config, bytes) = data.split_at(split);
    let config = |i: usize| config.get(i).copied().unwrap_or(0);

    let _ = crate::http::detect_bytes(bytes);
    if let Some(reply) = crate::http::malformed_reply(bytes) {
        assert!(reply.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }

    let settings = HttpSettings {
        max_headers: match config(0) {
            0 => HttpSettings::default().max_headers,
            n => usize::from(n),
        },
        max_header_bytes: match config(1) {
            0 => HttpSettings::default().max_header_bytes,
            n => usize::from(n) * 64,
        },
        preserve_header_case: config(3) & 4 != 0,
        ..HttpSettings::default()
    };
    let table = palette_table(config(2));
    let local_port = [80, 8080, 9080, 443][usize::from(config(3) & 3)];

    for head in fuzz_heads(bytes, &settings, 4) {
        match head {
            FuzzHead::Request {
                request,
                head,
                framing,
                left,
                body_error,
                expects,
            } => {
                let fields = same_as_httparse(&bytes[head.clone()], &request);
                // Another expectation would have gone to hyper.
                let expect = fields.iter().filter(|(name, _)| name == "expect");
                assert_eq!(expects, expect.clone().count() > 0);
                assert!(
                    expect
                        .clone()
                        .all(|(_, v)| v.eq_ignore_ascii_case(b"100-continue"))
                );
                assert_eq!(Some(framing), framing_by_rfc(&fields));
                if let (Remaining::Length(n), false) = (framing, body_error) {
                    // The body is what follows the head, up to its length.
                    let here = (bytes.len() - head.end) as u64;
                    let expected = if here >= n {
                        Remaining::Done
                    } else {
                        Remaining::Length(n - here)
                    };
                    assert_eq!(left, expected);
                }
                route_one(&request, &settings, &table, local_port);
            }
            FuzzHead::Refused(reply) => {
                assert!(matches!(
                    reply.status,
                    StatusCode::BAD_REQUEST | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                ));
                assert_well_formed(&reply.to_http1_close(), reply.status);
            }
            FuzzHead::Incomplete | FuzzHead::ToHyper => {}
        }
    }
}

/// The limits, route and action phases for one parsed request, as `server::phases` and
/// `server::route_request` run them (the upstream left out).
fn route_one(request: &Request<Body>, settings: &HttpSettings, table: &RouteTable, port: u16) {
    let fields = request.headers();
    let size: usize = fields
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let over = fields.len() > settings.max_headers || size > settings.max_header_bytes;
    let authority = match fuzz_limits_and_authority(request, settings) {
        Err(reply) => {
            assert!(over, "a 431 for a request within the limits");
            assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            assert_well_formed(&reply.to_http1_close(), reply.status);
            return;
        }
        Ok(authority) => {
            assert!(!over, "no 431 for a request over the limits");
            authority
        }
    };
    let Some(authority) = authority else {
        assert!(request.uri().authority().is_none());
        assert!(fields.get("host").is_none_or(|v| v.to_str().is_err()));
        return;
    };
    let Some(host) = table.host(&authority) else {
        let reply =
            LocalReply::no_route(format!("no virtual host for {authority}"), decision("rc"));
        assert_well_formed(&reply.to_http1_close(), StatusCode::NOT_FOUND);
        return;
    };
    let uri = request.uri();
    let (path, query) = (uri.path(), uri.query());
    let scheme = uri.scheme_str().unwrap_or("http");
    let view = RequestView {
        path,
        query,
        method: request.method().as_str(),
        authority: &authority,
        scheme,
        headers: fields,
        port: split_authority(&authority).1.unwrap_or(port),
    };
    let Some((route, matched)) = host.route(&view) else {
        return;
    };
    match &route.action {
        Action::Direct { status, body } => {
            let response = LocalReply::direct(*status, body.clone(), decision(&route.origin))
                .into_response(false);
            assert_eq!(response.status(), *status);
        }
        Action::Redirect(redirect) => {
            if let Some(location) = redirect_location(redirect, scheme, &authority, path, query) {
                let location_bytes = location.as_bytes().to_vec();
                let text = String::from_utf8_lossy(&location_bytes).into_owned();
                assert!(text.parse::<Uri>().is_ok(), "{text}");
                let status = StatusCode::from_u16(redirect.response_code)
                    .unwrap_or(StatusCode::MOVED_PERMANENTLY);
                let response = LocalReply::redirect(status, location, decision(&route.origin))
                    .into_response(false);
                assert_eq!(response.headers()["location"], location_bytes.as_slice());
            }
        }
        Action::Forward(forward) => {
            if let Some(rewrite) = &forward.rewrite {
                let prefix = matched.map_or("/", |m| m.rewritable_prefix(path));
                assert!(path.starts_with(prefix), "{prefix} of {path}");
                let rewritten = rewrite.path(path, query, prefix);
                if let Some(query) = query {
                    assert!(rewritten.ends_with(&format!("?{query}")), "{rewritten}");
                }
                // As the upstream request builds it: a 400 when it is not a path.
                let _ = PathAndQuery::try_from(rewritten.as_str());
            }
        }
    }
}

fn decision(by: &str) -> Decision {
    Decision {
        by: by.into(),
        target: None,
    }
}

/// A local reply's bytes: the status line, header fields that parse, a `content-length`
/// the body has.
fn assert_well_formed(bytes: &[u8], status: StatusCode) {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(length)) = response.parse(bytes) else {
        panic!("a local reply parses: {}", String::from_utf8_lossy(bytes));
    };
    assert_eq!(response.code, Some(status.as_u16()));
    let declared = response
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
        .and_then(|f| std::str::from_utf8(f.value).ok()?.parse::<usize>().ok());
    assert_eq!(declared, Some(bytes.len() - length));
}

/// The own parser's request against `httparse`'s reading of the same head; every field
/// `httparse` read (names in lower case).
fn same_as_httparse(head: &[u8], request: &Request<Body>) -> Vec<(String, Vec<u8>)> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(length)) = parsed.parse(head) else {
        panic!("the own parser took a head httparse does not");
    };
    assert_eq!(length, head.len(), "the head's length");
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    assert_eq!(request.version(), version);
    assert_eq!(parsed.method, Some(request.method().as_str()));
    let target = parsed.path.expect("a target");
    assert_eq!(target.parse::<Uri>().ok().as_ref(), Some(request.uri()));
    // Every field but those that only frame or keep this connection, in order per name.
    let mut all = Vec::new();
    let mut expected: Vec<(String, &[u8])> = Vec::new();
    for field in parsed.headers.iter() {
        let name = field.name.to_ascii_lowercase();
        all.push((name.clone(), field.value.to_vec()));
        let own = match name.as_str() {
            "transfer-encoding" | "keep-alive" | "proxy-connection" => true,
            "connection" => field
                .value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .all(|t| {
                    t.is_empty()
                        || t.eq_ignore_ascii_case(b"close")
                        || t.eq_ignore_ascii_case(b"keep-alive")
                }),
            _ => false,
        };
        if !own {
            expected.push((name, field.value));
        }
    }
    let sent_id = expected.iter().any(|(name, _)| name == "x-request-id");
    let headers = request.headers();
    let added = usize::from(!sent_id);
    assert_eq!(
        headers.len(),
        expected.len() + added,
        "{expected:?} vs {headers:?}"
    );
    let mut names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    for name in names {
        let want: Vec<&[u8]> = expected
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        let got: Vec<&[u8]> = headers
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(want, got, "values of {name}");
    }
    if !sent_id {
        assert_eq!(headers.get_all("x-request-id").iter().count(), 1);
    }
    all
}

/// RFC 9112 §6.3 for a request, written out plainly from its fields: `None` when it must
/// be refused (both framings, a transfer coding other than a final chunked, a bad or
/// conflicting length).
fn framing_by_rfc(fields: &[(String, Vec<u8>)]) -> Option<Remaining> {
    let trim = |b: &[u8]| -> Vec<u8> {
        let text = String::from_utf8_lossy(b);
        text.trim_matches([' ', '\t']).as_bytes().to_vec()
    };
    // `Some(None)`: a length that is not one.
    let mut length: Option<Option<u64>> = None;
    let mut codings: Option<Vec<Vec<u8>>> = None;
    for (name, value) in fields {
        match name.as_str() {
            "content-length" => {
                for item in value.split(|&b| b == b',') {
                    let item = trim(item);
                    let n = (!item.is_empty()
                        && item.len() <= 19
                        && item.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(&item).ok()?.parse::<u64>().ok())
                    .flatten();
                    length = match (length, n) {
                        (Some(None), _) | (_, None) => Some(None),
                        (Some(Some(seen)), Some(n)) if seen != n => Some(None),
                        (_, Some(n)) => Some(Some(n)),
                    };
                }
            }
            "transfer-encoding" => codings.get_or_insert_with(Vec::new).extend(
                value
                    .split(|&b| b == b',')
                    .map(trim)
                    .filter(|c| !c.is_empty()),
            ),
            _ => {}
        }
    }
    match (codings, length) {
        (_, Some(None)) => None,
        (Some(codings), _)
            if !codings
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) =>
        {
            None
        }
        (Some(_), Some(_)) => None,
        (Some(_), None) => Some(Remaining::of(crate::http::Framing::Chunked)),
        (None, None | Some(Some(0))) => Some(Remaining::Done),
        (None, Some(Some(n))) => Some(Remaining::Length(n)),
    }
}

/// A fixed palette of virtual hosts and routes; `choice` picks which exist. Compiled once
/// per choice (regexes are slow to build, the table never changes).
fn palette_table(choice: u8) -> Rc<RouteTable> {
    thread_local! {
        static TABLES: RefCell<HashMap<u8, Rc<RouteTable>>> = RefCell::new(HashMap::new());
    }
    TABLES.with_borrow_mut(|tables| {
        Rc::clone(tables.entry(choice).or_insert_with(|| {
            let spec = palette_spec(choice);
            Rc::new(RouteTable::compile(0, &spec, &HashMap::new()).expect("the palette compiles"))
        }))
    })
}

fn palette_spec(choice: u8) -> RouteConfig {
    let exact = |s: &str| StringMatch {
        exact: Some(s.into()),
        ..Default::default()
    };
    let prefix = |s: &str| StringMatch {
        prefix: Some(s.into()),
        ..Default::default()
    };
    let regex = |s: &str| StringMatch {
        regex: Some(s.into()),
        ..Default::default()
    };
    let key = |name: &str, value: Option<StringMatch>| KeyMatch {
        name: name.into(),
        value,
    };
    let route = |matches: Vec<RouteMatch>| RouteSpec {
        origin: None,
        matches,
        request_headers: Default::default(),
        response_headers: Default::default(),
        route: None,
        redirect: None,
        direct_response: None,
    };
    let forward = |rewrite: Rewrite| ForwardAction {
        clusters: vec![],
        rewrite: Some(rewrite),
        timeout_ms: None,
        retries: None,
    };
    let mut routes = Vec::new();
    if choice & 0b100 != 0 {
        routes.push(RouteSpec {
            route: Some(forward(Rewrite {
                uri_prefix: Some("/".into()),
                ..Default::default()
            })),
            ..route(vec![RouteMatch {
                uri: Some(prefix("/API/")),
                ignore_uri_case: true,
                method: Some(exact("GET")),
                ..Default::default()
            }])
        });
    }
    if choice & 0b1000 != 0 {
        routes.push(RouteSpec {
            route: Some(forward(Rewrite {
                uri_regex: Some(RegexRewrite {
                    pattern: "^/v[0-9]+/(.*)$".into(),
                    substitution: "/\\1".into(),
                }),
                authority: Some("rewritten:8080".into()),
                ..Default::default()
            })),
            ..route(vec![
                RouteMatch {
                    uri: Some(regex("/v[0-9]+/.*")),
                    ..Default::default()
                },
                RouteMatch {
                    uri: Some(exact("/v")),
                    ..Default::default()
                },
            ])
        });
    }
    if choice & 0b1_0000 != 0 {
        routes.push(RouteSpec {
            redirect: Some(Redirect {
                scheme: None,
                authority: Some("other:81".into()),
                port: None,
                path: Some("/moved".into()),
                response_code: 302,
            }),
            ..route(vec![RouteMatch {
                headers: vec![key("X-Canary", Some(exact("1")))],
                query_params: vec![key("debug", None)],
                ..Default::default()
            }])
        });
    }
    if choice & 0b10_0000 != 0 {
        routes.push(RouteSpec {
            direct_response: Some(DirectResponse {
                status: 200,
                body: Some("ok".into()),
            }),
            ..route(vec![RouteMatch {
                without_headers: vec![key("x-block", None)],
                headers: vec![key("end-user", Some(regex("[a-z]+")))],
                port: Some(9080),
                ..Default::default()
            }])
        });
    }
    if choice & 0b100_0000 != 0 {
        routes.push(RouteSpec {
            redirect: Some(Redirect {
                scheme: Some("https".into()),
                authority: None,
                port: Some(443),
                path: None,
                response_code: 301,
            }),
            ..route(vec![RouteMatch {
                authority: Some(prefix("reviews")),
                scheme: Some(exact("http")),
                ..Default::default()
            }])
        });
    }
    if choice & 0b1000_0000 != 0 {
        routes.push(RouteSpec {
            direct_response: Some(DirectResponse {
                status: 404,
                body: None,
            }),
            ..route(vec![])
        });
    }
    let domains: &[&[&str]] = match choice & 0b11 {
        0 => &[&["*"]],
        1 => &[&["reviews", "reviews:9080"], &["*"]],
        2 => &[&["*.example.com"], &["api.*"]],
        _ => &[&["a"]],
    };
    RouteConfig {
        name: "rc".into(),
        virtual_hosts: domains
            .iter()
            .enumerate()
            .map(|(i, domains)| HostSpec {
                name: format!("h{i}"),
                domains: domains.iter().map(|d| (*d).into()).collect(),
                routes: routes.clone(),
            })
            .collect(),
    }
}

/// A route config compiled as an apply compiles it, for `fuzz_targets/route_match.rs`.
#[derive(Debug)]
pub struct Routes(RouteTable);

/// Why a route config did not compile.
#[derive(Debug)]
pub struct BuildError {
    /// A regex's syntax (rather than its compiled size).
    pub syntax: bool,
    pub message: String,
}

/// The parts of a request routing reads.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    /// Valid names and values only.
    pub headers: &'a [(String, Vec<u8>)],
    /// The listener's port, for an authority without one.
    pub local_port: u16,
}

/// Where a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The virtual host's name.
    pub host: String,
    /// The port the matchers saw.
    pub port: u16,
    /// The first route that matched, if any.
    pub route: Option<RouteHit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHit {
    /// Its index in the virtual host.
    pub index: usize,
    /// What the matching condition's uri matched, for prefix rewrites (`None`: the route
    /// has no conditions).
    pub matched_prefix: Option<String>,
    /// The forwarded path and query when the route rewrites it.
    pub rewritten: Option<String>,
    /// A redirect's location (`Some(None)`: none could be built).
    pub location: Option<Option<String>>,
}

impl Routes {
    pub fn compile(spec: &RouteConfig) -> Result<Self, BuildError> {
        RouteTable::compile(0, spec, &HashMap::new())
            .map(Self)
            .map_err(|e| BuildError {
                syntax: matches!(e.source, regex::Error::Syntax(_)),
                message: e.to_string(),
            })
    }

    /// Routes a request as `server::route_request` does; `None` when no virtual host takes
    /// its authority.
    pub fn route(&self, request: &RouteRequest<'_>) -> Option<Routed> {
        let mut headers = HeaderMap::new();
        for (name, value) in request.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
                HeaderValue::from_bytes(value).expect("a valid header value"),
            );
        }
        let host = self.0.host(request.authority)?;
        let port = split_authority(request.authority)
            .1
            .unwrap_or(request.local_port);
        let view = RequestView {
            path: request.path,
            query: request.query,
            method: request.method,
            authority: request.authority,
            scheme: request.scheme,
            headers: &headers,
            port,
        };
        let route = host.route(&view).map(|(route, matched)| {
            let index = host
                .routes
                .iter()
                .position(|r| std::ptr::eq(r, route))
                .expect("the route is the host's");
            let prefix = matched.map(|m| m.rewritable_prefix(request.path));
            let (rewritten, location) = match &route.action {
                Action::Forward(forward) => (
                    forward.rewrite.as_ref().map(|rewrite| {
                        rewrite.path(request.path, request.query, prefix.unwrap_or("/"))
                    }),
                    None,
                ),
                Action::Redirect(redirect) => (
                    None,
                    Some(
                        redirect_location(
                            redirect,
                            request.scheme,
                            request.authority,
                            request.path,
                            request.query,
                        )
                        // (A path beyond ASCII stays as it came.)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    ),
                ),
                Action::Direct { .. } => (None, None),
            };
            RouteHit {
                index,
                matched_prefix: prefix.map(str::to_string),
                rewritten,
                location,
            }
        });
        Some(Routed {
            host: host.name.clone(),
            port,
            route,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_points_take_odd_input() {
        http1_request(b"\0\0\xff\0GET /API/x?y=1 HTTP/1.1\r\nHost: a:80\r\n\r\n");
        http1_request(b"\x01\x01\xff\x02GET /v1/x HTTP/1.1\r\nHost: reviews\r\nX-Canary: 1\r\n\r\nGET /a?debug HTTP/1.1\r\nHost: x.example.com\r\nX-Canary: 1\r\n\r\n");
        http1_request(b"\x05\x00\x30\x02POST / HTTP/1.1\r\nHost: api.x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        http1_request(b"\xff\xfe");
    }
}
