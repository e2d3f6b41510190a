//! Shared helpers of the integration tests: free ports, upstream servers on their own
//! runtime, snapshot builders and blocking clients.

#![allow(dead_code)] // each test binary uses a different subset

pub mod http;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use meshcore_proxy::{DataPlane, Options, Stats};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A port that nothing listens on right now, below the ephemeral range (32768 and up):
/// a port the kernel hands out (bind to :0) can be taken, before the test binds it, as
/// the local port of a client connection of a test running alongside. Ports are taken in
/// turn from a per-process start, each checked free by a bind.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = u16::try_from(std::process::id() % u32::from(SPAN)).expect("below SPAN");
    let _ = NEXT.compare_exchange(0, start + 1, Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn closed_endpoint() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A loopback address whose connects hang until the caller gives up: a listener with a
/// backlog of 0 that never accepts, its accept queue already full of connections it never
/// accepted. Linux drops a SYN to a listener whose accept queue is full (unless
/// `net.ipv4.tcp_abort_on_overflow` is set, when it resets, and the connect is refused
/// instead), and the SYN's retransmits find the queue as full: a connect gets no answer,
/// the way one to a host that drops packets does, without leaving 127.0.0.1.
pub struct Blackhole {
    pub address: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    pub fn new() -> Self {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("binds");
        // Linux queues up to backlog + 1 connections: one here.
        listener.listen(0).expect("listens");
        let address = listener
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("an inet address");
        // Connects complete (the kernel finishes the handshake) until the queue is full;
        // the first that times out shows it is. On loopback a connect the kernel answers
        // takes well under the probe's wait.
        let mut queued = Vec::new();
        loop {
            match TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
                Ok(stream) => queued.push(stream),
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => break,
                Err(e) => panic!("filling the accept queue of {address}: {e}"),
            }
            assert!(
                queued.len() <= 8,
                "{address} keeps accepting past its backlog of 0"
            );
        }
        Self {
            address,
            _listener: listener,
            _queued: queued,
        }
    }
}

pub fn start() -> DataPlane {
    DataPlane::start(Options::default()).expect("data plane starts")
}

/// A data plane with one worker: for tests that count upstream connections, which are
/// pooled per worker (two workers may each open their own).
pub fn start_one_worker() -> DataPlane {
    DataPlane::start(Options {
        worker_threads: 1,
        ..Options::default()
    })
    .expect("data plane starts")
}

/// Upstream servers for one test, on a small runtime of their own.
pub struct Upstreams {
    runtime: tokio::runtime::Runtime,
}

impl Upstreams {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("upstream runtime");
        Self { runtime }
    }

    fn serve<F, Fut>(&self, handler: F) -> SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = self
            .runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("upstream binds");
        let address = listener.local_addr().expect("upstream address");
        self.runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handler(stream));
            }
        });
        address
    }

    /// Echoes every byte; on EOF, half-closes back.
    pub fn echo(&self) -> SocketAddr {
        self.serve(|mut stream| async move {
            let (mut reader, mut writer) = stream.split();
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
        })
    }

    /// Sends `tag` first, then echoes: tells a client which endpoint it reached.
    pub fn tagged_echo(&self, tag: u8) -> SocketAddr {
        self.serve(move |mut stream| async move {
            if stream.write_all(&[tag]).await.is_err() {
                return;
            }
            let (mut reader, mut writer) = stream.split();
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
        })
    }

    /// Reads everything until the client half-closes, then sends it all back and closes.
    pub fn reply_after_eof(&self) -> SocketAddr {
        self.serve(|mut stream| async move {
            let mut received = Vec::new();
            if stream.read_to_end(&mut received).await.is_ok() {
                let _ = stream.write_all(&received).await;
                let _ = stream.shutdown().await;
            }
        })
    }

    /// Sends `greeting` and half-closes at once, then reads until the client's EOF and
    /// hands what it read to `received`.
    pub fn greet_then_listen(
        &self,
        greeting: &'static [u8],
        received: mpsc::Sender<Vec<u8>>,
    ) -> SocketAddr {
        self.serve(move |mut stream| {
            let received = received.clone();
            async move {
                let _ = stream.write_all(greeting).await;
                let _ = stream.shutdown().await;
                let mut data = Vec::new();
                let _ = stream.read_to_end(&mut data).await;
                let _ = received.send(data);
            }
        })
    }
}

pub fn listener(name: &str, port: u16, clusters: &[(&str, u32)], idle_timeout_ms: u64) -> Value {
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|(name, weight)| json!({"name": name, "weight": weight}))
        .collect();
    json!({
        "name": name,
        "address": "127.0.0.1",
        "port": port,
        "protocol": "tcp",
        "idle_timeout_ms": idle_timeout_ms,
        "tcp_route": {"clusters": clusters},
    })
}

pub fn cluster(name: &str, lb_policy: &str, endpoints: &[(SocketAddr, u32)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, weight)| {
            json!({"address": address.ip().to_string(), "port": address.port(), "weight": weight})
        })
        .collect();
    json!({"name": name, "lb_policy": lb_policy, "connect_timeout_ms": 1000, "endpoints": endpoints})
}

pub fn snapshot(version: &str, listeners: Vec<Value>, clusters: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"version": version, "listeners": listeners, "clusters": clusters}))
        .expect("snapshot serialises")
}

/// One listener on a fresh port routing to one cluster of the given endpoints; returns the
/// listener's address.
pub fn apply_single_route(
    plane: &DataPlane,
    endpoints: &[(SocketAddr, u32)],
    idle_timeout_ms: u64,
) -> SocketAddr {
    let port = free_port();
    plane
        .apply_json(&snapshot(
            "v1",
            vec![listener("main", port, &[("backend", 1)], idle_timeout_ms)],
            vec![cluster("backend", "round_robin", endpoints)],
        ))
        .expect("snapshot applies");
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("client connects");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    stream
}

/// Writes `message` and reads the same number of bytes back.
pub fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).expect("client writes");
    let mut reply = vec![0; message.len()];
    stream
        .read_exact(&mut reply)
        .expect("client reads the reply");
    reply
}

pub fn read_byte(stream: &mut TcpStream) -> u8 {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).expect("client reads one byte");
    byte[0]
}

/// The proxy closed the connection: EOF or a reset, not a timeout.
pub fn assert_closed_by_proxy(stream: &mut TcpStream) {
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Ok(n) => panic!("expected the connection closed, read {n} bytes"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("expected the connection closed, it is still open")
        }
        Err(_) => {}
    }
}

pub fn refuses_connections(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err()
}

/// Polls `check` until it holds or five seconds pass.
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}

pub fn cluster_stats<'a>(stats: &'a Stats, name: &str) -> &'a meshcore_proxy::ClusterStats {
    stats
        .clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("cluster {name} in stats"))
}

pub fn half_close(stream: &TcpStream) {
    stream
        .shutdown(Shutdown::Write)
        .expect("client half-closes");
}
