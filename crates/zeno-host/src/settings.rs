//! The `[workers]` section of `zeno.toml`: how the host runs its PHP workers. This type owns
//! the defaults; the CLI reads it from the file and the environment, and an embedder sets it
//! through [`crate::HostBuilder`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How the host runs its PHP workers. Every field has the documented default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// The handler file `zeno serve` runs (`--worker`); the builder's constructor chooses it
    /// for an embedder.
    pub handler: Option<PathBuf>,
    /// The Laravel app `zeno serve` runs (`--laravel`); likewise.
    pub laravel: Option<PathBuf>,
    /// Number of worker processes (default: twice the CPUs).
    pub count: usize,
    /// The PHP binary (`php-cgi`; `php` works, but `header()` is then lost).
    pub php: PathBuf,
    /// A request running longer is killed: its worker's process group gets SIGKILL.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub exec_timeout: Duration,
    /// A request waiting longer for a free worker is refused.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub allocate_timeout: Duration,
    /// A worker not ready by then is killed and retried with backoff.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub boot_timeout: Duration,
    /// A stopping worker gets SIGTERM after this, SIGKILL after this again.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub stop_grace: Duration,
    /// Recycle a worker after about this many requests (0: never).
    pub max_jobs: u64,
    /// Recycle a worker whose RSS passes this many bytes (0: never).
    #[serde(deserialize_with = "zeno_config::size")]
    pub max_memory: u64,
    /// Recycle a worker idle this long (zero: never).
    #[serde(deserialize_with = "zeno_config::duration")]
    pub idle_timeout: Duration,
    /// Requests that may wait for a worker at once; more are refused at once.
    pub max_queue: usize,
    /// Longest protocol line from a worker (bounds a response).
    #[serde(deserialize_with = "zeno_config::size_usize")]
    pub max_line: usize,
    /// Largest `\Zeno::call` accepted.
    #[serde(deserialize_with = "zeno_config::size_usize")]
    pub max_host_call: usize,
    /// Variables a worker inherits from the host's environment; nothing else is passed.
    pub env_allowlist: Vec<String>,
    /// Variables set for the workers.
    pub env: BTreeMap<String, String>,
    /// `php.ini` settings, passed as `-d name=value`.
    pub ini: BTreeMap<String, String>,
    /// The user workers run as (a name or a numeric id); the host must run as root.
    pub user: Option<String>,
    /// The group workers run as; by default the user's primary group.
    pub group: Option<String>,
    /// Run workers (HTTP and task) under Linux's `SCHED_BATCH` policy, so that handing one a
    /// request does not preempt the host mid-request; off gives them the normal policy.
    pub batch_scheduling: bool,
}

/// Environment variables a worker inherits from the host by default. Everything else is
/// withheld, so secrets in the host's environment never reach PHP.
pub const DEFAULT_ENV_ALLOWLIST: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            handler: None,
            laravel: None,
            count: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            php: PathBuf::from("php-cgi"),
            exec_timeout: Duration::from_secs(30),
            allocate_timeout: Duration::from_secs(10),
            boot_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            max_jobs: 0,
            max_memory: 0,
            idle_timeout: Duration::ZERO,
            max_queue: 1024,
            max_line: zeno_protocol::DEFAULT_MAX_LINE,
            max_host_call: 1024 * 1024,
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            env: BTreeMap::new(),
            ini: BTreeMap::new(),
            user: None,
            group: None,
            batch_scheduling: true,
        }
    }
}

/// The `[tasks]` section of `zeno.toml`: the task pool that runs `Concurrency::run`/`defer`,
/// `\Zeno::concurrently` and [`crate::Host::run_tasks`] on warm workers of their own. Its
/// workers run the same app as `[workers]`, with the same PHP binary, environment, ini and
/// user; the limits here are the task pool's own.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Number of task workers (default: the number of CPUs, at least 4: tasks often wait on
    /// I/O). With 0 there is no task pool and
    /// every task runs inline in its caller, one after another.
    pub count: usize,
    /// A task running longer is stopped (its worker killed) and its caller gets a timeout;
    /// a caller's own timeout, when it gives one, wins.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub exec_timeout: Duration,
    /// A task waiting longer for a free task worker fails.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub allocate_timeout: Duration,
    /// A task that itself runs tasks waits this long for a free task worker, then runs the
    /// task inline: nested batches can never deadlock.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub nested_wait: Duration,
    /// At shutdown, deferred tasks get this long to finish; the rest are dropped, each logged
    /// by name.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub drain: Duration,
    /// A task worker not ready by then is killed and retried with backoff.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub boot_timeout: Duration,
    /// A stopping task worker gets SIGTERM after this, SIGKILL after this again.
    #[serde(deserialize_with = "zeno_config::duration")]
    pub stop_grace: Duration,
    /// Recycle a task worker after about this many tasks (0: never).
    pub max_jobs: u64,
    /// Recycle a task worker whose RSS passes this many bytes (0: never).
    #[serde(deserialize_with = "zeno_config::size")]
    pub max_memory: u64,
    /// Recycle a task worker idle this long (zero: never).
    #[serde(deserialize_with = "zeno_config::duration")]
    pub idle_timeout: Duration,
    /// Tasks that may wait for a task worker at once; more fail at once.
    pub max_queue: usize,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            count: std::thread::available_parallelism().map_or(4, |n| n.get().max(4)),
            exec_timeout: Duration::from_secs(60),
            allocate_timeout: Duration::from_secs(30),
            nested_wait: Duration::from_millis(50),
            drain: Duration::from_secs(30),
            boot_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            max_jobs: 0,
            max_memory: 0,
            idle_timeout: Duration::ZERO,
            max_queue: 4096,
        }
    }
}
