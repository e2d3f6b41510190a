//! The admin HTTP server (HTTP/1, loopback only) on the admin runtime, so scraping it never
//! competes with traffic for worker threads.
//!
//! | path | answer |
//! |---|---|
//! | `GET /stats` | 200, [`Stats`](crate::Stats) as JSON |
//! | `GET /config_dump` | 200, the last applied snapshot as JSON; 404 with a JSON error before the first apply |
//! | `GET /ready` | 200 `ready` once a snapshot is applied, 503 `not ready` before |
//! | `POST /drain?direction=inbound` | drains that direction (`inbound`, `outbound`; both without the parameter) as `DataPlane::drain` does; 200 once its listeners stopped accepting |
//! | `POST /quitquitquit` | 200; sets the flag `DataPlane::quit_requested` reports (the agent polls it and shuts down, as pilot-agent does for Envoy) |
//! | anything else | 404 (405 for another method on a known path) |
//!
//! The server binds loopback only (checked at start); the two POST endpoints also refuse
//! any peer that is not loopback (403).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use meshcore_snapshot::Direction;
use tokio::sync::oneshot;

use crate::dataplane::{Drainer, Shared};

/// Serves until `stop` fires. Connections in progress are dropped with it.
pub(crate) async fn serve(listener: TcpListener, drainer: Drainer, stop: CancellationToken) {
    let drainer = Arc::new(drainer);
    if let Ok(address) = listener.local_addr() {
        info!(%address, "admin server listening");
    }
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                // Out of file descriptors and the like: do not spin on the error.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let drainer = Arc::clone(&drainer);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let drainer = Arc::clone(&drainer);
                async move {
                    let local = peer.ip().is_loopback();
                    Ok::<_, Infallible>(respond(&request, &drainer, local).await)
                }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = stop.cancelled() => {}
                served = connection => if let Err(e) = served {
                    debug!(%peer, error = %e, "admin connection ended with an error");
                },
            }
        });
    }
}

async fn respond(
    request: &Request<Incoming>,
    drainer: &Arc<Drainer>,
    local_peer: bool,
) -> Response<Full<Bytes>> {
    let shared: &Shared = &drainer.shared;
    let path = request.uri().path();
    let method = match path {
        "/stats" | "/config_dump" | "/ready" => Method::GET,
        "/drain" | "/quitquitquit" => Method::POST,
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if request.method() != method {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    if method == Method::POST && !local_peer {
        return text(StatusCode::FORBIDDEN, "only from localhost\n");
    }
    match path {
        "/drain" => drain(request.uri().query(), drainer).await,
        "/quitquitquit" => {
            info!("quit requested through the admin server");
            shared.quit_requested.store(true, Ordering::Release);
            text(StatusCode::OK, "OK\n")
        }
        "/stats" => json(StatusCode::OK, serde_json::to_vec(&shared.stats())),
        "/config_dump" => match shared.applied() {
            Some(snapshot) => json(StatusCode::OK, serde_json::to_vec(&*snapshot)),
            None => json(
                StatusCode::NOT_FOUND,
                serde_json::to_vec(&serde_json::json!({
                    "error": "no_snapshot",
                    "message": "no snapshot has been applied yet",
                })),
            ),
        },
        _ if shared.applied().is_some() => text(StatusCode::OK, "ready\n"),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

/// `POST /drain[?direction=inbound|outbound]`.
async fn drain(query: Option<&str>, drainer: &Arc<Drainer>) -> Response<Full<Bytes>> {
    let mut directions = vec![Direction::Inbound, Direction::Outbound];
    for (key, value) in query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
    {
        if key != "direction" {
            continue;
        }
        directions = match value {
            "inbound" => vec![Direction::Inbound],
            "outbound" => vec![Direction::Outbound],
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "direction must be inbound or outbound\n",
                );
            }
        };
    }
    // Stopping accept loops blocks (briefly): do it on a thread of its own, not the admin
    // runtime's only thread. Not spawn_blocking: a shutdown holding the data plane's lock
    // joins the admin runtime, which would wait for a blocking task waiting for that lock.
    let (done, finished) = oneshot::channel();
    let drainer = Arc::clone(drainer);
    let spawned = std::thread::Builder::new()
        .name("meshcore-drain".into())
        .spawn(move || {
            for direction in directions {
                drainer.drain(direction);
            }
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the drain thread");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot start draining\n");
    }
    match finished.await {
        Ok(()) => text(StatusCode::OK, "draining\n"),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "drain did not finish\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        status,
        Bytes::from_static(body.as_bytes()),
        "text/plain; charset=utf-8",
    )
}

fn json(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Response<Full<Bytes>> {
    match body {
        Ok(body) => with_type(status, Bytes::from(body), "application/json"),
        Err(e) => {
            warn!(error = %e, "cannot serialise admin response");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot serialise response\n",
            )
        }
    }
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
