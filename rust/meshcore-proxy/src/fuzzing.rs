//! Entry points for the fuzz targets (`fuzz/fuzz_targets/http1_request.rs`,
//! `route_match.rs`, `http1_response.rs`); built only with the `fuzzing` feature. Each must
//! never panic.

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use meshcore_snapshot::{Redirect, RegexRewrite, Rewrite, RouteMatch, StringMatch};

use crate::http::matcher::{RequestMatch, RequestView, StrMatch};
use crate::http::rewrite::{PathRewrite, redirect_location, split_authority};

/// Parses arbitrary bytes as an upstream's HTTP/1 response head and decodes its body
/// (content-length, chunked with trailers, or to the close) as the own client does.
pub fn http1_response(data: &[u8]) {
    crate::http::decode_response(data);
}

/// Detects the protocol of arbitrary first bytes, builds the malformed phase's 400 when
/// they would get one, parses them as an HTTP/1 request head
/// and, when that succeeds, matches the request and rewrites its path.
pub fn http1_request(data: &[u8]) {
    let _ = crate::http::detect_bytes(data);
    if let Some(reply) = crate::http::malformed_reply(data) {
        assert!(reply.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = request.parse(data) else {
        return;
    };
    let mut map = HeaderMap::new();
    for header in request.headers.iter() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) {
            map.append(name, value);
        }
    }
    let target = request.path.unwrap_or("/");
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    let authority = map
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (_, port) = split_authority(&authority);
    let view = RequestView {
        path,
        query,
        method: request.method.unwrap_or("GET"),
        authority: &authority,
        scheme: "http",
        headers: &map,
        port: port.unwrap_or(80),
    };
    let spec = RouteMatch {
        uri: Some(StringMatch {
            prefix: Some("/api/".into()),
            ..Default::default()
        }),
        ignore_uri_case: true,
        ..Default::default()
    };
    if let Ok(matcher) = RequestMatch::compile(&spec) {
        let prefix = matcher.rewritable_prefix(path).to_string();
        if matcher.matches(&view)
            && let Ok(rewrite) = PathRewrite::compile(&Rewrite {
                uri_prefix: Some("/".into()),
                ..Default::default()
            })
        {
            let _ = rewrite.path(path, query, &prefix);
        }
    }
}

/// Splits `data` at NUL bytes into a pattern, a value and a substitution, and runs every
/// string matcher, regex rewrite and redirect builder over them.
pub fn route_match(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let pattern = parts.next().unwrap_or("").to_string();
    let value = parts.next().unwrap_or("");
    let substitution = parts.next().unwrap_or("").to_string();
    for ignore_case in [false, true] {
        for spec in [
            StringMatch {
                exact: Some(pattern.clone()),
                ..Default::default()
            },
            StringMatch {
                prefix: Some(pattern.clone()),
                ..Default::default()
            },
            StringMatch {
                regex: Some(pattern.clone()),
                ..Default::default()
            },
        ] {
            if let Ok(matcher) = StrMatch::compile(&spec, ignore_case) {
                let _ = matcher.matches(value, ignore_case);
            }
        }
    }
    if let Ok(rewrite) = PathRewrite::compile(&Rewrite {
        uri_regex: Some(RegexRewrite {
            pattern: pattern.clone(),
            substitution: substitution.clone(),
        }),
        ..Default::default()
    }) {
        let _ = rewrite.path(value, None, "/");
    }
    let redirect = Redirect {
        scheme: None,
        authority: Some(pattern),
        port: None,
        path: Some(substitution),
        response_code: 301,
    };
    let _ = redirect_location(&redirect, "http", value, value, Some(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_points_take_odd_input() {
        http1_request(b"GET /API/x?y=1 HTTP/1.1\r\nHost: a:80\r\n\r\n");
        http1_request(b"\xff\xfe");
        route_match(b"(a+)+\0aaaa\0\\1$x");
        route_match(b"[\0\0");
    }
}
