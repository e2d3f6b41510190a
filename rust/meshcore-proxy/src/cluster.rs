//! A cluster as the request path sees it: endpoints (each with its live load and its
//! connection pool), the policy's picker, the hash policy, pool limits and the counters of
//! the cluster's name.
//!
//! An endpoint's load and pool belong to its (cluster name, address) and carry over from
//! the previous apply, so a changed endpoint set keeps warm connections and in-flight
//! requests, and the load-aware balancers keep what they learned.
//!
//! An `original_dst` cluster has no endpoints of its own: each captured connection brings
//! one (its original destination). Its endpoints are made on first use and kept, with
//! their pools, so keep-alive to a passthrough destination works as it does for any other.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::HeaderMap;
use meshcore_snapshot::{ClusterKind, ClusterProtocol, HashPolicy};
use tracing::warn;

use crate::balancer::{Balancer, EndpointLoad, Policy, stable_hash};
use crate::http::pool::{EndpointPool, PoolSettings};
use crate::stats::ClusterCounters;

/// How many original destinations an `original_dst` cluster keeps pools for; past it,
/// the ones no request is using are let go.
const MAX_ORIGINAL_DST_ENDPOINTS: usize = 1024;

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) address: SocketAddr,
    pub(crate) load: Arc<EndpointLoad>,
    pub(crate) pool: Arc<EndpointPool>,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) name: Arc<str>,
    pub(crate) kind: ClusterKind,
    pub(crate) protocol: ClusterProtocol,
    pub(crate) connect_timeout: Duration,
    pub(crate) pool: PoolSettings,
    pub(crate) hash_policy: Option<HashPolicy>,
    endpoints: Vec<Endpoint>,
    loads: Vec<Arc<EndpointLoad>>,
    balancer: Balancer,
    /// `original_dst` only: the destinations seen so far.
    original_dst: Mutex<HashMap<SocketAddr, Arc<Endpoint>>>,
    pub(crate) counters: Arc<ClusterCounters>,
}

/// What a request offers the hash policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashInput<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) query: Option<&'a str>,
    pub(crate) source: IpAddr,
}

impl Cluster {
    /// Compiles a validated cluster. `counters` carry over from a previous cluster of the
    /// same name, and so do endpoint loads and pools (from `previous`) by address.
    pub(crate) fn compile(
        spec: &meshcore_snapshot::Cluster,
        counters: Arc<ClusterCounters>,
        previous: Option<&Cluster>,
        preserve_header_case: bool,
    ) -> Self {
        let kept: HashMap<SocketAddr, &Endpoint> = previous
            .map(|p| p.endpoints.iter().map(|e| (e.address, e)).collect())
            .unwrap_or_default();
        let mut endpoints = Vec::with_capacity(spec.endpoints.len());
        let mut weights = Vec::with_capacity(spec.endpoints.len());
        for endpoint in &spec.endpoints {
            // Validation guarantees an IP literal; a stray one is left out rather than guessed at.
            match endpoint.address.parse::<IpAddr>() {
                Ok(ip) => {
                    let address = SocketAddr::new(ip, endpoint.port);
                    let (load, pool) = match kept.get(&address) {
                        Some(e) => (Arc::clone(&e.load), Arc::clone(&e.pool)),
                        None => (
                            Arc::new(EndpointLoad::default()),
                            Arc::new(EndpointPool::new(address)),
                        ),
                    };
                    endpoints.push(Endpoint {
                        address,
                        load,
                        pool,
                    });
                    weights.push(endpoint.weight);
                }
                Err(_) => warn!(
                    cluster = %spec.name,
                    address = %endpoint.address,
                    "endpoint address is not an IP literal; skipped"
                ),
            }
        }
        let original_dst = previous
            .filter(|p| p.kind == ClusterKind::OriginalDst && spec.kind == ClusterKind::OriginalDst)
            .map(|p| p.original_dst_endpoints().clone())
            .unwrap_or_default();
        let keys: Vec<String> = endpoints.iter().map(|e| e.address.to_string()).collect();
        let connect_timeout = Duration::from_millis(spec.connect_timeout_ms);
        Self {
            name: spec.name.as_str().into(),
            kind: spec.kind,
            protocol: spec.protocol,
            connect_timeout,
            pool: PoolSettings {
                connect_timeout,
                max_requests_per_connection: spec.pool.max_requests_per_connection,
                idle_timeout: (spec.pool.idle_timeout_ms > 0)
                    .then(|| Duration::from_millis(spec.pool.idle_timeout_ms)),
                max_connections: spec.pool.max_connections,
                max_concurrent_streams: spec.pool.http2_max_concurrent_streams,
                preserve_header_case,
            },
            hash_policy: spec.hash_policy.clone(),
            balancer: Balancer::new(Policy::from(spec.lb_policy), &weights, &keys),
            loads: endpoints.iter().map(|e| Arc::clone(&e.load)).collect(),
            endpoints,
            original_dst: Mutex::new(original_dst),
            counters,
        }
    }

    /// The balancer reads response times (peak EWMA); others need not measure them.
    pub(crate) fn measures_latency(&self) -> bool {
        matches!(self.balancer, Balancer::PeakEwma(_))
    }

    /// The endpoint of an `original_dst` cluster for one original destination.
    pub(crate) fn original_dst_endpoint(&self, address: SocketAddr) -> Arc<Endpoint> {
        let mut endpoints = self.original_dst_endpoints();
        if let Some(endpoint) = endpoints.get(&address) {
            return Arc::clone(endpoint);
        }
        if endpoints.len() >= MAX_ORIGINAL_DST_ENDPOINTS {
            endpoints.retain(|_, endpoint| Arc::strong_count(endpoint) > 1);
        }
        let endpoint = Arc::new(Endpoint {
            address,
            load: Arc::new(EndpointLoad::default()),
            pool: Arc::new(EndpointPool::new(address)),
        });
        endpoints.insert(address, Arc::clone(&endpoint));
        endpoint
    }

    fn original_dst_endpoints(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Endpoint>>> {
        // The map stays consistent whatever a panicking holder did: take it as it is.
        self.original_dst
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The endpoint for a new connection or request, or `None` when the cluster has none.
    pub(crate) fn pick(&self, hash: Option<u64>) -> Option<&Endpoint> {
        self.balancer
            .pick(hash, &self.loads)
            .and_then(|i| self.endpoints.get(i))
    }

    /// The endpoint for a new L4 connection.
    pub(crate) fn pick_endpoint(&self, source: IpAddr) -> Option<SocketAddr> {
        let hash = self
            .hash_policy
            .as_ref()
            .filter(|p| p.source_ip)
            .map(|_| stable_hash(source.to_string().as_bytes()));
        self.pick(hash).map(|e| e.address)
    }

    /// The request's hash under the cluster's hash policy: `None` when there is no policy
    /// or the request lacks what it hashes (then hashing policies pick at random). A cookie
    /// policy with a TTL that finds no cookie returns the value it generated, for the
    /// response's `set-cookie`.
    pub(crate) fn request_hash(&self, input: &HashInput<'_>) -> (Option<u64>, Option<String>) {
        let Some(policy) = &self.hash_policy else {
            return (None, None);
        };
        if let Some(name) = &policy.header {
            let value = input.headers.get(name.as_str()).map(|v| v.as_bytes());
            return (value.map(stable_hash), None);
        }
        if let Some(cookie) = &policy.cookie {
            if let Some(value) = cookie_value(input.headers, &cookie.name) {
                return (Some(stable_hash(value.as_bytes())), None);
            }
            if let Some(ttl) = cookie.ttl_ms {
                let value = crate::http::request_id::text().replace('-', "");
                let mut set_cookie = format!("{}=\"{value}\"; Max-Age={}", cookie.name, ttl / 1000);
                if let Some(path) = &cookie.path {
                    set_cookie.push_str("; Path=");
                    set_cookie.push_str(path);
                }
                set_cookie.push_str("; HttpOnly");
                // Hash what the client will send back (the quoted value is unquoted).
                return (Some(stable_hash(value.as_bytes())), Some(set_cookie));
            }
            return (None, None);
        }
        if policy.source_ip {
            return (Some(stable_hash(input.source.to_string().as_bytes())), None);
        }
        if let Some(name) = &policy.query_parameter {
            let value = input.query.and_then(|q| {
                q.split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
            });
            return (value.map(|v| stable_hash(v.as_bytes())), None);
        }
        (None, None)
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=1; session=\"abc\"; b=2".parse().unwrap());
        assert_eq!(cookie_value(&headers, "session").as_deref(), Some("abc"));
        assert_eq!(cookie_value(&headers, "c"), None);
    }
}
