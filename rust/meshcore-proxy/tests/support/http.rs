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

use super::IO_TIMEOUT;

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
}

/// An HTTP upstream (HTTP/1.1, or HTTP/2 with prior knowledge when `h2`).
///
/// It answers `200 <tag> <METHOD> <path?query>` with `x-upstream: <tag>` and every request
/// header echoed back as `echo-<name>`. Paths: `/status/N` answers N; `/fail-once` answers
/// 503 to its first request only; `/slow` waits 30 s; `/trailers` sends a body and a
/// `grpc-status: 0` trailer.
pub struct HttpUpstream {
    pub address: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

impl HttpUpstream {
    pub fn start(runtime: &Runtime, tag: &'static str, h2: bool) -> Self {
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("upstream binds");
        let address = listener.local_addr().expect("upstream address");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (conn_count, req_count) = (Arc::clone(&connections), Arc::clone(&requests));
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conn_count.fetch_add(1, Ordering::SeqCst);
                let req_count = Arc::clone(&req_count);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let n = req_count.fetch_add(1, Ordering::SeqCst);
                        answer(tag, n, request)
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
                });
            }
        });
        Self {
            address,
            connections,
            requests,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
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
