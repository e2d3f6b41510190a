//! The route phase: a compiled route config picks a virtual host by the request's
//! authority, then the first route whose matches accept the request.
//!
//! Virtual hosts are indexed for the one lookup the request path makes, most specific
//! first, as Envoy orders them: an exact domain (the full authority, then the host without
//! its port), then the longest `*.suffix` wildcard, then the longest `prefix.*`, then `*`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;

use meshcore_snapshot::{ClusterKind, Origin, Redirect, RetryPolicy, RouteConfig};

use super::headers::HeaderEdits;
use super::matcher::{RequestMatch, RequestView};
use super::rewrite::{PathRewrite, split_authority};
use crate::balancer::WeightedRandom;
use crate::cluster::Cluster;

/// A compiled route config.
#[derive(Debug)]
pub(crate) struct RouteTable {
    pub(crate) name: String,
    hosts: Vec<VirtualHost>,
    exact: HashMap<String, usize>,
    /// (suffix without the `*`, host), longest first.
    suffixes: Vec<(String, usize)>,
    /// (prefix without the `*`, host), longest first.
    prefixes: Vec<(String, usize)>,
    any: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct VirtualHost {
    pub(crate) name: String,
    pub(crate) routes: Vec<Route>,
}

#[derive(Debug)]
pub(crate) struct Route {
    /// Who wrote this route, for `x-meshcore-decision` and the access log:
    /// `VirtualService/default/reviews http[1]`.
    pub(crate) origin: Arc<str>,
    matches: Vec<RequestMatch>,
    pub(crate) request_headers: HeaderEdits,
    pub(crate) response_headers: HeaderEdits,
    pub(crate) action: Action,
}

#[derive(Debug)]
pub(crate) enum Action {
    Forward(Forward),
    Redirect(Redirect),
    Direct {
        status: StatusCode,
        body: Option<Bytes>,
    },
}

/// A `route` action.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) targets: Vec<Target>,
    picker: WeightedRandom,
    pub(crate) rewrite: Option<PathRewrite>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: Option<Retries>,
}

/// One weighted cluster of a forward action, with its own header edits.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) request_headers: HeaderEdits,
    pub(crate) response_headers: HeaderEdits,
}

impl Forward {
    pub(crate) fn pick(&self) -> Option<&Target> {
        self.picker.pick().and_then(|i| self.targets.get(i))
    }
}

/// A compiled retry policy: Envoy's `retry_on` conditions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Retries {
    /// Retries after the first try (Envoy's `num_retries`, Istio's `attempts`).
    pub(crate) attempts: u32,
    pub(crate) per_try_timeout: Option<Duration>,
    pub(crate) on_5xx: bool,
    pub(crate) on_gateway_error: bool,
    pub(crate) on_connect_failure: bool,
    pub(crate) on_refused_stream: bool,
    pub(crate) on_reset: bool,
    pub(crate) on_retriable_4xx: bool,
    pub(crate) on_status: Vec<u16>,
}

impl Retries {
    fn compile(spec: &RetryPolicy) -> Self {
        let mut retries = Self {
            attempts: spec.attempts,
            per_try_timeout: spec
                .per_try_timeout_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            ..Self::default()
        };
        for condition in &spec.retry_on {
            match condition.trim() {
                "5xx" => retries.on_5xx = true,
                "gateway-error" => retries.on_gateway_error = true,
                "connect-failure" => retries.on_connect_failure = true,
                "refused-stream" => retries.on_refused_stream = true,
                "reset" => retries.on_reset = true,
                "retriable-4xx" => retries.on_retriable_4xx = true,
                other => {
                    if let Ok(code) = other.parse() {
                        retries.on_status.push(code);
                    }
                }
            }
        }
        retries
    }

    /// Whether a response with this status is retried.
    pub(crate) fn retries_status(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        (self.on_5xx && status.is_server_error())
            || (self.on_gateway_error && matches!(code, 502..=504))
            || (self.on_retriable_4xx && code == 409)
            || self.on_status.contains(&code)
    }
}

/// Why a route config could not be compiled (validation normally catches it first).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub(crate) struct CompileError {
    pub(crate) path: String,
    pub(crate) source: regex::Error,
}

impl RouteTable {
    pub(crate) fn compile(
        index: usize,
        spec: &RouteConfig,
        clusters: &HashMap<&str, Arc<Cluster>>,
    ) -> Result<Self, CompileError> {
        let mut table = Self {
            name: spec.name.clone(),
            hosts: Vec::with_capacity(spec.virtual_hosts.len()),
            exact: HashMap::new(),
            suffixes: Vec::new(),
            prefixes: Vec::new(),
            any: None,
        };
        for (h, host) in spec.virtual_hosts.iter().enumerate() {
            let mut routes = Vec::with_capacity(host.routes.len());
            for (r, route) in host.routes.iter().enumerate() {
                let at = |field: &str| {
                    format!("route_configs[{index}].virtual_hosts[{h}].routes[{r}].{field}")
                };
                let matches = route
                    .matches
                    .iter()
                    .enumerate()
                    .map(|(m, spec)| {
                        RequestMatch::compile(spec).map_err(|source| CompileError {
                            path: at(&format!("matches[{m}]")),
                            source,
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let action = if let Some(forward) = &route.route {
                    let targets: Vec<Target> = forward
                        .clusters
                        .iter()
                        .filter_map(|c| {
                            Some(Target {
                                cluster: Arc::clone(clusters.get(c.name.as_str())?),
                                request_headers: HeaderEdits::compile(&c.request_headers),
                                response_headers: HeaderEdits::compile(&c.response_headers),
                            })
                        })
                        .collect();
                    let weights: Vec<u32> = forward
                        .clusters
                        .iter()
                        .filter(|c| clusters.contains_key(c.name.as_str()))
                        .map(|c| c.weight)
                        .collect();
                    Action::Forward(Forward {
                        targets,
                        picker: WeightedRandom::new(&weights),
                        rewrite: forward
                            .rewrite
                            .as_ref()
                            .map(PathRewrite::compile)
                            .transpose()
                            .map_err(|source| CompileError {
                                path: at("route.rewrite"),
                                source,
                            })?,
                        timeout: forward
                            .timeout_ms
                            .filter(|ms| *ms > 0)
                            .map(Duration::from_millis),
                        retries: forward.retries.as_ref().map(Retries::compile),
                    })
                } else if let Some(redirect) = &route.redirect {
                    Action::Redirect(redirect.clone())
                } else {
                    let direct = route.direct_response.as_ref();
                    Action::Direct {
                        status: direct
                            .and_then(|d| StatusCode::from_u16(d.status).ok())
                            .unwrap_or(StatusCode::OK),
                        body: direct.and_then(|d| d.body.clone()).map(Bytes::from),
                    }
                };
                routes.push(Route {
                    origin: origin_name(route.origin.as_ref(), &spec.name, &host.name, r).into(),
                    matches,
                    request_headers: HeaderEdits::compile(&route.request_headers),
                    response_headers: HeaderEdits::compile(&route.response_headers),
                    action,
                });
            }
            table.hosts.push(VirtualHost {
                name: host.name.clone(),
                routes,
            });
            for domain in &host.domains {
                let domain = domain.to_ascii_lowercase();
                if domain == "*" {
                    table.any.get_or_insert(h);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    table.suffixes.push((suffix.to_string(), h));
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    table.prefixes.push((prefix.to_string(), h));
                } else {
                    table.exact.entry(domain).or_insert(h);
                }
            }
        }
        table
            .suffixes
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        table
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(table)
    }

    /// Whether a request routed here can use its connection's original destination: a
    /// route forwards to an `original_dst` cluster, or matches on the port.
    pub(crate) fn uses_original_dst(&self) -> bool {
        self.hosts.iter().flat_map(|h| &h.routes).any(|route| {
            route.matches.iter().any(RequestMatch::matches_port)
                || matches!(&route.action, Action::Forward(forward)
                    if forward.targets.iter().any(|t| t.cluster.kind == ClusterKind::OriginalDst))
        })
    }

    /// The virtual host for an authority (case-insensitive).
    pub(crate) fn host(&self, authority: &str) -> Option<&VirtualHost> {
        // Only `*`: the authority need not be looked at.
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.any.and_then(|index| self.hosts.get(index));
        }
        // Most clients send the authority in lower case already: no copy then.
        let lowered;
        let authority = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = authority.to_ascii_lowercase();
            lowered.as_str()
        } else {
            authority
        };
        let (host, _) = split_authority(authority);
        let exact = || {
            if self.exact.is_empty() {
                return None;
            }
            self.exact
                .get(authority)
                .or_else(|| self.exact.get(host))
                .copied()
        };
        let index = exact()
            .or_else(|| {
                [authority, host].iter().find_map(|name| {
                    self.suffixes
                        .iter()
                        .find(|(suffix, _)| {
                            name.len() > suffix.len() && name.ends_with(suffix.as_str())
                        })
                        .map(|(_, h)| *h)
                })
            })
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(prefix, _)| {
                        authority.len() > prefix.len() && authority.starts_with(prefix.as_str())
                    })
                    .map(|(_, h)| *h)
            })
            .or(self.any)?;
        self.hosts.get(index)
    }
}

impl VirtualHost {
    /// The first route that accepts the request, with the match that accepted it (`None`
    /// for a route without matches).
    pub(crate) fn route(
        &self,
        request: &RequestView<'_>,
    ) -> Option<(&Route, Option<&RequestMatch>)> {
        self.routes.iter().find_map(|route| {
            if route.matches.is_empty() {
                return Some((route, None));
            }
            route
                .matches
                .iter()
                .find(|m| m.matches(request))
                .map(|m| (route, Some(m)))
        })
    }
}

/// `VirtualService/default/reviews http[1]`, or where in the route config the route sits.
fn origin_name(origin: Option<&Origin>, config: &str, host: &str, index: usize) -> String {
    match origin {
        Some(o) if o.rule.is_empty() => format!("{}/{}/{}", o.kind, o.namespace, o.name),
        Some(o) => format!("{}/{}/{} {}", o.kind, o.namespace, o.name, o.rule),
        None => format!("RouteConfig/{config} {host} routes[{index}]"),
    }
}

#[cfg(test)]
mod tests {
    use meshcore_snapshot::{DirectResponse, Route as RouteSpec, VirtualHost as HostSpec};

    use super::*;

    fn direct(status: u16) -> RouteSpec {
        RouteSpec {
            origin: None,
            matches: vec![],
            request_headers: Default::default(),
            response_headers: Default::default(),
            route: None,
            redirect: None,
            direct_response: Some(DirectResponse { status, body: None }),
        }
    }

    fn table(hosts: &[(&str, &[&str])]) -> RouteTable {
        let spec = RouteConfig {
            name: "rc".into(),
            virtual_hosts: hosts
                .iter()
                .map(|(name, domains)| HostSpec {
                    name: (*name).into(),
                    domains: domains.iter().map(|d| (*d).into()).collect(),
                    routes: vec![direct(200)],
                })
                .collect(),
        };
        RouteTable::compile(0, &spec, &HashMap::new()).unwrap()
    }

    fn host<'a>(table: &'a RouteTable, authority: &str) -> Option<&'a str> {
        table.host(authority).map(|h| h.name.as_str())
    }

    #[test]
    fn virtual_hosts_most_specific_first() {
        let t = table(&[
            ("any", &["*"]),
            ("wild", &["*.example.com"]),
            ("deeper", &["*.api.example.com"]),
            ("prefix", &["reviews.*"]),
            ("exact", &["reviews", "reviews:9080"]),
        ]);
        assert_eq!(host(&t, "reviews"), Some("exact"));
        assert_eq!(host(&t, "reviews:9080"), Some("exact"));
        assert_eq!(host(&t, "REVIEWS:1234"), Some("exact"), "host without port");
        assert_eq!(host(&t, "a.example.com"), Some("wild"));
        assert_eq!(host(&t, "a.api.example.com:80"), Some("deeper"));
        assert_eq!(host(&t, "reviews.default"), Some("prefix"));
        assert_eq!(host(&t, "other"), Some("any"));
        let no_default = table(&[("exact", &["reviews"])]);
        assert_eq!(host(&no_default, "ratings"), None);
    }

    #[test]
    fn origins_name_the_rule() {
        let origin = Origin {
            kind: "VirtualService".into(),
            namespace: "default".into(),
            name: "reviews".into(),
            rule: "http[1]".into(),
        };
        assert_eq!(
            origin_name(Some(&origin), "rc", "h", 0),
            "VirtualService/default/reviews http[1]"
        );
        assert_eq!(
            origin_name(None, "rc", "h", 2),
            "RouteConfig/rc h routes[2]"
        );
    }

    #[test]
    fn retry_conditions() {
        let retries = Retries::compile(&RetryPolicy {
            attempts: 2,
            per_try_timeout_ms: None,
            retry_on: vec!["gateway-error".into(), "409".into()],
        });
        assert!(retries.retries_status(StatusCode::BAD_GATEWAY));
        assert!(!retries.retries_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retries.retries_status(StatusCode::CONFLICT));
    }
}
