//! Route matching with Istio's HTTPMatchRequest semantics, compiled once per apply.
//!
//! A [`RequestMatch`] holds when every condition it has holds: uri (exact, prefix or
//! regex, optionally case-insensitive), method, authority, scheme, headers (exact, prefix,
//! regex or presence), headers that must be absent or must not match, query parameters and
//! the destination port. Regexes are RE2-style (the `regex` crate: linear time, no
//! backtracking) and must match the whole value, as Envoy's `safe_regex` does.

use hyper::HeaderMap;
use regex::Regex;

use meshcore_snapshot::{KeyMatch, RouteMatch, StringMatch};

/// The parts of a request that matching looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    /// The path without the query.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) method: &'a str,
    pub(crate) authority: &'a str,
    pub(crate) scheme: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// The port the request was addressed to.
    pub(crate) port: u16,
}

#[derive(Debug, Clone)]
pub(crate) enum StrMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StrMatch {
    /// `ignore_case` folds exact and prefix comparisons; a regex keeps its own case rules
    /// (Istio's `ignoreUriCase` covers exact and prefix only; `(?i)` in the pattern folds).
    pub(crate) fn compile(spec: &StringMatch, ignore_case: bool) -> Result<Self, regex::Error> {
        let fold = |s: &String| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            }
        };
        if let Some(exact) = &spec.exact {
            return Ok(Self::Exact(fold(exact)));
        }
        if let Some(prefix) = &spec.prefix {
            return Ok(Self::Prefix(fold(prefix)));
        }
        let pattern = spec.regex.as_deref().unwrap_or("");
        // A regex on its own, or `a)|(b` would close the group below and match any value
        // starting with `a`.
        Regex::new(pattern)?;
        // `(?x)` and a newline end a verbose-mode comment the pattern may leave open (it
        // would swallow the `)$`), and are nothing otherwise.
        Regex::new(&format!("^(?:{pattern}(?x)\n)$")).map(Self::Regex)
    }

    pub(crate) fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            Self::Exact(exact) if ignore_case => value.eq_ignore_ascii_case(exact),
            Self::Exact(exact) => value == exact,
            Self::Prefix(prefix) if ignore_case => value
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A header or query parameter condition; `value: None` tests presence.
#[derive(Debug, Clone)]
pub(crate) struct KeyMatcher {
    name: String,
    value: Option<StrMatch>,
}

impl KeyMatcher {
    fn compile(spec: &KeyMatch, lowercase_name: bool) -> Result<Self, regex::Error> {
        Ok(Self {
            name: if lowercase_name {
                spec.name.to_ascii_lowercase()
            } else {
                spec.name.clone()
            },
            value: spec
                .value
                .as_ref()
                .map(|v| StrMatch::compile(v, false))
                .transpose()?,
        })
    }

    /// Several values of one header are joined with `,`, as Envoy matches them.
    fn matches_header(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(self.name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return false;
        }
        let Some(matcher) = &self.value else {
            return true;
        };
        let joined: Vec<&str> = values.filter_map(|v| v.to_str().ok()).collect();
        matcher.matches(&joined.join(","), false)
    }

    fn matches_query(&self, query: Option<&str>) -> bool {
        let Some(query) = query else {
            return false;
        };
        query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .filter(|(key, _)| *key == self.name)
            .any(|(_, value)| self.value.as_ref().is_none_or(|m| m.matches(value, false)))
    }
}

/// One compiled HTTPMatchRequest.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestMatch {
    uri: Option<StrMatch>,
    ignore_uri_case: bool,
    method: Option<StrMatch>,
    authority: Option<StrMatch>,
    scheme: Option<StrMatch>,
    headers: Vec<KeyMatcher>,
    without_headers: Vec<KeyMatcher>,
    query_params: Vec<KeyMatcher>,
    port: Option<u16>,
}

impl RequestMatch {
    pub(crate) fn compile(spec: &RouteMatch) -> Result<Self, regex::Error> {
        let string =
            |m: &Option<StringMatch>| m.as_ref().map(|m| StrMatch::compile(m, false)).transpose();
        Ok(Self {
            uri: spec
                .uri
                .as_ref()
                .map(|m| StrMatch::compile(m, spec.ignore_uri_case))
                .transpose()?,
            ignore_uri_case: spec.ignore_uri_case,
            method: string(&spec.method)?,
            authority: string(&spec.authority)?,
            scheme: string(&spec.scheme)?,
            headers: keys(&spec.headers, true)?,
            without_headers: keys(&spec.without_headers, true)?,
            query_params: keys(&spec.query_params, false)?,
            port: spec.port,
        })
    }

    /// Matches on the destination port (which a redirected connection's original
    /// destination supplies for a `Host` without one).
    pub(crate) fn matches_port(&self) -> bool {
        self.port.is_some()
    }

    pub(crate) fn matches(&self, request: &RequestView<'_>) -> bool {
        self.uri
            .as_ref()
            .is_none_or(|m| m.matches(request.path, self.ignore_uri_case))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.matches(request.method, false))
            && self
                .authority
                .as_ref()
                .is_none_or(|m| m.matches(request.authority, false))
            && self
                .scheme
                .as_ref()
                .is_none_or(|m| m.matches(request.scheme, false))
            && self.port.is_none_or(|p| p == request.port)
            && self
                .headers
                .iter()
                .all(|h| h.matches_header(request.headers))
            && !self
                .without_headers
                .iter()
                .any(|h| h.matches_header(request.headers))
            && self
                .query_params
                .iter()
                .all(|q| q.matches_query(request.query))
    }

    /// The literal prefix this match's uri condition matched, for `uri_prefix` rewrites:
    /// the prefix itself, the whole path for an exact match, `/` otherwise (what Istio
    /// generates when a rule has no uri match).
    pub(crate) fn rewritable_prefix<'p>(&self, path: &'p str) -> &'p str {
        match &self.uri {
            Some(StrMatch::Prefix(prefix)) => path.get(..prefix.len()).unwrap_or(path),
            Some(StrMatch::Exact(_)) => path,
            _ => path.get(..1).unwrap_or(""),
        }
    }
}

fn keys(specs: &[KeyMatch], lowercase: bool) -> Result<Vec<KeyMatcher>, regex::Error> {
    specs
        .iter()
        .map(|k| KeyMatcher::compile(k, lowercase))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            path,
            query,
            method: "GET",
            authority: "reviews:9080",
            scheme: "http",
            headers,
            port: 9080,
        }
    }

    fn string(kind: &str, value: &str) -> StringMatch {
        let mut m = StringMatch::default();
        match kind {
            "exact" => m.exact = Some(value.into()),
            "prefix" => m.prefix = Some(value.into()),
            _ => m.regex = Some(value.into()),
        }
        m
    }

    fn compile(spec: RouteMatch) -> RequestMatch {
        RequestMatch::compile(&spec).unwrap()
    }

    #[test]
    fn uri_exact_prefix_regex_and_case() {
        let h = HeaderMap::new();
        let exact = compile(RouteMatch {
            uri: Some(string("exact", "/a")),
            ..Default::default()
        });
        assert!(exact.matches(&view("/a", None, &h)));
        assert!(!exact.matches(&view("/a/", None, &h)));
        let prefix = compile(RouteMatch {
            uri: Some(string("prefix", "/Old/")),
            ignore_uri_case: true,
            ..Default::default()
        });
        assert!(prefix.matches(&view("/old/x", None, &h)));
        assert!(prefix.matches(&view("/OLD/x", None, &h)));
        assert!(!prefix.matches(&view("/new/x", None, &h)));
        let regex = compile(RouteMatch {
            uri: Some(string("regex", "/api/v[0-9]+")),
            ..Default::default()
        });
        assert!(regex.matches(&view("/api/v12", None, &h)));
        // Whole-value match, as Envoy's safe_regex.
        assert!(!regex.matches(&view("/api/v12/x", None, &h)));
        // Istio's ignoreUriCase covers exact and prefix only: a regex keeps its case.
        let regex = compile(RouteMatch {
            uri: Some(string("regex", "/api/v[0-9]+")),
            ignore_uri_case: true,
            ..Default::default()
        });
        assert!(regex.matches(&view("/api/v1", None, &h)));
        assert!(!regex.matches(&view("/API/v1", None, &h)));
    }

    #[test]
    fn a_regex_must_be_one_on_its_own_and_match_the_whole_value() {
        // Found by fuzz/fuzz_targets/route_match.rs: spliced into `^(?:…)$`, `a)|(b` closed
        // the group and compiled to `^(?:a)|(b)$`, any value starting with `a`.
        for ignore_case in [false, true] {
            assert!(StrMatch::compile(&string("regex", "a)|(b"), ignore_case).is_err());
        }
        // Verbose mode's comment runs to the end of the line, not over the `)$` after it.
        let commented = StrMatch::compile(&string("regex", "(?x) a b # a comment"), false)
            .expect("a regex on its own");
        assert!(commented.matches("ab", false));
        assert!(!commented.matches("abc", false) && !commented.matches("xab", false));
    }

    #[test]
    fn headers_presence_absence_and_joined_values() {
        let mut h = HeaderMap::new();
        h.append("end-user", "jason".parse().unwrap());
        h.append("x-multi", "a".parse().unwrap());
        h.append("x-multi", "b".parse().unwrap());
        let m = compile(RouteMatch {
            headers: vec![
                KeyMatch {
                    name: "End-User".into(),
                    value: Some(string("exact", "jason")),
                },
                KeyMatch {
                    name: "x-multi".into(),
                    value: Some(string("exact", "a,b")),
                },
            ],
            without_headers: vec![KeyMatch {
                name: "x-canary".into(),
                value: None,
            }],
            ..Default::default()
        });
        assert!(m.matches(&view("/", None, &h)));
        h.insert("x-canary", "1".parse().unwrap());
        assert!(!m.matches(&view("/", None, &h)));
    }

    #[test]
    fn query_params_method_scheme_authority_port() {
        let h = HeaderMap::new();
        let m = compile(RouteMatch {
            query_params: vec![
                KeyMatch {
                    name: "debug".into(),
                    value: None,
                },
                KeyMatch {
                    name: "v".into(),
                    value: Some(string("regex", "[0-9]+")),
                },
            ],
            method: Some(string("exact", "GET")),
            scheme: Some(string("exact", "http")),
            authority: Some(string("prefix", "reviews")),
            port: Some(9080),
            ..Default::default()
        });
        assert!(m.matches(&view("/", Some("debug&v=12"), &h)));
        assert!(!m.matches(&view("/", Some("debug&v=x"), &h)));
        assert!(!m.matches(&view("/", Some("v=1"), &h)));
        assert!(!m.matches(&view("/", None, &h)));
        let mut other_port = view("/", Some("debug&v=1"), &h);
        other_port.port = 80;
        assert!(!m.matches(&other_port));
    }

    #[test]
    fn rewritable_prefix_follows_the_uri_match() {
        let prefix = compile(RouteMatch {
            uri: Some(string("prefix", "/api/")),
            ..Default::default()
        });
        assert_eq!(prefix.rewritable_prefix("/api/x"), "/api/");
        assert_eq!(RequestMatch::default().rewritable_prefix("/x"), "/");
    }
}
