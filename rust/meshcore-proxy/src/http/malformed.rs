//! The malformed phase: a request that cannot be HTTP/1 is answered here with an
//! explained reply (400, or 431 for a head over the parser's buffer; flag DPE,
//! `proxy-status`, the decision header, an access log line) and the connection closed, as
//! Envoy answers a codec error.
//!
//! Two places call it: detection, for bytes that are not HTTP at all on an `http`
//! listener (a TLS handshake to a plaintext port, another protocol), and the own HTTP/1
//! server (`h1_server.rs`) for any request head on the connection that fails the parser
//! or frames its body ambiguously. A connection handed to hyper (an upgrade, an odd
//! expectation) closes after that request, so no later one meets hyper's bare 400.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::TcpStream;
use tracing::debug;

use arc_swap::ArcSwap;

use super::access_log::Record;
use super::respond::{LocalReply, ResponseFlag};
use super::socket_io::{shutdown, write_all};
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
