//! The detect phase: what a new connection speaks, from its first bytes.
//!
//! - the HTTP/2 connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) → HTTP/2 with
//!   prior knowledge;
//! - a request line `METHOD SP target SP HTTP/1.x` → HTTP/1;
//! - anything else → opaque TCP. A connection that sends nothing within the listener's
//!   `detect_timeout_ms` (a server-first protocol such as MySQL or SMTP) is opaque too;
//!   with `detect_timeout_ms: 0` there is no such deadline (only the idle timeout).
//!
//! The bytes read while detecting are not lost: [`Prefixed`] replays them to whoever
//! reads the connection next (the HTTP server or the TCP proxy).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A request line longer than this is not worth waiting for: call it opaque.
const MAX_REQUEST_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    Http1,
    Http2,
    /// Bytes that are not HTTP.
    Opaque,
    /// No bytes within the detect timeout.
    Timeout,
    /// The client closed before sending anything.
    Closed,
}

/// Decides from the bytes so far; `None` means more bytes are needed.
pub(crate) fn classify(bytes: &[u8]) -> Option<Detected> {
    if bytes.is_empty() {
        return None;
    }
    let preface_len = bytes.len().min(H2_PREFACE.len());
    if bytes[..preface_len] == H2_PREFACE[..preface_len] {
        return (bytes.len() >= H2_PREFACE.len()).then_some(Detected::Http2);
    }
    let line_end = bytes.iter().position(|b| *b == b'\n');
    let line = &bytes[..line_end.unwrap_or(bytes.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Method: a token, then one space.
    let method_len = line.iter().take_while(|b| is_token(**b)).count();
    if method_len == 0 {
        return Some(Detected::Opaque);
    }
    if method_len == line.len() {
        return if line_end.is_some() || line.len() > 32 {
            Some(Detected::Opaque)
        } else {
            None
        };
    }
    if line[method_len] != b' ' {
        return Some(Detected::Opaque);
    }
    match line_end {
        None if bytes.len() >= MAX_REQUEST_LINE => Some(Detected::Opaque),
        None => None,
        Some(_) => {
            let version = line.rsplit(|b| *b == b' ').next().unwrap_or_default();
            let ok = line[method_len + 1..].contains(&b' ')
                && (version == b"HTTP/1.1" || version == b"HTTP/1.0");
            Some(if ok {
                Detected::Http1
            } else {
                Detected::Opaque
            })
        }
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads until [`classify`] decides. `timeout` bounds the wait for the *first* byte only
/// (after that, a client that stalls mid-line is opaque after the same time again).
pub(crate) async fn detect(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    timeout: Option<Duration>,
) -> io::Result<Detected> {
    loop {
        let read = stream.read_buf(buffer);
        let n = match timeout {
            Some(limit) => match tokio::time::timeout(limit, read).await {
                Ok(n) => n?,
                Err(_) if buffer.is_empty() => return Ok(Detected::Timeout),
                Err(_) => return Ok(Detected::Opaque),
            },
            None => read.await?,
        };
        if n == 0 {
            return Ok(if buffer.is_empty() {
                Detected::Closed
            } else {
                classify(buffer).unwrap_or(Detected::Opaque)
            });
        }
        if let Some(detected) = classify(buffer) {
            return Ok(detected);
        }
    }
}

/// A connection whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub(crate) struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl Prefixed {
    pub(crate) fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Let the detection buffer go: an idle connection keeps nothing of it.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_request_lines() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(
            classify(b"POST /x?y HTTP/1.0\r\nHost: a\r\n"),
            Some(Detected::Http1)
        );
        assert_eq!(
            classify(b"GET http://reviews:9080/ HTTP/1.1\r\n"),
            Some(Detected::Http1)
        );
        assert_eq!(
            classify(b"CONNECT a:443 HTTP/1.1\r\n"),
            Some(Detected::Http1)
        );
        assert_eq!(classify(b"GET / HT"), None);
        assert_eq!(classify(b"GE"), None);
    }

    #[test]
    fn http2_preface_whole_or_partial() {
        assert_eq!(classify(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(classify(&H2_PREFACE[..10]), None);
    }

    #[test]
    fn anything_else_is_opaque() {
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Some(Detected::Opaque));
        assert_eq!(classify(b"hello world\n"), Some(Detected::Opaque));
        assert_eq!(classify(b"GET / SPDY/3\r\n"), Some(Detected::Opaque));
        assert_eq!(classify(b"PING\r\n"), Some(Detected::Opaque));
    }
}
