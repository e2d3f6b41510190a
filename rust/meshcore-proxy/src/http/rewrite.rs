//! Rewrites of a forwarded request's path and authority, and the Location of redirects.

use hyper::Uri;
use hyper::header::HeaderValue;
use regex::Regex;

use meshcore_snapshot::{Redirect, Rewrite};

/// A route's compiled `rewrite`.
#[derive(Debug, Clone)]
pub(crate) struct PathRewrite {
    prefix: Option<String>,
    /// Pattern and substitution with `\1` turned into `${1}`.
    regex: Option<(Regex, String)>,
    pub(crate) authority: Option<String>,
}

impl PathRewrite {
    pub(crate) fn compile(spec: &Rewrite) -> Result<Self, regex::Error> {
        Ok(Self {
            prefix: spec.uri_prefix.clone(),
            regex: spec
                .uri_regex
                .as_ref()
                .map(|r| Regex::new(&r.pattern).map(|re| (re, substitution(&r.substitution))))
                .transpose()?,
            authority: spec.authority.clone(),
        })
    }

    /// The new path-and-query. `matched_prefix` is the part of the path the route's uri
    /// match matched; the query is kept as it was.
    pub(crate) fn path(&self, path: &str, query: Option<&str>, matched_prefix: &str) -> String {
        let mut new_path = if let Some((regex, replacement)) = &self.regex {
            regex.replace_all(path, replacement.as_str()).into_owned()
        } else if let Some(prefix) = &self.prefix {
            let rest = path.get(matched_prefix.len()..).unwrap_or("");
            // Envoy: rewriting "/prefix/" to "/" must not produce "//rest".
            if prefix.ends_with('/') && rest.starts_with('/') {
                format!("{prefix}{}", &rest[1..])
            } else {
                format!("{prefix}{rest}")
            }
        } else {
            path.to_string()
        };
        if new_path.is_empty() {
            new_path.push('/');
        }
        match query {
            Some(query) => format!("{new_path}?{query}"),
            None => new_path,
        }
    }
}

/// Istio writes RE2 substitutions with `\1`; the regex crate wants `${1}`, and a literal
/// `$` must be doubled.
fn substitution(istio: &str) -> String {
    let mut out = String::with_capacity(istio.len());
    let mut chars = istio.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{digits}}}"));
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// The Location of a redirect: the request's scheme, host, port and path, each replaced
/// where the route says so. A path redirect keeps the request's query.
pub(crate) fn redirect_location(
    redirect: &Redirect,
    scheme: &str,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Option<HeaderValue> {
    let scheme = redirect.scheme.as_deref().unwrap_or(scheme);
    let authority = redirect.authority.as_deref().unwrap_or(authority);
    let (host, port) = split_authority(authority);
    let port = redirect.port.or(port);
    let default_port = match scheme {
        "https" => 443,
        _ => 80,
    };
    let host_port = match port {
        Some(p) if p != default_port => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    let path = redirect.path.as_deref().unwrap_or(path);
    let location = match query {
        Some(q) if !path.contains('?') => format!("{scheme}://{host_port}{path}?{q}"),
        _ => format!("{scheme}://{host_port}{path}"),
    };
    location.parse::<Uri>().ok()?;
    HeaderValue::from_str(&location).ok()
}

/// `host[:port]`, with IPv6 literals in brackets.
pub(crate) fn split_authority(authority: &str) -> (&str, Option<u16>) {
    // One backward pass over the port's digits, no string search or parse: this runs on
    // every request.
    let bytes = authority.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let colon = bytes.len() - digits;
    if digits == 0 || digits > 5 || colon == 0 || bytes[colon - 1] != b':' {
        return (authority, None);
    }
    let host = &authority[..colon - 1];
    // An IPv6 address without brackets has colons of its own: no port in it then.
    // (A plain loop: `contains` calls memchr, slower on a dozen bytes.)
    if !host.ends_with(']') && host.bytes().any(|b| b == b':') {
        return (authority, None);
    }
    let port = bytes[colon..]
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    match u16::try_from(port) {
        Ok(port) => (host, Some(port)),
        Err(_) => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use meshcore_snapshot::RegexRewrite;

    use super::*;

    #[test]
    fn prefix_rewrite_replaces_the_matched_prefix() {
        let rewrite = PathRewrite::compile(&Rewrite {
            uri_prefix: Some("/v2/".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            rewrite.path("/v1/books", Some("a=1"), "/v1/"),
            "/v2/books?a=1"
        );
        let to_root = PathRewrite::compile(&Rewrite {
            uri_prefix: Some("/".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(to_root.path("/api/x", None, "/api"), "/x");
    }

    #[test]
    fn regex_rewrite_uses_istio_substitutions() {
        let rewrite = PathRewrite::compile(&Rewrite {
            uri_regex: Some(RegexRewrite {
                pattern: "^/api/v1/(.*)$".into(),
                substitution: "/\\1".into(),
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(rewrite.path("/api/v1/reviews/1", None, "/"), "/reviews/1");
    }

    #[test]
    fn redirect_keeps_what_it_does_not_replace() {
        let redirect = Redirect {
            scheme: None,
            authority: None,
            port: None,
            path: Some("/new/".into()),
            response_code: 301,
        };
        let location = redirect_location(&redirect, "http", "reviews:9080", "/old/", Some("a=1"));
        assert_eq!(location.unwrap(), "http://reviews:9080/new/?a=1");
        let https = Redirect {
            scheme: Some("https".into()),
            authority: Some("example.com".into()),
            port: Some(443),
            path: None,
            response_code: 302,
        };
        let location = redirect_location(&https, "http", "reviews:9080", "/x", None);
        assert_eq!(location.unwrap(), "https://example.com/x");
    }

    #[test]
    fn authorities_split_with_ipv6() {
        assert_eq!(split_authority("a:80"), ("a", Some(80)));
        assert_eq!(split_authority("a"), ("a", None));
        assert_eq!(split_authority("[::1]:8080"), ("[::1]", Some(8080)));
        assert_eq!(split_authority("[::1]"), ("[::1]", None));
        assert_eq!(split_authority("a:x"), ("a:x", None));
        assert_eq!(split_authority("::1"), ("::1", None));
        assert_eq!(split_authority("a:99999"), ("a:99999", None));
        assert_eq!(split_authority("a:"), ("a:", None));
        assert_eq!(split_authority("a:+80"), ("a:+80", None));
        assert_eq!(split_authority(":80"), ("", Some(80)));
        assert_eq!(split_authority("a:65535"), ("a", Some(65535)));
        assert_eq!(split_authority("a:123456"), ("a:123456", None));
    }
}
