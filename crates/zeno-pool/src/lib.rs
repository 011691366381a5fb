//! A pool of PHP workers: requests wait in one FIFO queue and the first idle worker takes
//! the oldest, so allocation is fair; a worker that dies, hangs past its time or reaches a
//! limit is replaced, and the pool keeps serving.
//!
//! Each worker slot is a task that owns one worker ([`WorkerProcess`]) at a time. The queue is bounded,
//! waiting for a worker is bounded (`allocate_timeout`) and running is bounded
//! (`exec_timeout`), so every request ends in exactly one result. A worker retired on
//! purpose (a limit, a reload) keeps serving until its replacement has booted, so recycling
//! never costs a request a cold boot.

mod process;
mod slot;
mod status;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeno_protocol::{Request, Response};
use zeno_worker::{BodyStream, HostCalls, WorkerConfig, WorkerError};

pub use process::{PhpSpawner, Spawn, WorkerProcess};
pub use status::{WorkerInfo, WorkerState};

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// How to start one worker.
    pub worker: WorkerConfig,
    /// Number of workers.
    pub workers: usize,
    /// Longest a request may run in PHP; past it the worker's process group is killed.
    pub exec_timeout: Duration,
    /// Longest a request may wait for a free worker.
    pub allocate_timeout: Duration,
    /// Requests that may wait for a worker at once; more are refused at once.
    pub max_queue: usize,
    /// Recycle a worker after about this many requests (0: never). Each worker gets up to 14%
    /// more, drawn at random, so workers started together do not restart together.
    pub max_jobs: u64,
    /// Recycle a worker whose resident memory passes this many bytes (0: never): a busy
    /// worker after its request, an idle one at the next memory check.
    pub max_memory: u64,
    /// How often idle workers' memory is checked against `max_memory`.
    pub memory_check_interval: Duration,
    /// Recycle a worker that has been idle this long (0: never).
    pub idle_timeout: Duration,
    /// How long a stopping worker may take to finish before SIGTERM, and again before SIGKILL.
    pub stop_grace: Duration,
    /// The pool's name in metrics (`pool` label): `http` for requests, `tasks` for tasks.
    pub name: &'static str,
}

/// Why the pool could not produce a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No worker freed up within `allocate_timeout`.
    #[error("no worker became free within {0:?}")]
    NoWorker(Duration),
    /// The wait queue is full.
    #[error("the request queue is full ({0} waiting)")]
    QueueFull(usize),
    /// The request ran past `exec_timeout`; its worker was killed.
    #[error("the request ran longer than {0:?}; its worker was killed")]
    Timeout(Duration),
    /// The worker died or broke the protocol while handling the request.
    #[error("the worker failed")]
    WorkerFailed(#[source] WorkerError),
    /// The pool is shutting down.
    #[error("the pool is shutting down")]
    ShuttingDown,
    /// No worker could be started at all.
    #[error("no worker could start")]
    Boot(#[source] WorkerError),
}

/// What a request keeps alive until it has fully ended (upload temp files, say): dropped
/// once the worker is done with the request — after its response and after-response work —
/// or dead, or once the request is withdrawn before any worker took it.
pub type Held = Vec<Box<dyn std::any::Any + Send>>;

/// PHP's answer: the response, and for a streamed one the rest of its body, which arrives as
/// PHP produces it (dropping it tells PHP the client went away).
#[derive(Debug)]
pub struct Reply {
    /// Status, headers and the body's first part (all of it unless streamed).
    pub response: Response,
    /// The rest of the body, when PHP streams it.
    pub body: Option<BodyStream>,
}

impl Reply {
    /// The whole response, a streamed body read to its end and joined.
    pub async fn collect(self) -> Result<Response, PoolError> {
        let Reply { mut response, body } = self;
        if let Some(mut body) = body {
            let mut bytes = std::mem::take(&mut response.body)
                .into_bytes()
                .map_err(|err| PoolError::WorkerFailed(WorkerError::Protocol(err.to_string())))?;
            while let Some(chunk) = body.recv().await {
                bytes.extend_from_slice(&chunk);
            }
            response.body = zeno_protocol::Body::from_bytes(bytes);
            response.stream = false;
        }
        Ok(response)
    }
}

/// Limits for one dispatch that differ from the pool's own (a task with its own timeout, a
/// caller that would rather not wait for a worker).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Longest this request may run; the pool's `exec_timeout` when `None`.
    pub exec_timeout: Option<Duration>,
    /// Longest this request may wait for a free worker; the pool's `allocate_timeout` when
    /// `None`.
    pub allocate_timeout: Option<Duration>,
}

pub(crate) struct Job {
    pub(crate) request: Request,
    /// The dispatcher's span: what the worker logs for the request is recorded inside it.
    pub(crate) span: tracing::Span,
    pub(crate) exec_timeout: Duration,
    pub(crate) held: Held,
    pub(crate) queued_at: Instant,
    pub(crate) accepted: oneshot::Sender<()>,
    pub(crate) reply: oneshot::Sender<Result<Reply, PoolError>>,
}

/// What every slot shares.
pub(crate) struct Shared<S> {
    pub(crate) config: PoolConfig,
    pub(crate) spawner: S,
    pub(crate) calls: Arc<dyn HostCalls>,
    pub(crate) jobs: Mutex<mpsc::Receiver<Job>>,
    pub(crate) live: AtomicUsize,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) status: status::Board,
}

/// A running pool of workers (PHP workers unless the pool was started with another
/// [`Spawn`]). Cheap to share behind an `Arc`.
pub struct Pool<S: Spawn = PhpSpawner> {
    queue: mpsc::Sender<Job>,
    shared: Arc<Shared<S>>,
}

impl<S: Spawn> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.shared.config.workers)
            .field("live", &self.live_workers())
            .finish_non_exhaustive()
    }
}

impl Pool<PhpSpawner> {
    /// Boots the workers and starts serving. Fails only if not a single worker could boot,
    /// with that worker's error; slots whose first boot failed keep retrying with backoff.
    pub async fn start(config: PoolConfig, calls: Arc<dyn HostCalls>) -> Result<Pool, PoolError> {
        let spawner = PhpSpawner(config.worker.clone());
        Pool::start_with(config, spawner, calls).await
    }
}

impl<S: Spawn> Pool<S> {
    /// [`Pool::start`] with workers from `spawner` instead of PHP processes from
    /// `config.worker` (tests drive the pool with a fake this way).
    pub async fn start_with(
        config: PoolConfig,
        spawner: S,
        calls: Arc<dyn HostCalls>,
    ) -> Result<Pool<S>, PoolError> {
        let workers = config.workers.max(1);
        let (queue, jobs) = mpsc::channel(config.max_queue.max(1));
        let shared = Arc::new(Shared {
            config,
            spawner,
            calls,
            jobs: Mutex::new(jobs),
            live: AtomicUsize::new(0),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            generation: watch::channel(0).0,
            status: status::Board::new(workers),
        });

        let boots = (0..workers).map(|_| shared.spawner.spawn(shared.calls.as_ref()));
        let booted = futures_util::future::join_all(boots).await;
        let mut first_error = None;
        let mut initial = Vec::with_capacity(workers);
        for result in booted {
            match result {
                Ok(worker) => initial.push(Some(worker)),
                Err(err) => {
                    tracing::error!(error = %zeno_protocol::report(&err), "worker failed to boot");
                    first_error.get_or_insert(err);
                    initial.push(None);
                }
            }
        }
        if initial.iter().all(Option::is_none) {
            if let Some(err) = first_error {
                return Err(PoolError::Boot(err));
            }
        }
        for (index, worker) in initial.into_iter().enumerate() {
            // Slots whose worker booted are live before `start` returns, so `/ready` and the
            // first requests see them at once.
            let slot = slot::Slot::new(index, shared.clone(), worker.as_ref().map(|w| w.pid()));
            shared.tracker.spawn(slot.run(worker));
        }
        tracing::info!(
            workers = shared.live.load(Ordering::SeqCst),
            "worker pool started"
        );
        Ok(Pool { queue, shared })
    }

    /// Runs a request on the first free worker and returns its response.
    ///
    /// Dropping the returned future (a client that went away) withdraws the request: a
    /// worker that has not started it yet skips it.
    pub async fn dispatch(&self, request: Request) -> Result<Response, PoolError> {
        self.dispatch_holding(request, Held::new()).await
    }

    /// [`Pool::dispatch`], keeping `held` alive until the request has fully ended: the
    /// response may come back long before the worker is done with the request.
    pub async fn dispatch_holding(
        &self,
        request: Request,
        held: Held,
    ) -> Result<Response, PoolError> {
        self.dispatch_with(request, held, Limits::default())
            .await?
            .collect()
            .await
    }

    /// Runs a request under `limits` (the pool's own where they say `None`), keeping `held`
    /// alive until the request has fully ended, and answers as soon as the response starts:
    /// a streamed body follows in the [`Reply`].
    pub async fn dispatch_with(
        &self,
        request: Request,
        held: Held,
        limits: Limits,
    ) -> Result<Reply, PoolError> {
        if self.shared.cancel.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let config = &self.shared.config;
        let allocate_timeout = limits.allocate_timeout.unwrap_or(config.allocate_timeout);
        let job = Job {
            request,
            span: tracing::Span::current(),
            exec_timeout: limits.exec_timeout.unwrap_or(config.exec_timeout),
            held,
            queued_at: Instant::now(),
            accepted: accepted_tx,
            reply: reply_tx,
        };
        self.queue.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!("zeno_pool_rejected_total", "pool" => config.name, "reason" => "queue_full")
                    .increment(1);
                PoolError::QueueFull(config.max_queue)
            }
            mpsc::error::TrySendError::Closed(_) => PoolError::ShuttingDown,
        })?;
        match tokio::time::timeout(allocate_timeout, accepted_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(PoolError::ShuttingDown),
            Err(_) => {
                metrics::counter!("zeno_pool_rejected_total", "pool" => config.name, "reason" => "allocate_timeout")
                    .increment(1);
                return Err(PoolError::NoWorker(allocate_timeout));
            }
        }
        reply_rx.await.unwrap_or(Err(PoolError::ShuttingDown))
    }

    /// Workers booted and serving now.
    pub fn live_workers(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// A snapshot of every worker slot: pid, state, requests served, memory, age.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared.status.snapshot()
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Rolling restart: every worker is replaced by a freshly booted one. Each old worker
    /// keeps serving until its replacement is ready, so no request fails or waits for a boot.
    pub fn reload(&self) {
        self.shared
            .generation
            .send_modify(|generation| *generation += 1);
        tracing::info!("reload: replacing every worker");
    }

    /// Stops taking requests, lets each worker finish the request it is running, stops
    /// every worker (SIGTERM, then SIGKILL for those that overrun `stop_grace`), and waits
    /// for all of it.
    pub async fn shutdown(&self) {
        self.stop();
        self.shared.tracker.wait().await;
    }

    /// Starts the stop [`Pool::shutdown`] waits for, without waiting: every slot stops its
    /// worker (SIGTERM, then SIGKILL past `stop_grace`) on the runtime, in the background.
    /// What a drop guard calls.
    pub fn stop(&self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
    }
}

#[cfg(test)]
mod tests;
