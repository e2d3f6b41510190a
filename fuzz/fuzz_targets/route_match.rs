//! A route config built from the input (several virtual hosts with exact, `host:port`,
//! `*.suffix`, `prefix.*` and `*` domains; routes with every condition the matcher has:
//! uri exact / prefix / regex with and without ignore_uri_case, method, authority, scheme,
//! headers and without_headers by exact / prefix / regex / presence, query parameters,
//! port; forward rewrites, redirects, direct responses), compiled as an apply compiles it,
//! then requests built from the input routed through the real virtual host and route
//! lookup.
//!
//! Checked against a plain reference of the semantics written here:
//! - the config compiles exactly when every regex is valid on its own (a pattern such as
//!   `a)|(b` must be refused, not spliced into the anchored whole-value regex);
//! - the virtual host is the most specific one whose domain takes the authority (exact on
//!   the authority, exact on the host without its port, the longest `*.suffix` on the
//!   authority then on the host, the longest `prefix.*`, `*`; declaration order breaks
//!   ties), and the lookup ignores case;
//! - the route is the first whose conditions hold (so every earlier route's fail) and the
//!   port is the authority's or the listener's;
//! - the prefix a rewrite strips is the one the first holding condition matched, a prefix
//!   rewrite puts the new prefix in its place and keeps the query, a redirect's location is
//!   absolute, with the redirect's scheme or the request's.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use meshcore_proxy::fuzzing::{RouteRequest, Routed, Routes};
use meshcore_snapshot::{
    DirectResponse, ForwardAction, KeyMatch, Redirect, RegexRewrite, Rewrite, Route, RouteConfig,
    RouteMatch, StringMatch, VirtualHost,
};
use regex_automata::meta;
use regex_syntax::hir::{Hir, Look};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});

const MAX_HOSTS: usize = 5;
const MAX_DOMAINS: usize = 3;
const MAX_ROUTES: usize = 5;
const MAX_MATCHES: usize = 3;
const MAX_KEYS: usize = 2;
const MAX_REQUESTS: usize = 6;
const MAX_REGEXES: usize = 6;

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let spec = route_config(u)?;
    let reference = match Reference::of(&spec) {
        Compiled::Invalid(pattern) => {
            let built = Routes::compile(&spec);
            assert!(
                built.is_err(),
                "the invalid regex {pattern:?} compiled: {spec:#?}"
            );
            return Ok(());
        }
        // Beyond the regex size limits: nothing to compare.
        Compiled::TooBig => {
            let _ = Routes::compile(&spec);
            return Ok(());
        }
        Compiled::Valid(reference) => reference,
    };
    let routes = match Routes::compile(&spec) {
        Ok(routes) => routes,
        Err(e) if e.syntax => panic!("valid regexes refused: {e:?}\n{spec:#?}"),
        Err(_) => return Ok(()),
    };
    for _ in 0..u.int_in_range(1..=MAX_REQUESTS)? {
        let request = if u.arbitrary()? {
            aimed_request(u, &spec)?
        } else {
            request(u)?
        };
        let view = request.view();
        let routed = routes.route(&view);
        check(&spec, &reference, &request, routed.as_ref());
        // The lookup ignores the authority's case.
        let upper = request.authority.to_ascii_uppercase();
        let shouting = routes.route(&RouteRequest {
            authority: &upper,
            ..view
        });
        assert_eq!(
            routed.map(|r| r.host),
            shouting.map(|r| r.host),
            "{} and {upper}",
            request.authority
        );
    }
    Ok(())
}

fn check(spec: &RouteConfig, reference: &Reference, request: &Request, routed: Option<&Routed>) {
    let expected_host = reference_host(spec, &request.authority);
    assert_eq!(
        routed.map(|r| r.host.as_str()),
        expected_host.map(|h| spec.virtual_hosts[h].name.as_str()),
        "virtual host for {:?} in {:#?}",
        request.authority,
        spec.virtual_hosts
            .iter()
            .map(|h| (&h.name, &h.domains))
            .collect::<Vec<_>>()
    );
    let (Some(routed), Some(h)) = (routed, expected_host) else {
        return;
    };
    let port = reference_port(&request.authority).unwrap_or(request.local_port);
    assert_eq!(routed.port, port, "port of {:?}", request.authority);
    let host = &spec.virtual_hosts[h];
    let holds: Vec<Option<usize>> = host
        .routes
        .iter()
        .enumerate()
        .map(|(r, route)| {
            if route.matches.is_empty() {
                return Some(usize::MAX);
            }
            route
                .matches
                .iter()
                .enumerate()
                .position(|(m, condition)| reference.holds(h, r, m, condition, request, port))
        })
        .collect();
    let expected = holds.iter().position(Option::is_some);
    assert_eq!(
        routed.route.as_ref().map(|hit| hit.index),
        expected,
        "route for {request:#?}\nconditions holding per route: {holds:?}\nroutes: {:#?}",
        host.routes
    );
    let (Some(hit), Some(r)) = (&routed.route, expected) else {
        return;
    };
    let route = &host.routes[r];
    let expected_prefix = holds[r]
        .filter(|m| *m != usize::MAX)
        .map(|m| rewritable_prefix(&route.matches[m], &request.path));
    assert_eq!(hit.matched_prefix, expected_prefix, "{request:#?}");
    if let Some(rewritten) = &hit.rewritten {
        assert!(!rewritten.is_empty());
        if let Some(query) = &request.query {
            assert!(rewritten.ends_with(&format!("?{query}")), "{rewritten}");
        }
        let prefix_rewrite = route
            .route
            .as_ref()
            .and_then(|f| f.rewrite.as_ref())
            .and_then(|rw| rw.uri_prefix.as_deref());
        if let (Some(new_prefix), Some(matched)) = (prefix_rewrite, &hit.matched_prefix) {
            // The matched prefix replaced by the new one (one `/` kept where they meet).
            let rest = &request.path[matched.len()..];
            let joined = match (new_prefix.ends_with('/'), rest.strip_prefix('/')) {
                (true, Some(rest)) => format!("{new_prefix}{rest}"),
                _ => format!("{new_prefix}{rest}"),
            };
            let mut expected = if joined.is_empty() {
                "/".into()
            } else {
                joined
            };
            if let Some(query) = &request.query {
                expected = format!("{expected}?{query}");
            }
            assert_eq!(*rewritten, expected);
        }
    }
    if let Some(Some(location)) = &hit.location {
        let (scheme, _) = location.split_once("://").expect("an absolute location");
        let redirect = route.redirect.as_ref().expect("a redirect");
        assert_eq!(
            scheme,
            redirect.scheme.as_deref().unwrap_or(&request.scheme)
        );
    }
}

/// What a rewrite strips: the matched prefix, the whole path for an exact match, else `/`.
fn rewritable_prefix(condition: &RouteMatch, path: &str) -> String {
    match &condition.uri {
        Some(StringMatch {
            prefix: Some(prefix),
            ..
        }) => path.get(..prefix.len()).unwrap_or(path).to_string(),
        Some(StringMatch { exact: Some(_), .. }) => path.to_string(),
        _ => path.get(..1).unwrap_or("").to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// The reference.

enum Compiled {
    Valid(Reference),
    Invalid(String),
    TooBig,
}

/// Every regex of the config, compiled from its own syntax tree anchored at both ends
/// (not by pasting strings), indexed by where it sits.
struct Reference {
    /// (host, route, condition, slot) → regex; slots: 0 uri, 1 method, 2 authority,
    /// 3 scheme, then 10 + i headers, 20 + i without_headers, 30 + i query_params.
    regexes: std::collections::HashMap<(usize, usize, usize, usize), meta::Regex>,
}

impl Reference {
    fn of(spec: &RouteConfig) -> Compiled {
        let mut regexes = std::collections::HashMap::new();
        for (h, host) in spec.virtual_hosts.iter().enumerate() {
            for (r, route) in host.routes.iter().enumerate() {
                for (m, condition) in route.matches.iter().enumerate() {
                    let mut slots: Vec<(usize, &StringMatch, bool)> = Vec::new();
                    let singles = [
                        (0, &condition.uri, condition.ignore_uri_case),
                        (1, &condition.method, false),
                        (2, &condition.authority, false),
                        (3, &condition.scheme, false),
                    ];
                    for (slot, string, fold) in singles {
                        if let Some(string) = string {
                            slots.push((slot, string, fold));
                        }
                    }
                    for (base, keys) in [
                        (10, &condition.headers),
                        (20, &condition.without_headers),
                        (30, &condition.query_params),
                    ] {
                        for (i, key) in keys.iter().enumerate() {
                            if let Some(value) = &key.value {
                                slots.push((base + i, value, false));
                            }
                        }
                    }
                    // A regex is never folded: Istio's ignoreUriCase covers exact and
                    // prefix only.
                    for (slot, string, _) in slots {
                        let Some(pattern) = &string.regex else {
                            continue;
                        };
                        let Ok(hir) = regex_syntax::ParserBuilder::new()
                            .build()
                            .parse(pattern)
                        else {
                            return Compiled::Invalid(pattern.clone());
                        };
                        let whole =
                            Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]);
                        let Ok(regex) = meta::Builder::new().build_from_hir(&whole) else {
                            return Compiled::TooBig;
                        };
                        regexes.insert((h, r, m, slot), regex);
                    }
                }
            }
        }
        // Rewrites' regexes are validated too (unanchored: they replace what they find).
        for host in &spec.virtual_hosts {
            for route in &host.routes {
                if let Some(pattern) = route
                    .route
                    .as_ref()
                    .and_then(|f| f.rewrite.as_ref())
                    .and_then(|rw| rw.uri_regex.as_ref())
                    .map(|re| &re.pattern)
                {
                    if regex_syntax::Parser::new().parse(pattern).is_err() {
                        return Compiled::Invalid(pattern.clone());
                    }
                    if regex::Regex::new(pattern).is_err() {
                        return Compiled::TooBig;
                    }
                }
            }
        }
        Compiled::Valid(Self { regexes })
    }

    fn holds(
        &self,
        h: usize,
        r: usize,
        m: usize,
        condition: &RouteMatch,
        request: &Request,
        port: u16,
    ) -> bool {
        let string = |slot: usize, spec: &StringMatch, value: &str, fold: bool| -> bool {
            if let Some(exact) = &spec.exact {
                return if fold {
                    value.eq_ignore_ascii_case(exact)
                } else {
                    value == exact
                };
            }
            if let Some(prefix) = &spec.prefix {
                return value.len() >= prefix.len()
                    && if fold {
                        value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                    } else {
                        value.as_bytes()[..prefix.len()] == *prefix.as_bytes()
                    };
            }
            self.regexes[&(h, r, m, slot)].is_match(value)
        };
        let single = |slot: usize, spec: &Option<StringMatch>, value: &str, fold: bool| {
            spec.as_ref().is_none_or(|s| string(slot, s, value, fold))
        };
        let header = |slot: usize, key: &KeyMatch| -> bool {
            let name = key.name.to_ascii_lowercase();
            let values: Vec<&[u8]> = request
                .headers
                .iter()
                .filter(|(n, _)| n.to_ascii_lowercase() == name)
                .map(|(_, v)| v.as_slice())
                .collect();
            if values.is_empty() {
                return false;
            }
            let Some(value) = &key.value else {
                return true;
            };
            // Values that are not visible ASCII are left out of the joined value.
            let text: Vec<&str> = values
                .into_iter()
                .filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
                .map(|v| std::str::from_utf8(v).expect("ASCII"))
                .collect();
            string(slot, value, &text.join(","), false)
        };
        let query = |slot: usize, key: &KeyMatch| -> bool {
            let Some(query) = &request.query else {
                return false;
            };
            query.split('&').any(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                name == key.name
                    && key
                        .value
                        .as_ref()
                        .is_none_or(|v| string(slot, v, value, false))
            })
        };
        single(0, &condition.uri, &request.path, condition.ignore_uri_case)
            && single(1, &condition.method, &request.method, false)
            && single(2, &condition.authority, &request.authority, false)
            && single(3, &condition.scheme, &request.scheme, false)
            && condition.port.is_none_or(|p| p == port)
            && condition
                .headers
                .iter()
                .enumerate()
                .all(|(i, k)| header(10 + i, k))
            && !condition
                .without_headers
                .iter()
                .enumerate()
                .any(|(i, k)| header(20 + i, k))
            && condition
                .query_params
                .iter()
                .enumerate()
                .all(|(i, k)| query(30 + i, k))
    }
}

/// `host:port` split at a final `:digits` (at most five, at most 65535), unless the host
/// is an IPv6 address without brackets.
fn reference_split(authority: &str) -> (&str, Option<u16>) {
    let Some((host, port)) = authority.rsplit_once(':') else {
        return (authority, None);
    };
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let bare_ipv6 = host.contains(':') && !host.ends_with(']');
    match port.parse::<u32>() {
        Ok(n) if digits && !bare_ipv6 && n <= 65535 => (host, Some(n as u16)),
        _ => (authority, None),
    }
}

fn reference_port(authority: &str) -> Option<u16> {
    reference_split(authority).1
}

/// The virtual host the domain rules pick: each (host, domain) pair that takes the
/// authority is ranked by how specific it is, the best wins, declaration order breaking
/// ties.
fn reference_host(spec: &RouteConfig, authority: &str) -> Option<usize> {
    let authority = authority.to_ascii_lowercase();
    let (host, _) = reference_split(&authority);
    let mut best: Option<((u8, usize), usize)> = None;
    for (h, vhost) in spec.virtual_hosts.iter().enumerate() {
        for domain in &vhost.domains {
            let domain = domain.to_ascii_lowercase();
            let longer = |name: &str, part: &str| name.len() > part.len();
            let rank = if domain == "*" {
                Some((5, 0))
            } else if let Some(suffix) = domain.strip_prefix('*') {
                if longer(&authority, suffix) && authority.ends_with(suffix) {
                    Some((2, usize::MAX - suffix.len()))
                } else if longer(host, suffix) && host.ends_with(suffix) {
                    Some((3, usize::MAX - suffix.len()))
                } else {
                    None
                }
            } else if let Some(prefix) = domain.strip_suffix('*') {
                (longer(&authority, prefix) && authority.starts_with(prefix))
                    .then_some((4, usize::MAX - prefix.len()))
            } else if domain == authority {
                Some((0, 0))
            } else if domain == host {
                Some((1, 0))
            } else {
                None
            };
            if let Some(rank) = rank
                && best.is_none_or(|(b, _)| rank < b)
            {
                best = Some((rank, h));
            }
        }
    }
    best.map(|(_, h)| h)
}

// ---------------------------------------------------------------------------------------
// The input: configs and requests drawn from small vocabularies, so that they meet.

#[derive(Debug)]
struct Request {
    path: String,
    query: Option<String>,
    method: String,
    authority: String,
    scheme: String,
    headers: Vec<(String, Vec<u8>)>,
    local_port: u16,
}

impl Request {
    fn view(&self) -> RouteRequest<'_> {
        RouteRequest {
            path: &self.path,
            query: self.query.as_deref(),
            method: &self.method,
            authority: &self.authority,
            scheme: &self.scheme,
            headers: &self.headers,
            local_port: self.local_port,
        }
    }
}

const PATH_PIECES: &[&str] = &[
    "/", "/", "/api", "/API", "/v1", "/v2", "/x", "a", "A", "b", ".", "-", "%2F", "é", "É", "ß",
    "*", ":", "0", "9",
];
const LABELS: &[&str] = &[
    "a", "b", "A", "example", "EXAMPLE", "com", "reviews", "api", "default", "svc", "", "[::1]",
    "::1", "10.0.0.1", "k",
];
const PORTS: &[&str] = &[
    ":80", ":9080", ":443", ":8080", ":0", ":65535", ":65536", ":", ":x", ":080", ":123456",
];
const PORT_NUMBERS: &[u16] = &[80, 9080, 443, 8080, 0, 65535];
const HEADER_NAMES: &[&str] = &["x-a", "X-A", "end-user", "x-multi", "x-b", "content-type"];
const QUERY_NAMES: &[&str] = &["debug", "v", "a", "A", ""];
const VALUES: &[&str] = &[
    "1", "jason", "Jason", "a", "b", ",", " ", "v1", "=", "&", "x y", "é",
];
const METHODS: &[&str] = &["GET", "POST", "get", "PUT", "DELETE", "GE"];
const SCHEMES: &[&str] = &["http", "https", "HTTP"];
/// Regex fragments, some of them not regexes on their own.
const REGEX_PIECES: &[&str] = &[
    "/", "api", "[a-z]", "[0-9]+", ".", ".*", "\\d", "(?i)", "(?-i)", "|", "(", ")", "(?:",
    "a)|(b", "#", "(?x)", "\n", "\\", "$", "^", "[", "]", "{0,2}", "?", "+", "*", "é", "\\.",
    "(?P<n>a)", "\\1", "{2,1}", "(?m)$", "\\A", "\\z",
];

fn piece<'a>(u: &mut Unstructured<'_>, pieces: &'a [&'a str]) -> Result<&'a str> {
    u.choose(pieces).copied()
}

/// A few characters the vocabularies lack.
fn raw(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(0..=3)?;
    (0..n).map(|_| u.arbitrary::<char>()).collect()
}

fn text(u: &mut Unstructured<'_>, pieces: &[&str], max: usize) -> Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=max)? {
        if u.ratio(1, 10)? {
            out.push_str(&raw(u)?);
        } else {
            out.push_str(piece(u, pieces)?);
        }
    }
    Ok(out)
}

fn host_name(u: &mut Unstructured<'_>) -> Result<String> {
    let labels: Vec<&str> = (0..u.int_in_range(1..=3)?)
        .map(|_| piece(u, LABELS))
        .collect::<Result<_>>()?;
    Ok(labels.join("."))
}

fn authority(u: &mut Unstructured<'_>) -> Result<String> {
    let mut out = host_name(u)?;
    if u.arbitrary()? {
        out.push_str(piece(u, PORTS)?);
    }
    Ok(out)
}

fn domain(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0 | 1 => host_name(u)?,
        2 => authority(u)?,
        3 => format!("*.{}", host_name(u)?),
        4 => format!("{}.*", host_name(u)?),
        5 => "*".into(),
        6 => format!("*{}", authority(u)?),
        _ => text(u, &["*", ".", "a", "A", ":", "80"], 4)?,
    })
}

/// A regex: mostly well-formed, from fragments that nest; sometimes fragments pasted
/// together (often not a regex).
fn regex(u: &mut Unstructured<'_>, depth: u32) -> Result<String> {
    if depth == 0 || u.ratio(1, 3)? {
        return Ok(match u.int_in_range(0..=5)? {
            0 => regex::escape(&text(u, PATH_PIECES, 2)?),
            1 => text(u, REGEX_PIECES, 4)?,
            _ => piece(
                u,
                &[
                    "[a-z]+",
                    "/v[0-9]+",
                    ".*",
                    "/api/.*",
                    "a|ab",
                    "",
                    "[^/]*",
                    "[[:alpha:]]",
                ],
            )?
            .to_string(),
        });
    }
    let inner = regex(u, depth - 1)?;
    Ok(match u.int_in_range(0..=5)? {
        0 => format!("(?:{inner})*"),
        1 => format!("{inner}|{}", regex(u, depth - 1)?),
        2 => format!("{inner}{}", regex(u, depth - 1)?),
        3 => format!("({inner})?"),
        4 => format!("(?i:{inner})"),
        _ => format!("{inner}{{0,2}}"),
    })
}

fn string_match(u: &mut Unstructured<'_>, pieces: &[&str]) -> Result<StringMatch> {
    let mut m = StringMatch::default();
    match u.int_in_range(0..=4)? {
        0 | 1 => m.exact = Some(text(u, pieces, 3)?),
        2 | 3 => m.prefix = Some(text(u, pieces, 2)?),
        _ => m.regex = Some(regex(u, 2)?),
    }
    Ok(m)
}

fn optional<T>(
    u: &mut Unstructured<'_>,
    f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    if u.ratio(1, 3)? {
        f(u).map(Some)
    } else {
        Ok(None)
    }
}

fn keys(u: &mut Unstructured<'_>, names: &[&str]) -> Result<Vec<KeyMatch>> {
    let n = if u.ratio(1, 2)? {
        0
    } else {
        u.int_in_range(1..=MAX_KEYS)?
    };
    (0..n)
        .map(|_| {
            Ok(KeyMatch {
                name: if u.ratio(1, 10)? {
                    raw(u)?
                } else {
                    piece(u, names)?.into()
                },
                value: if u.ratio(1, 3)? {
                    None
                } else {
                    Some(string_match(u, VALUES)?)
                },
            })
        })
        .collect()
}

fn condition(u: &mut Unstructured<'_>) -> Result<RouteMatch> {
    Ok(RouteMatch {
        uri: optional(u, |u| string_match(u, PATH_PIECES))?,
        ignore_uri_case: u.arbitrary()?,
        method: optional(u, |u| string_match(u, METHODS))?,
        authority: optional(u, |u| string_match(u, &[LABELS, PORTS].concat()))?,
        scheme: optional(u, |u| string_match(u, SCHEMES))?,
        headers: keys(u, HEADER_NAMES)?,
        without_headers: keys(u, HEADER_NAMES)?,
        query_params: keys(u, QUERY_NAMES)?,
        port: optional(u, |u| piece_u16(u))?,
    })
}

fn piece_u16(u: &mut Unstructured<'_>) -> Result<u16> {
    u.choose(PORT_NUMBERS).copied()
}

fn route(u: &mut Unstructured<'_>) -> Result<Route> {
    let n = u.int_in_range(0..=MAX_MATCHES)?;
    let matches = (0..n).map(|_| condition(u)).collect::<Result<_>>()?;
    let mut route = Route {
        origin: None,
        matches,
        request_headers: Default::default(),
        response_headers: Default::default(),
        route: None,
        redirect: None,
        direct_response: None,
    };
    match u.int_in_range(0..=3)? {
        0 => {
            route.direct_response = Some(DirectResponse {
                status: 200,
                body: None,
            })
        }
        1 => {
            route.redirect = Some(Redirect {
                scheme: optional(u, |u| piece(u, SCHEMES).map(String::from))?,
                authority: optional(u, authority)?,
                port: optional(u, piece_u16)?,
                path: optional(u, |u| text(u, PATH_PIECES, 3))?,
                response_code: 301,
            })
        }
        _ => {
            let rewrite = match u.int_in_range(0..=2)? {
                0 => None,
                1 => Some(Rewrite {
                    uri_prefix: Some(text(u, PATH_PIECES, 2)?),
                    ..Default::default()
                }),
                _ => Some(Rewrite {
                    uri_regex: Some(RegexRewrite {
                        pattern: regex(u, 2)?,
                        substitution: text(u, &["/", "\\1", "\\0", "$", "x", "${1}"], 3)?,
                    }),
                    ..Default::default()
                }),
            };
            route.route = Some(ForwardAction {
                clusters: vec![],
                rewrite,
                timeout_ms: None,
                retries: None,
            });
        }
    }
    Ok(route)
}

fn route_config(u: &mut Unstructured<'_>) -> Result<RouteConfig> {
    let hosts = u.int_in_range(1..=MAX_HOSTS)?;
    let mut virtual_hosts = Vec::with_capacity(hosts);
    for h in 0..hosts {
        let domains = (0..u.int_in_range(1..=MAX_DOMAINS)?)
            .map(|_| domain(u))
            .collect::<Result<_>>()?;
        let routes = (0..u.int_in_range(0..=MAX_ROUTES)?)
            .map(|_| route(u))
            .collect::<Result<_>>()?;
        virtual_hosts.push(VirtualHost {
            name: format!("h{h}"),
            domains,
            routes,
        });
    }
    let mut spec = RouteConfig {
        name: "rc".into(),
        virtual_hosts,
    };
    cap_regexes(&mut spec);
    Ok(spec)
}

/// Regexes past the first [`MAX_REGEXES`] become exact matches of their text: compiling
/// them is most of an input's time.
fn cap_regexes(spec: &mut RouteConfig) {
    let mut left = MAX_REGEXES;
    let cap = |m: &mut StringMatch, left: &mut usize| {
        if m.regex.is_some() {
            if *left == 0 {
                m.exact = m.regex.take();
            } else {
                *left -= 1;
            }
        }
    };
    for host in &mut spec.virtual_hosts {
        for route in &mut host.routes {
            if let Some(rewrite) = route.route.as_mut().and_then(|f| f.rewrite.as_mut()) {
                if rewrite.uri_regex.is_some() {
                    if left == 0 {
                        rewrite.uri_prefix = rewrite.uri_regex.take().map(|re| re.pattern);
                    } else {
                        left -= 1;
                    }
                }
            }
            for condition in &mut route.matches {
                for m in [
                    &mut condition.uri,
                    &mut condition.method,
                    &mut condition.authority,
                    &mut condition.scheme,
                ]
                .into_iter()
                .flatten()
                {
                    cap(m, &mut left);
                }
                for key in condition
                    .headers
                    .iter_mut()
                    .chain(&mut condition.without_headers)
                    .chain(&mut condition.query_params)
                {
                    if let Some(m) = &mut key.value {
                        cap(m, &mut left);
                    }
                }
            }
        }
    }
}

/// A header value: visible ASCII, spaces and tabs, sometimes a byte beyond ASCII (valid,
/// but not text to the matchers).
fn header_value(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut value: Vec<u8> = text(u, VALUES, 2)?
        .bytes()
        .filter(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
        .collect();
    if u.ratio(1, 8)? {
        value.push(0xff);
    }
    Ok(value)
}

fn request(u: &mut Unstructured<'_>) -> Result<Request> {
    let mut path = text(u, PATH_PIECES, 4)?;
    if !path.starts_with('/') && u.ratio(3, 4)? {
        path.insert(0, '/');
    }
    let query = optional(u, |u| {
        let pairs: Vec<String> = (0..u.int_in_range(0..=3)?)
            .map(|_| -> Result<String> {
                let name = piece(u, QUERY_NAMES)?;
                Ok(if u.arbitrary()? {
                    format!("{name}={}", text(u, VALUES, 2)?)
                } else {
                    name.to_string()
                })
            })
            .collect::<Result<_>>()?;
        Ok(pairs.join("&"))
    })?;
    let headers = (0..u.int_in_range(0..=4)?)
        .map(|_| Ok((piece(u, HEADER_NAMES)?.to_string(), header_value(u)?)))
        .collect::<Result<_>>()?;
    Ok(Request {
        path,
        query,
        method: piece(u, METHODS)?.into(),
        authority: authority(u)?,
        scheme: piece(u, SCHEMES)?.into(),
        headers,
        local_port: piece_u16(u)?,
    })
}

/// A value a string match takes (for a regex, anything).
fn taken(u: &mut Unstructured<'_>, spec: &StringMatch, pieces: &[&str]) -> Result<String> {
    Ok(match (&spec.exact, &spec.prefix) {
        (Some(exact), _) => exact.clone(),
        (_, Some(prefix)) => format!("{prefix}{}", text(u, pieces, 2)?),
        _ => text(u, pieces, 3)?,
    })
}

/// Letters, digits and `-`: a header name whatever the parser.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A request aimed at one condition of one route of one virtual host: an authority one of
/// the host's domains takes, and values each of the condition's parts takes (then, often,
/// one part changed), so that the first-match order is tested on requests that get far.
fn aimed_request(u: &mut Unstructured<'_>, spec: &RouteConfig) -> Result<Request> {
    let mut request = request(u)?;
    let host = u.choose(&spec.virtual_hosts)?;
    let domain = u.choose(&host.domains)?;
    request.authority = if domain == "*" {
        authority(u)?
    } else if let Some(suffix) = domain.strip_prefix('*') {
        format!("{}{suffix}", piece(u, LABELS)?)
    } else if let Some(prefix) = domain.strip_suffix('*') {
        format!("{prefix}{}", piece(u, &["a", "com", ":80", "b.c"])?)
    } else if u.arbitrary()? {
        format!("{domain}{}", piece(u, PORTS)?)
    } else {
        domain.clone()
    };
    let Ok(route) = u.choose(&host.routes) else {
        return Ok(request);
    };
    let Ok(condition) = u.choose(&route.matches) else {
        return Ok(request);
    };
    if let Some(uri) = &condition.uri {
        request.path = taken(u, uri, PATH_PIECES)?;
        if condition.ignore_uri_case && u.arbitrary()? {
            request.path = request.path.to_ascii_uppercase();
        }
    }
    if let Some(method) = &condition.method {
        request.method = taken(u, method, METHODS)?;
    }
    if let Some(scheme) = &condition.scheme {
        request.scheme = taken(u, scheme, SCHEMES)?;
    }
    if let Some(authority) = &condition.authority {
        request.authority = taken(u, authority, LABELS)?;
    }
    if let Some(port) = condition.port {
        request.local_port = port;
        if u.arbitrary()? {
            request.authority = format!("{}:{port}", reference_split(&request.authority).0);
        }
    }
    request.headers.retain(|(name, _)| {
        !condition
            .without_headers
            .iter()
            .any(|k| k.name.eq_ignore_ascii_case(name))
    });
    for key in &condition.headers {
        if plain_name(&key.name) {
            let value = match &key.value {
                Some(value) => taken(u, value, VALUES)?,
                None => text(u, VALUES, 1)?,
            };
            let value = value
                .bytes()
                .filter(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
                .collect();
            request.headers.push((key.name.clone(), value));
        }
    }
    let mut pairs: Vec<String> = request.query.iter().cloned().collect();
    for key in &condition.query_params {
        pairs.push(match &key.value {
            Some(value) => format!("{}={}", key.name, taken(u, value, VALUES)?),
            None => key.name.clone(),
        });
    }
    if !pairs.is_empty() {
        request.query = Some(pairs.join("&"));
    }
    // Then, often, one part off.
    match u.int_in_range(0..=5)? {
        0 => request.path.push('x'),
        1 => {
            request.headers.pop();
        }
        2 => request.authority = request.authority.to_ascii_uppercase(),
        3 => request.query = None,
        _ => {}
    }
    Ok(request)
}
