//! Semantic checks: what a well-typed snapshot can still get wrong.
//!
//! The walk order (settings, listeners, route configs, clusters; fields in declaration
//! order) and every message are part of the contract: `meshcore.compile.snapshot.validate`
//! walks the same way, so both sides report the same errors for the same input.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::{
    Cluster, ClusterKind, ErrorCode, ForwardAction, HashPolicy, HeaderOps, KeyMatch, LbPolicy,
    Listener, Protocol, Redirect, Route, RouteConfig, RouteMatch, Snapshot, SnapshotError,
    StringMatch, TcpRoute, VirtualHost,
};

/// Envoy's retry conditions, gRPC's, and Istio's `retriable-status-codes`.
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

const REDIRECT_CODES: &[u16] = &[301, 302, 303, 307, 308];

pub(crate) fn validate(snapshot: &Snapshot) -> Result<(), Vec<SnapshotError>> {
    let mut walk = Walk {
        snapshot,
        clusters: first_index(snapshot.clusters.iter().map(|c| c.name.as_str())),
        route_configs: first_index(snapshot.route_configs.iter().map(|r| r.name.as_str())),
        errors: Vec::new(),
    };
    walk.snapshot_fields();
    if walk.errors.is_empty() {
        Ok(())
    } else {
        Err(walk.errors)
    }
}

fn first_index<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut map = HashMap::new();
    for (i, name) in names.enumerate() {
        map.entry(name).or_insert(i);
    }
    map
}

/// Two sockets collide when the ports match and either address covers the other
/// (`0.0.0.0` covers every IPv4 address, `::` every IPv6 one).
fn sockets_collide(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

/// RFC 9110 token characters: what a header name may contain.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `*` alone, or one `*` at the start or the end (`*.example.com`, `example.*`).
fn is_domain(domain: &str) -> bool {
    let stars = domain.matches('*').count();
    !domain.is_empty()
        && (stars == 0 || (stars == 1 && (domain.starts_with('*') || domain.ends_with('*'))))
}

fn is_retry_condition(condition: &str) -> bool {
    RETRY_CONDITIONS.contains(&condition)
        || condition
            .parse::<u16>()
            .is_ok_and(|code| (100..=599).contains(&code))
}

struct Walk<'a> {
    snapshot: &'a Snapshot,
    clusters: HashMap<&'a str, usize>,
    route_configs: HashMap<&'a str, usize>,
    errors: Vec<SnapshotError>,
}

impl<'a> Walk<'a> {
    fn error(&mut self, path: impl Into<String>, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(SnapshotError::new(path, code, message));
    }

    fn snapshot_fields(&mut self) {
        let snapshot = self.snapshot;
        if snapshot.version.trim().is_empty() {
            self.error("version", ErrorCode::InvalidValue, "must not be empty");
        }
        self.settings();
        let mut names = HashMap::new();
        let mut sockets = Vec::new();
        for (i, listener) in snapshot.listeners.iter().enumerate() {
            self.listener(i, listener, &mut names, &mut sockets);
        }
        let mut config_names = HashMap::new();
        for (i, config) in snapshot.route_configs.iter().enumerate() {
            self.route_config(i, config, &mut config_names);
        }
        let mut cluster_names = HashMap::new();
        for (i, cluster) in snapshot.clusters.iter().enumerate() {
            self.cluster(i, cluster, &mut cluster_names);
        }
    }

    fn settings(&mut self) {
        let settings = &self.snapshot.settings;
        if settings.max_request_headers_kb == 0 {
            self.at_least_one("settings.max_request_headers_kb");
        }
        if settings.max_request_headers == 0 {
            self.at_least_one("settings.max_request_headers");
        }
        if settings.http2_max_concurrent_streams == 0 {
            self.at_least_one("settings.http2_max_concurrent_streams");
        }
        if let Some(log) = &settings.access_log
            && log.path.is_empty()
        {
            self.error(
                "settings.access_log.path",
                ErrorCode::InvalidValue,
                "must not be empty",
            );
        }
    }

    fn at_least_one(&mut self, path: &str) {
        self.error(path, ErrorCode::OutOfRange, "must be at least 1");
    }

    fn name(
        &mut self,
        name: &'a str,
        path: &str,
        kind: &str,
        seen: &mut HashMap<&'a str, usize>,
        index: usize,
        collection: &str,
    ) {
        if name.is_empty() {
            self.error(path, ErrorCode::InvalidValue, "must not be empty");
        } else if let Some(first) = seen.get(name) {
            self.error(
                path,
                ErrorCode::Duplicate,
                format!("duplicate {kind} name \"{name}\" (first used by {collection}[{first}])"),
            );
        } else {
            seen.insert(name, index);
        }
    }

    fn ip(&mut self, address: &str, path: &str) -> Option<IpAddr> {
        let ip = address.parse::<IpAddr>().ok();
        if ip.is_none() {
            self.error(
                path,
                ErrorCode::InvalidValue,
                format!("\"{address}\" is not an IP address"),
            );
        }
        ip
    }

    fn port(&mut self, port: u16, path: &str) -> bool {
        if port == 0 {
            self.error(path, ErrorCode::OutOfRange, "must be between 1 and 65535");
        }
        port != 0
    }

    fn listener(
        &mut self,
        i: usize,
        listener: &'a Listener,
        names: &mut HashMap<&'a str, usize>,
        sockets: &mut Vec<(IpAddr, u16, usize)>,
    ) {
        let at = format!("listeners[{i}]");
        self.name(
            &listener.name,
            &format!("{at}.name"),
            "listener",
            names,
            i,
            "listeners",
        );
        let ip = self.ip(&listener.address, &format!("{at}.address"));
        let port_ok = self.port(listener.port, &format!("{at}.port"));
        if let (Some(ip), true) = (ip, port_ok) {
            let clash = sockets
                .iter()
                .find(|(other, port, _)| *port == listener.port && sockets_collide(ip, *other));
            if let Some(&(_, _, first)) = clash {
                let other = &self.snapshot.listeners[first];
                self.error(
                    format!("{at}.port"),
                    ErrorCode::Duplicate,
                    format!(
                        "{}:{} collides with listeners[{first}] \"{}\" ({}:{})",
                        listener.address, listener.port, other.name, other.address, other.port
                    ),
                );
            } else {
                sockets.push((ip, listener.port, i));
            }
        }
        let protocol = match listener.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Auto => "auto",
        };
        if listener.http_proxy && listener.protocol == Protocol::Tcp {
            self.error(
                format!("{at}.http_proxy"),
                ErrorCode::InvalidValue,
                "only for protocol http or auto",
            );
        }
        if !listener.opaque_ports.is_empty() && listener.protocol != Protocol::Auto {
            self.error(
                format!("{at}.opaque_ports"),
                ErrorCode::InvalidValue,
                "only for protocol auto (the only one that detects)",
            );
        }
        for (j, &port) in listener.opaque_ports.iter().enumerate() {
            self.port(port, &format!("{at}.opaque_ports[{j}]"));
        }
        match (&listener.tcp_route, listener.protocol) {
            (None, Protocol::Tcp) => {
                self.error(
                    format!("{at}.tcp_route"),
                    ErrorCode::MissingField,
                    "required for protocol tcp",
                );
            }
            (Some(_), Protocol::Http) => {
                self.error(
                    format!("{at}.tcp_route"),
                    ErrorCode::InvalidValue,
                    "only for protocol tcp or auto",
                );
            }
            (Some(route), _) => self.tcp_route(&format!("{at}.tcp_route.clusters"), route),
            (None, _) => {}
        }
        match (&listener.route_config, listener.protocol) {
            (None, Protocol::Http | Protocol::Auto) => self.error(
                format!("{at}.route_config"),
                ErrorCode::MissingField,
                format!("required for protocol {protocol}"),
            ),
            (Some(_), Protocol::Tcp) => {
                self.error(
                    format!("{at}.route_config"),
                    ErrorCode::InvalidValue,
                    "only for protocol http or auto",
                );
            }
            (Some(name), _) if !self.route_configs.contains_key(name.as_str()) => self.error(
                format!("{at}.route_config"),
                ErrorCode::UnknownReference,
                format!("unknown route config \"{name}\""),
            ),
            _ => {}
        }
    }

    fn tcp_route(&mut self, at: &str, route: &TcpRoute) {
        let targets: Vec<(&str, u32)> = route
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect();
        self.weighted_clusters(at, &targets);
    }

    fn weighted_clusters(&mut self, at: &str, targets: &[(&str, u32)]) {
        if targets.is_empty() {
            self.error(
                at,
                ErrorCode::InvalidValue,
                "must name at least one cluster",
            );
        }
        for (j, (name, _)) in targets.iter().enumerate() {
            if !self.clusters.contains_key(name) {
                self.error(
                    format!("{at}[{j}].name"),
                    ErrorCode::UnknownReference,
                    format!("unknown cluster \"{name}\""),
                );
            }
        }
        let total: u64 = targets.iter().map(|(_, w)| u64::from(*w)).sum();
        if !targets.is_empty() && total == 0 {
            self.error(
                at,
                ErrorCode::InvalidValue,
                "weights must add up to more than 0",
            );
        }
    }

    fn route_config(
        &mut self,
        i: usize,
        config: &'a RouteConfig,
        names: &mut HashMap<&'a str, usize>,
    ) {
        let at = format!("route_configs[{i}]");
        self.name(
            &config.name,
            &format!("{at}.name"),
            "route config",
            names,
            i,
            "route_configs",
        );
        let mut host_names = HashMap::new();
        let mut domains: HashMap<&'a str, usize> = HashMap::new();
        for (v, host) in config.virtual_hosts.iter().enumerate() {
            self.virtual_host(
                &format!("{at}.virtual_hosts[{v}]"),
                v,
                host,
                &mut host_names,
                &mut domains,
                &at,
            );
        }
    }

    fn virtual_host(
        &mut self,
        at: &str,
        v: usize,
        host: &'a VirtualHost,
        names: &mut HashMap<&'a str, usize>,
        domains: &mut HashMap<&'a str, usize>,
        config_at: &str,
    ) {
        let collection = format!("{config_at}.virtual_hosts");
        self.name(
            &host.name,
            &format!("{at}.name"),
            "virtual host",
            names,
            v,
            &collection,
        );
        if host.domains.is_empty() {
            self.error(
                format!("{at}.domains"),
                ErrorCode::InvalidValue,
                "must list at least one domain",
            );
        }
        for (d, domain) in host.domains.iter().enumerate() {
            let path = format!("{at}.domains[{d}]");
            if !is_domain(domain) {
                self.error(
                    path,
                    ErrorCode::InvalidValue,
                    format!(
                        "\"{domain}\" is not a domain (a wildcard goes at the start or the end)"
                    ),
                );
            } else if let Some(first) = domains.get(domain.as_str()) {
                self.error(
                    path,
                    ErrorCode::Duplicate,
                    format!("domain \"{domain}\" is already served by {collection}[{first}]"),
                );
            } else {
                domains.insert(domain, v);
            }
        }
        for (k, route) in host.routes.iter().enumerate() {
            self.route(&format!("{at}.routes[{k}]"), route);
        }
    }

    fn route(&mut self, at: &str, route: &Route) {
        let actions = usize::from(route.route.is_some())
            + usize::from(route.redirect.is_some())
            + usize::from(route.direct_response.is_some());
        if actions != 1 {
            self.error(
                at,
                ErrorCode::InvalidValue,
                "exactly one of route, redirect, direct_response must be set",
            );
        }
        for (m, matcher) in route.matches.iter().enumerate() {
            self.route_match(&format!("{at}.matches[{m}]"), matcher);
        }
        self.header_ops(&format!("{at}.request_headers"), &route.request_headers);
        self.header_ops(&format!("{at}.response_headers"), &route.response_headers);
        if let Some(forward) = &route.route {
            self.forward(&format!("{at}.route"), forward);
        }
        if let Some(redirect) = &route.redirect {
            self.redirect(&format!("{at}.redirect"), redirect);
        }
        if let Some(direct) = &route.direct_response
            && !(200..=599).contains(&direct.status)
        {
            self.error(
                format!("{at}.direct_response.status"),
                ErrorCode::OutOfRange,
                "must be between 200 and 599",
            );
        }
    }

    fn route_match(&mut self, at: &str, matcher: &RouteMatch) {
        let fields = [
            ("uri", &matcher.uri),
            ("method", &matcher.method),
            ("authority", &matcher.authority),
            ("scheme", &matcher.scheme),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                self.string_match(&format!("{at}.{field}"), value);
            }
        }
        for (field, keys) in [
            ("headers", &matcher.headers),
            ("without_headers", &matcher.without_headers),
            ("query_params", &matcher.query_params),
        ] {
            for (h, key) in keys.iter().enumerate() {
                self.key_match(&format!("{at}.{field}[{h}]"), key, field != "query_params");
            }
        }
        if let Some(port) = matcher.port {
            self.port(port, &format!("{at}.port"));
        }
    }

    fn key_match(&mut self, at: &str, key: &KeyMatch, is_header: bool) {
        if key.name.is_empty() {
            self.error(
                format!("{at}.name"),
                ErrorCode::InvalidValue,
                "must not be empty",
            );
        } else if is_header && !is_header_name(&key.name) {
            self.error(
                format!("{at}.name"),
                ErrorCode::InvalidValue,
                format!("\"{}\" is not a valid header name", key.name),
            );
        }
        if let Some(value) = &key.value {
            self.string_match(&format!("{at}.value"), value);
        }
    }

    fn string_match(&mut self, at: &str, value: &StringMatch) {
        let set = usize::from(value.exact.is_some())
            + usize::from(value.prefix.is_some())
            + usize::from(value.regex.is_some());
        if set != 1 {
            self.error(
                at,
                ErrorCode::InvalidValue,
                "exactly one of exact, prefix, regex must be set",
            );
        }
        if let Some(pattern) = &value.regex {
            self.regex(&format!("{at}.regex"), pattern);
        }
    }

    fn regex(&mut self, at: &str, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            let detail = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            self.error(
                at,
                ErrorCode::InvalidValue,
                format!("\"{pattern}\" is not a valid regular expression: {detail}"),
            );
        }
    }

    fn header_ops(&mut self, at: &str, ops: &HeaderOps) {
        let names = ops
            .set
            .keys()
            .map(|n| ("set", n))
            .chain(ops.add.keys().map(|n| ("add", n)));
        for (field, name) in names {
            if !is_header_name(name) {
                self.error(
                    format!("{at}.{field}"),
                    ErrorCode::InvalidValue,
                    format!("\"{name}\" is not a valid header name"),
                );
            }
        }
        for (r, name) in ops.remove.iter().enumerate() {
            if !is_header_name(name) {
                self.error(
                    format!("{at}.remove[{r}]"),
                    ErrorCode::InvalidValue,
                    format!("\"{name}\" is not a valid header name"),
                );
            }
        }
    }

    fn forward(&mut self, at: &str, forward: &ForwardAction) {
        let targets: Vec<(&str, u32)> = forward
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect();
        self.weighted_clusters(&format!("{at}.clusters"), &targets);
        for (j, target) in forward.clusters.iter().enumerate() {
            self.header_ops(
                &format!("{at}.clusters[{j}].request_headers"),
                &target.request_headers,
            );
            self.header_ops(
                &format!("{at}.clusters[{j}].response_headers"),
                &target.response_headers,
            );
        }
        if let Some(rewrite) = &forward.rewrite {
            if rewrite.uri_prefix.is_some() && rewrite.uri_regex.is_some() {
                self.error(
                    format!("{at}.rewrite"),
                    ErrorCode::InvalidValue,
                    "at most one of uri_prefix, uri_regex may be set",
                );
            }
            if let Some(regex) = &rewrite.uri_regex {
                self.regex(&format!("{at}.rewrite.uri_regex.pattern"), &regex.pattern);
            }
        }
        if let Some(retries) = &forward.retries {
            for (j, condition) in retries.retry_on.iter().enumerate() {
                if !is_retry_condition(condition) {
                    self.error(
                        format!("{at}.retries.retry_on[{j}]"),
                        ErrorCode::InvalidValue,
                        format!("unknown retry condition \"{condition}\""),
                    );
                }
            }
        }
    }

    fn redirect(&mut self, at: &str, redirect: &Redirect) {
        if let Some(scheme) = &redirect.scheme
            && scheme != "http"
            && scheme != "https"
        {
            self.error(
                format!("{at}.scheme"),
                ErrorCode::InvalidValue,
                "must be http or https",
            );
        }
        if let Some(port) = redirect.port {
            self.port(port, &format!("{at}.port"));
        }
        if !REDIRECT_CODES.contains(&redirect.response_code) {
            self.error(
                format!("{at}.response_code"),
                ErrorCode::InvalidValue,
                "must be one of 301, 302, 303, 307, 308",
            );
        }
    }

    fn cluster(&mut self, i: usize, cluster: &'a Cluster, names: &mut HashMap<&'a str, usize>) {
        let at = format!("clusters[{i}]");
        self.name(
            &cluster.name,
            &format!("{at}.name"),
            "cluster",
            names,
            i,
            "clusters",
        );
        let hashing = matches!(cluster.lb_policy, LbPolicy::RingHash | LbPolicy::Maglev);
        match &cluster.hash_policy {
            None if hashing => self.error(
                format!("{at}.hash_policy"),
                ErrorCode::MissingField,
                "required for lb_policy ring_hash or maglev",
            ),
            Some(_) if !hashing => self.error(
                format!("{at}.hash_policy"),
                ErrorCode::InvalidValue,
                "only for lb_policy ring_hash or maglev",
            ),
            Some(policy) => self.hash_policy(&format!("{at}.hash_policy"), policy),
            None => {}
        }
        if cluster.connect_timeout_ms == 0 {
            self.at_least_one(&format!("{at}.connect_timeout_ms"));
        }
        if cluster.pool.http2_max_concurrent_streams == 0 {
            self.at_least_one(&format!("{at}.pool.http2_max_concurrent_streams"));
        }
        if cluster.kind == ClusterKind::OriginalDst && !cluster.endpoints.is_empty() {
            self.error(
                format!("{at}.endpoints"),
                ErrorCode::InvalidValue,
                "must be empty for kind original_dst",
            );
        }
        for (j, endpoint) in cluster.endpoints.iter().enumerate() {
            let ep = format!("{at}.endpoints[{j}]");
            self.ip(&endpoint.address, &format!("{ep}.address"));
            self.port(endpoint.port, &format!("{ep}.port"));
            if endpoint.weight == 0 {
                self.at_least_one(&format!("{ep}.weight"));
            }
        }
    }

    fn hash_policy(&mut self, at: &str, policy: &HashPolicy) {
        let set = usize::from(policy.header.is_some())
            + usize::from(policy.cookie.is_some())
            + usize::from(policy.source_ip)
            + usize::from(policy.query_parameter.is_some());
        if set != 1 {
            self.error(
                at,
                ErrorCode::InvalidValue,
                "exactly one of header, cookie, source_ip, query_parameter must be set",
            );
        }
        if let Some(header) = &policy.header
            && !is_header_name(header)
        {
            self.error(
                format!("{at}.header"),
                ErrorCode::InvalidValue,
                format!("\"{header}\" is not a valid header name"),
            );
        }
        if let Some(cookie) = &policy.cookie
            && cookie.name.is_empty()
        {
            self.error(
                format!("{at}.cookie.name"),
                ErrorCode::InvalidValue,
                "must not be empty",
            );
        }
        if policy.query_parameter.as_deref() == Some("") {
            self.error(
                format!("{at}.query_parameter"),
                ErrorCode::InvalidValue,
                "must not be empty",
            );
        }
    }
}
