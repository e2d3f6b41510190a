//! HTTP routing: route configs, virtual hosts and routes, with VirtualService semantics.
//!
//! A listener names a [`RouteConfig`]; the request's authority picks a [`VirtualHost`] by
//! its `domains`; the first [`Route`] whose `matches` accept the request decides (an empty
//! `matches` accepts everything, several are alternatives). Every route records the Istio
//! object and rule it came from in `origin`, so the proxy can say which rule decided.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::listener::default_weight;

fn default_redirect_code() -> u16 {
    301
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default)]
    pub virtual_hosts: Vec<VirtualHost>,
}

/// Requests whose authority matches one of `domains`: `host`, `host:port`, `*.suffix`,
/// `prefix.*` or `*`; the most specific wins, as in Envoy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// The Istio object a compiled piece of config came from, e.g. VirtualService
/// default/reviews rule `http[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub rule: String,
}

/// One rule: matches, then exactly one of `route`, `redirect`, `direct_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub origin: Option<Origin>,
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    #[serde(default)]
    pub request_headers: HeaderOps,
    #[serde(default)]
    pub response_headers: HeaderOps,
    #[serde(default)]
    pub route: Option<ForwardAction>,
    #[serde(default)]
    pub redirect: Option<Redirect>,
    #[serde(default)]
    pub direct_response: Option<DirectResponse>,
}

/// All conditions must hold (Istio's HTTPMatchRequest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    pub uri: Option<StringMatch>,
    #[serde(default)]
    pub ignore_uri_case: bool,
    #[serde(default)]
    pub method: Option<StringMatch>,
    #[serde(default)]
    pub authority: Option<StringMatch>,
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    #[serde(default)]
    pub headers: Vec<KeyMatch>,
    /// Each must NOT match (a `None` value: the header must be absent).
    #[serde(default)]
    pub without_headers: Vec<KeyMatch>,
    #[serde(default)]
    pub query_params: Vec<KeyMatch>,
    #[serde(default)]
    pub port: Option<u16>,
}

/// Exactly one of `exact`, `prefix`, `regex` (RE2 syntax, matched against the whole value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatch {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// A header or query parameter by name; `value: None` tests presence only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMatch {
    pub name: String,
    #[serde(default)]
    pub value: Option<StringMatch>,
}

/// Header edits, applied in the order remove, set, add (Istio's HeaderOperations).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Forward to one of `clusters`, chosen by weight per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    pub clusters: Vec<HttpWeightedCluster>,
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Whole-request timeout; `None` or 0 = no timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub retries: Option<RetryPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpWeightedCluster {
    pub name: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub request_headers: HeaderOps,
    #[serde(default)]
    pub response_headers: HeaderOps,
}

/// At most one of `uri_prefix` and `uri_regex`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Replaces the part of the path the route's `uri` prefix (or exact) match matched.
    #[serde(default)]
    pub uri_prefix: Option<String>,
    #[serde(default)]
    pub uri_regex: Option<RegexRewrite>,
    #[serde(default)]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: String,
    /// `\1`-style group references, as Istio's `uriRegexRewrite.rewrite`.
    pub substitution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub attempts: u32,
    #[serde(default)]
    pub per_try_timeout_ms: Option<u64>,
    /// Envoy's retry conditions (`5xx`, `connect-failure`, ...) and status codes (`503`).
    #[serde(default)]
    pub retry_on: Vec<String>,
}

/// Answer with a redirect; unset parts keep the request's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default = "default_redirect_code")]
    pub response_code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(default)]
    pub body: Option<String>,
}
