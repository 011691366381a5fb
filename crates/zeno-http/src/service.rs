//! The PHP front as a `tower::Service`, so a Rust web app (axum, hyper, anything tower) can
//! mount PHP under a route, a nested router or a fallback, and give each request a scope its
//! own middleware computed. `zeno serve` runs the same service behind its own listener.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use serde_json::{Map, Value};
use zeno_host::Host;

use crate::{mapping, static_files, HttpConfig, ResponseBody};

/// Scope values for one request, put in its extensions by the embedding app's own middleware
/// (who the user is, what the cart holds). They are merged over the host's static `[scope]`;
/// the host's `request_id` wins over both. PHP sees them as `$_ZENO`, `\Zeno::scope()` and
/// `X-Zeno-<Key>` headers — and a client can never set them: client `X-Zeno-*` headers are
/// dropped at the edge whatever the scope.
///
/// ```
/// let mut request = http::Request::new(());
/// request
///     .extensions_mut()
///     .insert(zeno_http::Scope::new().with("user_id", 42).with("cart_total", 99.5));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope(pub Map<String, Value>);

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Scope::default()
    }

    /// Adds (or replaces) a value.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Adds (or replaces) a value in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }
}

/// The two ends of the connection a request came on, for `REMOTE_ADDR`/`SERVER_ADDR`. `zeno
/// serve` inserts it; an embedding app inserts it from its own connection info (axum's
/// `ConnectInfo`). Without it PHP sees `0.0.0.0:0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the request arrived on.
    pub local: SocketAddr,
}

/// The PHP front: for every request, a file from the static directory when one matches, else
/// a PHP worker's answer — with the limits, upload handling, anti-spoofing and response
/// mapping of `zeno serve`. Cheap to clone; answers every request (errors are responses).
///
/// ```no_run
/// # async fn demo(host: std::sync::Arc<zeno_host::Host>) {
/// use tower_service::Service as _;
/// let mut php = zeno_http::PhpService::new(host, zeno_http::HttpConfig::default());
/// let response = php
///     .call(http::Request::new(http_body_util::Empty::<bytes::Bytes>::new()))
///     .await
///     .unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct PhpService {
    front: Arc<Front>,
}

struct Front {
    host: Arc<Host>,
    config: HttpConfig,
    static_root: Option<PathBuf>,
    prefix: String,
}

impl std::fmt::Debug for PhpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhpService")
            .field("static_root", &self.front.static_root)
            .finish_non_exhaustive()
    }
}

impl PhpService {
    /// The front for `host`, with `config`'s limits and its `static_dir` (a Laravel app's
    /// `public/`; a missing directory is logged and serves nothing).
    pub fn new(host: Arc<Host>, config: HttpConfig) -> Self {
        let static_root = match &config.static_dir {
            Some(dir) => match std::fs::canonicalize(dir) {
                Ok(root) => Some(root),
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "no static files served");
                    None
                }
            },
            None => None,
        };
        PhpService {
            front: Arc::new(Front {
                host,
                config,
                static_root,
                prefix: String::new(),
            }),
        }
    }

    /// The app is mounted under `prefix` (`/app`): requests keep their full path, and PHP
    /// sees `SCRIPT_NAME` under the prefix and `PATH_INFO` after it, as PHP-FPM does for an
    /// app in a sub-path — so Laravel's routes match and its URLs carry the prefix. Mount the
    /// service where it receives the full path (axum: `route_service("/app/{*rest}", …)`,
    /// not `nest_service`, which strips it).
    pub fn nest(self, prefix: &str) -> Self {
        let prefix = format!("/{}", prefix.trim_matches('/'));
        let front = &self.front;
        PhpService {
            front: Arc::new(Front {
                host: front.host.clone(),
                config: front.config.clone(),
                static_root: front.static_root.clone(),
                prefix: if prefix == "/" { String::new() } else { prefix },
            }),
        }
    }

    /// The host the service sends requests to.
    pub fn host(&self) -> &Arc<Host> {
        &self.front.host
    }

    /// Answers one request: a static file, or PHP's response.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let front = &self.front;
        if let Some(root) = &front.static_root {
            let found =
                static_files::lookup(root, req.method(), req.uri().path(), req.headers()).await;
            if let Some(response) = found {
                metrics::counter!("zeno_http_static_total").increment(1);
                return response;
            }
        }
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let peer = req.extensions().get::<Peer>().copied().unwrap_or(Peer {
            remote: unknown,
            local: unknown,
        });
        let scope = req
            .extensions()
            .get::<Scope>()
            .map(|scope| scope.0.clone())
            .unwrap_or_default();
        mapping::dispatch(
            &front.host,
            &front.config,
            req,
            scope,
            &front.prefix,
            peer.remote,
            peer.local,
        )
        .await
    }
}

impl<B> tower_service::Service<Request<B>> for PhpService
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Back-pressure is the pool's queue (503 when full), not the service's readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(req).await) })
    }
}
