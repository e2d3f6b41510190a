//! HTTP/1.x from a downstream client without hyper: the connection's task reads each
//! request head (httparse), runs the request's phases ([`server::handle`]) and writes the
//! response, one request after another, as pingora's and nginx's servers do.
//!
//! hyper's server parses into its own state, dispatches through a service and encodes
//! through a write queue; for the requests a mesh mostly carries that machinery cost more
//! instructions than the proxying itself (bench/README.md, session 4). This loop does the
//! common case inline:
//!
//! - keep-alive (HTTP/1.1's default; `Connection: close` honoured), pipelining (the next
//!   request is read only after the current response is written, so answers keep order);
//! - HTTP/1.0: answered in kind, kept open only when it asks (`Connection: keep-alive`,
//!   said back), a body of unknown length sent to the close (no chunked), no
//!   `transfer-encoding` accepted, no `100 Continue`, `Upgrade` ignored (RFC 9110 §7.8);
//! - request bodies by `content-length` or `chunked` (RFC 9112 §6), streamed to the
//!   upstream as they arrive, `Expect: 100-continue` answered when the body is first read;
//! - responses framed by their `content-length`, their known size, else chunked (with
//!   trailers); HEAD, 1xx, 204 and 304 without a body;
//! - a head that does not parse, a bad framing, or a head over the configured size: an
//!   explained 400 or 431 (flag DPE, `proxy-status`, the decision header, a log line),
//!   then close — on every request of the connection, not only the first.
//!
//! With `preserve_header_case`, each request notes how its names were spelled
//! (`header_case.rs`), for the own client to write them so, and the response's noted
//! spellings are written back.
//!
//! What it leaves to hyper is rare and stateful: an HTTP/1.1 request asking for an
//! `Upgrade` (or CONNECT), an expectation other than `100-continue`, and more header
//! fields than are parsed here. Such a request, and the rest of its connection, go to
//! hyper's server ([`server::serve_http1`]) with the bytes read so far replayed, which
//! serves that request and closes the connection unless it upgraded: no later request
//! meets hyper's parser, whose bare 400 the proxy could not explain.
//!
//! A connection stops taking requests when the listener's idle timeout passes with no
//! request in flight or its direction drains: at once when it waits for a request, else
//! after the current response, which then carries `Connection: close`.

use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use super::activity::{Activity, Dormant, stopped};
use super::body::{self, Body, BoxError};
use super::h1_codec::{
    Chunk, FramingFields, INLINE_FIELDS, Remaining, decode, encode_field, named,
};
use super::header_case::{HeaderCase, encode_spelled};
use super::headers::X_REQUEST_ID;
use super::raw_headers::{RawHeaders, Writer, encode_raw_field};
use super::request_id;
use super::respond::LocalReply;
use super::server::{self, Downstream};
use super::socket_io::{read_some, shutdown, write_all};
use super::{HttpSettings, malformed};

/// The most request header fields parsed here; a request with more goes to hyper, whose
/// limit is the configured one doubled (so the limits phase can explain a 431).
const MAX_HEADERS: usize = 128;
/// How much is read at a time while a head is incomplete.
const HEAD_CHUNK: usize = 4 * 1024;
/// How much is read at a time for a request body.
const BODY_CHUNK: usize = 16 * 1024;
/// Response bytes gathered before they are written, when the body has more ready.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// A response declaring at most this many body bytes goes out in one write once all of
/// it is here, head included, as nginx's `postpone_output` gathers small responses: its
/// client has no use for the head alone, and one write wakes it once instead of twice
/// (an upstream often sends the head and a small body as two segments). A larger or
/// unframed (chunked, streamed) body goes out as it comes.
const GATHER_LIMIT: u64 = 16 * 1024;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The connection, shared by the server loop and the body of the request being read.
#[derive(Debug)]
struct Inbound {
    stream: TcpStream,
    read: Mutex<ReadSide>,
}

/// What has been read from the client and not yet consumed.
#[derive(Debug)]
struct ReadSide {
    buffer: BytesMut,
    /// What is left of the current request's body on the connection.
    body: Remaining,
    expect: Expect,
}

/// Where a request's `Expect: 100-continue` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Not asked, or already answered (by a 100 or the final response).
    Settled,
    /// The 100 goes out when the body is first read.
    Waiting,
    /// The 100 was started; this many of its bytes are still to be written (before the
    /// response head, by the server loop).
    Unwritten(usize),
}

impl Inbound {
    fn read(&self) -> MutexGuard<'_, ReadSide> {
        // Nothing panics while holding it; a poisoned lock still guards whole state.
        self.read.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The next thing on the connection (unpacked at once, as [`Head`]).
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(Request<Body>, Framed),
    /// A request this loop does not serve: hyper takes the connection from here.
    ToHyper,
    /// The client closed between requests.
    Closed,
}

/// What the loop must know of a request besides what the phases see.
#[derive(Debug, Clone, Copy)]
struct Framed {
    head_request: bool,
    keep_alive: bool,
    /// The request was HTTP/1.0: the answer says so, is never chunked, and keeps the
    /// connection only when the request asked with `connection: keep-alive`.
    http10: bool,
}

/// Serves HTTP/1.1 on a detected connection (`buffer`: the bytes detection read) until it
/// closes, or hands it to hyper at a request it leaves to hyper.
pub(crate) async fn serve(stream: TcpStream, buffer: BytesMut, downstream: Arc<Downstream>) {
    let settings = Arc::clone(&downstream.table.load().http);
    let inbound = Arc::new(Inbound {
        stream,
        read: Mutex::new(ReadSide {
            buffer,
            body: Remaining::Done,
            expect: Expect::Settled,
        }),
    });
    let activity = Arc::new(Activity::new());
    let listener = Arc::clone(&downstream.listener);
    let stop = pin!(stopped(
        &activity,
        listener.idle_timeout,
        listener.draining()
    ));
    let mut stop = Dormant::new(stop);
    let mut stopping = false;
    let mut out = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            idle = &mut stop, if !stopping => {
                if idle {
                    downstream.totals.idle_timeout();
                }
                break;
            }
            next = next_request(&inbound, &settings) => next,
        };
        let (request, framed) = match next {
            Ok(Next::Request(request, framed)) => (request, framed),
            Ok(Next::ToHyper) => {
                return server::serve_http1(Replay(inbound), downstream).await;
            }
            Ok(Next::Closed) => return,
            Err(HeadError::Io(e)) => {
                debug!(peer = %downstream.peer, error = %e, "downstream connection failed");
                return;
            }
            Err(HeadError::Reply(reply)) => {
                let addresses = (downstream.peer, downstream.local);
                malformed::answer(
                    &inbound.stream,
                    reply,
                    addresses,
                    &downstream.table,
                    &downstream.totals,
                )
                .await;
                return;
            }
        };
        // Boxed: the phases' future is several KiB that every idle connection's task
        // would otherwise keep.
        let mut handled = Box::pin(server::handle(
            request,
            Arc::clone(&downstream),
            activity.start(),
            Writer::OwnHttp1,
        ));
        let (response, raw) = loop {
            tokio::select! {
                biased;
                _ = &mut stop, if !stopping => stopping = true,
                answered = handled.as_mut() => break answered,
            }
        };
        drop(handled);
        let keep_alive = framed.keep_alive && !stopping;
        let framed = Framed {
            keep_alive,
            ..framed
        };
        match respond(&inbound, &mut out, (response, raw), framed).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                debug!(peer = %downstream.peer, error = %e, "writing the response failed");
                return;
            }
        }
        // A large response's buffer is not kept by an idle connection.
        if out.capacity() > WRITE_HIGH_WATER {
            out = Vec::new();
        }
    }
    shutdown(&inbound.stream);
}

/// Why no request head could be taken.
#[derive(Debug)]
enum HeadError {
    Io(io::Error),
    /// The client sent something that is not a request this proxy accepts.
    Reply(LocalReply),
}

/// Reads until a request head is complete and returns it.
async fn next_request(inbound: &Arc<Inbound>, settings: &HttpSettings) -> Result<Next, HeadError> {
    loop {
        {
            let mut read = inbound.read();
            if let Some(next) = parse_request(&mut read, inbound, settings)? {
                return Ok(next);
            }
            if read.buffer.len() > settings.parser_buffer() {
                return Err(HeadError::Reply(LocalReply::headers_too_large(format!(
                    "request head larger than {} bytes",
                    settings.parser_buffer()
                ))));
            }
        }
        // The connection's one reader waits in the socket's read slot (no waiter list to
        // join and leave, as `readable()` would).
        std::future::poll_fn(|cx| inbound.stream.poll_read_ready(cx))
            .await
            .map_err(HeadError::Io)?;
        let mut read = inbound.read();
        // An idle connection keeps no large buffer (one over the head chunk came from a
        // large head or body); reading into a fresh one costs an allocation only then.
        if read.buffer.is_empty() && read.buffer.capacity() > HEAD_CHUNK {
            read.buffer = BytesMut::new();
        }
        read.buffer.reserve(HEAD_CHUNK);
        match read_some(&inbound.stream, &mut read.buffer) {
            Ok(0) if read.buffer.is_empty() => return Ok(Next::Closed),
            Ok(0) => {
                return Err(HeadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed in the middle of a request head",
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// The request at the front of the buffer (its head consumed), `None` while incomplete.
fn parse_request(
    read: &mut ReadSide,
    inbound: &Arc<Inbound>,
    settings: &HttpSettings,
) -> Result<Option<Next>, HeadError> {
    let head = parse_request_head(
        &mut read.buffer,
        settings.preserve_header_case,
        settings.max_headers,
    )?;
    let Some(head) = head else {
        return Ok(None);
    };
    let Head::Request(mut request, noted, expects) = head else {
        return Ok(Some(Next::ToHyper));
    };
    let http10 = request.version() == Version::HTTP_10;
    let remaining = request_body(&noted, request.version())?;
    // Only `100-continue` gets here (another expectation is hyper's to refuse); HTTP/1.0
    // must ignore it (RFC 9110 §10.1.1).
    let expect = if expects && !http10 && remaining != Remaining::Done {
        Expect::Waiting
    } else {
        Expect::Settled
    };
    let framed = Framed {
        head_request: request.method() == Method::HEAD,
        keep_alive: !noted.close && (!http10 || noted.keep_alive),
        http10,
    };
    read.body = remaining;
    read.expect = expect;
    if remaining != Remaining::Done {
        let length = match remaining {
            Remaining::Length(n) => Some(n),
            _ => None,
        };
        *request.body_mut() = RequestBody {
            inbound: Some(Arc::clone(inbound)),
            length,
        }
        .boxed_unsync();
    }
    Ok(Some(Next::Request(request, framed)))
}

/// How a request's body is delimited (RFC 9112 §6.3); a framing a proxy cannot trust (both
/// headers, a transfer coding that does not end in chunked, a bad length, any transfer
/// coding in HTTP/1.0, RFC 9112 §6.1) is refused.
fn request_body(noted: &FramingFields, version: Version) -> Result<Remaining, HeadError> {
    if version == Version::HTTP_10 && noted.chunked.is_some() {
        return Err(bad("transfer-encoding in an HTTP/1.0 request".into()));
    }
    let length = noted.content_length.clone().transpose().map_err(bad)?;
    Ok(match (noted.chunked, length) {
        (Some(true), None) => Remaining::Chunked(Chunk::Size),
        (Some(true), Some(_)) => {
            return Err(bad("both transfer-encoding and content-length".into()));
        }
        (Some(false), _) => {
            return Err(bad("transfer-encoding does not end in chunked".into()));
        }
        (None, Some(0) | None) => Remaining::Done,
        (None, Some(n)) => Remaining::Length(n),
    })
}

fn bad(details: String) -> HeadError {
    HeadError::Reply(LocalReply::bad_request(details))
}

/// A parsed head. (Returned once per request and unpacked at once: boxing the request
/// would only add an allocation.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Head {
    /// The request, its framing fields, and whether it expects `100-continue`.
    Request(Request<Body>, FramingFields, bool),
    /// Complete, but for hyper to serve (the bytes stay in the buffer).
    ForHyper,
}

/// [`parse_request_head`] with names to lower case, a head of more fields than are parsed
/// here left to hyper (as when `max_request_headers` is over [`MAX_HEADERS`]).
#[cfg(any(test, feature = "fuzzing"))]
fn parse_head(buffer: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    parse_request_head(buffer, false, usize::MAX)
}

/// Parses a request head at the front of `buffer`, consuming it when this loop serves it;
/// `None` while incomplete. The request's body is empty; the caller frames it. With
/// `spelled`, the request's extensions say how each field's name was spelled. A head of
/// more than [`MAX_HEADERS`] fields is over `max_headers` when that is no more (an
/// explained 431), else hyper's to parse.
fn parse_request_head(
    buffer: &mut BytesMut,
    spelled: bool,
    max_headers: usize,
) -> Result<Option<Head>, HeadError> {
    if buffer.is_empty() {
        // Between requests: nothing to parse yet.
        return Ok(None);
    }
    // Uninitialized: the parser writes what it finds (no 4 KiB cleared per request).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buffer,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) if max_headers <= MAX_HEADERS => {
            return Err(HeadError::Reply(LocalReply::headers_too_large(format!(
                "more than {MAX_HEADERS} request headers, more than max_request_headers \
                 {max_headers}"
            ))));
        }
        Err(httparse::Error::TooManyHeaders) => return Ok(Some(Head::ForHyper)),
        Err(e) => return Err(bad(format!("malformed request head: {e}"))),
    };
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(bad("incomplete request line".into()));
    };
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let hypers = |f: &httparse::Header<'_>| {
        // HTTP/1.0 has no upgrades: the field is ignored there (RFC 9110 §7.8) and the
        // hop-by-hop removal drops it.
        (minor == 1 && f.name.eq_ignore_ascii_case("upgrade"))
            || (f.name.eq_ignore_ascii_case("expect")
                && !f.value.eq_ignore_ascii_case(b"100-continue"))
    };
    if method == "CONNECT" || parsed.headers.iter().any(hypers) {
        return Ok(Some(Head::ForHyper));
    }
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| bad(format!("method {method:?}")))?;
    // Where the target and each field sit in the buffer, so that they can share the head's
    // bytes once it is split off (no copy). A head is at most the parser buffer, so
    // offsets fit in u32.
    let start = buffer.as_ptr() as usize;
    let offset = |at: *const u8| at as usize - start;
    let target = (offset(target.as_ptr()), target.len());
    // Inline for the usual few fields (not zeroed: no 2 KiB cleared per request).
    let mut spans: SmallVec<[[u32; 4]; INLINE_FIELDS]> = SmallVec::new();
    let mut noted = FramingFields::default();
    let (mut has_request_id, mut expects) = (false, false);
    for field in parsed.headers.iter() {
        if noted.note(field.name, field.value) {
            continue;
        }
        has_request_id |= named(field.name, "x-request-id");
        expects |= named(field.name, "expect");
        let (name, value) = (offset(field.name.as_ptr()), offset(field.value.as_ptr()));
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        spans.push([
            at(name),
            at(name + field.name.len()),
            at(value),
            at(value + field.value.len()),
        ]);
    }
    let head = buffer.split_to(length).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.0 + target.1)).map_err(|_| {
        bad(format!(
            "request target {:?}",
            String::from_utf8_lossy(&head[target.0..target.0 + target.1])
        ))
    })?;
    // Room for what the forwarding adds (request id, x-forwarded-*), so it does not grow.
    let mut headers = HeaderMap::with_capacity(spans.len() + 4);
    let mut case = spelled.then(|| HeaderCase::with_capacity(spans.len()));
    for span in &spans {
        let [name_start, name_end, value_start, value_end] = span.map(|o| o as usize);
        let name = HeaderName::from_bytes(&head[name_start..name_end]).map_err(|_| {
            bad(format!(
                "header name {:?}",
                String::from_utf8_lossy(&head[name_start..name_end])
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_start..value_end))
            .map_err(|_| bad(format!("value of header {name}")))?;
        if let Some(case) = &mut case {
            case.note(&name, head.slice(name_start..name_end));
        }
        headers.append(name, value);
    }
    if !has_request_id {
        headers.insert(X_REQUEST_ID, request_id::next());
    }
    let mut request = Request::new(body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    if let Some(case) = case {
        request.extensions_mut().insert(case);
    }
    Ok(Some(Head::Request(request, noted, expects)))
}

/// The explained reply to arbitrary bytes as a first request head, if they get one (the
/// fuzz targets' view of the malformed phase).
#[cfg(feature = "fuzzing")]
pub(crate) fn head_error(bytes: &[u8]) -> Option<LocalReply> {
    let framed = match parse_head(&mut BytesMut::from(bytes)) {
        Ok(Some(Head::Request(request, noted, _))) => {
            request_body(&noted, request.version()).map(|_| ())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    match framed {
        Err(HeadError::Reply(reply)) => Some(reply),
        _ => None,
    }
}

/// What the own server makes of bytes a client sent, head by head, for the fuzz targets:
/// each head parsed and framed as [`next_request`] and [`parse_request`] do (a head still
/// incomplete past the parser buffer refused), its body decoded from the same bytes as
/// [`RequestBody`] reads it, then the next head (pipelining), until the bytes end, a head
/// is refused, hyper takes the connection or `max` heads were read.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_heads(bytes: &[u8], settings: &HttpSettings, max: usize) -> Vec<FuzzHead> {
    let mut buffer = BytesMut::from(bytes);
    let mut heads = Vec::new();
    while heads.len() < max && !buffer.is_empty() {
        let start = bytes.len() - buffer.len();
        let parsed = parse_request_head(
            &mut buffer,
            settings.preserve_header_case,
            settings.max_headers,
        );
        let head = match parsed {
            Ok(None) if buffer.len() > settings.parser_buffer() => {
                FuzzHead::Refused(LocalReply::headers_too_large(format!(
                    "request head larger than {} bytes",
                    settings.parser_buffer()
                )))
            }
            Ok(None) => FuzzHead::Incomplete,
            Ok(Some(Head::ForHyper)) => {
                assert_eq!(
                    buffer.len(),
                    bytes.len() - start,
                    "hyper reads the head again"
                );
                FuzzHead::ToHyper
            }
            Ok(Some(Head::Request(request, noted, expects))) => {
                match request_body(&noted, request.version()) {
                    Ok(framing) => {
                        let head = start..bytes.len() - buffer.len();
                        let mut left = framing;
                        let mut body_error = false;
                        loop {
                            match decode(&mut buffer, &mut left) {
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(_) => {
                                    body_error = true;
                                    break;
                                }
                            }
                        }
                        FuzzHead::Request {
                            request,
                            head,
                            framing,
                            left,
                            body_error,
                            expects,
                        }
                    }
                    Err(HeadError::Reply(reply)) => FuzzHead::Refused(reply),
                    Err(HeadError::Io(e)) => unreachable!("no I/O here: {e}"),
                }
            }
            Err(HeadError::Reply(reply)) => FuzzHead::Refused(reply),
            Err(HeadError::Io(e)) => unreachable!("no I/O here: {e}"),
        };
        let next = matches!(
            head,
            FuzzHead::Request {
                left: Remaining::Done,
                ..
            }
        );
        heads.push(head);
        if !next {
            break;
        }
    }
    heads
}

/// One step of [`fuzz_heads`].
#[cfg(feature = "fuzzing")]
#[derive(Debug)]
pub(crate) enum FuzzHead {
    /// A request the own server serves: where its head sat in the bytes, its body's framing,
    /// what is left of the body after the bytes that followed, whether decoding that body
    /// failed, and whether it expects `100-continue`.
    Request {
        request: Request<Body>,
        head: std::ops::Range<usize>,
        framing: Remaining,
        left: Remaining,
        body_error: bool,
        expects: bool,
    },
    /// The head needs more bytes.
    Incomplete,
    /// hyper takes the connection from this head on (the bytes kept).
    ToHyper,
    /// An explained 400 or 431, then close.
    Refused(LocalReply),
}

/// A request body read straight from the client's connection. It holds the connection only
/// until its end: the server loop reads the next head once the body is done.
struct RequestBody {
    inbound: Option<Arc<Inbound>>,
    /// What is left of a `content-length` body (the size hint the upstream frames by).
    length: Option<u64>,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl HttpBody for RequestBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inbound) = this.inbound.clone() else {
            return Poll::Ready(None);
        };
        let mut guard = inbound.read();
        let read = &mut *guard;
        if read.expect == Expect::Waiting {
            // The body is wanted now: tell the client to send it.
            let written = inbound.stream.try_write(CONTINUE).unwrap_or(0);
            read.expect = match CONTINUE.len() - written {
                0 => Expect::Settled,
                left => Expect::Unwritten(left),
            };
        }
        let polled = loop {
            match decode(&mut read.buffer, &mut read.body) {
                Err(e) => break Poll::Ready(Some(Err(e))),
                Ok(Some(frame)) => {
                    if let (Some(length), Some(data)) = (this.length.as_mut(), frame.data_ref()) {
                        *length -= data.len() as u64;
                    }
                    break Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) if read.body == Remaining::Done => break Poll::Ready(None),
                Ok(None) => {}
            }
            read.buffer.reserve(BODY_CHUNK);
            if let Err(e) = ready!(inbound.stream.poll_read_ready(cx)) {
                break Poll::Ready(Some(Err(e.into())));
            }
            match read_some(&inbound.stream, &mut read.buffer) {
                Ok(0) => {
                    break Poll::Ready(Some(Err(
                        "client closed the connection in the middle of the request body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => break Poll::Ready(Some(Err(e.into()))),
            }
        };
        // Done (or failed: the framing is lost and the connection will close): the
        // connection is the server loop's again.
        if read.body == Remaining::Done || matches!(polled, Poll::Ready(Some(Err(_)) | None)) {
            drop(guard);
            this.inbound = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inbound.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inbound, self.length) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(n)) => SizeHint::with_exact(n),
            (Some(_), None) => SizeHint::default(),
        }
    }
}

/// Writes `response`; true when the connection can take another request.
async fn respond(
    inbound: &Arc<Inbound>,
    out: &mut Vec<u8>,
    (response, raw): (Response<Body>, Option<RawHeaders>),
    framed: Framed,
) -> io::Result<bool> {
    let mut keep_alive = framed.keep_alive;
    out.clear();
    {
        let mut guard = inbound.read();
        let read = &mut *guard;
        if let Expect::Unwritten(left) = read.expect {
            out.extend_from_slice(&CONTINUE[CONTINUE.len() - left..]);
        }
        // A final answer before the body was asked for: the client may still send it.
        read.expect = Expect::Settled;
        // A body nobody reads any more (the upstream answered without it): what has
        // arrived is skipped. One still being read (streamed to an HTTP/2 upstream) or
        // with more to come leaves the connection untrusted for another request.
        if Arc::strong_count(inbound) == 1 {
            while let Ok(Some(_)) = decode(&mut read.buffer, &mut read.body) {}
        }
        keep_alive &= read.body == Remaining::Done;
    }
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let bodiless = framed.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let (framing, mut keep_alive) = encode_head(
        out,
        &parts,
        raw.as_ref(),
        (bodiless, body.size_hint().exact()),
        keep_alive,
        framed.http10,
    );
    drop(raw);
    if framing == Framing::None {
        // Ended before it goes out: the request is counted and logged by the time the
        // client reads its answer.
        drop(body);
        write_all(&inbound.stream, out).await?;
        return Ok(keep_alive);
    }
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let gather = left <= GATHER_LIMIT;
    loop {
        // Frames ready now are gathered; the buffer goes out when the body has to wait
        // (unless the response is small), grows large, or ends.
        let frame = match poll_now(&mut body).await {
            Some(frame) => frame,
            None => {
                if !gather {
                    write_all(&inbound.stream, out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // The response cannot be completed: the client sees it cut short.
                write_all(&inbound.stream, out).await?;
                debug!(error = %e, "response body failed; closing the connection");
                return Ok(false);
            }
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                if framing == Framing::Chunked {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                } else if framing == Framing::Close {
                    out.extend_from_slice(&data);
                } else {
                    // Never more than declared: the rest would be read as the next response.
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    out.extend_from_slice(&data[..take]);
                    left -= take as u64;
                    if take < data.len() {
                        write_all(&inbound.stream, out).await?;
                        debug!("response body longer than its content-length; closing");
                        return Ok(false);
                    }
                }
            }
            Err(frame) => {
                if let (Framing::Chunked, Ok(trailers)) = (framing, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers {
                        encode_field(out, name, value);
                    }
                    out.extend_from_slice(b"\r\n");
                    drop(body);
                    write_all(&inbound.stream, out).await?;
                    return Ok(keep_alive);
                }
            }
        }
        if out.len() >= WRITE_HIGH_WATER {
            write_all(&inbound.stream, out).await?;
            out.clear();
        }
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        // Shorter than declared: the client would wait for the rest.
        _ if left != 0 => {
            keep_alive = false;
        }
        _ => {}
    }
    drop(body);
    write_all(&inbound.stream, out).await?;
    Ok(keep_alive)
}

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Runs to the close of the connection (an HTTP/1.0 client's, which cannot read
    /// chunked); trailers are dropped.
    Close,
}

/// Polls `body` once: `Some` when it had a frame (or its end) ready.
async fn poll_now(body: &mut Body) -> Option<Option<Result<Frame<bytes::Bytes>, BoxError>>> {
    std::future::poll_fn(|cx| match Pin::new(&mut *body).poll_frame(cx) {
        Poll::Ready(frame) => Poll::Ready(Some(frame)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Encodes the status line and the header fields in one pass over the map, then the
/// framing this hop chooses: a valid declared `content-length`, else the body's known size
/// (`sized`: whether the answer has no body, and the body's size when known), else chunked
/// — or, to an HTTP/1.0 client, the close (none for a bodiless answer). Returns the framing
/// and whether the connection stays open (not if the response itself says
/// `connection: close`).
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    raw: Option<&RawHeaders>,
    (bodiless, known): (bool, Option<u64>),
    keep_alive: bool,
    http10: bool,
) -> (Framing, bool) {
    // An HTTP/1.0 client is answered in its version, as hyper and Envoy do.
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut noted = FramingFields::default();
    let mut dated = false;
    // The upstream's fields as they arrived come first, then the map's (added here).
    for (name, value) in raw.into_iter().flat_map(RawHeaders::iter) {
        // Framing is this hop's to say (connection-only fields were left out on arrival).
        if name.len() == 14 && named(name, "content-length") {
            let _ = noted.note("content-length", value);
            continue;
        }
        dated |= name.len() == 4 && named(name, "date");
        encode_raw_field(out, name, value);
    }
    let mut field = |spelled: &[u8], name: &HeaderName, value: &HeaderValue| {
        // Framing and persistence are this hop's to say.
        if name == header::CONTENT_LENGTH
            || name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
        {
            let _ = noted.note(name.as_str(), value.as_bytes());
            return;
        }
        dated |= name == header::DATE;
        encode_spelled(out, spelled, value);
    };
    // The map's fields, names as the upstream spelled them when those were noted.
    if let Some(case) = parts.extensions.get::<HeaderCase>() {
        for (spelled, name, value) in case.fields(&parts.headers) {
            field(spelled, name, value);
        }
    } else {
        for (name, value) in &parts.headers {
            field(name.as_str().as_bytes(), name, value);
        }
    }
    let declared = noted.content_length.and_then(Result::ok);
    let framing = match (bodiless, declared.or(known)) {
        (true, _) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
        (false, None) if http10 => Framing::Close,
        (false, None) => Framing::Chunked,
    };
    let length = match framing {
        Framing::Length(n) => Some(n),
        // A HEAD or 304 answer says the length the body would have; 1xx and 204 none.
        Framing::None
            if !parts.status.is_informational() && parts.status != StatusCode::NO_CONTENT =>
        {
            declared
        }
        _ => None,
    };
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let keep_alive = keep_alive && !noted.close && framing != Framing::Close;
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        // HTTP/1.0 closes unless told otherwise.
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, keep_alive)
}

/// The connection as hyper reads it after a hand-over: the bytes read and not consumed
/// first, then the socket.
#[derive(Debug)]
struct Replay(Arc<Inbound>);

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inbound = &self.0;
        {
            let mut read = inbound.read();
            if !read.buffer.is_empty() {
                let n = read.buffer.len().min(buf.remaining());
                buf.put_slice(&read.buffer[..n]);
                read.buffer.advance(n);
                if read.buffer.is_empty() {
                    read.buffer = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
        }
        loop {
            ready!(inbound.stream.poll_read_ready(cx))?;
            match inbound.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.stream.poll_write_ready(cx))?;
            match self.0.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        shutdown(&self.0.stream);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Option<Head>, String> {
        parse_head(&mut BytesMut::from(bytes)).map_err(|e| match e {
            HeadError::Reply(reply) => reply.details.to_string(),
            HeadError::Io(e) => e.to_string(),
        })
    }

    #[test]
    fn a_head_that_fails_the_parser_is_named_and_an_incomplete_one_is_not() {
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nbad header: x\r\n\r\n").unwrap_err(),
            "malformed request head: invalid header name"
        );
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nhost: a\x01b\r\n\r\n").unwrap_err(),
            "malformed request head: invalid header value"
        );
        assert!(head(b"GET / HTTP/1.1\r\nhost: a").unwrap().is_none());
        let Some(Head::Request(request, _, _)) =
            head(b"GET /a?b HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n").unwrap()
        else {
            panic!("a request");
        };
        assert_eq!(request.uri(), "/a?b");
        assert_eq!(request.headers()["host"], "a");
        assert_eq!(request.headers()["x-y"], "z");
    }

    #[test]
    fn more_fields_than_are_kept_inline_all_arrive() {
        let many: String = (0..INLINE_FIELDS * 3)
            .map(|i| format!("x-f{i}: v{i}\r\n"))
            .collect();
        let bytes = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        let Some(Head::Request(request, _, _)) = head(bytes.as_bytes()).unwrap() else {
            panic!("a request");
        };
        for i in 0..INLINE_FIELDS * 3 {
            assert_eq!(
                request.headers()[format!("x-f{i}").as_str()],
                format!("v{i}").as_str()
            );
        }
        // And the request id.
        assert_eq!(request.headers().len(), INLINE_FIELDS * 3 + 2);
    }

    #[test]
    fn a_request_id_is_added_when_absent_and_kept_when_sent() {
        let Some(Head::Request(request, _, _)) =
            head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap()
        else {
            panic!("a request");
        };
        let id = request.headers()["x-request-id"].to_str().unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        let Some(Head::Request(request, _, _)) =
            head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: mine\r\n\r\n").unwrap()
        else {
            panic!("a request");
        };
        assert_eq!(request.headers().get_all("x-request-id").iter().count(), 1);
        assert_eq!(request.headers()["x-request-id"], "mine");
    }

    #[test]
    fn upgrades_connect_and_odd_expectations_are_left_to_hyper() {
        for bytes in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"CONNECT a:443 HTTP/1.0\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\ncontent-length: 1\r\n\r\n",
        ] {
            let mut buffer = BytesMut::from(bytes);
            assert!(
                matches!(parse_head(&mut buffer), Ok(Some(Head::ForHyper))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(&buffer[..], bytes, "hyper reads the head again");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        let bytes = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert!(matches!(
            parse_head(&mut BytesMut::from(bytes.as_bytes())),
            Ok(Some(Head::ForHyper))
        ));
        // Unless the configured limit is within what is parsed here: then it is over it.
        let refused = parse_request_head(&mut BytesMut::from(bytes.as_bytes()), false, 100);
        let Err(HeadError::Reply(reply)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(
            reply.details,
            "more than 128 request headers, more than max_request_headers 100"
        );
    }

    #[test]
    fn http_1_0_is_served_here_and_keeps_its_connection_only_when_asked() {
        let framed = |bytes: &[u8]| {
            let mut read = ReadSide {
                buffer: BytesMut::from(bytes),
                body: Remaining::Done,
                expect: Expect::Settled,
            };
            let inbound = Arc::new(Inbound {
                stream: loopback_stream(),
                read: Mutex::new(ReadSide {
                    buffer: BytesMut::new(),
                    body: Remaining::Done,
                    expect: Expect::Settled,
                }),
            });
            match parse_request(&mut read, &inbound, &HttpSettings::default()) {
                Ok(Some(Next::Request(request, framed))) => Ok((
                    request.version(),
                    framed.keep_alive,
                    framed.http10,
                    read.expect,
                )),
                Ok(_) => Err("not served here".to_string()),
                Err(HeadError::Reply(reply)) => Err(reply.details.to_string()),
                Err(HeadError::Io(e)) => Err(e.to_string()),
            }
        };
        assert_eq!(
            framed(b"GET / HTTP/1.0\r\n\r\n"),
            Ok((Version::HTTP_10, false, true, Expect::Settled))
        );
        assert_eq!(
            framed(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
            Ok((Version::HTTP_10, true, true, Expect::Settled))
        );
        // An upgrade does not exist in HTTP/1.0, and a 100-continue is not sent to it.
        assert_eq!(
            framed(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
            Ok((Version::HTTP_10, false, true, Expect::Settled))
        );
        assert_eq!(
            framed(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
            Ok((Version::HTTP_10, false, true, Expect::Settled))
        );
        assert_eq!(
            framed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err("transfer-encoding in an HTTP/1.0 request".to_string())
        );
        assert_eq!(
            framed(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"),
            Ok((Version::HTTP_11, false, false, Expect::Settled))
        );
    }

    /// A connected socket for an [`Inbound`] that is never read here.
    fn loopback_stream() -> TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nonblocking(true).unwrap();
        let _guard = RUNTIME.enter();
        TcpStream::from_std(stream).unwrap()
    }

    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    });

    #[test]
    fn request_bodies_a_proxy_cannot_frame_safely_are_refused() {
        let framing = |bytes: &[u8]| match head(bytes).unwrap() {
            Some(Head::Request(request, noted, _)) => request_body(&noted, request.version())
                .map_err(|e| match e {
                    HeadError::Reply(reply) => reply.details.to_string(),
                    HeadError::Io(e) => e.to_string(),
                }),
            _ => panic!("a request"),
        };
        assert_eq!(framing(b"GET / HTTP/1.1\r\n\r\n"), Ok(Remaining::Done));
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n"),
            Ok(Remaining::Length(7))
        );
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Remaining::Chunked(Chunk::Size))
        );
        for (bytes, why) in [
            (
                &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"[..],
                "both transfer-encoding and content-length",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                "transfer-encoding does not end in chunked",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                "conflicting content-length values",
            ),
        ] {
            assert_eq!(framing(bytes), Err(why.to_string()));
        }
    }

    #[test]
    fn response_heads_frame_their_bodies_and_say_when_they_close() {
        let head = |response: http::response::Builder,
                    bodiless: bool,
                    known: Option<u64>,
                    keep_alive: bool| {
            let (parts, ()) = response.body(()).unwrap().into_parts();
            let mut out = Vec::new();
            let (framing, keep_alive) =
                encode_head(&mut out, &parts, None, (bodiless, known), keep_alive, false);
            (String::from_utf8(out).unwrap(), framing, keep_alive)
        };
        let not_found = || {
            Response::builder()
                .status(404)
                .header("date", "x")
                .header("transfer-encoding", "chunked")
        };
        assert_eq!(
            head(not_found(), false, Some(3), false),
            (
                "HTTP/1.1 404 Not Found\r\ndate: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\n".into(),
                Framing::Length(3),
                false
            )
        );
        assert_eq!(
            head(not_found(), false, None, true),
            (
                "HTTP/1.1 404 Not Found\r\ndate: x\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                Framing::Chunked,
                true
            )
        );
        // A declared length wins over the known size; a response saying close closes.
        let (text, framing, keep_alive) = head(
            Response::builder()
                .header("content-length", "7")
                .header("connection", "close")
                .header("date", "x"),
            false,
            Some(3),
            true,
        );
        assert_eq!((framing, keep_alive), (Framing::Length(7), false));
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
        // HEAD keeps the declared length without a body; 204 carries none.
        let (text, framing, _) = head(
            Response::builder()
                .header("content-length", "9")
                .header("date", "x"),
            true,
            None,
            true,
        );
        assert_eq!(framing, Framing::None);
        assert!(text.contains("content-length: 9\r\n"), "{text}");
        let (text, _, _) = head(
            Response::builder()
                .status(204)
                .header("content-length", "0")
                .header("date", "x"),
            true,
            None,
            true,
        );
        assert!(!text.contains("content-length"), "{text}");
        // A missing date is added.
        let (text, _, _) = head(Response::builder(), false, Some(0), true);
        assert!(text.contains("\r\ndate: "), "{text}");
    }

    #[test]
    fn an_http_1_0_client_is_answered_in_its_version_never_chunked() {
        let head = |known: Option<u64>, keep_alive: bool| {
            let (parts, ()) = Response::builder()
                .header("date", "x")
                .body(())
                .unwrap()
                .into_parts();
            let mut out = Vec::new();
            let (framing, keep_alive) =
                encode_head(&mut out, &parts, None, (false, known), keep_alive, true);
            (String::from_utf8(out).unwrap(), framing, keep_alive)
        };
        assert_eq!(
            head(Some(2), true),
            (
                "HTTP/1.0 200 OK\r\ndate: x\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n"
                    .into(),
                Framing::Length(2),
                true
            )
        );
        // No length known: the body runs to the close, whatever the client asked.
        assert_eq!(
            head(None, true),
            (
                "HTTP/1.0 200 OK\r\ndate: x\r\nconnection: close\r\n\r\n".into(),
                Framing::Close,
                false
            )
        );
    }

    #[test]
    fn raw_fields_go_first_in_lower_case_and_their_length_frames_the_body() {
        let raw = RawHeaders::of(&[("Server", "up"), ("Content-Length", "5"), ("Date", "x")]);
        let (parts, ()) = Response::builder()
            .header("x-added", "1")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = Vec::new();
        let (framing, keep_alive) =
            encode_head(&mut out, &parts, Some(&raw), (false, None), true, false);
        assert_eq!((framing, keep_alive), (Framing::Length(5), true));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nserver: up\r\ndate: x\r\nx-added: 1\r\ncontent-length: 5\r\n\r\n"
        );
    }
}
