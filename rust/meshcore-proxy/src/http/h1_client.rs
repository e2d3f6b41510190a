//! HTTP/1.1 to an upstream without a connection task: the request's own task writes the
//! request head and body and reads the response, as pingora does.
//!
//! hyper's client splits a connection into a handle and a spawned connection task, so each
//! request crosses tasks several times (request in, response head out, body chunks handed
//! over), each a wake-up, a task poll and a pass of hyper's dispatcher; driving that task
//! from the request's task instead was measured slower (bench/README.md, session 3). This
//! client does the exchange inline: one buffer for the head, httparse for the response,
//! and a body ([`H1Body`]) that reads the connection directly and gives it back to the pool
//! once the response is framed to its end.
//!
//! Framing follows RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; `transfer-encoding`
//! ending in `chunked` is decoded (trailers kept), another `transfer-encoding` or neither
//! header means the body runs to the connection's close; `content-length` otherwise.
//! A connection is reused only after a complete, length- or chunk-framed HTTP/1.1 response
//! without `connection: close`.
//!
//! The request body is written before the response is read. When the upstream answers
//! early and closes (a 413, say), the write fails and the response already received is
//! still read and returned; the connection is not reused.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::{Method, Response, StatusCode, Version};
use smallvec::SmallVec;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::body::{Body, BoxError};
use super::h1_codec::{Framing, FramingFields, INLINE_FIELDS, Remaining, decode, encode_field};
use super::header_case::{HeaderCase, encode_spelled};
use super::headers::is_hop_by_hop;
use super::pool::Closed;
use super::raw_headers::{RawHeaders, fields_map};
use super::socket_io::read_some;
use crate::stats::UpstreamMeter;

/// The largest response head read (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most response headers parsed.
const MAX_HEADERS: usize = 128;
/// How much is read from the upstream at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// The request head could not be written: the connection was closed under it (a
    /// reused connection is looked at before, so this is the race that look can lose).
    #[error("connection closed before the request was written: {0}")]
    NotWritten(std::io::Error),
    #[error("upstream connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection before a complete response head")]
    ClosedBeforeResponse,
    #[error("bad upstream response: {0}")]
    Protocol(String),
    #[error("request body failed: {0}")]
    RequestBody(BoxError),
}

/// One pooled upstream HTTP/1.1 connection.
pub(crate) struct H1Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed (the rest of a response).
    buffer: BytesMut,
    /// The request head is encoded here; kept for the next request.
    head: Vec<u8>,
    endpoint: SocketAddr,
    _meter: UpstreamMeter,
    /// Dropped with the connection: the pool's open count goes down.
    _closed: Closed,
}

impl std::fmt::Debug for H1Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Connection")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A response head read from the upstream, and how its body follows.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) response: Response<()>,
    pub(crate) framing: Framing,
    /// The connection can carry another request once the body is read to its end.
    pub(crate) keep_alive: bool,
    /// The header fields as they arrived, when asked for and possible; the response's map
    /// is then empty.
    pub(crate) raw: Option<RawHeaders>,
}

impl H1Connection {
    pub(crate) fn new(
        stream: TcpStream,
        endpoint: SocketAddr,
        meter: UpstreamMeter,
        closed: Closed,
    ) -> Self {
        Self {
            stream,
            buffer: BytesMut::new(),
            head: Vec::new(),
            endpoint,
            _meter: meter,
            _closed: closed,
        }
    }

    /// Whether the upstream closed the connection (or sent bytes nobody asked for) while it
    /// sat idle. A system call only when the socket was reported readable since the last
    /// read came up empty.
    pub(crate) fn closed_while_idle(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Ok(_) | Err(_) => true,
        }
    }

    /// Writes the request (head, then body) and reads the response head; its fields as
    /// they arrived when `raw` (see `raw_headers.rs`).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn stores its arguments twice"
    )]
    pub(crate) fn send(
        &mut self,
        parts: &http::request::Parts,
        mut body: Body,
        raw: bool,
    ) -> impl Future<Output = Result<ResponseHead, H1Error>> {
        // Not an `async fn`: see `server::handle`.
        async move {
            let head_request = parts.method == Method::HEAD;
            // A request whose names kept their case gets its response's kept too; those
            // fields go through the map (raw fields are written in lower case).
            let spelled = parts.extensions.get::<HeaderCase>().is_some();
            let read = Read {
                head_request,
                raw: raw && !spelled,
                spelled,
            };
            let length = body.size_hint().exact();
            let chunked = encode_head(&mut self.head, parts, length, body.is_end_stream());
            if let Err(e) = self.stream.write_all(&self.head).await {
                // A connection closed under a pooled request fails its first write.
                return Err(H1Error::NotWritten(e));
            }
            if let Err(failure) = self.write_body(&mut body, chunked).await {
                // The upstream may have answered before it stopped reading (413 and close).
                return match self.read_head(read).await {
                    Ok(mut head) => {
                        head.keep_alive = false;
                        Ok(head)
                    }
                    Err(_) => Err(failure),
                };
            }
            self.read_head(read).await
        }
    }

    async fn write_body(&mut self, body: &mut Body, chunked: bool) -> Result<(), H1Error> {
        if body.is_end_stream() {
            return Ok(());
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(H1Error::RequestBody)?;
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) if chunked => {
                    let size = format!("{:x}\r\n", data.len());
                    self.stream.write_all(size.as_bytes()).await?;
                    self.stream.write_all(&data).await?;
                    self.stream.write_all(b"\r\n").await?;
                }
                Ok(data) => self.stream.write_all(&data).await?,
                Err(frame) => {
                    if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                        let mut last = b"0\r\n".to_vec();
                        for (name, value) in &trailers {
                            encode_field(&mut last, name, value);
                        }
                        last.extend_from_slice(b"\r\n");
                        self.stream.write_all(&last).await?;
                        return Ok(());
                    }
                }
            }
        }
        if chunked {
            self.stream.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Reads until a final (non-1xx) response head has arrived.
    async fn read_head(&mut self, read: Read) -> Result<ResponseHead, H1Error> {
        loop {
            if let Some(head) = parse_head(&mut self.buffer, read)? {
                return Ok(head);
            }
            if self.buffer.len() >= MAX_HEAD_BYTES {
                return Err(H1Error::Protocol(format!(
                    "response head larger than {MAX_HEAD_BYTES} bytes"
                )));
            }
            if std::future::poll_fn(|cx| self.poll_fill(cx)).await? == 0 {
                return Err(H1Error::ClosedBeforeResponse);
            }
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.buffer.reserve(READ_CHUNK);
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match read_some(&self.stream, &mut self.buffer) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                read => return Poll::Ready(read),
            }
        }
    }
}

/// Encodes the request head into `out`; true when the body goes chunked.
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    length: Option<u64>,
    empty: bool,
) -> bool {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut declared = false;
    if let Some(case) = parts.extensions.get::<HeaderCase>() {
        for (spelled, name, value) in case.fields(&parts.headers) {
            declared |= name == header::CONTENT_LENGTH;
            encode_spelled(out, spelled, value);
        }
    } else {
        for (name, value) in &parts.headers {
            declared |= name == header::CONTENT_LENGTH;
            encode_field(out, name, value);
        }
    }
    let chunked = match (declared, length) {
        (true, _) => false,
        (false, Some(0)) if empty => {
            // A method that normally carries a body says it has none.
            if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            false
        }
        (false, Some(length)) => {
            out.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
            false
        }
        (false, None) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            true
        }
    };
    out.extend_from_slice(b"\r\n");
    chunked
}

/// How a response head is to be read.
#[derive(Debug, Clone, Copy)]
struct Read {
    /// The request was HEAD: the response has no body whatever it declares.
    head_request: bool,
    /// Keep the fields as they arrived (`raw_headers.rs`).
    raw: bool,
    /// Note how each name was spelled (`header_case.rs`).
    spelled: bool,
}

/// A final response head from the front of `buffer` (consumed), skipping 1xx heads;
/// `None` while incomplete.
fn parse_head(buffer: &mut BytesMut, read: Read) -> Result<Option<ResponseHead>, H1Error> {
    let Read {
        head_request,
        raw,
        spelled,
    } = read;
    loop {
        if buffer.is_empty() {
            // Nothing read yet: nothing to parse.
            return Ok(None);
        }
        // Uninitialized: the parser writes what it finds (no 4 KiB cleared per response).
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let length =
            match config.parse_response_with_uninit_headers(&mut parsed, buffer, &mut headers) {
                Ok(httparse::Status::Complete(length)) => length,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(H1Error::Protocol(e.to_string())),
            };
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| H1Error::Protocol(format!("status code {code}")))?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(H1Error::Protocol(
                    "101 to a request that asked no upgrade".into(),
                ));
            }
            // 100 Continue, 103 Early Hints: not forwarded (the request asked for none).
            buffer.advance(length);
            continue;
        }
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // Where each name and value sits in the buffer, so that the values can share the
        // head's bytes once it is split off (no copy).
        // (A head is at most MAX_HEAD_BYTES, so offsets fit in u32.)
        let start = buffer.as_ptr() as usize;
        let offset = |at: *const u8| u32::try_from(at as usize - start).unwrap_or(u32::MAX);
        // Inline for the usual few fields (not zeroed: no 2 KiB cleared per response).
        let mut fields: SmallVec<[[u32; 4]; INLINE_FIELDS]> = SmallVec::new();
        let mut noted = FramingFields::default();
        let mut raw = raw;
        for field in parsed.headers.iter() {
            if noted.note(field.name, field.value) {
                continue;
            }
            // Other hop-by-hop fields are for the map's removal to take out.
            raw &= !is_hop_by_hop(field.name.as_bytes());
            let (name, value) = (offset(field.name.as_ptr()), offset(field.value.as_ptr()));
            let name_end = name + u32::try_from(field.name.len()).unwrap_or(0);
            let value_end = value + u32::try_from(field.value.len()).unwrap_or(0);
            fields.push([name, name_end, value, value_end]);
        }
        let head = buffer.split_to(length).freeze();
        let case = spelled.then(|| spellings(&head, &fields));
        // The map is built from the offsets directly: no copy of them for that path.
        let (map, raw) = if raw {
            (
                HeaderMap::new(),
                Some(RawHeaders::new(head, fields.to_vec())),
            )
        } else {
            (fields_map(&head, &fields).map_err(H1Error::Protocol)?, None)
        };
        let (framing, framed) = framing(noted.clone(), status, head_request)?;
        let keep_alive = framed && version == Version::HTTP_11 && !noted.close;
        let mut response = Response::new(());
        if let Some(case) = case {
            response.extensions_mut().insert(case);
        }
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = map;
        return Ok(Some(ResponseHead {
            response,
            framing,
            keep_alive,
            raw,
        }));
    }
}

/// How the names of the fields at `spans` of `head` were spelled.
fn spellings(head: &Bytes, spans: &[[u32; 4]]) -> HeaderCase {
    let mut case = HeaderCase::with_capacity(spans.len());
    for &[name_start, name_end, ..] in spans {
        let spelled = head.slice(name_start as usize..name_end as usize);
        // A name that does not parse fails the head's map anyway.
        if let Ok(name) = HeaderName::from_bytes(&spelled) {
            case.note(&name, spelled);
        }
    }
    case
}

/// The body's framing, and whether it leaves the connection reusable.
fn framing(
    fields: FramingFields,
    status: StatusCode,
    head_request: bool,
) -> Result<(Framing, bool), H1Error> {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, true));
    }
    if let Some(chunked) = fields.chunked {
        // Both headers: transfer-encoding wins, and the connection is not trusted again.
        let alone = fields.content_length.is_none();
        return Ok(if chunked {
            (Framing::Chunked, alone)
        } else {
            (Framing::Close, false)
        });
    }
    let length = fields
        .content_length
        .transpose()
        .map_err(H1Error::Protocol)?;
    Ok(match length {
        Some(0) => (Framing::Empty, true),
        Some(length) => (Framing::Length(length), true),
        None => (Framing::Close, false),
    })
}

/// A response body read straight from its connection. When it has been read to its end,
/// `done` gets the connection and whether it can carry another request; dropped before
/// that, the connection closes. (`done` is kept inline, not boxed: one allocation less
/// per response.)
pub(crate) struct H1Body<D> {
    connection: Option<Box<H1Connection>>,
    remaining: Remaining,
    keep_alive: bool,
    done: Option<D>,
}

impl<D> std::fmt::Debug for H1Body<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<D: FnOnce(Box<H1Connection>, bool)> H1Body<D> {
    pub(crate) fn new(
        connection: Box<H1Connection>,
        framing: Framing,
        keep_alive: bool,
        done: D,
    ) -> Self {
        let mut body = Self {
            connection: Some(connection),
            remaining: Remaining::of(framing),
            keep_alive,
            done: Some(done),
        };
        if body.remaining == Remaining::Done {
            body.finish();
        }
        body
    }

    /// The body was read to its end: the connection goes back.
    fn finish(&mut self) {
        self.remaining = Remaining::Done;
        if let (Some(connection), Some(done)) = (self.connection.take(), self.done.take()) {
            let reusable = self.keep_alive && connection.buffer.is_empty();
            done(connection, reusable);
        }
    }

    /// The next frame that the buffered bytes hold, if any.
    fn next_frame(&mut self) -> Result<Option<Frame<Bytes>>, BoxError> {
        match self.connection.as_mut() {
            Some(connection) => decode(&mut connection.buffer, &mut self.remaining),
            None => Ok(None),
        }
    }
}

impl<D: FnOnce(Box<H1Connection>, bool) + Unpin> HttpBody for H1Body<D> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.next_frame() {
                Err(e) => {
                    // The framing is lost: the connection is not reused (it drops).
                    this.connection = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Some(frame)) => {
                    if this.remaining == Remaining::Done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) if this.remaining == Remaining::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(connection.poll_fill(cx)) {
                Ok(0) if this.remaining == Remaining::Close => {
                    // The close is the end of this body; the connection is spent.
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.connection = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(Some(Err(
                        "upstream closed the connection in the middle of the body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.connection = None;
                    this.remaining = Remaining::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Remaining::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Remaining::Length(n) => SizeHint::with_exact(n),
            Remaining::Done => SizeHint::with_exact(0),
            // Chunked or to the close: the length is not known ahead.
            Remaining::Chunked(_) | Remaining::Close => SizeHint::default(),
        }
    }
}

/// Parses arbitrary bytes as a response head and decodes the body that follows by its
/// framing, as the client would (a fuzz entry point: must never panic).
#[cfg(feature = "fuzzing")]
pub(crate) fn decode_response(bytes: &[u8]) {
    let mut buffer = BytesMut::from(bytes);
    // Fields kept as they arrived, or parsed into a map (names' spellings noted or not):
    // every way is taken.
    let flags = bytes.first().copied().unwrap_or(0);
    let spelled = flags & 2 == 2;
    let read = Read {
        head_request: false,
        raw: flags & 1 == 1 && !spelled,
        spelled,
    };
    let Ok(Some(head)) = parse_head(&mut buffer, read) else {
        return;
    };
    let mut out = Vec::new();
    if let Some(raw) = head.raw {
        for (name, value) in raw.iter() {
            super::raw_headers::encode_raw_field(&mut out, name, value);
        }
    }
    if let Some(case) = head.response.extensions().get::<HeaderCase>() {
        for (spelled, _, value) in case.fields(head.response.headers()) {
            encode_spelled(&mut out, spelled, value);
        }
    }
    let mut remaining = Remaining::of(head.framing);
    while let Ok(Some(_)) = decode(&mut buffer, &mut remaining) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Read {
        /// A GET's response, its fields kept as they arrived when `raw`.
        fn raw(raw: bool) -> Self {
            Self {
                head_request: false,
                raw,
                spelled: false,
            }
        }
    }

    fn head(bytes: &[u8], head_request: bool) -> Result<Option<ResponseHead>, H1Error> {
        let read = Read {
            head_request,
            raw: false,
            spelled: false,
        };
        parse_head(&mut BytesMut::from(bytes), read)
    }

    #[test]
    fn raw_fields_leave_the_map_empty_and_framing_fields_out() {
        let bytes = b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\n\
            Content-Length: 2\r\nX-A: b\r\n\r\nhi";
        let h = parse_head(&mut BytesMut::from(&bytes[..]), Read::raw(true))
            .unwrap()
            .unwrap();
        assert!(h.response.headers().is_empty());
        assert!(h.keep_alive);
        let fields: Vec<_> = h
            .raw
            .unwrap()
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            [("Server", "up"), ("Content-Length", "2"), ("X-A", "b")]
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn more_fields_than_are_kept_inline_pass_both_ways() {
        let many: String = (0..INLINE_FIELDS * 3)
            .map(|i| format!("x-f{i}: v{i}\r\n"))
            .collect();
        let bytes = format!("HTTP/1.1 200 OK\r\n{many}content-length: 0\r\n\r\n");
        for raw in [false, true] {
            let h = parse_head(&mut BytesMut::from(bytes.as_bytes()), Read::raw(raw))
                .unwrap()
                .unwrap();
            let map = match h.raw {
                Some(fields) => fields.into_map().unwrap(),
                None => h.response.headers().clone(),
            };
            assert_eq!(map.len(), INLINE_FIELDS * 3 + 1, "raw: {raw}");
            assert_eq!(map["x-f70"], "v70");
        }
    }

    #[test]
    fn a_hop_by_hop_field_beyond_framing_takes_the_map() {
        for field in [
            "Connection: x-gone",
            "Upgrade: h2c",
            "Proxy-Authenticate: Basic",
        ] {
            let bytes = format!("HTTP/1.1 200 OK\r\n{field}\r\ncontent-length: 0\r\n\r\n");
            let h = parse_head(&mut BytesMut::from(bytes.as_bytes()), Read::raw(true))
                .unwrap()
                .unwrap();
            assert!(h.raw.is_none(), "{field}");
            assert_eq!(h.response.headers().len(), 2, "{field}");
        }
    }

    #[test]
    fn a_length_framed_response_keeps_the_connection() {
        let h = head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.response.headers()["x-a"], "b");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases: [(&[u8], bool, Framing, bool); 8] = [
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
                false,
                Framing::Close,
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
                false,
                Framing::Chunked,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
        ];
        for (bytes, head_request, framing, keep_alive) in cases {
            let h = head(bytes, head_request).unwrap().unwrap();
            assert_eq!(
                (h.framing, h.keep_alive),
                (framing, keep_alive),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn informational_heads_are_skipped_and_bad_heads_refused() {
        let h = head(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: x\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.response.status(), 200);
        assert!(
            head(b"HTTP/1.1 200 OK\r\ncontent-len", false)
                .unwrap()
                .is_none()
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(
                head(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn request_heads_frame_their_bodies() {
        let (mut parts, ()) = http::Request::post("/upload?x=1")
            .header("host", "app")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = Vec::new();
        assert!(encode_head(&mut out, &parts, None, false));
        assert_eq!(
            out,
            b"POST /upload?x=1 HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert!(!encode_head(&mut out, &parts, Some(0), true));
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"));
        parts.method = Method::GET;
        assert!(!encode_head(&mut out, &parts, Some(0), true));
        assert_eq!(out, b"GET /upload?x=1 HTTP/1.1\r\nhost: app\r\n\r\n");
        assert!(!encode_head(&mut out, &parts, Some(7), false));
        assert!(out.ends_with(b"content-length: 7\r\n\r\n"));
    }
}
