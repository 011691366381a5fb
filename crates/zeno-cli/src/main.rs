//! The `zeno` binary: a thin shell over `zeno-host` and `zeno-http` that reads the
//! configuration, installs logging, handles signals and serves.

mod config;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use config::{Config, Dur, LogFormat, Size};

#[derive(Parser)]
#[command(
    name = "zeno",
    about = "Runs PHP applications on warm workers from Rust",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a PHP handler (or a Laravel app) over HTTP.
    Serve(Box<ServeArgs>),
    /// Print the version.
    Version,
}

#[derive(Args)]
struct ServeArgs {
    /// A PHP file that returns a callable handling each request.
    #[arg(long, value_name = "HANDLER.php", conflicts_with = "laravel")]
    worker: Option<PathBuf>,
    /// A Laravel application directory.
    #[arg(long, value_name = "APP_DIR")]
    laravel: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Number of PHP worker processes.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Configuration file (zeno.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A named database connection, NAME=URL (repeatable).
    #[arg(long = "db", value_name = "NAME=URL")]
    db: Vec<String>,
    /// Longest a request may run in PHP before its worker is killed (504).
    #[arg(long, value_name = "DURATION")]
    exec_timeout: Option<Dur>,
    /// Recycle a worker after N requests (0: never).
    #[arg(long, value_name = "N")]
    max_jobs: Option<u64>,
    /// Recycle a worker whose memory passes this size (e.g. 256M; 0: never).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<Size>,
    /// Longest a request may wait for a free worker (503).
    #[arg(long, value_name = "DURATION")]
    allocate_timeout: Option<Dur>,
    /// The PHP binary (default php-cgi).
    #[arg(long, value_name = "BINARY")]
    php: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("zeno {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => {
            let config = resolve(*args)?;
            init_tracing(&config.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(config))
        }
    }
}

/// Merges the config file, the environment and the flags (flags win).
fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(worker) = args.worker {
        config.workers.handler = Some(worker);
        config.workers.laravel = None;
    }
    if let Some(laravel) = args.laravel {
        config.workers.laravel = Some(laravel);
        config.workers.handler = None;
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(workers) = args.workers {
        config.workers.count = workers;
    }
    for db in args.db {
        let Some((name, url)) = db.split_once('=') else {
            bail!("--db expects NAME=URL, got {db:?}");
        };
        if name.is_empty() || url.is_empty() {
            bail!("--db expects NAME=URL, got {db:?}");
        }
        config.db.insert(name.to_owned(), url.to_owned());
    }
    if let Some(v) = args.exec_timeout {
        config.workers.exec_timeout = v;
    }
    if let Some(v) = args.max_jobs {
        config.workers.max_jobs = v;
    }
    if let Some(v) = args.max_memory {
        config.workers.max_memory = v;
    }
    if let Some(v) = args.allocate_timeout {
        config.workers.allocate_timeout = v;
    }
    if let Some(v) = args.php {
        config.workers.php = v;
    }
    if let Some(v) = args.log_format {
        config.log.format = v;
    }
    if config.workers.count == 0 {
        bail!("workers must be at least 1");
    }
    Ok(config)
}

fn init_tracing(log: &config::LogConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZENO_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .context("invalid log level")?;
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if config.workers.laravel.is_some() {
        bail!("--laravel is not available in this version yet; serve a handler with --worker HANDLER.php");
    }
    if !config.db.is_empty() {
        let names: Vec<_> = config.db.keys().collect();
        bail!("database connections ({names:?}) are not available in this version yet");
    }
    let Some(handler) = config.workers.handler.clone() else {
        bail!("nothing to serve: pass --worker HANDLER.php (or set workers.handler in zeno.toml)");
    };
    let w = &config.workers;
    let mut builder = zeno_host::HostBuilder::new(&handler)
        .php_binary(&w.php)
        .workers(w.count)
        .env_allowlist(w.env_allowlist.clone())
        .boot_timeout(w.boot_timeout.0)
        .exec_timeout(w.exec_timeout.0)
        .allocate_timeout(w.allocate_timeout.0)
        .stop_grace(w.stop_grace.0)
        .max_jobs(w.max_jobs)
        .max_memory(w.max_memory.0)
        .max_queue(w.max_queue)
        .max_line(usize::try_from(w.max_line.0).context("workers.max_line is too large")?)
        .max_host_call(
            usize::try_from(w.max_host_call.0).context("workers.max_host_call is too large")?,
        );
    for (name, value) in &w.ini {
        builder = builder.ini(name, value);
    }
    for (name, value) in &w.env {
        builder = builder.env(name, value);
    }
    for (key, value) in &config.scope {
        builder = builder.scope_value(key, value.clone());
    }
    if let Ok(dir) = std::env::var("ZENO_PHP_CLIENT_DIR") {
        builder = builder.runtime_dir(dir);
    }

    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let host = Arc::new(
        builder
            .build()
            .await
            .with_context(|| format!("starting PHP workers for {}", handler.display()))?,
    );
    let addr = listener.local_addr()?;
    tracing::info!(%addr, handler = %handler.display(), workers = host.live_workers(), "zeno is serving");

    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let http = zeno_http::HttpConfig {
        max_body: usize::try_from(config.server.max_body.0)
            .context("server.max_body is too large")?,
        max_header_bytes: usize::try_from(config.server.max_header.0)
            .context("server.max_header is too large")?,
        shutdown_grace: config.server.shutdown_grace.0,
    };
    zeno_http::serve(host.clone(), listener, http, shutdown).await?;
    host.shutdown().await;
    tracing::info!("zeno stopped");
    Ok(())
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once (the kernel then kills the
/// workers through PR_SET_PDEATHSIG).
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down (a second signal exits at once)");
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}
