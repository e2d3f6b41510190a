//! `x-request-id` values as Envoy generates them: random UUID v4 text.
//!
//! Ids are written 64 at a time into one buffer per thread, and each request's value is a
//! slice of it: no allocation or copy per request (a reference count instead), and one
//! thread-local lookup. The generator is seeded once per thread from the operating
//! system's; the ids are unique tags for tracing, not secrets.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderValue;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The text form's length.
const LENGTH: usize = 36;
/// Ids written at a time.
const BATCH: usize = 64;

struct Ids {
    rng: SmallRng,
    /// What is left of the current batch.
    batch: Bytes,
}

thread_local! {
    static IDS: RefCell<Ids> = RefCell::new(Ids {
        rng: SmallRng::from_rng(&mut rand::rng()),
        batch: Bytes::new(),
    });
}

/// A new `x-request-id` value.
pub(crate) fn next() -> HeaderValue {
    let id = IDS.with_borrow_mut(|ids| {
        if ids.batch.len() < LENGTH {
            let mut batch = BytesMut::with_capacity(LENGTH * BATCH);
            for _ in 0..BATCH {
                batch.extend_from_slice(&uuid_text(ids.rng.random()));
            }
            ids.batch = batch.freeze();
        }
        ids.batch.split_to(LENGTH)
    });
    // Hex digits and dashes are always a valid header value.
    HeaderValue::from_maybe_shared(id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A new id as text (a cookie value, say).
pub(crate) fn text() -> String {
    String::from_utf8_lossy(next().as_bytes()).into_owned()
}

/// Each byte as its two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0x0f]];
        byte += 1;
    }
    pairs
};

/// Where each byte's two digits go in `8-4-4-4-12`.
const DIGITS_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// A UUID v4 from 16 random bytes, in its 36-character text form.
fn uuid_text(mut bytes: [u8; 16]) -> [u8; LENGTH] {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [b'-'; LENGTH];
    for (byte, at) in bytes.iter().zip(DIGITS_AT) {
        text[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_distinct_uuid_v4_text_across_batches() {
        let mut seen = HashSet::new();
        for _ in 0..(3 * BATCH + 5) {
            let id = text();
            assert_eq!(id.len(), LENGTH);
            for (i, c) in id.chars().enumerate() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    assert_eq!(c, '-', "{id}");
                } else {
                    assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{id}");
                }
            }
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            assert!(seen.insert(id), "ids repeat");
        }
    }

    #[test]
    fn the_text_form_spells_the_bytes() {
        let bytes = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xf0, 0x0f, 0xa5, 0x5a, 0x00, 0xff,
            0x10, 0x01,
        ];
        assert_eq!(&uuid_text(bytes), b"01234567-89ab-4def-b00f-a55a00ff1001");
    }
}
