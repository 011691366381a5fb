//! A pool of PHP workers: requests wait in one FIFO queue and the first idle worker takes
//! the oldest, so allocation is fair; a worker that dies, hangs past its time or reaches a
//! limit is replaced, and the pool keeps serving.
//!
//! Each worker slot is a task that owns one [`Worker`] at a time. The queue is bounded,
//! waiting for a worker is bounded (`allocate_timeout`) and running is bounded
//! (`exec_timeout`), so every request ends in exactly one result.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeno_protocol::{Request, Response};
use zeno_worker::{HostCalls, Worker, WorkerConfig, WorkerError};

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
    /// Recycle a worker after this many requests (0: never).
    pub max_jobs: u64,
    /// Recycle a worker whose resident memory passes this many bytes after a request (0: never).
    pub max_memory: u64,
    /// How long a stopping worker may take to finish before it is killed.
    pub stop_grace: Duration,
}

/// Why the pool could not produce a response.
#[derive(Debug, thiserror::Error)]
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
    #[error("the worker failed: {0}")]
    WorkerFailed(#[source] WorkerError),
    /// The pool is shutting down.
    #[error("the pool is shutting down")]
    ShuttingDown,
    /// No worker could be started at all.
    #[error("no worker could start: {0}")]
    Boot(#[source] WorkerError),
}

struct Job {
    request: Request,
    accepted: oneshot::Sender<()>,
    reply: oneshot::Sender<Result<Response, PoolError>>,
}

/// A running pool of workers. Cheap to share behind an `Arc`.
pub struct Pool {
    queue: mpsc::Sender<Job>,
    config: PoolConfig,
    live: Arc<AtomicUsize>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.config.workers)
            .field("live", &self.live_workers())
            .finish_non_exhaustive()
    }
}

struct Slot {
    config: PoolConfig,
    calls: Arc<dyn HostCalls>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    live: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

impl Pool {
    /// Boots the workers and starts serving. Fails only if not a single worker could boot,
    /// with that worker's error; slots whose first boot failed keep retrying with backoff.
    pub async fn start(config: PoolConfig, calls: Arc<dyn HostCalls>) -> Result<Pool, PoolError> {
        let workers = config.workers.max(1);
        let (queue, jobs) = mpsc::channel(config.max_queue.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        let live = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();

        let boots = (0..workers).map(|_| Worker::spawn(&config.worker, calls.as_ref()));
        let booted = futures_util::future::join_all(boots).await;
        let mut first_error = None;
        let mut any = false;
        let mut initial = Vec::with_capacity(workers);
        for result in booted {
            match result {
                Ok(worker) => {
                    any = true;
                    initial.push(Some(worker));
                }
                Err(err) => {
                    tracing::error!(error = %err, "worker failed to boot");
                    first_error.get_or_insert(err);
                    initial.push(None);
                }
            }
        }
        if !any {
            if let Some(err) = first_error {
                return Err(PoolError::Boot(err));
            }
        }
        for worker in initial {
            let slot = Slot {
                config: config.clone(),
                calls: calls.clone(),
                jobs: jobs.clone(),
                live: live.clone(),
                cancel: cancel.clone(),
            };
            if worker.is_some() {
                live.fetch_add(1, Ordering::SeqCst);
            }
            tracker.spawn(slot.run(worker));
        }
        tracing::info!(workers = live.load(Ordering::SeqCst), "worker pool started");
        Ok(Pool {
            queue,
            config,
            live,
            cancel,
            tracker,
        })
    }

    /// Runs a request on the first free worker and returns its response.
    ///
    /// Dropping the returned future (a client that went away) withdraws the request: a
    /// worker that has not started it yet skips it.
    pub async fn dispatch(&self, request: Request) -> Result<Response, PoolError> {
        if self.cancel.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let job = Job {
            request,
            accepted: accepted_tx,
            reply: reply_tx,
        };
        self.queue.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => PoolError::QueueFull(self.config.max_queue),
            mpsc::error::TrySendError::Closed(_) => PoolError::ShuttingDown,
        })?;
        match tokio::time::timeout(self.config.allocate_timeout, accepted_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(PoolError::ShuttingDown),
            Err(_) => return Err(PoolError::NoWorker(self.config.allocate_timeout)),
        }
        reply_rx.await.unwrap_or(Err(PoolError::ShuttingDown))
    }

    /// Workers that are booted and serving now.
    pub fn live_workers(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Stops taking requests, lets each worker finish the request it is running, stops
    /// every worker (killing those that overrun `stop_grace`), and waits for all of it.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Slot {
    async fn run(self, mut worker: Option<Worker>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let current = match worker.take() {
                Some(current) => current,
                None => {
                    let spawned = tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        spawned = Worker::spawn(&self.config.worker, self.calls.as_ref()) => spawned,
                    };
                    match spawned {
                        Ok(fresh) => {
                            backoff = Duration::from_millis(100);
                            self.live.fetch_add(1, Ordering::SeqCst);
                            fresh
                        }
                        Err(err) => {
                            tracing::error!(error = %err, retry_in = ?backoff, "worker failed to boot");
                            tokio::select! {
                                _ = self.cancel.cancelled() => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            continue;
                        }
                    }
                }
            };
            let stopped = self.serve(current).await;
            self.live.fetch_sub(1, Ordering::SeqCst);
            if stopped {
                return;
            }
        }
    }

    /// Serves requests with one worker until it must be replaced (returns false) or the
    /// pool shuts down (returns true).
    async fn serve(&self, mut worker: Worker) -> bool {
        loop {
            let job = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => None,
                err = worker.watch_idle() => {
                    tracing::warn!(pid = worker.pid(), error = %err, "idle worker failed; replacing it");
                    worker.kill().await;
                    return false;
                }
                job = async { self.jobs.lock().await.recv().await } => job,
            };
            let Some(job) = job else {
                worker.stop(self.config.stop_grace).await;
                return true;
            };
            if job.accepted.send(()).is_err() {
                // The caller stopped waiting before a worker was free.
                continue;
            }
            let id = job.request.id.clone();
            let outcome = tokio::time::timeout(
                self.config.exec_timeout,
                worker.handle(job.request, self.calls.as_ref()),
            )
            .await;
            match outcome {
                Ok(Ok(response)) => {
                    let _ = job.reply.send(Ok(response));
                }
                Ok(Err(err)) => {
                    tracing::error!(pid = worker.pid(), request = %id, error = %err, "worker failed; replacing it");
                    worker.kill().await;
                    let _ = job.reply.send(Err(PoolError::WorkerFailed(err)));
                    return false;
                }
                Err(_) => {
                    tracing::error!(pid = worker.pid(), request = %id, timeout = ?self.config.exec_timeout, "request ran past exec_timeout; killing its worker");
                    worker.kill().await;
                    let _ = job
                        .reply
                        .send(Err(PoolError::Timeout(self.config.exec_timeout)));
                    return false;
                }
            }
            if worker.is_exiting() {
                tracing::info!(
                    pid = worker.pid(),
                    "worker is exiting after its response; replacing it"
                );
                worker.stop(self.config.stop_grace).await;
                return false;
            }
            if self.config.max_jobs > 0 && worker.requests() >= self.config.max_jobs {
                tracing::info!(
                    pid = worker.pid(),
                    requests = worker.requests(),
                    "worker reached max_jobs; recycling it"
                );
                worker.stop(self.config.stop_grace).await;
                return false;
            }
            if self.config.max_memory > 0 {
                if let Some(rss) = worker
                    .rss_bytes()
                    .filter(|rss| *rss > self.config.max_memory)
                {
                    tracing::info!(
                        pid = worker.pid(),
                        rss,
                        limit = self.config.max_memory,
                        "worker over max_memory; recycling it"
                    );
                    worker.stop(self.config.stop_grace).await;
                    return false;
                }
            }
        }
    }
}
