//! The malformed phase: a first request that cannot be HTTP/1 is answered here, before
//! hyper, with an explained 400 (flag DPE, `proxy-status`, the decision header, an access
//! log line) and the connection closed, as Envoy answers a codec error.
//!
//! hyper answers a request it cannot parse with a bare 400 of its own that no phase of
//! ours sees. The detect phase has already read the connection's first bytes, so the
//! common cases are caught here first: bytes that are not HTTP at all on an `http`
//! listener (a TLS handshake to a plaintext port, another protocol) and a first request
//! head whose bytes so far fail the same parser hyper uses (`httparse`). What this cannot
//! see — a later request on a keep-alive connection, or a head longer than the first read —
//! still gets hyper's bare 400, counted as DPE.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::TcpStream;
use tracing::debug;

use arc_swap::ArcSwap;

use super::access_log::Record;
use super::h1_server::{shutdown, write_all};
use super::respond::{LocalReply, ResponseFlag};
use crate::routing::RoutingTable;
use crate::stats::TotalCounters;

/// Why the first bytes of a connection on an `http` listener are not an HTTP request.
pub(crate) fn not_http(bytes: &[u8]) -> String {
    match bytes.first() {
        // A TLS record of type handshake: a client speaking TLS to a plaintext listener.
        Some(0x16) => "TLS handshake on a plaintext HTTP listener".into(),
        _ => "not an HTTP/1.1 or HTTP/2 request".into(),
    }
}

/// Writes the explained reply (400, or 431 for an oversized head) with `Connection:
/// close`, counts and logs it, and closes.
pub(crate) async fn answer(
    stream: &TcpStream,
    reply: LocalReply,
    (peer, local): (SocketAddr, SocketAddr),
    table: &ArcSwap<RoutingTable>,
    totals: &TotalCounters,
) {
    let started = Instant::now();
    let bytes = reply.to_http1_close();
    debug!(%peer, details = %reply.details, status = %reply.status, "malformed request answered");
    let written = write_all(stream, &bytes).await.is_ok();
    shutdown(stream);
    totals.flag(ResponseFlag::DownstreamProtocolError);
    if let Some(logger) = &table.load().http.access_log {
        let mut record = Record::new(local, peer);
        record.start = std::time::SystemTime::now();
        record.status = reply.status.as_u16();
        record.flags = reply.flags;
        record.details = reply.log_details();
        if written {
            record.bytes_sent = bytes.len() as u64;
        }
        record.duration = started.elapsed();
        logger.log(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_other_protocols_are_told_apart() {
        assert_eq!(
            not_http(b"\x16\x03\x01\x02\x00\x01"),
            "TLS handshake on a plaintext HTTP listener"
        );
        assert_eq!(
            not_http(b"SSH-2.0-OpenSSH\r\n"),
            "not an HTTP/1.1 or HTTP/2 request"
        );
    }
}
