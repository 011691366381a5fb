//! Zeno's HTTP front: accepts connections with hyper, turns each request into a protocol
//! request for a PHP worker, and turns the worker's answer into the HTTP response.
//!
//! The host answers `/health` and `/ready` itself. Client-sent `X-Zeno-*` headers (and
//! header names with `_`, which PHP would file under the same `$_SERVER` key) are removed here,
//! at the edge, and the request's scope is added back as `X-Zeno-<Key>` headers, so a client
//! can never spoof scope. Every input is bounded: headers in size (431) and time
//! (`header_timeout`), the body in size (413) and in the time between chunks (408), idle
//! keep-alive connections in time, and connections in number (`max_connections`).

#![deny(missing_docs)]

mod body;
mod conn;
mod headers;
mod mapping;
mod multipart;
mod service;
mod static_files;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use zeno_host::Host;

pub use headers::scope_header_name;
pub use service::{Peer, PhpService, Scope};

/// The body of every response the front sends: bytes in memory, or a file streamed from disk.
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A response body held in memory.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty response body.
pub(crate) fn empty() -> ResponseBody {
    full(Bytes::new())
}

/// Limits and settings of the HTTP front: the `[server]` section of `zeno.toml`, whose
/// defaults are the ones documented (docs/operations.md).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The address `zeno serve` listens on ([`serve`] takes a bound listener instead).
    pub listen: String,
    /// Largest request body accepted, in bytes; larger gets 413.
    #[serde(deserialize_with = "zeno_config::size_usize")]
    pub max_body: usize,
    /// Largest total size of request headers (names and values), in bytes; larger gets 431.
    #[serde(rename = "max_header", deserialize_with = "zeno_config::size_usize")]
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub shutdown_grace: Duration,
    /// After shutdown starts, how long `/ready` answers 503 while the listener still accepts
    /// and serves new connections, so a load balancer polling `/ready` stops sending before
    /// the listener closes. Then the drain (`shutdown_grace`) begins. `0`: close at once.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub drain_delay: Duration,
    /// A directory whose files the host serves itself (a Laravel app's `public/`); requests
    /// for anything else — and always for `.php` files and dotfiles — go to PHP.
    #[serde(skip)]
    pub static_dir: Option<std::path::PathBuf>,
    /// Longest a client may take to send a request's headers, counted from when the host
    /// starts waiting for them (on a kept-alive connection, from the previous response); the
    /// connection is closed past it. `None` (`0` in the file): no limit.
    #[serde(deserialize_with = "zeno_config::duration_or_off")]
    pub header_timeout: Option<Duration>,
    /// Longest wait for the next chunk of a request body; past it the request gets 408.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub body_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    /// `None` (`0` in the file): kept as long as `header_timeout` allows.
    #[serde(deserialize_with = "zeno_config::duration_or_off")]
    pub keepalive_timeout: Option<Duration>,
    /// Most connections open at once; past it new connections wait in the listen backlog
    /// until one closes, while the open ones keep being served.
    pub max_connections: usize,
    /// Pass header names containing `_` to PHP (nginx's `underscores_in_headers`). Off: they
    /// are dropped, since PHP files `X_Foo` and `X-Foo` under the same `$_SERVER` key. On, a
    /// kept name still never shares a key with another header, nor lands on `HTTP_X_ZENO_*`.
    pub underscores_in_headers: bool,
    /// Directories whose files PHP may have the host send with an `X-Sendfile: PATH`
    /// response header (Laravel: `BinaryFileResponse::trustXSendfileTypeHeader()`). Empty:
    /// off. When set, PHP is told with `X-Sendfile-Type: X-Sendfile` on every request.
    pub sendfile_dirs: Vec<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            max_body: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            static_dir: None,
            header_timeout: Some(Duration::from_secs(30)),
            body_timeout: Duration::from_secs(30),
            keepalive_timeout: Some(Duration::from_secs(15)),
            max_connections: 10_000,
            underscores_in_headers: false,
            sendfile_dirs: Vec::new(),
        }
    }
}

/// Errors of the HTTP front itself (not of a request).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Accepting connections failed.
    #[error("could not accept connections")]
    Accept(#[from] std::io::Error),
}

/// What every connection shares.
struct Shared {
    host: Arc<Host>,
    config: HttpConfig,
    hostname: String,
    draining: AtomicBool,
    /// The PHP front every request that is not a probe goes to.
    php: PhpService,
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// `/health` and `/ready`, answered by the host on both listeners. `None` for other paths.
fn probe(
    path: &str,
    host: &Host,
    draining: bool,
    hostname: &str,
) -> Option<Response<ResponseBody>> {
    match path {
        "/health" => Some(mapping::json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "server": hostname}),
        )),
        "/ready" => {
            let live = host.live_workers();
            let ready = live > 0 && !draining;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Some(mapping::json(
                status,
                &serde_json::json!({"status": if ready { "ready" } else { "unavailable" }, "workers": live, "draining": draining}),
            ))
        }
        _ => None,
    }
}

/// Serves HTTP on `listener` until `shutdown` is cancelled, then — after `drain_delay`, during
/// which it still accepts — stops accepting, lets in-flight requests finish within the grace
/// period, and returns. `/ready` answers 503 from the moment shutdown starts.
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    let hostname = hostname();
    let grace = config.shutdown_grace;
    let php = PhpService::new(host.clone(), config.clone());
    let shared = Arc::new(Shared {
        host,
        config,
        hostname,
        draining: AtomicBool::new(false),
        php,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let local = listener.local_addr()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper timer: its header timeout arms a timer per request; the header and keep-alive
    // limits are enforced per connection by conn::IdleIo instead.
    builder
        .http1()
        .max_buf_size(shared.config.max_header_bytes.max(8192) + 1024);
    let limits = conn::Limits {
        header: shared.config.header_timeout,
        idle: shared.config.keepalive_timeout,
    };
    let connections = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    // Resolves when the listener must close: at shutdown, after the drain delay.
    let stop = {
        let shared = shared.clone();
        let delay = shared.config.drain_delay;
        async move {
            shutdown.cancelled().await;
            shared.draining.store(true, Ordering::SeqCst);
            if !delay.is_zero() {
                tracing::info!(
                    ?delay,
                    "draining: /ready answers 503; still accepting for the drain delay"
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    tokio::pin!(stop);

    loop {
        // A connection slot first: at the limit, new connections wait in the backlog.
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
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
        let in_flight = conn::InFlight::new();
        let io = conn::IdleIo::new(stream, limits, in_flight.clone());
        let shared = shared.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            // In flight until the response body has been sent: hyper drops the body then.
            let guard = in_flight.enter();
            async move {
                let response = handle(&shared, req, remote, local).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| conn::Guarded::new(body, guard)),
                )
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
            drop(permit);
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
    mut req: Request<Incoming>,
    remote: SocketAddr,
    local: SocketAddr,
) -> Response<ResponseBody> {
    let draining = shared.draining.load(Ordering::SeqCst);
    if let Some(response) = probe(req.uri().path(), &shared.host, draining, &shared.hostname) {
        return response;
    }
    let started = std::time::Instant::now();
    req.extensions_mut().insert(Peer { remote, local });
    let response = shared.php.handle(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("zeno_http_requests_total", "status" => status.clone()).increment(1);
    metrics::histogram!("zeno_http_request_duration_seconds", "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Renders the metrics page; the binary passes its recorder's renderer.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves the admin endpoints on `listener` until `stop` is cancelled:
/// `GET /metrics` (Prometheus text), `GET /workers` (JSON), `POST /reload` (rolling restart),
/// `GET /health` and `GET /ready`. `/ready` answers 503 from the moment `draining` is
/// cancelled, which is why this listener outlives the main one during shutdown.
pub async fn serve_admin(
    host: Arc<Host>,
    listener: TcpListener,
    metrics: MetricsRenderer,
    draining: CancellationToken,
    stop: CancellationToken,
) -> Result<(), HttpError> {
    let hostname = Arc::new(hostname());
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(error = %err, "admin accept failed");
                    continue;
                }
            },
        };
        let host = host.clone();
        let metrics = metrics.clone();
        let draining = draining.clone();
        let hostname = hostname.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let response = admin(&host, &metrics, draining.is_cancelled(), &hostname, &req);
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

fn admin(
    host: &Host,
    metrics: &MetricsRenderer,
    draining: bool,
    hostname: &str,
    req: &Request<Incoming>,
) -> Response<ResponseBody> {
    if let Some(response) = probe(req.uri().path(), host, draining, hostname) {
        return response;
    }
    match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/metrics") => {
            let mut response = Response::new(full(metrics()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (&http::Method::GET, "/workers") => mapping::json(
            StatusCode::OK,
            &serde_json::json!({
                "live": host.live_workers(),
                "draining": draining,
                "workers": host.workers(),
                "tasks": host.task_workers(),
                "databases": host.database_pools(),
                "transactions": host.open_transactions(),
            }),
        ),
        (&http::Method::POST, "/reload") => {
            host.reload();
            mapping::json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"status": "reloading"}),
            )
        }
        (_, "/metrics" | "/workers" | "/reload") => {
            mapping::text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
        }
        _ => mapping::text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// The request and response mappings, reachable from the micro-benchmarks
/// (`benches/mapping.rs`); not an API.
#[doc(hidden)]
pub mod __bench {
    use super::*;

    /// Maps a request as the front does before dispatching it (no uploads).
    pub async fn map_request<B>(req: Request<B>, config: &HttpConfig) -> bool
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let any = SocketAddr::from(([127, 0, 0, 1], 8080));
        let scope = serde_json::Map::new();
        mapping::map_request(req, config, &scope, None, any, any)
            .await
            .is_ok()
    }

    /// Maps a worker's response to the HTTP response the client gets.
    pub fn map_response(response: zeno_protocol::Response) -> Response<ResponseBody> {
        mapping::to_http(response, None, "r-1")
    }
}
