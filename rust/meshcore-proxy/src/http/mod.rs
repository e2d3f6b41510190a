//! The L7 data plane: HTTP/1.1 and HTTP/2 proxying with VirtualService routing.
//!
//! One connection, and each request on it, goes through these phases in this order (the
//! shape of pingora's phase chart and linkerd's inbound stack); each phase lives in its
//! own file, and the code below calls them in the order drawn:
//!
//! ```text
//!  accept           listener.rs      a listener socket accepts; protocol tcp → tcp_proxy.rs
//!    │
//!  detect           http/detect.rs   HTTP/2 preface │ HTTP/1 request line │ opaque / timeout
//!    │                               (opaque on `auto` → tcp_route via tcp_proxy.rs)
//!  malformed        http/malformed.rs  not HTTP on `http` → explained 400 DPE, close
//!    │
//!  serve            http/h1_server.rs  HTTP/1.x: own loop, head by head (a head that fails
//!    │                               the parser → explained 400 DPE via malformed.rs;
//!    │                               upgrade / CONNECT → hyper from there on)
//!    │              http/server.rs   hyper: HTTP/2 and handed-over HTTP/1.1; per request:
//!    │              http/activity.rs idle timeout and drain end the connection
//!  limits           http/server.rs   header size / count → 431 DPE
//!    │
//!  route            http/router.rs   virtual host by authority → first matching route
//!    │              http/matcher.rs  (no host / no route → 404 NR)
//!    │                               redirect / direct_response → local reply
//!    │                               CONNECT on an http_proxy listener → http/tunnel.rs
//!  pick upstream    http/upstream.rs weighted cluster → header edits, rewrite
//!    │              balancer/*       endpoint by lb_policy (+ hash policy) (none → 503 UH);
//!    │                               original_dst cluster: the connection's original
//!    │                               destination; not redirected: an http_proxy
//!    │                               listener's absolute-form authority, else 503 UH
//!  upstream request http/pool.rs     pooled HTTP/1 or multiplexed HTTP/2 connection
//!    │              http/h1_client.rs  HTTP/1 written and read in the request's task
//!    │              http/upstream.rs per-try timeout, retries, route timeout
//!    │                               (connect → UF, reset → UC, timeout → UT, full → UO)
//!  response         http/upstream.rs response header edits; upgrades spliced (tunnel.rs)
//!    │              http/respond.rs  every local reply: flag, proxy-status, decision header
//!    │              http/h1_server.rs  HTTP/1.1 response framed (length or chunked), written
//!    │              http/raw_headers.rs  (unedited upstream fields written as they arrived)
//!  log              http/access_log.rs  when the response body ends: flags counted,
//!                                       record queued for the writer thread
//! ```

// A local reply is made once per failed request, never on the forwarding fast path; boxing
// it would only add an allocation to the error path.
#![allow(clippy::result_large_err)]

pub(crate) mod access_log;
mod activity;
pub(crate) mod body;
mod detect;
mod h1_client;
mod h1_codec;
mod h1_server;
mod header_case;
pub(crate) mod headers;
mod malformed;
pub(crate) mod matcher;
pub(crate) mod pool;
mod raw_headers;
pub(crate) mod request_id;
pub(crate) mod respond;
pub(crate) mod rewrite;
pub(crate) mod router;
pub(crate) mod server;
mod socket_io;
mod tunnel;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use meshcore_snapshot::Protocol;
use tokio::net::TcpStream;
use tracing::debug;

pub(crate) use detect::Detected;

use self::access_log::AccessLogger;
use self::detect::{Prefixed, detect};
use self::pool::Wire;
use self::server::Downstream;
use crate::original_dst::OriginalDst;
use crate::routing::{ListenerRoute, RoutingTable};
use crate::stats::{DownstreamMeter, ListenerCounters, TotalCounters};
use crate::tcp_proxy;

/// What the first bytes of a connection are ([`detect`]'s decision), for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn detect_bytes(bytes: &[u8]) -> Option<Detected> {
    detect::classify(bytes)
}

/// The malformed phase's verdict on arbitrary first bytes, and the reply it would write.
#[cfg(feature = "fuzzing")]
pub(crate) fn malformed_reply(bytes: &[u8]) -> Option<Vec<u8>> {
    let reply = match detect::classify(bytes) {
        Some(Detected::Opaque) => {
            Some(respond::LocalReply::bad_request(malformed::not_http(bytes)))
        }
        _ => h1_server::head_error(bytes),
    }?;
    Some(reply.to_http1_close())
}

/// The own HTTP/1 server's request heads and bodies, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) use h1_codec::{Framing, Remaining};
#[cfg(feature = "fuzzing")]
pub(crate) use h1_server::{FuzzHead, fuzz_heads};

/// The own HTTP/1 client's response parsing and body decoding, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn decode_response(bytes: &[u8]) {
    h1_client::decode_response(bytes);
}

/// The snapshot's proxy-wide HTTP settings, compiled.
#[derive(Debug)]
pub(crate) struct HttpSettings {
    pub(crate) preserve_header_case: bool,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) http2_max_concurrent_streams: u32,
    pub(crate) access_log: Option<Arc<AccessLogger>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            preserve_header_case: false,
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            http2_max_concurrent_streams: 200,
            access_log: None,
        }
    }
}

impl HttpSettings {
    /// Hyper's read buffer: room for twice the configured headers, so a request just over
    /// the limit still parses and gets an explained 431 rather than hyper's bare one.
    fn parser_buffer(&self) -> usize {
        (self.max_header_bytes * 2 + 8 * 1024).max(8 * 1024)
    }

    fn parser_headers(&self) -> usize {
        self.max_headers * 2 + 16
    }
}

/// Serves one accepted connection of an `http` or `auto` listener.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    (peer, local): (SocketAddr, SocketAddr),
    original_dst: OriginalDst,
    listener: Arc<ListenerRoute>,
    table: Arc<ArcSwap<RoutingTable>>,
    counters: Arc<ListenerCounters>,
    meter: DownstreamMeter,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY downstream");
    }
    let auto = listener.protocol == Protocol::Auto;
    // The port the client asked for: the original destination's when captured.
    let port = original_dst.port().unwrap_or(local.port());
    // A declared server-first port would never send the bytes detection waits for.
    if auto && listener.declared_opaque(port) {
        counters.declared_opaque(port);
        opaque(stream, Bytes::new(), peer, original_dst, listener, meter).await;
        return;
    }
    let mut buffer = BytesMut::with_capacity(1024);
    // An `auto` listener waits for the first bytes up to its detect timeout and then
    // calls the connection opaque. Without one (an `http` listener, or detection without
    // a timeout), it waits no longer than its idle timeout and then closes the connection.
    let detect_timeout = if auto { listener.detect_timeout } else { None };
    let timeout = detect_timeout.or(listener.idle_timeout);
    let detected = tokio::select! {
        detected = detect(&mut stream, &mut buffer, timeout) => match detected {
            Ok(detected) => detected,
            Err(e) => {
                debug!(%peer, error = %e, "connection failed during protocol detection");
                return;
            }
        },
        // Nothing was asked yet: nothing to finish.
        () = listener.draining().cancelled() => {
            debug!(%peer, listener = %listener.name, "closing a connection with no request: draining");
            return;
        }
    };
    if detected == Detected::Timeout && detect_timeout.is_none() {
        debug!(%peer, listener = %listener.name, "idle timeout before the first request");
        meter.totals().idle_timeout();
        return;
    }
    counters.detected(detected, port);
    let wire = match detected {
        Detected::Http1 => Wire::Http1,
        Detected::Http2 => Wire::Http2,
        Detected::Closed => return,
        Detected::Opaque | Detected::Timeout if auto => {
            opaque(stream, buffer.freeze(), peer, original_dst, listener, meter).await;
            return;
        }
        // Not HTTP on an `http` listener: an explained 400.
        Detected::Opaque | Detected::Timeout => {
            let reply = respond::LocalReply::bad_request(malformed::not_http(&buffer));
            malformed::answer(&stream, reply, (peer, local), &table, meter.totals()).await;
            return;
        }
    };
    let totals: Arc<TotalCounters> = meter.totals_arc();
    let downstream = Arc::new(Downstream {
        peer,
        forwarded_for: self::headers::client_address(peer.ip()),
        local,
        original_dst,
        listener,
        table,
        totals,
        counters,
    });
    match wire {
        Wire::Http1 => h1_server::serve(stream, buffer, downstream).await,
        Wire::Http2 => {
            server::serve_http2(Prefixed::new(buffer.freeze(), stream), downstream).await
        }
    }
    drop(meter);
}

/// An `auto` listener's connection as opaque TCP through its `tcp_route`, `prefix` (the
/// bytes detection read) first.
async fn opaque(
    stream: TcpStream,
    prefix: Bytes,
    peer: SocketAddr,
    original_dst: OriginalDst,
    listener: Arc<ListenerRoute>,
    meter: DownstreamMeter,
) {
    // Boxed: the L4 copy's state would otherwise size every HTTP connection's task.
    Box::pin(tcp_proxy::serve(
        stream,
        prefix,
        peer,
        original_dst,
        listener,
        meter,
    ))
    .await;
}
