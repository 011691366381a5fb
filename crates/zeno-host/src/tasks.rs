//! The task pool: PHP work a request (or an embedder) runs concurrently on warm workers kept
//! apart from the HTTP workers, so requests that wait on their tasks can never take every
//! worker their tasks need.
//!
//! PHP asks through two host functions. `tasks_run` runs a batch and answers when every task
//! has ended; `tasks_defer` queues a batch to run after the caller is done and answers at
//! once. A task is a PHP closure serialized by the caller; the task worker unserializes and
//! runs it (see `Zeno\Runtime\Tasks`). The host neither reads nor changes it.
//!
//! The deadlock rule: HTTP workers wait on task workers, never the reverse. A task that runs
//! a batch itself (a nested `run()`) gets a task worker only if one is free within
//! `tasks.nested_wait`; each task that gets none is answered `inline`, and the calling task
//! runs it itself. So a task never waits on a task worker that may be waiting on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeno_pool::{Limits, Pool, PoolConfig, PoolError};
use zeno_protocol::{Request, RequestKind};
use zeno_worker::HostCalls;

use crate::CallError;

/// The largest batch one call may run: a bound on what one request can queue.
const MAX_BATCH: usize = 1024;

/// One task of a batch, as PHP sent it.
#[derive(Debug, Clone)]
pub(crate) struct TaskSpec {
    /// What logs call the task (the caller's key, or where the closure was written).
    name: String,
    /// The payload the task worker receives (`Request::task`).
    payload: Value,
}

/// The task pool and the work queued for it after its callers finished.
pub(crate) struct Tasks {
    pool: OnceCell<Pool>,
    /// How to start the pool, until it has started (a lazy pool starts on first use).
    start: Mutex<Option<(PoolConfig, Arc<dyn HostCalls>)>>,
    /// There is a task pool (`tasks.count` > 0), started or not.
    enabled: bool,
    nested_wait: Duration,
    drain: Duration,
    deferred: TaskTracker,
    cancel: CancellationToken,
    next_id: AtomicU64,
}

impl Tasks {
    pub(crate) fn new(enabled: bool, nested_wait: Duration, drain: Duration) -> Arc<Tasks> {
        Arc::new(Tasks {
            pool: OnceCell::new(),
            start: Mutex::new(None),
            enabled,
            nested_wait,
            drain,
            deferred: TaskTracker::new(),
            cancel: CancellationToken::new(),
            next_id: AtomicU64::new(1),
        })
    }

    /// Says how to start the pool (its host calls need `self`, so it comes after `new`).
    pub(crate) fn prepare(&self, config: PoolConfig, calls: Arc<dyn HostCalls>) {
        if let Ok(mut start) = self.start.lock() {
            *start = Some((config, calls));
        }
    }

    /// Whether there is a task pool at all (`tasks.count` > 0).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The pool if it has started.
    pub(crate) fn started(&self) -> Option<&Pool> {
        self.pool.get()
    }

    /// The pool, started now if it has not been yet.
    pub(crate) async fn pool(&self) -> Result<&Pool, PoolError> {
        self.pool
            .get_or_try_init(|| async {
                // Cloned, not taken: a start that fails is tried again by the next task.
                let start = self.start.lock().ok().and_then(|start| start.clone());
                let Some((config, calls)) = start else {
                    return Err(PoolError::ShuttingDown);
                };
                Pool::start(config, calls).await
            })
            .await
    }

    /// Runs one task on `pool` under its own `t-N` id — unique in the host, as host calls and
    /// pinned transactions are keyed by it — with `scope`, and answers with its whole response.
    pub(crate) async fn dispatch(
        &self,
        pool: &Pool,
        payload: Value,
        mut scope: Map<String, Value>,
        limits: Limits,
    ) -> Result<zeno_protocol::Response, PoolError> {
        let id = format!("t-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        scope.insert("request_id".into(), Value::String(id.clone()));
        let request = Request {
            id,
            kind: RequestKind::Task,
            http: None,
            task: Some(payload),
            scope,
        };
        pool.dispatch_with(request, Vec::new(), limits)
            .await?
            .collect()
            .await
    }

    /// Runs every task at once on the task pool and answers with one outcome per task, in
    /// order. `nested` calls come from a task worker and follow the deadlock rule.
    pub(crate) async fn run(
        &self,
        specs: Vec<TaskSpec>,
        scope: &Map<String, Value>,
        timeout: Option<Duration>,
        nested: bool,
    ) -> Vec<Value> {
        let runs = specs.into_iter().map(|spec| {
            let limits = Limits {
                exec_timeout: timeout,
                allocate_timeout: nested.then_some(self.nested_wait),
            };
            self.run_one(spec, scope.clone(), limits, nested)
        });
        futures_util::future::join_all(runs).await
    }

    async fn run_one(
        &self,
        spec: TaskSpec,
        scope: Map<String, Value>,
        limits: Limits,
        nested: bool,
    ) -> Value {
        let pool = match self.pool().await {
            Ok(pool) => pool,
            Err(err) => {
                return outcome(
                    "lost",
                    &format!(
                        "the task pool could not start: {}",
                        zeno_protocol::report(&err)
                    ),
                )
            }
        };
        let started = Instant::now();
        let value = match self.dispatch(pool, spec.payload, scope, limits).await {
            Ok(response) => match task_result(&response) {
                Some(value) => value,
                None => outcome(
                    "lost",
                    &format!(
                        "task {:?} answered something that is not a task result (status {})",
                        spec.name, response.status
                    ),
                ),
            },
            Err(PoolError::NoWorker(_) | PoolError::QueueFull(_)) if nested => {
                json!({"status": "inline"})
            }
            Err(PoolError::Timeout(limit)) => outcome(
                "timeout",
                &format!(
                    "task {:?} ran longer than {limit:?}; its worker was stopped",
                    spec.name
                ),
            ),
            Err(err) => outcome(
                "lost",
                &format!(
                    "task {:?} failed: {}",
                    spec.name,
                    zeno_protocol::report(&err)
                ),
            ),
        };
        let status = value["status"].as_str().unwrap_or("lost").to_owned();
        metrics::counter!("zeno_tasks_total", "outcome" => status.clone()).increment(1);
        metrics::histogram!("zeno_task_duration_seconds").record(started.elapsed().as_secs_f64());
        if status != "ok" && status != "inline" {
            tracing::warn!(task = %spec.name, outcome = %status, message = value["message"].as_str().unwrap_or(""), "task did not succeed");
        }
        value
    }

    /// Queues a batch to run on the task pool without anyone waiting for it. Refused once
    /// the host is shutting down.
    pub(crate) fn defer(
        self: &Arc<Self>,
        specs: Vec<TaskSpec>,
        scope: Map<String, Value>,
    ) -> Result<usize, CallError> {
        if self.cancel.is_cancelled() || self.deferred.is_closed() {
            return Err(CallError::new(
                "shutting_down",
                "the host is shutting down; deferred tasks are no longer accepted",
            ));
        }
        let count = specs.len();
        for spec in specs {
            let tasks = self.clone();
            let scope = scope.clone();
            metrics::gauge!("zeno_tasks_deferred").increment(1.0);
            self.deferred.spawn(async move {
                let name = spec.name.clone();
                tokio::select! {
                    _ = tasks.cancel.cancelled() => {
                        tracing::error!(task = %name, "deferred task dropped: the host stopped before it could run");
                        metrics::counter!("zeno_tasks_total", "outcome" => "dropped").increment(1);
                    }
                    value = tasks.run_one(spec, scope, Limits::default(), false) => {
                        if value["status"] == "failed" {
                            tracing::error!(task = %name, exception = %value["exception"]["class"], message = %value["exception"]["message"], "deferred task threw");
                        }
                    }
                }
                metrics::gauge!("zeno_tasks_deferred").decrement(1.0);
            });
        }
        Ok(count)
    }

    /// Lets deferred work finish for up to the drain period, drops (and names) what is left,
    /// then stops the task workers.
    /// Stops at once, without waiting: deferred tasks are cancelled, the pool's workers are
    /// stopped in the background, and the start recipe — whose host calls hold `self` — goes.
    pub(crate) fn stop(&self) {
        self.deferred.close();
        self.cancel.cancel();
        if let Ok(mut start) = self.start.lock() {
            start.take();
        }
        if let Some(pool) = self.pool.get() {
            pool.stop();
        }
    }

    pub(crate) async fn shutdown(&self) {
        self.deferred.close();
        if tokio::time::timeout(self.drain, self.deferred.wait())
            .await
            .is_err()
        {
            tracing::warn!(drain = ?self.drain, "deferred tasks still running at the end of the drain period; dropping them");
            self.cancel.cancel();
            self.deferred.wait().await;
        }
        self.cancel.cancel();
        // Drops the start recipe too: its host calls hold `self`.
        if let Ok(mut start) = self.start.lock() {
            start.take();
        }
        if let Some(pool) = self.pool.get() {
            pool.shutdown().await;
        }
    }
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("enabled", &self.enabled)
            .field("pool", &self.pool.get())
            .finish_non_exhaustive()
    }
}

fn outcome(status: &str, message: &str) -> Value {
    json!({"status": status, "message": message})
}

/// The task worker's answer: a JSON body `{"status": "ok" | "failed", ...}`.
fn task_result(response: &zeno_protocol::Response) -> Option<Value> {
    let body = response.body.body.as_deref()?;
    let value: Value = serde_json::from_str(body).ok()?;
    matches!(value["status"].as_str(), Some("ok" | "failed")).then_some(value)
}

/// Reads `{"tasks": [{"name": ..., "payload": ...}, ...], "timeout_ms": n}`.
pub(crate) fn parse_batch(params: &Value) -> Result<(Vec<TaskSpec>, Option<Duration>), CallError> {
    let tasks = params
        .get("tasks")
        .and_then(Value::as_array)
        .ok_or_else(|| CallError::invalid("tasks needs a `tasks` list"))?;
    if tasks.len() > MAX_BATCH {
        return Err(CallError::new(
            "too_large",
            format!(
                "a batch of {} tasks is over the limit of {MAX_BATCH}",
                tasks.len()
            ),
        ));
    }
    let specs = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| {
            let payload = task
                .get("payload")
                .filter(|p| p.is_object())
                .cloned()
                .ok_or_else(|| {
                    CallError::invalid(format!("task {index} has no `payload` object"))
                })?;
            let name = task
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| index.to_string(), str::to_owned);
            Ok(TaskSpec { name, payload })
        })
        .collect::<Result<Vec<_>, CallError>>()?;
    let timeout = match params.get("timeout_ms") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => {
                return Err(CallError::invalid(
                    "timeout_ms must be a positive whole number of milliseconds",
                ))
            }
        },
    };
    Ok((specs, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_read_with_names_and_timeout() {
        let (specs, timeout) = parse_batch(&json!({
            "tasks": [{"name": "users", "payload": {"a": 1}}, {"payload": {"b": 2}}],
            "timeout_ms": 1500
        }))
        .expect("valid");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "users");
        assert_eq!(specs[1].name, "1");
        assert_eq!(timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_batches_are_refused_with_a_reason() {
        for (params, needle) in [
            (json!({}), "`tasks` list"),
            (json!({"tasks": [{"name": "x"}]}), "no `payload`"),
            (json!({"tasks": [{"payload": "text"}]}), "no `payload`"),
            (
                json!({"tasks": [], "timeout_ms": -5}),
                "positive whole number",
            ),
            (
                json!({"tasks": [], "timeout_ms": 0}),
                "positive whole number",
            ),
        ] {
            let err = parse_batch(&params).expect_err("refused");
            assert!(err.message.contains(needle), "{params}: {}", err.message);
        }
        let many: Vec<Value> = (0..=MAX_BATCH).map(|_| json!({"payload": {}})).collect();
        let err = parse_batch(&json!({ "tasks": many })).expect_err("too many");
        assert_eq!(err.kind, "too_large");
    }
}
