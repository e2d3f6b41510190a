//! What an idle keep-alive HTTP connection keeps on the heap, counted by a global
//! allocator that tracks live bytes (allocation sizes, not RSS: deterministic, so it can
//! be a test). The bench's `memory` scenario measures the RSS slope of the real sidecar.

// A counting `GlobalAlloc` cannot be written without `unsafe`; it only forwards to
// `System`. Test code only: the crates themselves keep `unsafe_code = "deny"`.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::json;
use support::http::{HttpUpstream, apply_http, forward_to, http_cluster, route_config, runtime};
use support::{IO_TIMEOUT, eventually, start_one_worker};

/// Live heap bytes, and live allocations by size class (powers of two) for the report.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static BY_SIZE: [AtomicI64; 24] = [const { AtomicI64::new(0) }; 24];
static BYTES_BY_SIZE: [AtomicI64; 24] = [const { AtomicI64::new(0) }; 24];

fn class(size: usize) -> usize {
    (usize::BITS - size.max(1).leading_zeros()) as usize % 24
}

fn count(size: usize, sign: i64) {
    let bytes = sign * i64::try_from(size).unwrap_or(i64::MAX);
    LIVE.fetch_add(bytes, Ordering::Relaxed);
    BY_SIZE[class(size)].fetch_add(sign, Ordering::Relaxed);
    BYTES_BY_SIZE[class(size)].fetch_add(bytes, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot() -> (i64, Vec<(usize, i64, i64)>) {
    let classes = (0..24)
        .map(|i| {
            (
                1usize << i.max(1_usize).saturating_sub(1),
                BY_SIZE[i].load(Ordering::Relaxed),
                BYTES_BY_SIZE[i].load(Ordering::Relaxed),
            )
        })
        .collect();
    (LIVE.load(Ordering::Relaxed), classes)
}

/// One keep-alive request, its whole response read; the connection stays open.
fn one_request(proxy: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).expect("connects");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
        .write_all(
            b"GET /idle HTTP/1.1\r\nhost: reviews\r\nuser-agent: test\r\naccept: */*\r\n\r\n",
        )
        .expect("writes");
    let mut buffer = [0u8; 4096];
    let mut seen = 0;
    loop {
        let n = stream.read(&mut buffer[seen..]).expect("reads");
        assert!(n > 0, "closed early");
        seen += n;
        let text = std::str::from_utf8(&buffer[..seen]).unwrap_or("");
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("content-length")
                .trim()
                .parse()
                .expect("number");
            if seen >= head_end + 4 + length {
                return stream;
            }
        }
    }
}

#[test]
fn an_idle_keep_alive_http_connection_keeps_little_besides_hypers_buffers() {
    const CONNECTIONS: usize = 200;
    let rt = runtime();
    let plane = start_one_worker();
    let upstream = HttpUpstream::start(&rt, "v1", false);
    let proxy = apply_http(
        &plane,
        vec![route_config(&["*"], vec![forward_to("c")])],
        vec![http_cluster("c", "http1", &[upstream.address])],
        json!({}),
    );
    // Warm up: the upstream connection, the pool, lazily built state.
    let mut held = Vec::with_capacity(CONNECTIONS + 1);
    held.push(one_request(proxy));
    let settled = |n: u64| assert!(eventually(|| plane.stats().totals.http_requests == n));
    settled(1);
    std::thread::sleep(Duration::from_millis(200));
    let (before, classes_before) = snapshot();
    for _ in 0..CONNECTIONS {
        held.push(one_request(proxy));
    }
    settled(1 + CONNECTIONS as u64);
    std::thread::sleep(Duration::from_millis(200));
    let (after, classes_after) = snapshot();
    let per_connection = (after - before) / CONNECTIONS as i64;
    eprintln!("heap per idle connection: {per_connection} bytes");
    for ((size, n0, b0), (_, n1, b1)) in classes_before.iter().zip(&classes_after) {
        if n1 != n0 {
            eprintln!(
                "  size class ≤ {:>6}: {:+.2} allocations, {:+} bytes per connection",
                size * 2,
                (n1 - n0) as f64 / CONNECTIONS as f64,
                (b1 - b0) / CONNECTIONS as i64
            );
        }
    }
    // hyper's HTTP/1 server allocates its read and write buffers at 8 KiB each and keeps
    // them for the connection's life; only the pages written become resident, which is
    // what the bench's RSS slope sees. What meshcore itself keeps is the rest.
    let buffers: i64 = classes_before
        .iter()
        .zip(&classes_after)
        .filter(|((size, _, _), _)| size * 2 > 8 * 1024)
        .map(|((_, _, b0), (_, _, b1))| (b1 - b0) / CONNECTIONS as i64)
        .sum();
    let ours = per_connection - buffers;
    eprintln!("of which hyper's I/O buffers: {buffers} bytes, the rest: {ours} bytes");
    assert!(
        buffers <= 2 * 8 * 1024 + 256,
        "hyper's two I/O buffers grew: {buffers} bytes"
    );
    assert!(
        ours <= 6 * 1024,
        "an idle connection keeps {ours} bytes besides hyper's buffers (was 4.7 KiB; 8 KiB \
         when its task held its futures twice)"
    );
    drop(held);
    plane.shutdown(Duration::from_secs(1));
}
