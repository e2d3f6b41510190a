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

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Connection-specific headers (RFC 9110 §7.6.1) that never cross the proxy; HTTP/2 forbids
/// them outright. An upgrade keeps `connection` and `upgrade`, which carry it.
///
/// One pass over the names finds which are present (comparing parsed names is a tag
/// compare for the standard ones); a message that carries none costs no map lookup.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut present = 0u16;
    for name in headers.keys() {
        // Most names have a length no hop-by-hop name has: one compare, not eight.
        if HOP_BY_HOP_LENGTHS & (1 << name.as_str().len().min(31)) == 0 {
            continue;
        }
        if let Some(bit) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present |= 1 << bit;
        }
    }
    if present == 0 {
        return;
    }
    let has = |name: &HeaderName| {
        HOP_BY_HOP
            .iter()
            .position(|hop| hop == name)
            .is_some_and(|bit| present & (1 << bit) != 0)
    };
    if !keep_upgrade
        && has(&header::CONNECTION)
        && let Some(listed) = headers.remove(header::CONNECTION)
        && let Ok(listed) = listed.to_str()
    {
        for name in listed.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                headers.remove(name);
            }
        }
    }
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::EXPECT,
    ] {
        if has(&name) {
            headers.remove(name);
        }
    }
    if !keep_upgrade && has(&header::UPGRADE) {
        headers.remove(header::UPGRADE);
    }
    // `te: trailers` is the one TE value that may cross (gRPC needs it).
    if has(&header::TE)
        && let Some(te) = headers.get(header::TE)
        && !te.as_bytes().eq_ignore_ascii_case(b"trailers")
    {
        headers.remove(header::TE);
    }
}

/// The hop-by-hop names [`remove_hop_by_hop`] looks for (at most 16: one bit each).
/// `expect` is among them: this proxy answers `100-continue` itself.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::TRANSFER_ENCODING,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::EXPECT,
];

/// The lengths of the hop-by-hop names, as bits.
const HOP_BY_HOP_LENGTHS: u32 = {
    let names = [
        "connection",
        "upgrade",
        "te",
        "transfer-encoding",
        "proxy-authenticate",
        "proxy-authorization",
        "keep-alive",
        "proxy-connection",
        "expect",
    ];
    let mut bits = 0u32;
    let mut i = 0;
    while i < names.len() {
        bits |= 1 << names[i].len();
        i += 1;
    }
    bits
};

/// Whether a name as it arrived (any case) is one [`remove_hop_by_hop`] looks for.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP_LENGTHS & (1 << name.len().min(31)) != 0
        && HOP_BY_HOP
            .iter()
            .any(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(name))
}

/// The client address as `x-forwarded-for` carries it; made once per connection.
pub(crate) fn client_address(client: IpAddr) -> HeaderValue {
    let mut text = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    // An IP address always fits and is always a valid header value.
    let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{client}"));
    let length = usize::try_from(cursor.position()).unwrap_or(0);
    HeaderValue::from_bytes(&text[..length]).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

const HTTP: HeaderValue = HeaderValue::from_static("http");

/// Envoy's edge behaviour: `x-forwarded-for` gets the client's address appended,
/// `x-forwarded-proto` is set to `http` (the downstream scheme) when the client did not
/// send one, and a missing `x-request-id` is generated (a random UUID v4). `client` is
/// [`client_address`]'s value.
pub(crate) fn add_forwarding(headers: &mut HeaderMap, client: &HeaderValue) {
    // One pass over the names says which are there: a lookup by a custom name hashes it,
    // and most requests carry neither. (`x-request-id` is added by both servers before
    // the request is handled.)
    let (mut has_for, mut has_proto) = (false, false);
    for name in headers.keys() {
        match name.as_str().len() {
            15 => has_for |= name == X_FORWARDED_FOR,
            17 => has_proto |= name == X_FORWARDED_PROTO,
            _ => {}
        }
    }
    let existing = if has_for {
        headers.get(&X_FORWARDED_FOR)
    } else {
        None
    };
    let forwarded = match existing {
        Some(existing) if !existing.is_empty() => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + client.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        _ => Some(client.clone()),
    };
    if let Some(value) = forwarded {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !has_proto {
        headers.insert(X_FORWARDED_PROTO, HTTP);
    }
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

    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
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
    fn hop_by_hop_lengths_cover_every_hop_by_hop_name() {
        for name in &HOP_BY_HOP {
            assert_ne!(HOP_BY_HOP_LENGTHS & (1 << name.as_str().len()), 0, "{name}");
        }
    }

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
    fn every_hop_by_hop_name_is_found_in_one_pass() {
        let mut h = HeaderMap::new();
        for name in [
            "transfer-encoding",
            "proxy-authorization",
            "proxy-authenticate",
            "proxy-connection",
            "upgrade",
            "expect",
        ] {
            h.insert(HeaderName::from_static(name), "x".parse().unwrap());
        }
        h.insert("te", "gzip".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        let mut upgrade = h.clone();
        upgrade.insert("connection", "upgrade".parse().unwrap());
        remove_hop_by_hop(&mut h, false);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-kept"]
        );
        // An upgrade keeps what carries it.
        remove_hop_by_hop(&mut upgrade, true);
        let mut kept: Vec<_> = upgrade.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["connection", "upgrade", "x-kept"]);
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_unchanged() {
        let mut h = HeaderMap::new();
        h.insert("host", "a".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        let before = h.clone();
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h, before);
    }

    #[test]
    fn forwarding_headers_as_envoy_sets_them() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, "10.0.0.1".parse().unwrap());
        let client = client_address("127.0.0.1".parse().unwrap());
        add_forwarding(&mut h, &client);
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        // Without one: the client's address alone; a proto the client sent is kept.
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_PROTO, "https".parse().unwrap());
        add_forwarding(&mut h, &client);
        assert_eq!(h[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert_eq!(h.len(), 2, "nothing else is added");
    }

    #[test]
    fn client_addresses_are_header_values() {
        assert_eq!(client_address("::1".parse().unwrap()), "::1");
    }

    #[test]
    fn upgrade_headers_stay_for_an_upgrade_and_go_otherwise() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("te", "gzip".parse().unwrap());
        let mut kept = h.clone();
        remove_hop_by_hop(&mut kept, true);
        assert_eq!(kept["upgrade"], "websocket");
        assert_eq!(kept["connection"], "Upgrade");
        assert!(kept.get("te").is_none());
        remove_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
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
