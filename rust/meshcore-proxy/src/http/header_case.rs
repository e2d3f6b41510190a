//! HTTP/1 header names spelled as the peer sent them, for `preserve_header_case`: legacy
//! apps read names case-sensitively (against RFC 9110), and Envoy's lower-casing breaks
//! them.
//!
//! The own HTTP/1 server notes how each request field's name was spelled; the request
//! carries that in its extensions to the own HTTP/1 client, which writes the names so and
//! notes the response's spellings the same way for the server to write back. Fields the
//! proxy adds (`x-request-id`, `x-forwarded-*`, header edits of new names) have no noted
//! spelling and go out in lower case, as Envoy's preserve-case formatter writes them.

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// How each field's name was spelled on arrival, per name in arrival order.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderCase(HeaderMap<Bytes>);

impl HeaderCase {
    pub(crate) fn with_capacity(fields: usize) -> Self {
        Self(HeaderMap::with_capacity(fields))
    }

    /// The next field named `name` arrived spelled `spelled`.
    pub(crate) fn note(&mut self, name: &HeaderName, spelled: Bytes) {
        self.0.append(name, spelled);
    }

    /// `headers`'s fields in the map's order, each with its name as it arrived when known
    /// (the n-th value of a name takes the n-th spelling), else in lower case.
    pub(crate) fn fields<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> impl Iterator<Item = (&'a [u8], &'a HeaderName, &'a HeaderValue)> {
        headers.keys().flat_map(move |name| {
            let mut spellings = self.0.get_all(name).iter();
            headers.get_all(name).iter().map(move |value| {
                let spelled = spellings
                    .next()
                    .filter(|s| s.eq_ignore_ascii_case(name.as_str().as_bytes()))
                    .map_or(name.as_str().as_bytes(), |s| s.as_ref());
                (spelled, name, value)
            })
        })
    }
}

/// Writes one field with its name exactly as given.
pub(crate) fn encode_spelled(out: &mut Vec<u8>, name: &[u8], value: &HeaderValue) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(case: &HeaderCase, headers: &HeaderMap) -> String {
        let mut out = Vec::new();
        for (spelled, _, value) in case.fields(headers) {
            encode_spelled(&mut out, spelled, value);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_go_out_as_they_arrived_and_added_ones_in_lower_case() {
        let mut headers = HeaderMap::new();
        let mut case = HeaderCase::default();
        for (spelled, value) in [("X-Custom", "1"), ("Set-Cookie", "a"), ("SET-COOKIE", "b")] {
            let name = HeaderName::from_bytes(spelled.as_bytes()).unwrap();
            case.note(&name, Bytes::from(spelled));
            headers.append(name, HeaderValue::from_static(value));
        }
        headers.insert("x-request-id", HeaderValue::from_static("r"));
        // A third value of a name noted twice has no spelling of its own.
        headers.append("set-cookie", HeaderValue::from_static("c"));
        assert_eq!(
            encoded(&case, &headers),
            "X-Custom: 1\r\nSet-Cookie: a\r\nSET-COOKIE: b\r\nset-cookie: c\r\nx-request-id: r\r\n"
        );
    }

    #[test]
    fn a_spelling_of_another_name_is_never_written() {
        let mut case = HeaderCase::default();
        case.note(&HeaderName::from_static("x-a"), Bytes::from_static(b"X-B"));
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        assert_eq!(encoded(&case, &headers), "x-a: 1\r\n");
    }
}
