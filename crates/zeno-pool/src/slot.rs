//! One worker slot, as an explicit state machine. Its whole life:
//!
//! ```text
//!            ┌──────────── boot failed: BackingOff (100 ms doubling to 10 s) ─┐
//!            ▼                                                               │
//!  ──► Booting ──ready──► Idle ◄──── job done ───► Busy                      │
//!            ▲             │  │                      │ died / exec_timeout   │
//!            │             │  └─ limit, reload, idle: a replacement boots    │
//!            │             │     beside it; when ready it takes over (warm)  │
//!            └─────────────┴────── worker lost: boot a new one ──────────────┘
//!  any state ── shutdown ──► Stopping ──► Down
//! ```
//!
//! Every change of state goes through [`Slot::enter`], which is the only writer of the status
//! board; every restart is counted in one place, [`Slot::lost`] or [`Slot::retire`], with its
//! reason.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use zeno_worker::WorkerError;

use crate::process::{Spawn, WorkerProcess};
use crate::status::WorkerState;
use crate::{Job, PoolError, Reply, Shared};

/// Why a worker left its slot; the `reason` label of `zeno_worker_restarts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
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

/// What can happen to a slot that has a worker: the arms of its one `select!`.
// An event lives for one turn of the loop; boxing the job would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Event<W> {
    Shutdown,
    Job(Job),
    QueueClosed,
    ReplacementBooted(Result<W, WorkerError>),
    IdleWorkerFailed(WorkerError),
    Reload,
    IdleTooLong,
    MemoryCheck,
}

/// How a job ended for its worker.
enum JobEnd {
    /// The worker is fine and can take the next job.
    Served,
    /// The worker is gone (died, or killed at exec_timeout) and must be replaced.
    Lost(Reason),
    /// The pool shut down while the job ran; the worker was killed after `stop_grace`.
    Shutdown,
}

/// A replacement worker booting in the background, and why.
struct Replacement<W> {
    reason: Reason,
    boot: JoinHandle<Result<W, WorkerError>>,
}

pub(crate) struct Slot<S: Spawn> {
    index: usize,
    shared: Arc<Shared<S>>,
    state: WorkerState,
}

impl<S: Spawn> Slot<S> {
    /// A slot; with `ready` (the pid of a worker booted for it) it starts out idle and live.
    pub(crate) fn new(index: usize, shared: Arc<Shared<S>>, ready: Option<u32>) -> Self {
        let mut slot = Slot {
            index,
            shared,
            state: WorkerState::Booting,
        };
        if let Some(pid) = ready {
            slot.shared.status.started(index, pid);
            slot.enter(WorkerState::Idle, Some(pid));
        }
        slot
    }

    /// The one place a slot changes state: the status board and the live count follow.
    fn enter(&mut self, state: WorkerState, pid: Option<u32>) {
        let was_live = matches!(self.state, WorkerState::Idle | WorkerState::Busy);
        let is_live = matches!(state, WorkerState::Idle | WorkerState::Busy);
        match (was_live, is_live) {
            (false, true) => {
                self.shared.live.fetch_add(1, Ordering::SeqCst);
            }
            (true, false) => {
                self.shared.live.fetch_sub(1, Ordering::SeqCst);
            }
            _ => {}
        }
        tracing::trace!(
            slot = self.index,
            from = self.state.as_str(),
            to = state.as_str(),
            ?pid,
            "slot state"
        );
        self.state = state;
        self.shared.status.set(self.index, state, pid);
    }

    /// Runs the slot until the pool shuts down, starting with `initial` if it booted.
    pub(crate) async fn run(mut self, initial: Option<S::Worker>) {
        let mut next = initial;
        loop {
            let worker = match next.take() {
                Some(worker) => worker,
                None => match self.boot().await {
                    Some(worker) => worker,
                    None => break,
                },
            };
            match self.serve(worker).await {
                Some(fresh) => next = fresh,
                None => break,
            }
        }
        self.enter(WorkerState::Down, None);
    }

    /// Boots a worker, backing off after failures; `None` when the pool shuts down first.
    async fn boot(&mut self) -> Option<S::Worker> {
        let mut backoff = Duration::from_millis(100);
        loop {
            self.enter(WorkerState::Booting, None);
            let booted = tokio::select! {
                _ = self.shared.cancel.cancelled() => return None,
                booted = self.shared.spawner.spawn(self.shared.calls.as_ref()) => booted,
            };
            match booted {
                Ok(worker) => return Some(worker),
                Err(err) => {
                    self.enter(WorkerState::Down, None);
                    metrics::counter!("zeno_worker_boot_failures_total", "pool" => self.shared.config.name).increment(1);
                    tracing::error!(pool = self.shared.config.name, slot = self.index, error = %zeno_protocol::report(&err), retry_in = ?backoff, "worker failed to boot");
                    tokio::select! {
                        _ = self.shared.cancel.cancelled() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Serves with one worker until it must go. `Some(next)` goes on with `next` (a booted
    /// replacement, or `None` to boot one); `None` means the pool shut down.
    async fn serve(&mut self, mut worker: S::Worker) -> Option<Option<S::Worker>> {
        let shared = self.shared.clone();
        let config = &shared.config;
        self.shared.status.started(self.index, worker.pid());
        self.enter(WorkerState::Idle, Some(worker.pid()));
        let max_jobs = jittered(config.max_jobs, self.index);
        let mut generation = self.shared.generation.subscribe();
        generation.mark_unchanged();
        let mut replacement: Option<Replacement<S::Worker>> = None;
        let mut memory_check =
            tokio::time::interval(config.memory_check_interval.max(Duration::from_millis(10)));
        memory_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        memory_check.reset();

        loop {
            let event = self
                .next_event(
                    &mut worker,
                    &mut replacement,
                    &mut generation,
                    &mut memory_check,
                )
                .await;
            match event {
                Event::Shutdown | Event::QueueClosed => {
                    if let Some(r) = replacement.take() {
                        r.boot.abort();
                    }
                    self.enter(WorkerState::Stopping, Some(worker.pid()));
                    worker.stop(config.stop_grace).await;
                    return None;
                }
                Event::Job(job) => match self.run_job(&mut worker, job).await {
                    JobEnd::Served => {
                        if worker.is_exiting() {
                            tracing::info!(
                                slot = self.index,
                                pid = worker.pid(),
                                "worker exits after its response; replacing it"
                            );
                            self.retire(worker, Reason::Exited);
                            return self.take_replacement(replacement).await;
                        }
                        if max_jobs > 0 && worker.requests() >= max_jobs {
                            self.replace_later(&mut replacement, Reason::MaxJobs);
                        }
                        if over_memory(&worker, config.max_memory) {
                            self.replace_later(&mut replacement, Reason::MaxMemory);
                        }
                    }
                    JobEnd::Lost(reason) => {
                        self.lost(reason);
                        return self.take_replacement(replacement).await;
                    }
                    JobEnd::Shutdown => return None,
                },
                Event::ReplacementBooted(Ok(fresh)) => {
                    let reason = replacement.take().map_or(Reason::Reload, |r| r.reason);
                    self.retire(worker, reason);
                    return Some(Some(fresh));
                }
                Event::ReplacementBooted(Err(err)) => {
                    // The current worker is healthy: keep it; the next trigger tries again.
                    replacement = None;
                    tracing::error!(slot = self.index, error = %zeno_protocol::report(&err), "replacement worker failed to boot; keeping the current one");
                }
                Event::IdleWorkerFailed(err) => {
                    tracing::warn!(slot = self.index, pid = worker.pid(), error = %zeno_protocol::report(&err), "idle worker failed; replacing it");
                    worker.kill().await;
                    self.lost(Reason::Crashed);
                    return self.take_replacement(replacement).await;
                }
                Event::Reload => {
                    // A replacement that started booting before the reload may have loaded
                    // the old code: start over.
                    if let Some(stale) = replacement.take() {
                        stale.boot.abort();
                    }
                    self.replace_later(&mut replacement, Reason::Reload);
                }
                Event::IdleTooLong => {
                    tracing::info!(
                        slot = self.index,
                        pid = worker.pid(),
                        "worker idle too long; recycling it"
                    );
                    self.replace_later(&mut replacement, Reason::IdleTimeout);
                }
                Event::MemoryCheck => {
                    if over_memory(&worker, config.max_memory) {
                        self.replace_later(&mut replacement, Reason::MaxMemory);
                    }
                }
            }
        }
    }

    /// Waits for whatever happens next to a slot whose worker is idle.
    async fn next_event(
        &self,
        worker: &mut S::Worker,
        replacement: &mut Option<Replacement<S::Worker>>,
        generation: &mut tokio::sync::watch::Receiver<u64>,
        memory_check: &mut tokio::time::Interval,
    ) -> Event<S::Worker> {
        let config = &self.shared.config;
        let idle_timeout = config.idle_timeout;
        let idle = async {
            if idle_timeout.is_zero() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(idle_timeout).await;
        };
        let booted = async {
            match replacement.as_mut() {
                Some(r) => match (&mut r.boot).await {
                    Ok(result) => result,
                    Err(join) => Err(WorkerError::Protocol(format!(
                        "replacement boot task failed: {join}"
                    ))),
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.shared.cancel.cancelled() => Event::Shutdown,
            booted = booted => Event::ReplacementBooted(booted),
            err = worker.watch_idle() => Event::IdleWorkerFailed(err),
            _ = generation.changed() => Event::Reload,
            _ = idle => Event::IdleTooLong,
            _ = memory_check.tick(), if config.max_memory > 0 => Event::MemoryCheck,
            job = async { self.shared.jobs.lock().await.recv().await } => match job {
                Some(job) => Event::Job(job),
                None => Event::QueueClosed,
            },
        }
    }

    /// Runs one job on the worker. What the job holds is dropped on return, when the worker
    /// is done with it either way.
    async fn run_job(&mut self, worker: &mut S::Worker, job: Job) -> JobEnd {
        let _held = job.held;
        if job.accepted.send(()).is_err() {
            // The caller stopped waiting before a worker was free (a client that went away).
            tracing::debug!(request = %job.request.id, "request withdrawn before a worker took it");
            return JobEnd::Served;
        }
        metrics::histogram!("zeno_pool_queue_wait_seconds", "pool" => self.shared.config.name)
            .record(job.queued_at.elapsed().as_secs_f64());
        let shared = self.shared.clone();
        let config = &shared.config;
        let id = job.request.id.clone();
        let exec_timeout = job.exec_timeout;
        let pid = worker.pid();
        self.enter(WorkerState::Busy, Some(pid));
        self.shared.status.served(self.index);
        // Once the pool shuts down, a running request gets stop_grace more, then its worker
        // is killed: shutdown is bounded even when a request would run to exec_timeout.
        let shutdown_deadline = async {
            self.shared.cancel.cancelled().await;
            tokio::time::sleep(config.stop_grace).await;
        };
        // The reply goes out as soon as the response arrives; after-response work (Laravel's
        // terminate) keeps the worker busy, under the same exec_timeout, until it is done.
        // The first to answer wins: the response as soon as it arrives, or the failure.
        let mut reply = Some(job.reply);
        let send_reply = |reply: &mut Option<ReplySender>, result: Result<Reply, PoolError>| {
            if let Some(tx) = reply.take() {
                let _ = tx.send(result);
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(
                exec_timeout,
                tracing::Instrument::instrument(
                    worker.handle(job.request, shared.calls.as_ref(), |response, body| send_reply(&mut reply, Ok(Reply { response, body }))),
                    job.span,
                ),
            ) => Some(outcome),
            _ = shutdown_deadline => None,
        };
        let end = match outcome {
            Some(Ok(Ok(()))) => JobEnd::Served,
            Some(Ok(Err(err))) => {
                tracing::error!(slot = self.index, pid, request = %id, error = %zeno_protocol::report(&err), "worker failed; replacing it");
                worker.kill().await;
                send_reply(&mut reply, Err(PoolError::WorkerFailed(err)));
                JobEnd::Lost(Reason::Crashed)
            }
            Some(Err(_)) => {
                tracing::error!(slot = self.index, pid, request = %id, timeout = ?exec_timeout, "request ran past exec_timeout; killing its worker");
                worker.kill().await;
                send_reply(&mut reply, Err(PoolError::Timeout(exec_timeout)));
                JobEnd::Lost(Reason::ExecTimeout)
            }
            None => {
                tracing::warn!(slot = self.index, pid, request = %id, grace = ?config.stop_grace, "request still running at shutdown; killing its worker");
                self.enter(WorkerState::Stopping, Some(pid));
                worker.kill().await;
                send_reply(&mut reply, Err(PoolError::ShuttingDown));
                JobEnd::Shutdown
            }
        };
        shared.calls.request_ended(&id).await;
        if matches!(end, JobEnd::Served) {
            self.enter(WorkerState::Idle, Some(pid));
        }
        end
    }

    /// Starts booting a replacement unless one is already on its way.
    fn replace_later(&self, replacement: &mut Option<Replacement<S::Worker>>, reason: Reason) {
        if replacement.is_some() {
            return;
        }
        tracing::info!(
            slot = self.index,
            reason = reason.as_str(),
            "booting a replacement worker"
        );
        let shared = self.shared.clone();
        let boot = tokio::spawn(async move { shared.spawner.spawn(shared.calls.as_ref()).await });
        *replacement = Some(Replacement { reason, boot });
    }

    /// A healthy worker leaves on purpose: stopped in the background, counted.
    fn retire(&self, worker: S::Worker, reason: Reason) {
        tracing::info!(
            slot = self.index,
            pid = worker.pid(),
            reason = reason.as_str(),
            requests = worker.requests(),
            "retiring worker"
        );
        count_restart(self.shared.config.name, reason);
        let grace = self.shared.config.stop_grace;
        self.shared.tracker.spawn(worker.stop(grace));
    }

    /// The worker was lost (already dead or killed): counted; the slot is booting again.
    fn lost(&mut self, reason: Reason) {
        count_restart(self.shared.config.name, reason);
        self.enter(WorkerState::Booting, None);
    }

    /// The worker is gone: the replacement if one was booting (`None` inside to boot cold if
    /// it fails), or `None` if the pool shuts down meanwhile.
    async fn take_replacement(
        &mut self,
        replacement: Option<Replacement<S::Worker>>,
    ) -> Option<Option<S::Worker>> {
        let Some(mut r) = replacement else {
            return Some(None);
        };
        self.enter(WorkerState::Booting, None);
        tokio::select! {
            _ = self.shared.cancel.cancelled() => {
                r.boot.abort();
                None
            }
            booted = &mut r.boot => Some(booted.ok().and_then(Result::ok)),
        }
    }
}

type ReplySender = tokio::sync::oneshot::Sender<Result<Reply, PoolError>>;

fn count_restart(pool: &'static str, reason: Reason) {
    metrics::counter!("zeno_worker_restarts_total", "pool" => pool, "reason" => reason.as_str())
        .increment(1);
}

fn over_memory(worker: &impl WorkerProcess, limit: u64) -> bool {
    if limit == 0 {
        return false;
    }
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
