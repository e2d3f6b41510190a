//! HTTP/1.1 message framing shared by the own client (`h1_client.rs`) and server
//! (`h1_server.rs`): how a body is delimited (RFC 9112 §6), chunked decoding with its
//! trailers, and the header fields that decide framing and persistence.

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use super::body::BoxError;

/// The largest trailer section decoded.
const MAX_TRAILER_BYTES: usize = 64 * 1024;
/// The most trailer fields parsed.
const MAX_TRAILERS: usize = 128;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// To the connection's close.
    Close,
}

pub(crate) fn encode_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Header fields whose offsets the parsers keep inline while a head is parsed (more spill
/// to the heap).
pub(crate) const INLINE_FIELDS: usize = 24;

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
}

/// What is left of a message body on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remaining {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

impl Remaining {
    pub(crate) fn of(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Self::Done,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(Chunk::Size),
            Framing::Close => Self::Close,
        }
    }
}

/// The next body frame at the front of `buffer` (consumed), by what `remaining` says is
/// left of the body; `None` when more bytes are needed or the body is done.
pub(crate) fn decode(
    buffer: &mut BytesMut,
    remaining: &mut Remaining,
) -> Result<Option<Frame<Bytes>>, BoxError> {
    loop {
        match *remaining {
            Remaining::Done => return Ok(None),
            Remaining::Length(left) | Remaining::Chunked(Chunk::Data(left)) => {
                if buffer.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                let data = buffer.split_to(take).freeze();
                let left = left - take as u64;
                *remaining = match *remaining {
                    Remaining::Length(_) if left == 0 => Remaining::Done,
                    Remaining::Length(_) => Remaining::Length(left),
                    _ if left == 0 => Remaining::Chunked(Chunk::DataEnd),
                    _ => Remaining::Chunked(Chunk::Data(left)),
                };
                return Ok(Some(Frame::data(data)));
            }
            Remaining::Close => {
                if buffer.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Frame::data(buffer.split().freeze())));
            }
            Remaining::Chunked(Chunk::Size) => {
                let Some(line) = take_line(buffer)? else {
                    return Ok(None);
                };
                let size = chunk_size(&line)?;
                *remaining = Remaining::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
            }
            Remaining::Chunked(Chunk::DataEnd) => {
                if buffer.len() < 2 {
                    return Ok(None);
                }
                if &buffer[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".into());
                }
                buffer.advance(2);
                *remaining = Remaining::Chunked(Chunk::Size);
            }
            Remaining::Chunked(Chunk::Trailers) => {
                return match trailers(buffer)? {
                    None => Ok(None),
                    Some(map) => {
                        *remaining = Remaining::Done;
                        Ok(map.map(Frame::trailers))
                    }
                };
            }
        }
    }
}

/// A CRLF-terminated line from the front of `buffer` (consumed), without the CRLF.
fn take_line(buffer: &mut BytesMut) -> Result<Option<Bytes>, BoxError> {
    match buffer.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = buffer.split_to(end).freeze();
            buffer.advance(2);
            Ok(Some(line))
        }
        None if buffer.len() > 4096 => Err("chunk-size line longer than 4096 bytes".into()),
        None => Ok(None),
    }
}

/// A chunk-size line's size (hex), extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, BoxError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits)
        .map_err(|_| "chunk size is not text")?
        .trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 {
        return Err(format!("bad chunk size {digits:?}").into());
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("bad chunk size {digits:?}").into())
}

/// The trailer section after the last chunk, once complete: `Some(None)` when it is
/// empty, `Some(Some(fields))` when it carries fields, `None` while incomplete.
fn trailers(buffer: &mut BytesMut) -> Result<Option<Option<HeaderMap>>, BoxError> {
    if buffer.starts_with(b"\r\n") {
        buffer.advance(2);
        return Ok(Some(None));
    }
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buffer.len() > MAX_TRAILER_BYTES {
            return Err("trailer section too large".into());
        }
        return Ok(None);
    };
    let section = buffer.split_to(end + 4);
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    let parsed = match httparse::parse_headers(&section, &mut fields) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        _ => return Err("malformed trailer section".into()),
    };
    let mut map = HeaderMap::with_capacity(parsed.len());
    for field in parsed {
        let name = HeaderName::from_bytes(field.name.as_bytes())?;
        map.append(name, HeaderValue::from_bytes(field.value)?);
    }
    Ok(Some(Some(map)))
}

/// The header fields that decide a message's framing and persistence, noted while its head
/// is parsed: a field-name comparison per field instead of hashed map lookups afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FramingFields {
    /// `content-length`: absent, or its value (repeats must agree), or why it is invalid.
    pub(crate) content_length: Option<Result<u64, String>>,
    /// `transfer-encoding`: absent, or whether `chunked` is its final coding.
    pub(crate) chunked: Option<bool>,
    /// `connection` names `close`.
    pub(crate) close: bool,
    /// `connection` names `keep-alive` (what keeps an HTTP/1.0 connection open).
    pub(crate) keep_alive: bool,
}

impl FramingFields {
    /// Notes one header field; true when the field only frames or keeps this connection
    /// (`transfer-encoding`, `keep-alive`, `proxy-connection`, a `connection` naming only
    /// `close` or `keep-alive`): hop-by-hop, so the message's map can leave it out rather
    /// than carry it to the hop-by-hop removal.
    pub(crate) fn note(&mut self, name: &str, value: &[u8]) -> bool {
        match name.len() {
            14 if named(name, "content-length") => {
                if matches!(self.content_length, Some(Err(_))) {
                    return false;
                }
                // The common case: one value, first seen.
                if self.content_length.is_none()
                    && !value.contains(&b',')
                    && let Some(n) = decimal(value.trim_ascii())
                {
                    self.content_length = Some(Ok(n));
                    return false;
                }
                for item in value.split(|&b| b == b',') {
                    let parsed = decimal(item.trim_ascii()).ok_or_else(|| {
                        format!("content-length {:?}", String::from_utf8_lossy(value))
                    });
                    self.content_length = match (&self.content_length, parsed) {
                        (_, Err(e)) => Some(Err(e)),
                        (Some(Ok(seen)), Ok(n)) if *seen != n => {
                            Some(Err("conflicting content-length values".into()))
                        }
                        (_, Ok(n)) => Some(Ok(n)),
                    };
                    if matches!(self.content_length, Some(Err(_))) {
                        return false;
                    }
                }
                false
            }
            17 if named(name, "transfer-encoding") => {
                // The final coding of the last field decides; an empty field keeps the last.
                let last = value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .rfind(|coding| !coding.is_empty());
                match last {
                    Some(coding) => self.chunked = Some(coding.eq_ignore_ascii_case(b"chunked")),
                    None => {
                        self.chunked.get_or_insert(false);
                    }
                }
                true
            }
            10 if named(name, "connection") => {
                // The common cases first: one token.
                if value.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                    return true;
                }
                if value.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                    return true;
                }
                let mut only_persistence = true;
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if !token.is_empty() {
                        // It names other fields as hop-by-hop: the removal reads it.
                        only_persistence = false;
                    }
                }
                only_persistence
            }
            10 => named(name, "keep-alive"),
            16 => named(name, "proxy-connection"),
            _ => false,
        }
    }
}

/// Whether a field name is `expected` (lower case), in any case: eight bytes compared at
/// a time.
pub(crate) fn named(name: impl AsRef<[u8]>, expected: &str) -> bool {
    let (name, expected) = (name.as_ref(), expected.as_bytes());
    name.len() == expected.len()
        && name
            .chunks(8)
            .zip(expected.chunks(8))
            .all(|(n, e)| lower8(word(n)) == word(e))
}

/// Lower-cases ASCII letters in place (header names as Envoy writes them), eight bytes at
/// a time.
pub(crate) fn lowercase(bytes: &mut [u8]) {
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&lower8(word(chunk)).to_le_bytes());
    }
    chunks.into_remainder().make_ascii_lowercase();
}

/// Up to eight bytes as one word (zero-padded), read with at most three loads: a
/// length-dependent copy into a buffer would be a `memcpy` call and a stalled reload.
fn word(bytes: &[u8]) -> u64 {
    if let Some(eight) = bytes.first_chunk::<8>() {
        return u64::from_le_bytes(*eight);
    }
    if let (Some(head), Some(tail)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        // Two overlapping loads: where they overlap, both hold the same bytes.
        let shift = 8 * (bytes.len() - 4);
        return u64::from(u32::from_le_bytes(*head))
            | u64::from(u32::from_le_bytes(*tail)) << shift;
    }
    bytes
        .iter()
        .rev()
        .fold(0, |word, &byte| word << 8 | u64::from(byte))
}

/// Eight bytes with each ASCII upper-case letter lower-cased, all at once: a byte's high
/// bit says whether it is at least `A`, at most `Z` and ASCII, and becomes its 0x20 bit.
fn lower8(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // No carry crosses a byte: a 7-bit byte plus 0x3f or 0x25 stays under 0x100.
    let at_least_a = low7 + 0x3f3f_3f3f_3f3f_3f3f;
    let beyond_z = low7 + 0x2525_2525_2525_2525;
    let upper = at_least_a & !beyond_z & !x & HIGH;
    x | (upper >> 2)
}

/// A plain decimal number (no sign, no spaces), at most 19 digits.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_lower_case_exactly_the_ascii_letters() {
        for byte in 0..=255u8 {
            let mut one = [byte; 11];
            lowercase(&mut one);
            assert_eq!(one, [byte.to_ascii_lowercase(); 11], "{byte:#x}");
        }
        assert!(named("Content-Length", "content-length"));
        assert!(named("CONTENT-LENGTH", "content-length"));
        assert!(!named("content-lengtx", "content-length"));
        assert!(!named("content-length2", "content-length"));
        assert!(!named("Content\u{c0}Length", "content-length"));
        assert!(named("Date", "date") && !named("Datum", "date"));
        // A byte 0x20 away from a letter is not that letter.
        assert!(!named("D\x01te", "date") && !named("[ate", "{ate"));
    }

    #[test]
    fn a_word_is_the_bytes_zero_padded_at_every_length() {
        let bytes = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        for n in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(word(&bytes[..n]), u64::from_le_bytes(padded), "{n} bytes");
        }
        let name = "X-Forwarded-Client-Cert-Chain";
        for n in 1..=name.len() {
            let mut lowered = name.as_bytes()[..n].to_vec();
            lowercase(&mut lowered);
            assert_eq!(
                lowered,
                name[..n].to_ascii_lowercase().as_bytes(),
                "{n} bytes"
            );
            assert!(
                named(&name[..n], &name[..n].to_ascii_lowercase()),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn a_chunked_body_decodes_byte_by_byte_with_its_trailers() {
        let bytes = b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 9\r\n\r\n";
        let (mut buffer, mut remaining) = (BytesMut::new(), Remaining::of(Framing::Chunked));
        let (mut data, mut trailers) = (Vec::new(), None);
        for byte in bytes {
            buffer.extend_from_slice(&[*byte]);
            while let Some(frame) = decode(&mut buffer, &mut remaining).unwrap() {
                match frame.into_data() {
                    Ok(chunk) => data.extend_from_slice(&chunk),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                }
            }
        }
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.unwrap()["x-sum"], "9");
        assert_eq!(remaining, Remaining::Done);

        let mut bad = BytesMut::from(&b"5\r\nhelloXX"[..]);
        let mut remaining = Remaining::of(Framing::Chunked);
        assert!(decode(&mut bad, &mut remaining).unwrap().is_some());
        assert!(
            decode(&mut bad, &mut remaining).is_err(),
            "no CRLF after the data"
        );
    }

    #[test]
    fn chunk_sizes_are_hex_with_extensions_ignored() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0;name=value").unwrap(), 0);
        for bad in [&b""[..], b"xyz", b"ffffffffffffffffff", b"-1"] {
            assert!(chunk_size(bad).is_err());
        }
    }

    #[test]
    fn framing_fields_are_noted_as_the_map_would_say() {
        let noted = |fields: &[(&str, &str)]| {
            let mut noted = FramingFields::default();
            for (name, value) in fields {
                let _ = noted.note(name, value.as_bytes());
            }
            noted
        };
        assert_eq!(noted(&[("Host", "a")]), FramingFields::default());
        assert_eq!(
            noted(&[("Content-Length", "12"), ("content-length", "12, 12")]).content_length,
            Some(Ok(12))
        );
        for bad in [
            &[("content-length", "+1")][..],
            &[("content-length", "1"), ("Content-Length", "2")],
            &[("content-length", "")],
        ] {
            assert!(matches!(noted(bad).content_length, Some(Err(_))), "{bad:?}");
        }
        assert_eq!(
            noted(&[("Transfer-Encoding", "gzip, chunked")]).chunked,
            Some(true)
        );
        assert_eq!(
            noted(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "gzip")
            ])
            .chunked,
            Some(false)
        );
        assert!(noted(&[("Connection", "keep-alive, Close")]).close);
        assert!(!noted(&[("connection", "closed")]).close);
    }

    #[test]
    fn only_fields_of_this_connection_are_left_out_of_the_map() {
        let mut noted = FramingFields::default();
        for (name, value, left_out) in [
            ("Connection", "keep-alive", true),
            ("connection", "close", true),
            ("Connection", "keep-alive, X-Secret", false),
            ("Keep-Alive", "timeout=5", true),
            ("Transfer-Encoding", "chunked", true),
            ("proxy-connection", "keep-alive", true),
            ("TE", "trailers", false),
            ("Content-Length", "3", false),
            ("user-agent", "x", false),
        ] {
            assert_eq!(
                noted.note(name, value.as_bytes()),
                left_out,
                "{name}: {value}"
            );
        }
    }
}
