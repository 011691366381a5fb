//! Zeno's HTTP front: accepts connections with hyper, turns each request into a protocol
//! request for a PHP worker, and turns the worker's answer into the HTTP response.
//!
//! The host answers `/health` and `/ready` itself. Client-sent `X-Zeno-*` headers are removed
//! here, at the edge, and the request's scope is added back as `X-Zeno-<Key>` headers, so a
//! client can never spoof scope. Every input is bounded: headers (431), body (413).

mod mapping;
mod multipart;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zeno_host::Host;

pub use mapping::scope_header_name;

/// Limits and settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; larger gets 413.
    pub max_body: usize,
    /// Largest total size of request headers (names and values), in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Errors of the HTTP front itself (not of a request).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Accepting connections failed.
    #[error("could not accept connections: {0}")]
    Accept(#[from] std::io::Error),
}

/// What every connection shares.
struct Shared {
    host: Arc<Host>,
    config: HttpConfig,
    hostname: String,
    draining: AtomicBool,
}

/// Serves HTTP on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// in-flight requests finish within the grace period, and returns. `/ready` answers 503 from
/// the moment shutdown starts.
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    let hostname = nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared {
        host,
        config,
        hostname,
        draining: AtomicBool::new(false),
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let local = listener.local_addr()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(shared.config.max_header_bytes.max(8192) + 1024);

    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: keep serving the open connections.
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&shared, req, remote, local).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
        });
    }

    shared.draining.store(true, Ordering::SeqCst);
    drop(listener);
    tracing::info!("stopped accepting connections; waiting for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish within the grace period"
        );
    }
    Ok(())
}

async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    remote: SocketAddr,
    local: SocketAddr,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/health" => {
            return mapping::json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok", "server": shared.hostname}),
            )
        }
        "/ready" => {
            let live = shared.host.live_workers();
            let ready = live > 0 && !shared.draining.load(Ordering::SeqCst);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return mapping::json(
                status,
                &serde_json::json!({"status": if ready { "ready" } else { "unavailable" }, "workers": live}),
            );
        }
        _ => {}
    }
    mapping::dispatch(&shared.host, &shared.config, req, remote, local).await
}
