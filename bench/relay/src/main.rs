//! `relay WORKERS LISTEN=UPSTREAM [LISTEN=UPSTREAM ...]`: the floor of a user-space TCP hop.
//!
//! For every pair, accept a connection on LISTEN, connect to UPSTREAM, set TCP_NODELAY on
//! both sides and copy both ways with `tokio::io::copy_bidirectional` until either side
//! closes. No routing, no stats, no timeouts: whatever meshcore spends beyond this is the
//! cost of being a proxy. WORKERS is the tokio worker thread count (meshcore's
//! `--concurrency`).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: relay WORKERS LISTEN_ADDR:PORT=UPSTREAM_ADDR:PORT ...";

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).expect(USAGE);
    let pairs: Vec<(SocketAddr, SocketAddr)> = args
        .map(|a| {
            let (l, u) = a.split_once('=').expect(USAGE);
            (l.parse().expect(USAGE), u.parse().expect(USAGE))
        })
        .collect();
    assert!(!pairs.is_empty(), "{USAGE}");
    // One worker: a current-thread runtime, as each meshcore worker is, so the floor pays
    // no work-stealing scheduler either.
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_io().build()?.block_on(async move {
        let mut tasks = Vec::new();
        for (listen, upstream) in pairs {
            let listener = TcpListener::bind(listen).await?;
            tasks.push(tokio::spawn(serve(listener, upstream)));
        }
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    })
}

async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let mut down = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        tokio::spawn(async move {
            let Ok(mut up) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = down.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
        });
    }
}
