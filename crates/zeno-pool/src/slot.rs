//! One worker slot: owns a worker at a time, takes jobs from the shared queue, enforces the
//! limits, and replaces its worker — warm (booted beside the old one) when it retires a
//! healthy worker, cold when the worker died.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeno_protocol::Response;
use zeno_worker::{Worker, WorkerError};

use crate::status::WorkerState;
use crate::{Job, PoolError, Shared};

/// Why a worker left its slot; the `reason` label of `zeno_worker_restarts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    MaxJobs,
    MaxMemory,
    IdleTimeout,
    Reload,
    ExecTimeout,
    Crashed,
    Exited,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::MaxJobs => "max_jobs",
            Reason::MaxMemory => "max_memory",
            Reason::IdleTimeout => "idle_timeout",
            Reason::Reload => "reload",
            Reason::ExecTimeout => "exec_timeout",
            Reason::Crashed => "crashed",
            Reason::Exited => "exited",
        }
    }
}

/// How a worker's time in the slot ended.
enum Outcome {
    /// The pool is shutting down.
    Shutdown,
    /// Go on with this worker (already booted) or, if none, boot one.
    Replace(Option<Box<Worker>>),
}

/// A replacement worker booting in the background.
struct Pending {
    reason: Reason,
    boot: JoinHandle<Result<Worker, WorkerError>>,
}

pub(crate) struct Slot {
    index: usize,
    shared: Arc<Shared>,
}

impl Slot {
    pub(crate) fn new(index: usize, shared: Arc<Shared>) -> Self {
        Slot { index, shared }
    }

    pub(crate) async fn run(self, initial: Option<Worker>) {
        let mut next = initial;
        let mut backoff = Duration::from_millis(100);
        loop {
            let worker = match next.take() {
                Some(worker) => worker,
                None => {
                    self.shared.status.set(self.index, WorkerState::Booting);
                    let booted = tokio::select! {
                        _ = self.shared.cancel.cancelled() => return,
                        booted = Worker::spawn(&self.shared.config.worker, self.shared.calls.as_ref()) => booted,
                    };
                    match booted {
                        Ok(worker) => {
                            backoff = Duration::from_millis(100);
                            worker
                        }
                        Err(err) => {
                            self.shared.status.set(self.index, WorkerState::Down);
                            metrics::counter!("zeno_worker_boot_failures_total").increment(1);
                            tracing::error!(slot = self.index, error = %err, retry_in = ?backoff, "worker failed to boot");
                            tokio::select! {
                                _ = self.shared.cancel.cancelled() => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                            continue;
                        }
                    }
                }
            };
            self.shared.status.started(self.index, worker.pid());
            self.shared.live.fetch_add(1, Ordering::SeqCst);
            let outcome = self.serve(worker).await;
            self.shared.live.fetch_sub(1, Ordering::SeqCst);
            match outcome {
                Outcome::Shutdown => return,
                Outcome::Replace(fresh) => next = fresh.map(|w| *w),
            }
        }
    }

    /// Serves with one worker until it must go.
    async fn serve(&self, mut worker: Worker) -> Outcome {
        let config = &self.shared.config;
        let max_jobs = jittered(config.max_jobs, self.index);
        let mut generation = self.shared.generation.subscribe();
        generation.mark_unchanged();
        let mut pending: Option<Pending> = None;
        let mut memory_check =
            tokio::time::interval(config.memory_check_interval.max(Duration::from_millis(10)));
        memory_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let idle_timeout = config.idle_timeout;
            let idle = async {
                if idle_timeout.is_zero() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(idle_timeout).await
                }
            };
            let replacement_ready = async {
                match pending.as_mut() {
                    Some(p) => (&mut p.boot).await,
                    None => std::future::pending().await,
                }
            };
            let job = tokio::select! {
                biased;
                _ = self.shared.cancel.cancelled() => {
                    self.shared.status.set(self.index, WorkerState::Stopping);
                    if let Some(p) = pending.take() {
                        p.boot.abort();
                    }
                    worker.stop(config.stop_grace).await;
                    self.shared.status.set(self.index, WorkerState::Down);
                    return Outcome::Shutdown;
                }
                booted = replacement_ready => {
                    let reason = pending.take().map_or(Reason::Reload, |p| p.reason);
                    match booted {
                        Ok(Ok(fresh)) => {
                            self.retire(worker, reason);
                            return Outcome::Replace(Some(Box::new(fresh)));
                        }
                        Ok(Err(err)) => {
                            // The old worker is healthy: keep it, and try again on the next trigger.
                            tracing::error!(slot = self.index, error = %err, "replacement worker failed to boot; keeping the current one");
                        }
                        Err(err) => tracing::error!(slot = self.index, error = %err, "replacement boot task failed"),
                    }
                    continue;
                }
                err = worker.watch_idle() => {
                    tracing::warn!(slot = self.index, pid = worker.pid(), error = %err, "idle worker failed; replacing it");
                    worker.kill().await;
                    count_restart(Reason::Crashed);
                    return Outcome::Replace(self.finish_pending(pending).await);
                }
                _ = generation.changed() => {
                    // A replacement that started booting before the reload may have loaded
                    // the old code: start over.
                    if let Some(stale) = pending.take() {
                        stale.boot.abort();
                    }
                    self.prepare(&mut pending, Reason::Reload);
                    continue;
                }
                _ = idle => {
                    tracing::info!(slot = self.index, pid = worker.pid(), ?idle_timeout, "worker idle too long; recycling it");
                    self.prepare(&mut pending, Reason::IdleTimeout);
                    continue;
                }
                _ = memory_check.tick(), if config.max_memory > 0 => {
                    if over_memory(&worker, config.max_memory) {
                        self.prepare(&mut pending, Reason::MaxMemory);
                    }
                    continue;
                }
                job = async { self.shared.jobs.lock().await.recv().await } => job,
            };
            let Some(job) = job else {
                // The queue closed: the pool is gone.
                worker.stop(config.stop_grace).await;
                return Outcome::Shutdown;
            };
            if let Err(reason) = self.run_job(&mut worker, job).await {
                return Outcome::Replace(self.finish_pending_after(reason, pending).await);
            }
            if worker.is_exiting() {
                tracing::info!(
                    slot = self.index,
                    pid = worker.pid(),
                    "worker exits after its response; replacing it"
                );
                self.retire(worker, Reason::Exited);
                return Outcome::Replace(self.finish_pending(pending).await);
            }
            if max_jobs > 0 && worker.requests() >= max_jobs {
                self.prepare(&mut pending, Reason::MaxJobs);
            }
            if config.max_memory > 0 && over_memory(&worker, config.max_memory) {
                self.prepare(&mut pending, Reason::MaxMemory);
            }
        }
    }

    /// Runs one job. An `Err` means the worker is gone (killed here) and must be replaced.
    /// What the job holds is dropped on return, when the worker is done with it either way.
    async fn run_job(&self, worker: &mut Worker, job: Job) -> Result<(), Reason> {
        let _held = job.held;
        if job.accepted.send(()).is_err() {
            // The caller stopped waiting before a worker was free (a client that went away).
            tracing::debug!(request = %job.request.id, "request withdrawn before a worker took it");
            return Ok(());
        }
        metrics::histogram!("zeno_pool_queue_wait_seconds")
            .record(job.queued_at.elapsed().as_secs_f64());
        let config = &self.shared.config;
        let id = job.request.id.clone();
        self.shared.status.set(self.index, WorkerState::Busy);
        self.shared.status.served(self.index);
        // Once the pool shuts down, a running request gets stop_grace more, then its worker
        // is killed: shutdown is bounded even when a request would run to exec_timeout.
        let shutdown_deadline = async {
            self.shared.cancel.cancelled().await;
            tokio::time::sleep(config.stop_grace).await;
        };
        // The reply goes out as soon as the response arrives; after-response work (Laravel's
        // terminate) keeps the worker busy, under the same exec_timeout, until `done`.
        let mut reply = Some(job.reply);
        let send_reply = |reply: &mut Option<oneshot::Sender<Result<Response, PoolError>>>,
                          result: Result<Response, PoolError>| {
            if let Some(tx) = reply.take() {
                let _ = tx.send(result);
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(
                config.exec_timeout,
                worker.handle(job.request, self.shared.calls.as_ref(), |response| {
                    send_reply(&mut reply, Ok(response));
                }),
            ) => outcome,
            _ = shutdown_deadline => {
                tracing::warn!(slot = self.index, pid = worker.pid(), request = %id, grace = ?config.stop_grace, "request still running at shutdown; killing its worker");
                worker.kill().await;
                send_reply(&mut reply, Err(PoolError::ShuttingDown));
                self.shared.calls.request_ended(&id).await;
                self.shared.status.set(self.index, WorkerState::Down);
                return Err(Reason::Crashed);
            }
        };
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::error!(slot = self.index, pid = worker.pid(), request = %id, error = %err, "worker failed; replacing it");
                worker.kill().await;
                send_reply(&mut reply, Err(PoolError::WorkerFailed(err)));
                Err(Reason::Crashed)
            }
            Err(_) => {
                tracing::error!(slot = self.index, pid = worker.pid(), request = %id, timeout = ?config.exec_timeout, "request ran past exec_timeout; killing its worker");
                worker.kill().await;
                send_reply(&mut reply, Err(PoolError::Timeout(config.exec_timeout)));
                Err(Reason::ExecTimeout)
            }
        };
        self.shared.calls.request_ended(&id).await;
        self.shared.status.set(self.index, WorkerState::Idle);
        result
    }

    /// Starts booting a replacement unless one is already on its way.
    fn prepare(&self, pending: &mut Option<Pending>, reason: Reason) {
        if pending.is_some() {
            return;
        }
        tracing::info!(
            slot = self.index,
            reason = reason.as_str(),
            "booting a replacement worker"
        );
        let shared = self.shared.clone();
        let boot = tokio::spawn(async move {
            Worker::spawn(&shared.config.worker, shared.calls.as_ref()).await
        });
        *pending = Some(Pending { reason, boot });
    }

    /// Stops a retired worker in the background; the slot goes on with its replacement.
    fn retire(&self, worker: Worker, reason: Reason) {
        tracing::info!(
            slot = self.index,
            pid = worker.pid(),
            reason = reason.as_str(),
            requests = worker.requests(),
            "retiring worker"
        );
        count_restart(reason);
        let grace = self.shared.config.stop_grace;
        self.shared.tracker.spawn(worker.stop(grace));
    }

    async fn finish_pending_after(
        &self,
        reason: Reason,
        pending: Option<Pending>,
    ) -> Option<Box<Worker>> {
        count_restart(reason);
        self.finish_pending(pending).await
    }

    /// The worker is gone: use the replacement if one was booting, else boot cold.
    async fn finish_pending(&self, pending: Option<Pending>) -> Option<Box<Worker>> {
        let mut boot = pending?.boot;
        self.shared.status.set(self.index, WorkerState::Booting);
        tokio::select! {
            _ = self.shared.cancel.cancelled() => {
                boot.abort();
                None
            }
            booted = &mut boot => booted.ok().and_then(Result::ok).map(Box::new),
        }
    }
}

fn count_restart(reason: Reason) {
    metrics::counter!("zeno_worker_restarts_total", "reason" => reason.as_str()).increment(1);
}

fn over_memory(worker: &Worker, limit: u64) -> bool {
    match worker.rss_bytes() {
        Some(rss) if rss > limit => {
            tracing::info!(
                pid = worker.pid(),
                rss,
                limit,
                "worker over max_memory; recycling it"
            );
            true
        }
        _ => false,
    }
}

/// `max_jobs` plus up to 14% more, so workers started together retire at different times.
fn jittered(max_jobs: u64, salt: usize) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    if max_jobs == 0 {
        return 0;
    }
    let spread = max_jobs * 14 / 100;
    if spread == 0 {
        return max_jobs;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(salt);
    max_jobs + hasher.finish() % (spread + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_fourteen_percent() {
        assert_eq!(jittered(0, 1), 0);
        assert_eq!(jittered(5, 1), 5, "too small to spread");
        let values: Vec<u64> = (0..200).map(|i| jittered(1000, i)).collect();
        assert!(values.iter().all(|v| (1000..=1140).contains(v)));
        let distinct: std::collections::HashSet<_> = values.iter().collect();
        assert!(
            distinct.len() > 10,
            "jitter must actually spread: {distinct:?}"
        );
    }
}
