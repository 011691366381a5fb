//! A Rust web app (axum) that mounts PHP: examples/laravel under `/app` and as the fallback,
//! with the request's scope computed in Rust — who the user is (a signed login cookie) and
//! what their cart holds (a Rust cart service) — and a Rust host function `cart_add` that
//! PHP calls. One `/metrics` for both; SIGTERM stops both gracefully.
//!
//! `cargo run -p zeno-example-orchestrator` serves it on 127.0.0.1:8080
//! (`ZENO_ORCHESTRATOR_LISTEN` to change it). Try `/rust`, `/login?user=7`, `/app/whoami`,
//! `/app/cart/add?amount=12.5`, `/whoami`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, Key, SignedCookieJar};
use serde_json::Value;
use zeno_host::{CallError, HostBuilder};
use zeno_http::{HttpConfig, Peer, PhpService, Scope};

/// The app's own state: the carts (a stand-in for a real cart service) and the cookie key.
#[derive(Clone)]
struct App {
    carts: Arc<Mutex<HashMap<u64, f64>>>,
    key: Key,
    local: SocketAddr,
}

impl axum::extract::FromRef<App> for Key {
    fn from_ref(app: &App) -> Key {
        app.key.clone()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Installed first, so a SIGTERM while the workers boot stops the app gracefully too.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    let laravel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../laravel");
    let carts: Arc<Mutex<HashMap<u64, f64>>> = Arc::default();
    let database = std::env::var("ZENO_DB_DEFAULT")
        .unwrap_or_else(|_| "sqlite://examples/laravel/database/demo.sqlite".into());
    let mut databases = std::collections::BTreeMap::new();
    databases.insert(
        "default".to_owned(),
        zeno_host::ConnectionConfig::new(database),
    );
    let host = HostBuilder::laravel(&laravel)
        .workers(2)
        .task_workers(1)
        .databases(zeno_host::Databases::connect(databases)?)
        .typed_function("cart_add", {
            let carts = carts.clone();
            // The user comes from the request's scope, which Rust set: PHP cannot add to
            // another user's cart.
            move |ctx: zeno_host::CallContext, add: CartAdd| {
                let carts = carts.clone();
                async move {
                    let user = ctx
                        .scope
                        .get("user_id")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| {
                            CallError::new("unauthenticated", "cart_add needs a logged-in user")
                        })?;
                    if !add.amount.is_finite() || add.amount <= 0.0 {
                        return Err(CallError::invalid("amount must be a positive number"));
                    }
                    let mut carts = carts
                        .lock()
                        .map_err(|_| CallError::new("internal", "cart store poisoned"))?;
                    let total = carts.entry(user).or_insert(0.0);
                    *total += add.amount;
                    Ok(CartTotal {
                        user_id: user,
                        cart_total: *total,
                    })
                }
            }
        })
        .build()
        .await
        .context("starting the PHP workers")?;
    let host = Arc::new(host);

    let listen =
        std::env::var("ZENO_ORCHESTRATOR_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let app = App {
        carts,
        key: Key::generate(),
        local,
    };

    let config = HttpConfig {
        static_dir: Some(laravel.join("public")),
        ..HttpConfig::default()
    };
    let php = PhpService::new(host.clone(), config);
    let router = Router::new()
        .route("/rust", get(|| async { "Hello from Rust" }))
        .route("/login", get(login))
        .route("/metrics", get(move || async move { metrics.render() }))
        .route_service("/app", php.clone().nest("/app"))
        .route_service("/app/{*rest}", php.clone().nest("/app"))
        .fallback_service(php)
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .with_state(app);

    tracing::info!(addr = %local, "orchestrator listening");
    println!("listening on {local}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
    })
    .await?;
    host.shutdown().await;
    tracing::info!("orchestrator stopped");
    Ok(())
}

/// What PHP sends to `cart_add`.
#[derive(serde::Deserialize)]
struct CartAdd {
    amount: f64,
}

/// What `cart_add` answers.
#[derive(serde::Serialize)]
struct CartTotal {
    user_id: u64,
    cart_total: f64,
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    user: u64,
}

/// Logs a user in: a cookie signed with the app's key, which the client cannot forge.
async fn login(jar: SignedCookieJar, Query(q): Query<LoginQuery>) -> impl IntoResponse {
    let jar = jar.add(
        Cookie::build(("user_id", q.user.to_string()))
            .path("/")
            .http_only(true),
    );
    (jar, format!("logged in as {}", q.user))
}

/// Puts who the user is and their cart total into the request's scope, for PHP.
async fn authenticate(
    State(app): State<App>,
    jar: SignedCookieJar,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let mut scope = Scope::new();
    if let Some(user) = jar
        .get("user_id")
        .and_then(|cookie| cookie.value().parse::<u64>().ok())
    {
        let total = app
            .carts
            .lock()
            .map(|carts| carts.get(&user).copied().unwrap_or(0.0))
            .unwrap_or(0.0);
        scope.insert("user_id", user);
        scope.insert("cart_total", total);
    }
    request.extensions_mut().insert(scope);
    request.extensions_mut().insert(Peer {
        remote,
        local: app.local,
    });
    next.run(request).await
}
