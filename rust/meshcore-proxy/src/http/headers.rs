//! Request and response header handling on the way through: hop-by-hop headers, the
//! headers Envoy adds (`x-request-id`, `x-forwarded-for`, `x-forwarded-proto`) and the
//! routes' set / add / remove operations.

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};

use meshcore_snapshot::HeaderOps;

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Connection-specific headers (RFC 9110 §7.6.1) that never cross the proxy; HTTP/2 forbids
/// them outright. An upgrade keeps `connection` and `upgrade`, which carry it.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if let Some(listed) = headers.get(header::CONNECTION).cloned()
        && !keep_upgrade
        && let Ok(listed) = listed.to_str()
    {
        for name in listed.split(',') {
            let name = name.trim();
            if !name.eq_ignore_ascii_case("upgrade") || !keep_upgrade {
                headers.remove(name);
            }
        }
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "proxy-authenticate",
        "proxy-authorization",
    ] {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    // `te: trailers` is the one TE value that may cross (gRPC needs it).
    if let Some(te) = headers.get(header::TE)
        && !te.as_bytes().eq_ignore_ascii_case(b"trailers")
    {
        headers.remove(header::TE);
    }
}

/// Envoy's edge behaviour: `x-forwarded-for` gets the client's address appended,
/// `x-forwarded-proto` is set to the downstream scheme when the client did not send one,
/// and a missing `x-request-id` is generated (a random UUID v4).
pub(crate) fn add_forwarding(headers: &mut HeaderMap, client: IpAddr, scheme: &str) {
    let client = client.to_string();
    let forwarded = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {client}"),
        _ => client,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO)
        && let Ok(value) = HeaderValue::from_str(scheme)
    {
        headers.insert(X_FORWARDED_PROTO, value);
    }
    if !headers.contains_key(&X_REQUEST_ID)
        && let Ok(value) = HeaderValue::from_str(&request_id())
    {
        headers.insert(X_REQUEST_ID, value);
    }
}

/// A random UUID v4, as Envoy generates for `x-request-id`.
pub(crate) fn request_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Compiled set / add / remove operations, applied in Istio's order: remove, set, add.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderEdits {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    /// Names or values that are not valid HTTP are left out (validation rejects them first).
    pub(crate) fn compile(ops: &HeaderOps) -> Self {
        let pairs = |map: &std::collections::BTreeMap<String, String>| {
            map.iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect()
        };
        Self {
            remove: ops
                .remove
                .iter()
                .filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok())
                .collect(),
            set: pairs(&ops.set),
            add: pairs(&ops.add),
        }
    }

    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_with_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("connection").is_none());
        assert!(h.get("keep-alive").is_none());
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-kept"], "1");
    }

    #[test]
    fn forwarding_headers_as_envoy_sets_them() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, "10.0.0.1".parse().unwrap());
        add_forwarding(&mut h, "127.0.0.1".parse().unwrap(), "http");
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        let id = h[X_REQUEST_ID].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        add_forwarding(&mut h, "127.0.0.1".parse().unwrap(), "http");
        assert_eq!(h[X_REQUEST_ID], id.as_str(), "an existing id is kept");
    }

    #[test]
    fn edits_remove_then_set_then_add() {
        let mut ops = HeaderOps::default();
        ops.remove.push("x-debug".into());
        ops.set.insert("x-mesh".into(), "meshcore".into());
        ops.add.insert("x-tag".into(), "b".into());
        let mut h = HeaderMap::new();
        h.insert("x-debug", "1".parse().unwrap());
        h.insert("x-mesh", "old".parse().unwrap());
        h.insert("x-tag", "a".parse().unwrap());
        HeaderEdits::compile(&ops).apply(&mut h);
        assert!(h.get("x-debug").is_none());
        assert_eq!(h["x-mesh"], "meshcore");
        let tags: Vec<_> = h.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["a", "b"]);
    }
}
