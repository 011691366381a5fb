//! What each worker slot is doing, for `/workers`, `/metrics` and `zeno workers`.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The life stage of a worker slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Starting PHP and waiting for `ready`.
    Booting,
    /// Waiting for a request.
    Idle,
    /// Running a request.
    Busy,
    /// Finishing before it exits.
    Stopping,
    /// Not running (boot failed; retrying with backoff).
    Down,
}

impl WorkerState {
    /// The state's name as it appears in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Booting => "booting",
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Stopping => "stopping",
            WorkerState::Down => "down",
        }
    }
}

/// One slot's worker, as reported to operators.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Slot number, stable across replacements.
    pub slot: usize,
    /// The worker's process id (absent while none runs).
    pub pid: Option<u32>,
    /// What it is doing.
    pub state: WorkerState,
    /// Requests this worker process has served.
    pub requests: u64,
    /// Resident memory, read from /proc when the snapshot was taken.
    pub rss_bytes: Option<u64>,
    /// Seconds since this worker process became ready.
    pub age_seconds: f64,
    /// When it became ready, Unix seconds.
    pub started_at: f64,
}

#[derive(Debug, Clone)]
struct Entry {
    pid: Option<u32>,
    state: WorkerState,
    requests: u64,
    started: Instant,
    started_wall: SystemTime,
}

/// The shared board every slot writes its state on.
#[derive(Debug)]
pub(crate) struct Board {
    entries: Mutex<Vec<Entry>>,
}

impl Board {
    pub(crate) fn new(slots: usize) -> Self {
        let entry = Entry {
            pid: None,
            state: WorkerState::Booting,
            requests: 0,
            started: Instant::now(),
            started_wall: SystemTime::now(),
        };
        Board {
            entries: Mutex::new(vec![entry; slots]),
        }
    }

    fn with(&self, slot: usize, f: impl FnOnce(&mut Entry)) {
        // A poisoned lock only means another slot panicked mid-update; the data is plain.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(slot) {
            f(entry);
        }
    }

    /// A new worker process took over the slot: its counters start over.
    pub(crate) fn started(&self, slot: usize, pid: u32) {
        self.with(slot, |e| {
            e.pid = Some(pid);
            e.requests = 0;
            e.started = Instant::now();
            e.started_wall = SystemTime::now();
        });
    }

    /// The slot's state and the worker it concerns; only [`crate::slot`] calls this, from
    /// its one transition function.
    pub(crate) fn set(&self, slot: usize, state: WorkerState, pid: Option<u32>) {
        self.with(slot, |e| {
            e.state = state;
            e.pid = pid;
        });
    }

    pub(crate) fn served(&self, slot: usize) {
        self.with(slot, |e| e.requests += 1);
    }

    pub(crate) fn snapshot(&self) -> Vec<WorkerInfo> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        entries
            .into_iter()
            .enumerate()
            .map(|(slot, e)| WorkerInfo {
                slot,
                pid: e.pid,
                state: e.state,
                requests: e.requests,
                rss_bytes: e.pid.and_then(zeno_worker::rss_of),
                age_seconds: e.started.elapsed().as_secs_f64(),
                started_at: e
                    .started_wall
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            })
            .collect()
    }
}
