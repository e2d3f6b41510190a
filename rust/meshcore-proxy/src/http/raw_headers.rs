//! An upstream HTTP/1 response's header fields kept as they arrived, for the own HTTP/1
//! server to write out again, instead of a `HeaderMap` built and hashed only to be
//! encoded again.
//!
//! Only taken when nothing on the way reads or edits the response's fields: the request
//! came through the own HTTP/1 server (hyper's servers encode from a map), the route and
//! destination have no response header edits and no cookie is set; the client falls back
//! to a map when a field is hop-by-hop beyond what framing notes (`connection` naming other
//! fields, `te`, `upgrade`, proxy credentials). httparse has checked every name and value
//! against the same character rules as `HeaderName` and `HeaderValue`, so the fields
//! written out are exactly what a map would have carried, names in lower case (as Envoy
//! writes them).

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use super::h1_codec::lowercase;

/// Who writes a response to the client, and so whether its fields may stay as they
/// arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// The own HTTP/1 server (`h1_server.rs`): writes raw fields, then the map's.
    OwnHttp1,
    /// hyper's servers (HTTP/2, handed-over HTTP/1): encode from the map alone.
    Hyper,
}

/// The header fields of one response: where each name and value sits in the head's bytes.
#[derive(Debug, Clone)]
pub(crate) struct RawHeaders {
    head: Bytes,
    /// Per field: name start and end, value start and end (a head is at most 64 KiB).
    fields: Vec<[u32; 4]>,
}

impl RawHeaders {
    pub(crate) fn new(head: Bytes, fields: Vec<[u32; 4]>) -> Self {
        Self { head, fields }
    }

    /// Each field's name (as sent, any case) and value, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|field| {
            let [name_start, name_end, value_start, value_end] = field.map(|o| o as usize);
            (
                &self.head[name_start..name_end],
                &self.head[value_start..value_end],
            )
        })
    }
}

/// The fields at `spans` (name start and end, value start and end) of `head` as a map;
/// the values share the head's bytes.
pub(crate) fn fields_map(head: &Bytes, spans: &[[u32; 4]]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(spans.len());
    for span in spans {
        let [name_start, name_end, value_start, value_end] = span.map(|o| o as usize);
        let name = &head[name_start..name_end];
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("header name {:?}", String::from_utf8_lossy(name)))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_start..value_end))
            .map_err(|_| format!("value of header {name}"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
impl RawHeaders {
    /// The fields as a map (the values share the head's bytes).
    pub(crate) fn into_map(self) -> Result<HeaderMap, String> {
        fields_map(&self.head, &self.fields)
    }

    /// Fields as lines of a head, for tests.
    pub(crate) fn of(fields: &[(&str, &str)]) -> Self {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        let mut spans = Vec::new();
        for (name, value) in fields {
            let at = |n: usize| u32::try_from(n).unwrap();
            let name_start = head.len();
            let value_start = name_start + name.len() + 2;
            spans.push([
                at(name_start),
                at(name_start + name.len()),
                at(value_start),
                at(value_start + value.len()),
            ]);
            head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        Self::new(Bytes::from(head), spans)
    }
}

/// Writes one field with its name in lower case.
pub(crate) fn encode_raw_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(name);
    lowercase(&mut out[start..]);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawHeaders {
        RawHeaders::of(&[("X-One", "1"), ("set-cookie", "a"), ("Set-Cookie", "b")])
    }

    #[test]
    fn fields_come_out_in_order_with_lower_case_names() {
        let mut out = Vec::new();
        for (name, value) in sample().iter() {
            encode_raw_field(&mut out, name, value);
        }
        assert_eq!(out, b"x-one: 1\r\nset-cookie: a\r\nset-cookie: b\r\n");
    }

    #[test]
    fn the_map_keeps_repeated_fields() {
        let map = sample().into_map().unwrap();
        assert_eq!(map["x-one"], "1");
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a", "b"]);
    }
}
