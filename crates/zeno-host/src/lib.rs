//! The embeddable Zeno host: a pool of PHP workers, the host functions PHP may call, and the
//! per-request scope — everything `zeno serve` uses, for any Rust program to use too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zeno_host::HostError> {
//! use serde_json::json;
//! use zeno_host::{Dispatch, HostBuilder};
//!
//! let host = HostBuilder::new("handler.php")
//!     .workers(2)
//!     .function("greet", |_ctx, params| async move {
//!         Ok(json!(format!("Hello, {}", params["name"].as_str().unwrap_or("you"))))
//!     })
//!     .build()
//!     .await?;
//! let response = host.dispatch(Dispatch::task(json!({"job": "x"})).scope("user_id", 42)).await?;
//! println!("{} {:?}", response.status, response.body.body);
//! host.shutdown().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod functions;
mod runtime;
mod settings;
mod tasks;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use zeno_protocol::{HostCall, HostResult, HttpRequest, Request, RequestKind};
use zeno_worker::{CallOrigin, HostCalls, WorkerConfig};

pub use zeno_worker::Credentials;

pub use functions::{CallContext, CallError, CallFuture, Registry};
pub use settings::{TasksConfig, WorkersConfig, DEFAULT_ENV_ALLOWLIST};
pub use zeno_db::{Backend, ConnectionConfig, Databases, DbError, DbFunction, PoolStats};
pub use zeno_pool::{PoolError, Reply, WorkerInfo, WorkerState};
pub use zeno_protocol::{Body, HeaderMap, Response};
pub use zeno_worker::BodyStream;

/// Why the host could not start or could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The handler file does not exist.
    #[error("handler file not found: {0}")]
    HandlerNotFound(PathBuf),
    /// The directory given as a Laravel app has no `bootstrap/app.php`.
    #[error("not a Laravel app (no bootstrap/app.php): {0}")]
    NotLaravel(PathBuf),
    /// The bundled PHP runtime could not be written to disk.
    #[error("could not unpack the PHP runtime")]
    Runtime(#[source] std::io::Error),
    /// The worker pool failed (no worker, timeout, worker died, …).
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Configures and starts a [`Host`]: what it runs (chosen by the constructor), how it runs
/// its workers (a [`WorkersConfig`], set whole with [`HostBuilder::settings`] or field by field
/// with the methods below), and what PHP may call.
#[derive(Debug)]
pub struct HostBuilder {
    handler: PathBuf,
    laravel: Option<(PathBuf, &'static str)>,
    settings: WorkersConfig,
    tasks: TasksConfig,
    lazy_tasks: bool,
    scope: Map<String, Value>,
    registry: Registry,
    runtime_dir: Option<PathBuf>,
    app: String,
    databases: Option<Arc<zeno_db::Databases>>,
    credentials: Option<Credentials>,
}

impl HostBuilder {
    /// A host that runs `handler`, a PHP file returning a callable, with defaults for
    /// everything else.
    pub fn new(handler: impl Into<PathBuf>) -> Self {
        HostBuilder {
            handler: handler.into(),
            laravel: None,
            settings: WorkersConfig::default(),
            tasks: TasksConfig::default(),
            lazy_tasks: false,
            scope: Map::new(),
            registry: Registry::with_builtins(),
            runtime_dir: None,
            app: "handler".into(),
            databases: None,
            credentials: None,
        }
    }

    /// Replaces every worker setting at once (its `handler` and `laravel` are ignored: the
    /// constructor chose what runs).
    pub fn settings(mut self, settings: WorkersConfig) -> Self {
        self.settings = settings;
        self
    }

    /// Replaces the task pool's settings (`[tasks]`).
    pub fn tasks(mut self, tasks: TasksConfig) -> Self {
        self.tasks = tasks;
        self
    }

    /// Boots the task workers on first use instead of at start (the default for
    /// [`HostBuilder::artisan`]).
    pub fn lazy_tasks(mut self, lazy: bool) -> Self {
        self.lazy_tasks = lazy;
        self
    }

    /// Number of task workers (0: tasks run inline in their caller).
    pub fn task_workers(mut self, count: usize) -> Self {
        self.tasks.count = count;
        self
    }

    /// A host that runs the Laravel app in `app_dir`: each worker boots it once and serves
    /// requests through its HTTP kernel, with the `zeno_proxy` database driver and the
    /// `zeno` log channel registered.
    pub fn laravel(app_dir: impl Into<PathBuf>) -> Self {
        let mut builder = HostBuilder::new(PathBuf::new());
        builder.laravel = Some((app_dir.into(), "zeno-laravel.php"));
        builder.app = "laravel".into();
        builder
    }

    /// A host whose worker runs artisan commands of the Laravel app in `app_dir`, one per
    /// task `{"argv": [...]}`, with the app's database work on the host's pool.
    pub fn artisan(app_dir: impl Into<PathBuf>) -> Self {
        let mut builder = HostBuilder::new(PathBuf::new());
        builder.laravel = Some((app_dir.into(), "zeno-artisan.php"));
        builder.app = "artisan".into();
        builder.settings.count = 1;
        // A one-off command rarely runs tasks: task workers boot only if it does.
        builder.lazy_tasks = true;
        builder
    }

    /// The PHP binary to run (default `php-cgi`; `php` works, but `header()` is then ignored).
    pub fn php_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.settings.php = binary.into();
        self
    }

    /// Adds a `php.ini` setting passed as `-d name=value`.
    pub fn ini(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.ini.insert(name.into(), value.into());
        self
    }

    /// Number of worker processes.
    pub fn workers(mut self, workers: usize) -> Self {
        self.settings.count = workers.max(1);
        self
    }

    /// Lets the worker inherit this variable from the host's environment.
    pub fn allow_env(mut self, name: impl Into<String>) -> Self {
        self.settings.env_allowlist.push(name.into());
        self
    }

    /// Replaces the list of variables inherited from the host's environment.
    pub fn env_allowlist(mut self, names: Vec<String>) -> Self {
        self.settings.env_allowlist = names;
        self
    }

    /// Sets a variable in the workers' environment.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.env.insert(name.into(), value.into());
        self
    }

    /// A scope value every request carries (lowest precedence).
    pub fn scope_value(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.scope.insert(key.into(), value.into());
        self
    }

    /// Registers a host function PHP can call with `\Zeno::call($name, [...])`.
    pub fn function<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(CallContext, Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Value, CallError>> + Send + 'static,
    {
        self.registry.register(name, handler);
        self
    }

    /// Registers a host function with typed parameters and result ([`Registry::register_typed`]).
    pub fn typed_function<P, R, F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        P: serde::de::DeserializeOwned + Send + 'static,
        R: serde::Serialize + 'static,
        F: Fn(CallContext, P) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<R, CallError>> + Send + 'static,
    {
        self.registry.register_typed(name, handler);
        self
    }

    /// Gives PHP the host's database pools through `db_query`, `db_exec`, `db_begin`,
    /// `db_commit`, `db_rollback` and `db_connections`; transactions a request leaves open
    /// are rolled back when it ends.
    pub fn databases(mut self, databases: zeno_db::Databases) -> Self {
        let databases = Arc::new(databases);
        register_db(&mut self.registry, &databases);
        self.databases = Some(databases);
        self
    }

    /// Runs the workers as this user and group (the host must run as root). Upload temp files
    /// are handed to them; the runtime is readable by anyone.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Uses a checkout of `php-client/` instead of the runtime bundled in the binary.
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// Longest a worker may take to boot.
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.settings.boot_timeout = timeout;
        self
    }

    /// Longest a request may run before its worker is killed.
    pub fn exec_timeout(mut self, timeout: Duration) -> Self {
        self.settings.exec_timeout = timeout;
        self
    }

    /// Longest a request may wait for a free worker.
    pub fn allocate_timeout(mut self, timeout: Duration) -> Self {
        self.settings.allocate_timeout = timeout;
        self
    }

    /// Requests that may wait for a worker at once.
    pub fn max_queue(mut self, max: usize) -> Self {
        self.settings.max_queue = max.max(1);
        self
    }

    /// Recycle a worker after this many requests (0: never).
    pub fn max_jobs(mut self, max: u64) -> Self {
        self.settings.max_jobs = max;
        self
    }

    /// Recycle a worker whose RSS passes this many bytes after a request (0: never).
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.settings.max_memory = bytes;
        self
    }

    /// Recycle a worker that has been idle this long (zero: never).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// How long a stopping worker may take before SIGTERM, and again before SIGKILL.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.settings.stop_grace = grace;
        self
    }

    /// Longest protocol line accepted from a worker (bounds a response's size).
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.settings.max_line = bytes;
        self
    }

    /// Largest host_call accepted from a worker.
    pub fn max_host_call(mut self, bytes: usize) -> Self {
        self.settings.max_host_call = bytes;
        self
    }

    /// Boots the workers. Fails if the handler is missing or no worker can boot.
    pub async fn build(self) -> Result<Host, HostError> {
        let runtime = match &self.runtime_dir {
            Some(dir) => runtime::RuntimeDir::External(dir.clone()),
            None => runtime::RuntimeDir::unpack().map_err(HostError::Runtime)?,
        };
        let settings = self.settings;
        let mut env: Vec<(String, String)> = settings.env.into_iter().collect();
        let (handler, cwd) = match &self.laravel {
            Some((dir, entry)) => {
                if !dir.join("bootstrap/app.php").is_file() {
                    return Err(HostError::NotLaravel(dir.clone()));
                }
                let dir = std::fs::canonicalize(dir).map_err(HostError::Runtime)?;
                env.push(("ZENO_LARAVEL_APP".into(), dir.display().to_string()));
                (runtime.bundled_handler(entry), dir)
            }
            None => {
                if !self.handler.is_file() {
                    return Err(HostError::HandlerNotFound(self.handler));
                }
                let handler = std::fs::canonicalize(&self.handler).map_err(HostError::Runtime)?;
                let cwd = handler
                    .parent()
                    .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
                (handler, cwd)
            }
        };
        env.push(("ZENO_APP".into(), self.app.clone()));
        let worker = WorkerConfig {
            php_binary: settings.php,
            ini: default_ini().chain(settings.ini).collect(),
            script: runtime.entry(),
            env: worker_env(&settings.env_allowlist, env, &handler),
            cwd: Some(cwd),
            boot_timeout: settings.boot_timeout,
            max_line: settings.max_line,
            max_host_call: settings.max_host_call,
            credentials: self.credentials,
            batch_scheduling: settings.batch_scheduling,
        };
        let task_settings = self.tasks;
        let task_pool_config = zeno_pool::PoolConfig {
            worker: WorkerConfig {
                boot_timeout: task_settings.boot_timeout,
                ..worker.clone()
            },
            workers: task_settings.count,
            exec_timeout: task_settings.exec_timeout,
            allocate_timeout: task_settings.allocate_timeout,
            max_queue: task_settings.max_queue.max(1),
            max_jobs: task_settings.max_jobs,
            max_memory: task_settings.max_memory,
            memory_check_interval: Duration::from_secs(1),
            idle_timeout: task_settings.idle_timeout,
            stop_grace: task_settings.stop_grace,
            name: "tasks",
        };
        let pool_config = zeno_pool::PoolConfig {
            worker,
            workers: settings.count.max(1),
            exec_timeout: settings.exec_timeout,
            allocate_timeout: settings.allocate_timeout,
            max_queue: settings.max_queue.max(1),
            max_jobs: settings.max_jobs,
            max_memory: settings.max_memory,
            memory_check_interval: Duration::from_secs(1),
            idle_timeout: settings.idle_timeout,
            stop_grace: settings.stop_grace,
            name: "http",
        };
        let registry = Arc::new(self.registry);
        let tasks = tasks::Tasks::new(
            task_pool_config.workers > 0,
            task_settings.nested_wait,
            task_settings.drain,
        );
        let calls = |from_tasks| -> Arc<dyn HostCalls> {
            Arc::new(RegistryCalls {
                registry: registry.clone(),
                databases: self.databases.clone(),
                tasks: tasks.clone(),
                from_tasks,
            })
        };
        if tasks.enabled() {
            tasks.prepare(task_pool_config, calls(true));
        }
        let pool = match zeno_pool::Pool::start(pool_config, calls(false)).await {
            Ok(pool) => pool,
            Err(err) => {
                // Drops the task pool's start recipe, whose host calls hold `tasks`.
                tasks.shutdown().await;
                return Err(err.into());
            }
        };
        if tasks.enabled() && !self.lazy_tasks {
            // Requests come first: a task pool that cannot boot now is retried at the first
            // task, and the host serves requests meanwhile.
            if let Err(err) = tasks.pool().await {
                tracing::error!(error = %zeno_protocol::report(&err), "the task pool could not start; it is retried when a task arrives");
            }
        }
        Ok(Host {
            pool,
            tasks,
            credentials: self.credentials,
            scope: self.scope,
            next_id: AtomicU64::new(1),
            _runtime: runtime,
            app: self.app,
            databases: self.databases,
        })
    }
}

fn default_ini() -> impl Iterator<Item = (String, String)> {
    [
        // Errors are logged to stderr (and so by the host), never displayed: php-cgi ignores
        // display_errors=stderr and would print them on stdout, into the protocol.
        ("display_errors", "0"),
        ("display_startup_errors", "0"),
        ("log_errors", "1"),
        ("error_log", ""),
        ("html_errors", "0"),
        // The host enforces exec_timeout; PHP's own limit would kill a worker mid-request.
        ("max_execution_time", "0"),
        ("output_buffering", "0"),
        ("implicit_flush", "0"),
        ("expose_php", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
}

fn worker_env(
    allowlist: &[String],
    extra: Vec<(String, String)>,
    handler: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = allowlist
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
        .collect();
    env.extend(extra);
    env.push(("ZENO_HANDLER".into(), handler.display().to_string()));
    env.push((
        "ZENO_PROTOCOL".into(),
        zeno_protocol::PROTOCOL_VERSION.to_string(),
    ));
    env
}

/// Binds the registry, the databases and the task pool to one pool's host calls.
struct RegistryCalls {
    registry: Arc<Registry>,
    databases: Option<Arc<zeno_db::Databases>>,
    tasks: Arc<tasks::Tasks>,
    /// The calls come from task workers: a batch they run is nested.
    from_tasks: bool,
}

impl RegistryCalls {
    /// `tasks_run` and `tasks_defer`, which need the caller's scope and pool.
    async fn call_tasks(&self, ctx: &CallContext, params: &Value) -> Result<Value, CallError> {
        let (specs, timeout) = tasks::parse_batch(params)?;
        if ctx.function == "tasks_defer" {
            if !self.tasks.enabled() {
                return Err(CallError::new(
                    "no_task_pool",
                    "there is no task pool (tasks.count = 0)",
                ));
            }
            let queued = self.tasks.defer(specs, ctx.scope.clone())?;
            return Ok(serde_json::json!({ "queued": queued }));
        }
        let results = if !self.tasks.enabled() {
            // No task pool: the caller runs each task itself.
            specs
                .iter()
                .map(|_| serde_json::json!({"status": "inline"}))
                .collect()
        } else {
            self.tasks
                .run(specs, &ctx.scope, timeout, self.from_tasks)
                .await
        };
        Ok(serde_json::json!({ "results": results }))
    }
}

impl HostCalls for RegistryCalls {
    fn call<'a>(
        &'a self,
        call: HostCall,
        origin: CallOrigin<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostResult> + Send + 'a>> {
        Box::pin(async move {
            let ctx = CallContext {
                request_id: call.request,
                function: call.function,
                scope: origin
                    .request
                    .map(|request| request.scope.clone())
                    .unwrap_or_default(),
                pid: origin.pid,
            };
            let started = std::time::Instant::now();
            // A panicking host function (an embedder's, or a decoder meeting what it did not
            // expect) must not take the worker slot polling this future with it: the call
            // fails, the slot serves on.
            let run = async {
                match ctx.function.as_str() {
                    "tasks_run" | "tasks_defer" => self.call_tasks(&ctx, &call.parameters).await,
                    _ => self.registry.call(ctx.clone(), call.parameters).await,
                }
            };
            let result = match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                run,
            ))
            .await
            {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    tracing::error!(request = %ctx.request_id, function = %ctx.function, panic = %what, "host function panicked; the call fails and the worker serves on");
                    Err(functions::CallError::new(
                        "internal",
                        format!(
                            "host function {:?} failed inside the host: {what}",
                            ctx.function
                        ),
                    ))
                }
            };
            // PHP names the function: only registered names become a label, so hostile
            // code cannot grow the metrics without bound.
            let function = if self.registry.contains(&ctx.function)
                || matches!(ctx.function.as_str(), "tasks_run" | "tasks_defer")
            {
                ctx.function.clone()
            } else {
                "unknown".to_owned()
            };
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(err) => err.kind.clone(),
            };
            metrics::histogram!("zeno_host_call_duration_seconds", "function" => function.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("zeno_host_calls_total", "function" => function, "outcome" => outcome)
                .increment(1);
            match result {
                Ok(data) => HostResult::ok(call.id, data),
                Err(err) => {
                    tracing::debug!(request = %ctx.request_id, function = %ctx.function, error = %err, "host function failed");
                    HostResult {
                        id: call.id,
                        success: false,
                        data: None,
                        error: Some(err.message.clone()),
                        error_info: Some(err.error_info()),
                    }
                }
            }
        })
    }

    fn request_ended<'a>(
        &'a self,
        request: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(db) = &self.databases {
                db.end_request(request).await;
            }
        })
    }
}

/// Registers zeno-db's host functions (`db_query`, `db_exec`, `db_begin`, `db_commit`,
/// `db_rollback`, `db_connections`) on the registry.
fn register_db(registry: &mut Registry, db: &Arc<zeno_db::Databases>) {
    for function in zeno_db::DbFunction::ALL {
        let db = db.clone();
        registry.register(function.name(), move |ctx: CallContext, params: Value| {
            let db = db.clone();
            async move {
                db.call(function, &ctx.request_id, &params)
                    .await
                    .map_err(|err| CallError {
                        kind: err.kind().to_owned(),
                        message: err.to_string(),
                        info: Some(err.info()),
                    })
            }
        });
    }
}

/// Work for PHP: an HTTP request or a task, with the scope values the caller adds.
pub struct Dispatch {
    kind: DispatchKind,
    scope: Map<String, Value>,
    id: Option<String>,
    held: zeno_pool::Held,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("kind", &self.kind)
            .field("scope", &self.scope)
            .field("id", &self.id)
            .field("held", &self.held.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
enum DispatchKind {
    Http(Box<HttpRequest>),
    Task(Value),
}

impl Dispatch {
    /// An HTTP request for the handler.
    pub fn http(request: HttpRequest) -> Self {
        Dispatch {
            kind: DispatchKind::Http(Box::new(request)),
            scope: Map::new(),
            id: None,
            held: Vec::new(),
        }
    }

    /// A task: the handler receives a `Zeno\Request` whose `task()` is `payload`.
    pub fn task(payload: Value) -> Self {
        Dispatch {
            kind: DispatchKind::Task(payload),
            scope: Map::new(),
            id: None,
            held: Vec::new(),
        }
    }

    /// Adds a scope value for this request (overrides the host's static scope).
    pub fn scope(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.scope.insert(key.into(), value.into());
        self
    }

    /// Uses this request id instead of a generated one (it must be unique).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Keeps `value` alive until PHP is done with the request — after its response and any
    /// after-response work (Laravel's `terminate()`, `\Zeno::defer`), or when its worker dies
    /// — then drops it. Upload temp files are held this way, so deferred code finds them.
    pub fn hold(mut self, value: impl Send + 'static) -> Self {
        self.held.push(Box::new(value));
        self
    }
}

/// A running host: workers booted, ready to dispatch.
#[derive(Debug)]
pub struct Host {
    pool: zeno_pool::Pool,
    tasks: Arc<tasks::Tasks>,
    credentials: Option<Credentials>,
    scope: Map<String, Value>,
    next_id: AtomicU64,
    _runtime: runtime::RuntimeDir,
    app: String,
    databases: Option<Arc<zeno_db::Databases>>,
}

impl Host {
    /// A fresh request id, unique within this host.
    pub fn next_request_id(&self) -> String {
        format!("r-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The scope a request carries: the host's static values, then the dispatcher's, then
    /// what the host computes (`request_id`), each overriding the one before.
    pub fn merge_scope(&self, request_id: &str, extra: Map<String, Value>) -> Map<String, Value> {
        let mut scope = self.scope.clone();
        scope.extend(extra);
        scope.insert("request_id".into(), Value::String(request_id.to_owned()));
        scope
    }

    /// Runs a request or task on a free worker and returns PHP's response (a streamed body
    /// read to its end).
    pub async fn dispatch(&self, dispatch: Dispatch) -> Result<Response, HostError> {
        Ok(self.dispatch_streaming(dispatch).await?.collect().await?)
    }

    /// Runs a request or task on a free worker and answers as soon as PHP's response starts:
    /// when PHP streams the body, the rest follows in [`Reply::body`] as PHP produces it,
    /// each chunk taken only when there is room (dropping it stops PHP, as a client that
    /// goes away does under PHP-FPM).
    pub async fn dispatch_streaming(&self, dispatch: Dispatch) -> Result<Reply, HostError> {
        let id = dispatch.id.unwrap_or_else(|| self.next_request_id());
        let scope = self.merge_scope(&id, dispatch.scope);
        let request = match dispatch.kind {
            DispatchKind::Http(http) => Request {
                id,
                kind: RequestKind::Http,
                http: Some(*http),
                task: None,
                scope,
            },
            DispatchKind::Task(task) => Request {
                id,
                kind: RequestKind::Task,
                http: None,
                task: Some(task),
                scope,
            },
        };
        Ok(self
            .pool
            .dispatch_with(request, dispatch.held, zeno_pool::Limits::default())
            .await?)
    }

    /// The user and group id workers run as, when the host switches them
    /// ([`HostBuilder::credentials`]); files handed to PHP must belong to them.
    pub fn worker_owner(&self) -> Option<(u32, u32)> {
        self.credentials.map(|c| (c.uid, c.gid))
    }

    /// Workers booted and serving now.
    pub fn live_workers(&self) -> usize {
        self.pool.live_workers()
    }

    /// A snapshot of every worker: pid, state, requests served, memory, age.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.pool.workers()
    }

    /// Rolling restart of every worker; old workers serve until their replacements are ready.
    pub fn reload(&self) {
        self.pool.reload();
        if let Some(pool) = self.tasks.started() {
            pool.reload();
        }
    }

    /// What the workers run (`handler`).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Runs a batch of tasks at once on the task pool — warm workers apart from the ones
    /// serving [`Host::dispatch`] — and returns each task's response, in order. Each handler
    /// receives a `Zeno\Request` whose `task()` is its payload and whose scope is the host's
    /// static scope with `scope` over it; `timeout` replaces `tasks.exec_timeout` for the
    /// batch. With `tasks.count = 0` the tasks run on the request workers.
    pub async fn run_tasks(
        &self,
        payloads: Vec<Value>,
        scope: Map<String, Value>,
        timeout: Option<Duration>,
    ) -> Vec<Result<Response, HostError>> {
        let pool = if self.tasks.enabled() {
            match self.tasks.pool().await {
                Ok(pool) => pool,
                Err(_) => {
                    return payloads
                        .iter()
                        .map(|_| Err(HostError::Pool(PoolError::ShuttingDown)))
                        .collect()
                }
            }
        } else {
            &self.pool
        };
        let limits = zeno_pool::Limits {
            exec_timeout: timeout,
            allocate_timeout: None,
        };
        let scope = self.merge_scope("", scope);
        let runs = payloads.into_iter().map(|payload| async {
            Ok(self
                .tasks
                .dispatch(pool, payload, scope.clone(), limits)
                .await?)
        });
        futures_util::future::join_all(runs).await
    }

    /// Every database pool's connections (empty without databases).
    pub fn database_pools(&self) -> Vec<zeno_db::PoolStats> {
        self.databases
            .as_ref()
            .map(|db| db.pool_stats())
            .unwrap_or_default()
    }

    /// Transactions open now, by database; `None` when that cannot be read without waiting.
    pub fn open_transactions(&self) -> Option<std::collections::BTreeMap<String, usize>> {
        self.databases
            .as_ref()
            .and_then(|db| db.open_transactions())
    }

    /// A snapshot of every task worker (empty without a task pool).
    pub fn task_workers(&self) -> Vec<WorkerInfo> {
        self.tasks
            .started()
            .map(|pool| pool.workers())
            .unwrap_or_default()
    }

    /// Lets running requests finish, then deferred tasks (for up to `tasks.drain`), stops
    /// every worker, and waits for them.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
        self.tasks.shutdown().await;
    }
}

/// A host dropped without [`Host::shutdown`] (an orchestrator that rebuilds hosts per tenant,
/// an error path) still stops its PHP: the workers and task workers are stopped in the
/// background on the runtime, as a drop cannot wait. Without it the task pool and the host
/// calls held each other and every php-cgi outlived the host. `shutdown()` stays the
/// graceful way: it lets running requests and deferred tasks finish.
impl Drop for Host {
    fn drop(&mut self) {
        self.pool.stop();
        self.tasks.stop();
    }
}
