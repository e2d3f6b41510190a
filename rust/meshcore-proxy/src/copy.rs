//! Bidirectional copy of one proxied connection: half-close, idle timeout, live byte
//! counts, and buffers that cost nothing while a connection is idle.
//!
//! Each direction waits for its source to become readable *before* taking a buffer, reads
//! what is there without zero-filling, writes it all, and gives the buffer back when the
//! source runs dry. So an idle connection holds no buffer at all; an active one allocates
//! per burst, which the allocator's thread cache makes cheap. A direction starts with
//! small reads and doubles its read size whenever a read fills it, up to
//! [`MAX_READ`], so bulk transfers do few large syscalls and chatty ones stay small.
//!
//! Half-close: EOF on one side becomes `shutdown(Write)` on the other, and the opposite
//! direction keeps flowing until it ends too. An I/O error in either direction ends both
//! (the connection is broken). The idle timer counts from the last byte moved either way
//! (to within a quarter of the timeout).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::stats::UpstreamMeter;

/// First read size of a direction.
const INITIAL_READ: usize = 4 * 1024;
/// Largest read size a busy direction grows to.
const MAX_READ: usize = 64 * 1024;

/// How a copy ended.
#[derive(Debug)]
pub(crate) enum CopyEnd {
    /// Both directions reached EOF and were shut down.
    Completed,
    /// No bytes moved either way for the idle timeout.
    IdleTimeout,
    /// One side failed (reset, broken pipe); both were closed.
    Failed(io::Error),
}

/// Copies until both directions end, an error, or the idle timeout; then both sockets are
/// closed by dropping them.
pub(crate) async fn copy_bidirectional(
    downstream: TcpStream,
    upstream: TcpStream,
    idle_timeout: Option<Duration>,
    meter: &UpstreamMeter,
) -> CopyEnd {
    let (downstream_read, mut downstream_write) = downstream.into_split();
    let (upstream_read, mut upstream_write) = upstream.into_split();
    let activity = Activity::new();
    let both = async {
        tokio::try_join!(
            pump(&downstream_read, &mut upstream_write, &activity, |n| meter
                .upstream(n)),
            pump(&upstream_read, &mut downstream_write, &activity, |n| meter
                .downstream(n)),
        )
    };
    let finished = match idle_timeout {
        None => both.await,
        Some(idle) => tokio::select! {
            finished = both => finished,
            () = activity.idle_for(idle) => return CopyEnd::IdleTimeout,
        },
    };
    match finished {
        Ok(_) => CopyEnd::Completed,
        Err(e) => CopyEnd::Failed(e),
    }
}

/// Copies one direction to EOF, then half-closes the destination.
async fn pump(
    source: &OwnedReadHalf,
    destination: &mut OwnedWriteHalf,
    activity: &Activity,
    count: impl Fn(u64),
) -> io::Result<()> {
    let mut read_size = INITIAL_READ;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        source.readable().await?;
        if buffer.capacity() == 0 {
            buffer.reserve_exact(read_size);
        }
        match read_draining(source.as_ref(), &mut buffer) {
            Ok((0, _)) => {
                return match destination.shutdown().await {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
                    _ => Ok(()),
                };
            }
            Ok((n, drained)) => {
                activity.touch();
                destination.write_all(&buffer).await?;
                activity.touch();
                count(n as u64);
                if n >= read_size && read_size < MAX_READ {
                    read_size *= 2;
                    buffer = Vec::new();
                } else if drained {
                    // Give the buffer back while waiting for the next burst.
                    buffer = Vec::new();
                } else {
                    buffer.clear();
                }
            }
            // Drained: give the buffer back while waiting for the next burst.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => buffer = Vec::new(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One read into `buffer`'s spare capacity; `true` with it when the read was short, i.e.
/// the socket is drained. A short read clears the socket's readiness (as tokio's
/// `poll_read` does), so the next `readable()` waits for the kernel instead of costing a
/// `read` that returns `EAGAIN`.
fn read_draining(source: &TcpStream, buffer: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    let room = buffer.capacity() - buffer.len();
    let mut read = None;
    let result = source.try_io(Interest::READABLE, || {
        let n = source.try_read_buf(buffer)?;
        read = Some(n);
        if n > 0 && n < room {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match (result, read) {
        (Ok(n), _) => Ok((n, false)),
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok((n, true)),
        (Err(e), _) => Err(e),
    }
}

/// Whether bytes moved on a connection, shared by its two directions: a counter the data
/// path bumps (no clock read per chunk) and the idle timer compares when it wakes.
#[derive(Debug, Default)]
struct Activity {
    moved: AtomicU64,
}

/// How many times per idle timeout the idle timer looks: the timeout then fires within
/// [idle, idle × (1 + 1/CHECKS)) of the last byte.
const CHECKS: u32 = 4;

impl Activity {
    fn new() -> Self {
        Self::default()
    }

    fn touch(&self) {
        // Both directions run in one task: a plain load and store, no locked add.
        let moved = self.moved.load(Ordering::Relaxed);
        self.moved.store(moved.wrapping_add(1), Ordering::Relaxed);
    }

    /// Resolves once no bytes have moved for `idle`: one timer, re-armed each time it
    /// fires, never reset by the data path.
    async fn idle_for(&self, idle: Duration) {
        let step = (idle / CHECKS).max(Duration::from_millis(1));
        let sleep = tokio::time::sleep(step);
        tokio::pin!(sleep);
        let mut seen = self.moved.load(Ordering::Relaxed);
        let mut quiet = Duration::ZERO;
        loop {
            sleep.as_mut().await;
            let moved = self.moved.load(Ordering::Relaxed);
            if moved == seen {
                quiet += step;
                if quiet >= idle {
                    return;
                }
            } else {
                seen = moved;
                quiet = Duration::ZERO;
            }
            sleep.as_mut().reset(Instant::now() + step);
        }
    }
}
