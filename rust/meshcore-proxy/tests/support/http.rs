//! HTTP helpers of the L7 tests: hyper upstreams that say who they are and count their
//! connections, hyper clients (HTTP/1.1 and HTTP/2 prior knowledge), snapshot builders.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use super::IO_TIMEOUT;

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
}

/// A TCP upstream on `rt` that serves each accepted connection with `serve`, on a task of
/// its own: for tests that script the upstream's exact bytes and timing.
pub fn raw_upstream<F, Fut>(rt: &Runtime, serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("binds");
    let address = listener.local_addr().expect("address");
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    address
}

/// Reads until a whole request head has arrived (and what came with it); `None` if the
/// connection ends first.
pub async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let (mut head, mut buffer) = (Vec::new(), [0u8; 1024]);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    Some(head)
}

/// An HTTP upstream (HTTP/1.1, or HTTP/2 with prior knowledge when `h2`).
///
/// It answers `200 <tag> <METHOD> <path?query>` with `x-upstream: <tag>` and every request
/// header echoed back as `echo-<name>`. Paths: `/status/N` answers N; `/fail-once` answers
/// 503 to its first request only; `/slow` waits 30 s; `/trailers` sends a body and a
/// `grpc-status: 0` trailer; `/echo-body` answers the request body; `/gate` answers only
/// once the test opens the gate ([`HttpUpstream::open_gate`]).
pub struct HttpUpstream {
    pub address: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Connections that have ended (closed by either side).
    pub closed: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    /// Requests waiting at `/gate`.
    pub waiting: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl HttpUpstream {
    pub fn start(runtime: &Runtime, tag: &'static str, h2: bool) -> Self {
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("upstream binds");
        let address = listener.local_addr().expect("upstream address");
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let (conn_count, req_count) = (Arc::clone(&connections), Arc::clone(&requests));
        let (closed_count, waiting_count, gate_permits) =
            (Arc::clone(&closed), Arc::clone(&waiting), Arc::clone(&gate));
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conn_count.fetch_add(1, Ordering::SeqCst);
                let req_count = Arc::clone(&req_count);
                let closed_count = Arc::clone(&closed_count);
                let waiting_count = Arc::clone(&waiting_count);
                let gate_permits = Arc::clone(&gate_permits);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let n = req_count.fetch_add(1, Ordering::SeqCst);
                        let waiting_count = Arc::clone(&waiting_count);
                        let gate_permits = Arc::clone(&gate_permits);
                        async move {
                            if request.uri().path() == "/gate" {
                                waiting_count.fetch_add(1, Ordering::SeqCst);
                                if let Ok(permit) = gate_permits.acquire().await {
                                    permit.forget();
                                }
                                waiting_count.fetch_sub(1, Ordering::SeqCst);
                            }
                            answer(tag, n, request).await
                        }
                    });
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    }
                    closed_count.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            address,
            connections,
            closed,
            requests,
            waiting,
            gate,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// Requests waiting at `/gate` right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Lets `n` requests waiting (or yet to arrive) at `/gate` through.
    pub fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    tag: &'static str,
    n: usize,
    mut request: Request<Incoming>,
) -> Result<Response<UpstreamBody>, Infallible> {
    let path = request.uri().path().to_string();
    let line = format!(
        "{tag} {} {}",
        request.method(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let mut response = Response::new(Full::new(Bytes::from(line)).boxed());
    for (name, value) in request.headers() {
        if let Ok(echo) = hyper::header::HeaderName::from_bytes(format!("echo-{name}").as_bytes()) {
            response.headers_mut().append(echo, value.clone());
        }
    }
    response
        .headers_mut()
        .insert("x-upstream", tag.parse().expect("tag"));
    if let Some(code) = path.strip_prefix("/status/") {
        *response.status_mut() = code.parse().unwrap_or(StatusCode::OK);
    } else if path == "/fail-once" && n == 0 {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    } else if path == "/echo-body" {
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        *response.body_mut() = Full::new(body.unwrap_or_default()).boxed();
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    } else if path == "/trailers" {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("trailer"));
        let frames = [
            Frame::data(Bytes::from_static(b"payload")),
            Frame::trailers(trailers),
        ];
        *response.body_mut() = Frames(frames.into_iter().collect()).boxed();
        // Declared, so that hyper sends the trailer over HTTP/1.1 too.
        response
            .headers_mut()
            .insert("trailer", "grpc-status".parse().expect("value"));
    } else if request.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let (mut reader, mut writer) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            }
        });
        let mut switching = Response::new(Full::new(Bytes::new()).boxed());
        *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        switching
            .headers_mut()
            .insert("connection", "upgrade".parse().expect("value"));
        switching
            .headers_mut()
            .insert("upgrade", "echo".parse().expect("value"));
        return Ok(switching);
    }
    Ok(response)
}

/// A body of ready frames (data, then trailers).
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// What a client got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Reply {
    /// A raw HTTP/1 response (its head, and the body after it) as a [`Reply`].
    pub fn from_raw(response: &str) -> Self {
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("a response head: {response:?}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("a status line: {response:?}"));
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("a header line: {line:?}"));
            headers.append(
                hyper::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("name"),
                value.trim().parse().expect("value"),
            );
        }
        Self {
            status,
            headers,
            body: body.to_string(),
            trailers: None,
        }
    }
}

/// An error reply the proxy made itself (`src/http/respond.rs`), as the client sees it.
pub struct Explained<'a> {
    pub status: u16,
    /// Envoy's response flags, e.g. `UF` or `UF,URX`.
    pub flags: &'a str,
    /// The RFC 9209 error type, e.g. `connection_timeout`.
    pub error: &'a str,
    /// Who decided: the config object, and ` -> <cluster>` once it picked one.
    pub by: &'a str,
    pub details: &'a str,
}

/// The explained 400 the malformed phase gives a request it cannot take (flag DPE,
/// decided by the listener).
pub fn malformed(details: &str) -> Explained<'_> {
    Explained {
        status: 400,
        flags: "DPE",
        error: "http_request_error",
        by: "Listener",
        details,
    }
}

/// Asserts that `reply` is `expected`, whole: the status; `proxy-status` with the error
/// type and the details; `x-meshcore-decision` naming who decided, the flags and the
/// details; and the body `<flags>: <details>` (for gRPC, `grpc-status` and `grpc-message`
/// and no body).
pub fn assert_explained(reply: &Reply, expected: &Explained<'_>) {
    let Explained {
        status,
        flags,
        error,
        by,
        details,
    } = *expected;
    let quoted = details.replace('\\', "\\\\").replace('"', "\\\"");
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("proxy-status"),
        format!("meshcore; error={error}; details=\"{quoted}\""),
        "{reply:?}"
    );
    assert_eq!(
        reply.header("x-meshcore-decision"),
        format!("{by}; {flags} {details}"),
        "{reply:?}"
    );
    if reply.header("content-type") == "application/grpc" {
        assert_ne!(reply.header("grpc-status"), "", "{reply:?}");
        assert_eq!(reply.header("grpc-message"), details, "{reply:?}");
        assert_eq!(reply.body, "", "{reply:?}");
    } else {
        assert_eq!(reply.body, format!("{flags}: {details}\n"), "{reply:?}");
    }
}

/// Asserts that `reply` is an answer the proxy made itself that is not an error (a
/// redirect or a direct response): the decision header naming the route, no flags and no
/// `proxy-status`.
pub fn assert_answered_by(reply: &Reply, by: &str) {
    assert_eq!(reply.header("x-meshcore-decision"), by, "{reply:?}");
    assert!(!reply.headers.contains_key("proxy-status"), "{reply:?}");
}

/// A JSON access log in a directory of its own, removed on drop.
pub struct AccessLog {
    dir: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl AccessLog {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "meshcore-log-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("access.log");
        Self { dir, path }
    }

    /// The snapshot's `settings` with this log.
    pub fn settings(&self) -> Value {
        json!({"access_log": {"path": self.path.to_string_lossy(), "format": "json"}})
    }

    /// The log's lines once there are at least `at_least`.
    pub fn lines(&self, at_least: usize) -> Vec<Value> {
        let mut lines = Vec::new();
        let complete = super::eventually(|| {
            lines = std::fs::read_to_string(&self.path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            lines.len() >= at_least
        });
        assert!(complete, "{at_least} access log lines: {lines:?}");
        lines
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `plane` has counted `flag` `count` times (flags are counted as a response's
/// body ends, which may be just after the client has it all).
pub fn assert_flag_counted(plane: &meshcore_proxy::DataPlane, flag: &str, count: u64) {
    let counted = || {
        plane
            .stats()
            .totals
            .response_flags
            .get(flag)
            .copied()
            .unwrap_or_default()
    };
    assert!(
        super::eventually(|| counted() == count),
        "{flag} counted {} times, not {count}",
        counted()
    );
}

/// One request on a new HTTP/1.1 connection.
pub fn get(
    runtime: &Runtime,
    proxy: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = Request::get(path).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(
        runtime,
        proxy,
        builder.body(Full::new(Bytes::new())).expect("request"),
        false,
    )
}

/// One request on a new connection, HTTP/2 with prior knowledge when `h2`.
pub fn send(
    runtime: &Runtime,
    proxy: SocketAddr,
    request: Request<Full<Bytes>>,
    h2: bool,
) -> Reply {
    runtime.block_on(async move {
        tokio::time::timeout(IO_TIMEOUT, async move {
            let stream = TcpStream::connect(proxy).await.expect("client connects");
            let io = TokioIo::new(stream);
            let response = if h2 {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .expect("h2 handshake");
                tokio::spawn(connection);
                sender.send_request(request).await.expect("h2 response")
            } else {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                    .await
                    .expect("h1 handshake");
                tokio::spawn(connection);
                sender.send_request(request).await.expect("h1 response")
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let collected = response.into_body().collect().await.expect("body");
            let trailers = collected.trailers().cloned();
            Reply {
                status,
                headers,
                body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
                trailers,
            }
        })
        .await
        .expect("the proxy answers in time")
    })
}

pub fn http_listener(name: &str, port: u16, route_config: &str) -> Value {
    json!({"name": name, "address": "127.0.0.1", "port": port, "protocol": "http", "route_config": route_config})
}

pub fn http_cluster(name: &str, protocol: &str, endpoints: &[SocketAddr]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|a| json!({"address": a.ip().to_string(), "port": a.port()}))
        .collect();
    json!({"name": name, "protocol": protocol, "connect_timeout_ms": 1000, "endpoints": endpoints})
}

/// One route config `rc` with one virtual host for `domains` holding `routes`.
pub fn route_config(domains: &[&str], routes: Vec<Value>) -> Value {
    json!({"name": "rc", "virtual_hosts": [{"name": "vh", "domains": domains, "routes": routes}]})
}

pub fn forward_to(cluster: &str) -> Value {
    json!({"route": {"clusters": [{"name": cluster, "weight": 1}]}})
}

/// Applies one `http` listener on a fresh port with `route_configs` and `clusters`;
/// returns the listener's address.
pub fn apply_http(
    plane: &meshcore_proxy::DataPlane,
    route_configs: Vec<Value>,
    clusters: Vec<Value>,
    settings: Value,
) -> SocketAddr {
    let port = super::free_port();
    let snapshot = json!({
        "version": "v1",
        "settings": settings,
        "listeners": [http_listener("http", port, "rc")],
        "route_configs": route_configs,
        "clusters": clusters,
    });
    plane
        .apply_json(&serde_json::to_vec(&snapshot).expect("json"))
        .expect("snapshot applies");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A client connection that stays open between requests (HTTP/1.1 keep-alive, or HTTP/2
/// with prior knowledge); `closed` fires when the proxy ends the connection.
pub struct Conn {
    sender: Sender,
    pub closed: tokio::sync::oneshot::Receiver<()>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    pub fn open(runtime: &Runtime, proxy: SocketAddr, h2: bool) -> Self {
        Self::open_from(runtime, proxy, h2, None)
    }

    /// Opens from a given local address (127.0.0.x), for source-IP hashing.
    pub fn open_from(
        runtime: &Runtime,
        proxy: SocketAddr,
        h2: bool,
        local: Option<std::net::IpAddr>,
    ) -> Self {
        runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            if let Some(ip) = local {
                socket.bind(SocketAddr::new(ip, 0)).expect("client binds");
            }
            let stream = socket.connect(proxy).await.expect("client connects");
            let io = TokioIo::new(stream);
            let (done, closed) = tokio::sync::oneshot::channel();
            let sender = if h2 {
                let (sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .expect("h2 handshake");
                tokio::spawn(async move {
                    let _ = connection.await;
                    let _ = done.send(());
                });
                Sender::H2(sender)
            } else {
                let (sender, connection) = hyper::client::conn::http1::handshake(io)
                    .await
                    .expect("h1 handshake");
                tokio::spawn(async move {
                    let _ = connection.await;
                    let _ = done.send(());
                });
                Sender::H1(sender)
            };
            Self { sender, closed }
        })
    }

    /// Sends one request on this connection; `Err` if the connection cannot carry it.
    pub fn try_send(
        &mut self,
        runtime: &Runtime,
        request: Request<Full<Bytes>>,
    ) -> Result<Reply, hyper::Error> {
        runtime.block_on(async {
            tokio::time::timeout(IO_TIMEOUT, async {
                let response = match &mut self.sender {
                    Sender::H1(sender) => {
                        sender.ready().await?;
                        sender.send_request(request).await?
                    }
                    Sender::H2(sender) => {
                        sender.ready().await?;
                        sender.send_request(request).await?
                    }
                };
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let collected = response.into_body().collect().await?;
                let trailers = collected.trailers().cloned();
                Ok(Reply {
                    status,
                    headers,
                    body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
                    trailers,
                })
            })
            .await
            .expect("the proxy answers in time")
        })
    }

    pub fn get(&mut self, runtime: &Runtime, host: &str, path: &str) -> Reply {
        let request = get_request(host, path, &[], matches!(self.sender, Sender::H2(_)));
        self.try_send(runtime, request)
            .expect("request on an open connection")
    }

    /// Waits for the proxy to close the connection; false if it is still open after the
    /// I/O timeout.
    pub fn closed_by_proxy(&mut self, runtime: &Runtime) -> bool {
        runtime.block_on(async {
            tokio::time::timeout(IO_TIMEOUT, &mut self.closed)
                .await
                .is_ok()
        })
    }
}

/// A GET; HTTP/2 requests need the absolute form (`:scheme`, `:authority`).
pub fn get_request(
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    h2: bool,
) -> Request<Full<Bytes>> {
    let uri = if h2 {
        format!("http://{host}{path}")
    } else {
        path.to_string()
    };
    let mut builder = Request::get(uri).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).expect("request")
}

/// Reads one HTTP/1 response (head, and a `content-length` body) from a raw stream.
pub fn read_raw_response(stream: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("response body");
    (head, body)
}
