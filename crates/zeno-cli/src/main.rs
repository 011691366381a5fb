//! The `zeno` binary: a thin shell over `zeno-host` and `zeno-http` that reads the
//! configuration, installs logging, handles signals and serves.

mod config;
mod security;
mod watch;
mod workers;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use config::{Config, Dur, Flags, LogFormat, Size};

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
    /// Run an artisan command of a Laravel app in a worker connected to the host's database
    /// pool: `zeno artisan APP_DIR -- migrate --force`.
    Artisan(ArtisanArgs),
    /// Show the workers of a running `zeno serve` (needs its admin listener).
    Workers(WorkersArgs),
    /// Print the version.
    Version,
}

#[derive(Args)]
struct WorkersArgs {
    /// The admin address of the running server.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9090",
        env = "ZENO_ADMIN__LISTEN"
    )]
    admin: String,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ArtisanArgs {
    /// The Laravel application directory.
    #[arg(value_name = "APP_DIR")]
    app: PathBuf,
    /// The artisan command and its arguments, after `--`.
    #[arg(last = true, value_name = "ARGS", required = true)]
    argv: Vec<String>,
    /// Configuration file (zeno.toml), for its `[db]` connections and worker settings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A named database connection, NAME=URL (repeatable).
    #[arg(long = "db", value_name = "NAME=URL")]
    db: Vec<String>,
    /// Longest the command may run (default 1h).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    timeout: Dur,
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
    /// Number of task workers, for Concurrency::run/defer and \Zeno::concurrently (0: tasks
    /// run inline in their caller).
    #[arg(long, value_name = "N")]
    task_workers: Option<usize>,
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
    /// Serve /metrics, /workers and /reload on this address (off by default; keep it on loopback).
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Recycle a worker idle for this long (0: never).
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<Dur>,
    /// The PHP binary (default php-cgi).
    #[arg(long, value_name = "BINARY")]
    php: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Threads of the host's async runtime (0: one per four CPUs, at least one).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Reload the workers (rolling, as POST /reload) when the app's PHP files change; for
    /// development. storage/, vendor/ and node_modules/ are ignored.
    #[arg(long)]
    watch: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("zeno {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Workers(args) => workers::print(&args.admin, args.json),
        Command::Artisan(args) => {
            let mut flags = Flags::default();
            let exposed = db_flags(&mut flags, &args.db)?;
            let mut config = Config::load(args.config.as_deref(), std::env::vars(), &flags)?;
            config.log.format = LogFormat::Text;
            if config.log.level == "info" {
                // The command's own output is what the user wants to read.
                config.log.level = "warn".into();
            }
            init_tracing(&config.log)?;
            start_hardened(&exposed);
            let runtime = config.runtime.build()?;
            let code = runtime.block_on(artisan(
                config,
                args.config,
                args.app,
                args.argv,
                args.timeout.0,
            ))?;
            std::process::exit(code);
        }
        Command::Serve(args) => {
            let config_file = args.config.clone();
            let watch = args.watch;
            let (config, exposed) = resolve(*args)?;
            init_tracing(&config.log)?;
            start_hardened(&exposed);
            let runtime = config.runtime.build()?;
            tracing::debug!(threads = config.runtime.resolved_threads(), "async runtime");
            runtime.block_on(serve(config, config_file, watch))
        }
    }
}

/// Hardens the process before anything else runs, and warns about `--db` flags whose
/// passwords anyone on the machine can read in the process list.
fn start_hardened(exposed: &[String]) {
    security::harden_process();
    for name in exposed {
        tracing::warn!(
            db = %name,
            "the --db {name}=… flag carries a password, which every user of this machine can read in the process list (ps, /proc/<pid>/cmdline); use ZENO_DB_{} or the config file's [db] section instead",
            name.to_ascii_uppercase()
        );
    }
}

/// Merges the config file, the environment and the flags (flags win). Also returns the names
/// of `--db` flags that carry a password.
fn resolve(args: ServeArgs) -> anyhow::Result<(Config, Vec<String>)> {
    let mut flags = Flags::default();
    if let Some(worker) = args.worker {
        flags.set("workers.handler", Some(worker.display().to_string()));
        flags.remove("workers.laravel");
    }
    if let Some(laravel) = args.laravel {
        flags.set("workers.laravel", Some(laravel.display().to_string()));
        flags.remove("workers.handler");
    }
    flags.set("server.listen", args.listen);
    flags.set(
        "workers.count",
        args.workers.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    );
    flags.set(
        "tasks.count",
        args.task_workers
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    );
    flags.set(
        "runtime.threads",
        args.threads.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    );
    flags.set("workers.exec_timeout", args.exec_timeout);
    flags.set(
        "workers.max_jobs",
        args.max_jobs.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    );
    flags.set("workers.max_memory", args.max_memory);
    flags.set("workers.allocate_timeout", args.allocate_timeout);
    flags.set("admin.listen", args.admin);
    flags.set("workers.idle_timeout", args.idle_timeout);
    flags.set("workers.php", args.php.map(|p| p.display().to_string()));
    flags.set(
        "log.format",
        args.log_format.map(|f| match f {
            LogFormat::Auto => "auto",
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }),
    );
    let exposed = db_flags(&mut flags, &args.db)?;
    let config = Config::load(args.config.as_deref(), std::env::vars(), &flags)?;
    if config.workers.count == 0 {
        bail!("workers must be at least 1");
    }
    if config.server.max_connections == 0 {
        bail!("server.max_connections must be at least 1");
    }
    Ok((config, exposed))
}

/// `--db NAME=URL` flags as the last layer over the configured connections; returns the
/// names of those whose URL carries a password.
fn db_flags(flags: &mut Flags, values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut exposed = Vec::new();
    for db in values {
        let Some((name, url)) = db.split_once('=') else {
            bail!("--db expects NAME=URL, got {db:?}");
        };
        if name.is_empty() || url.is_empty() {
            bail!("--db expects NAME=URL, got {db:?}");
        }
        if security::url_has_password(url) {
            exposed.push(name.to_owned());
        }
        flags.database(name, url);
    }
    Ok(exposed)
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

async fn serve(config: Config, config_file: Option<PathBuf>, watch: bool) -> anyhow::Result<()> {
    let (base, target, static_dir) = match (&config.workers.laravel, &config.workers.handler) {
        (Some(app), _) => (
            zeno_host::HostBuilder::laravel(app),
            app.clone(),
            Some(app.join("public")),
        ),
        (None, Some(handler)) => (zeno_host::HostBuilder::new(handler), handler.clone(), None),
        (None, None) => bail!(
            "nothing to serve: pass --worker HANDLER.php or --laravel APP_DIR (or set workers.handler / workers.laravel in zeno.toml)"
        ),
    };
    let builder = configure(&config, config_file.as_deref(), base)?;
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let host = Arc::new(
        builder
            .build()
            .await
            .with_context(|| format!("starting PHP workers for {}", target.display()))?,
    );
    let addr = listener.local_addr()?;
    tracing::info!(%addr, app = %target.display(), workers = host.live_workers(), "zeno is serving");

    let draining = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    if let Some(admin) = &config.admin.listen {
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("admin listener on {admin}"))?;
        let admin_addr = listener.local_addr()?;
        if !admin_addr.ip().is_loopback() {
            tracing::warn!(%admin_addr, "the admin listener is not on loopback: anyone who reaches it can reload workers");
        }
        let renderer = metrics_renderer(host.clone())?;
        tracing::info!(%admin_addr, "admin listener serving /metrics, /workers, /reload");
        tokio::spawn(zeno_http::serve_admin(
            host.clone(),
            listener,
            renderer,
            draining.clone(),
            admin_stop.clone(),
        ));
    }
    tokio::spawn(watch_signals(draining.clone(), host.clone()));
    if watch {
        let root = if target.is_dir() {
            target.clone()
        } else {
            target
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
        };
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        watch::spawn(root, host.clone(), draining.clone())?;
    }
    let http = zeno_http::HttpConfig {
        static_dir,
        ..config.server.clone()
    };
    zeno_http::serve(host.clone(), listener, http, draining).await?;
    host.shutdown().await;
    admin_stop.cancel();
    tracing::info!("zeno stopped");
    Ok(())
}

/// Applies the configuration's worker, scope and database settings to a host builder, and the
/// user workers run as.
fn configure(
    config: &Config,
    config_file: Option<&std::path::Path>,
    base: zeno_host::HostBuilder,
) -> anyhow::Result<zeno_host::HostBuilder> {
    let credentials = security::worker_credentials(&config.workers)?;
    if let Some(path) = config_file {
        security::check_config_file(path, credentials);
    }
    let mut builder = base
        .settings(config.workers.clone())
        .tasks(config.tasks.clone());
    for (key, value) in &config.scope {
        builder = builder.scope_value(key, value.clone());
    }
    let mut databases = config.db.clone();
    // With no `default` configured, it is an SQLite file, so a demo needs no server.
    databases
        .entry("default".to_owned())
        .or_insert_with(|| zeno_host::ConnectionConfig::new("sqlite://zeno.sqlite"));
    builder = builder
        .databases(zeno_host::Databases::connect(databases).context("configuring databases")?);
    if let Ok(dir) = std::env::var("ZENO_PHP_CLIENT_DIR") {
        builder = builder.runtime_dir(dir);
    }
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    Ok(builder)
}

/// `zeno artisan`: one worker, one task, the command's output on stdout; returns its exit code.
async fn artisan(
    config: Config,
    config_file: Option<PathBuf>,
    app: PathBuf,
    argv: Vec<String>,
    timeout: std::time::Duration,
) -> anyhow::Result<i32> {
    // Before the worker boots, so that a signal never finds the default action (death).
    let mut signals = ArtisanSignals::install()?;
    let host = configure(
        &config,
        config_file.as_deref(),
        zeno_host::HostBuilder::artisan(&app),
    )?
    .workers(1)
    .exec_timeout(timeout)
    .build();
    let host = tokio::select! {
        host = host => host.with_context(|| format!("starting a worker for {}", app.display()))?,
        _ = signals.next() => {
            // Nothing has run yet: nothing to finish.
            tracing::warn!("signal while the worker booted: exiting");
            std::process::exit(130);
        }
    };
    let task = serde_json::json!({ "argv": argv, "decorated": std::io::stdout().is_terminal() });
    let result = run_forwarding_signals(&host, zeno_host::Dispatch::task(task), signals).await;
    host.shutdown().await;
    let response = result.context("running the artisan command")?;
    let body = response
        .body
        .into_bytes()
        .context("decoding the command's output")?;
    use std::io::Write as _;
    std::io::stdout().write_all(&body)?;
    if response.status != 200 {
        bail!(
            "the artisan command failed in PHP (status {}); see the log above",
            response.status
        );
    }
    let code = response
        .headers
        .get("x-zeno-exit-code")
        .and_then(|values| values.first())
        .and_then(|value| value.parse::<i32>().ok())
        .context("the worker did not report an exit code")?;
    Ok(code)
}

/// Installs the Prometheus recorder the libraries' metrics go to, and returns the page
/// renderer, which refreshes the worker gauges at each scrape.
fn metrics_renderer(host: Arc<zeno_host::Host>) -> anyhow::Result<zeno_http::MetricsRenderer> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(Arc::new(move || {
        let workers = host.workers();
        for state in ["booting", "idle", "busy", "stopping", "down"] {
            let count = workers.iter().filter(|w| w.state.as_str() == state).count();
            metrics::gauge!("zeno_workers", "state" => state).set(count as f64);
        }
        let tasks = host.task_workers();
        for state in ["booting", "idle", "busy", "stopping", "down"] {
            let count = tasks.iter().filter(|w| w.state.as_str() == state).count();
            metrics::gauge!("zeno_task_workers", "state" => state).set(count as f64);
        }
        for pool in host.database_pools() {
            let (db, role) = (pool.db, pool.role);
            let idle = pool.idle as f64;
            let open = f64::from(pool.open);
            metrics::gauge!("zeno_db_connections", "db" => db.clone(), "role" => role, "state" => "in_use")
                .set((open - idle).max(0.0));
            metrics::gauge!("zeno_db_connections", "db" => db.clone(), "role" => role, "state" => "idle")
                .set(idle);
            metrics::gauge!("zeno_db_connections_max", "db" => db, "role" => role)
                .set(f64::from(pool.max));
        }
        for (db, open) in host.open_transactions().unwrap_or_default() {
            metrics::gauge!("zeno_db_transactions_open", "db" => db).set(open as f64);
        }
        for worker in &workers {
            metrics::gauge!("zeno_worker_rss_bytes", "slot" => worker.slot.to_string())
                .set(worker.rss_bytes.unwrap_or(0) as f64);
            metrics::gauge!("zeno_worker_requests", "slot" => worker.slot.to_string())
                .set(worker.requests as f64);
        }
        handle.render()
    }))
}

/// SIGTERM and SIGINT, as `zeno artisan` receives them.
struct ArtisanSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ArtisanSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ArtisanSignals {
            term: signal(SignalKind::terminate()).context("installing signal handlers")?,
            int: signal(SignalKind::interrupt()).context("installing signal handlers")?,
        })
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Runs the artisan command, passing the first SIGTERM or SIGINT on to it as SIGTERM — which
/// `queue:work` (with pcntl, as php-cgi has) takes as "finish the current job, then exit" —
/// and exiting at once on a second one (the kernel then kills the worker).
async fn run_forwarding_signals(
    host: &zeno_host::Host,
    dispatch: zeno_host::Dispatch,
    mut signals: ArtisanSignals,
) -> Result<zeno_host::Response, zeno_host::HostError> {
    let run = host.dispatch(dispatch);
    tokio::pin!(run);
    let mut forwarded = false;
    loop {
        tokio::select! {
            result = &mut run => return result,
            _ = signals.next() => {}
        }
        if forwarded {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(130);
        }
        forwarded = true;
        for pid in host.workers().iter().filter_map(|worker| worker.pid) {
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            // Already gone (ESRCH) is fine: the dispatch then ends on its own.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        tracing::warn!("passed SIGTERM on to the artisan command; a second signal exits at once");
    }
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once (the kernel then kills the
/// workers through PR_SET_PDEATHSIG). SIGHUP: rolling restart of the workers.
async fn watch_signals(shutdown: CancellationToken, host: Arc<zeno_host::Host>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("could not install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading workers");
                host.reload();
            }
        }
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
