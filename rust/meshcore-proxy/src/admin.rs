//! The admin HTTP server (HTTP/1, loopback only) on the admin runtime, so scraping it never
//! competes with traffic for worker threads.
//!
//! | path | answer |
//! |---|---|
//! | `GET /stats` | 200, [`Stats`](crate::Stats) as JSON |
//! | `GET /config_dump` | 200, the last applied snapshot as JSON; 404 with a JSON error before the first apply |
//! | `GET /ready` | 200 `ready` once a snapshot is applied, 503 `not ready` before |
//! | anything else | 404 (405 for another method on a known path) |

use std::convert::Infallible;
use std::sync::Arc;

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

use crate::dataplane::Shared;

/// Serves until `stop` fires. Connections in progress are dropped with it.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
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
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &shared);
                async move { Ok::<_, Infallible>(response) }
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

fn respond(request: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let known = matches!(path, "/stats" | "/config_dump" | "/ready");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
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
