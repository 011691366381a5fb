//! The pool driven by a scripted fake worker under paused time: every transition of a slot,
//! deterministic, in well under a second of real time.
//!
//! A fake request's task says what the fake worker does: `{"ms": 500}` takes half a second,
//! `{"crash": true}` dies, `{"exit": true}` answers and says it exits, `{"after_ms": 300}`
//! answers at once and then works for 300 ms more.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use zeno_protocol::{Body, HeaderMap, HostCall, HostResult, Request, RequestKind, Response};
use zeno_worker::{BodyStream, CallOrigin, HostCalls, WorkerConfig, WorkerError};

use crate::process::{Spawn, WorkerProcess};
use crate::{Pool, PoolConfig, PoolError, WorkerState};
use std::future::Future;

/// What happened, in order, with the (paused) time it happened at.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    BootFailed,
    Booted(u32),
    Handled(u32, String),
    Stopped(u32),
    Killed(u32),
    Ended(String),
}

#[derive(Default)]
struct Script {
    /// Boots with these numbers (1-based) fail.
    failing_boots: Vec<u32>,
    /// How long a boot takes.
    boot_time: Duration,
    /// The RSS every worker reports.
    rss: u64,
}

struct Fake {
    script: Mutex<Script>,
    boots: AtomicU32,
    log: Mutex<Vec<(Duration, Seen)>>,
    started: Instant,
    /// Which pid should die while idle (0: none).
    die_idle: AtomicU64,
    idle_death: tokio::sync::Notify,
}

impl Fake {
    fn new(script: Script) -> Arc<Fake> {
        Arc::new(Fake {
            script: Mutex::new(script),
            boots: AtomicU32::new(0),
            log: Mutex::new(Vec::new()),
            started: Instant::now(),
            die_idle: AtomicU64::new(0),
            idle_death: tokio::sync::Notify::new(),
        })
    }

    fn record(&self, seen: Seen) {
        self.log
            .lock()
            .expect("log")
            .push((self.started.elapsed(), seen));
    }

    fn seen(&self) -> Vec<Seen> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn times_of(&self, wanted: impl Fn(&Seen) -> bool) -> Vec<Duration> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|(_, s)| wanted(s))
            .map(|(t, _)| *t)
            .collect()
    }

    fn count(&self, wanted: impl Fn(&Seen) -> bool) -> usize {
        self.seen().iter().filter(|s| wanted(s)).count()
    }
}

struct FakeSpawner(Arc<Fake>);

impl Spawn for FakeSpawner {
    type Worker = FakeWorker;

    async fn spawn(&self, _calls: &dyn HostCalls) -> Result<FakeWorker, WorkerError> {
        {
            let fake = &self.0;
            let number = fake.boots.fetch_add(1, Ordering::SeqCst) + 1;
            let (boot_time, fails, rss) = {
                let script = fake.script.lock().expect("script");
                (
                    script.boot_time,
                    script.failing_boots.contains(&number),
                    script.rss,
                )
            };
            tokio::time::sleep(boot_time).await;
            if fails {
                fake.record(Seen::BootFailed);
                return Err(WorkerError::BootTimeout(boot_time));
            }
            let pid = 1000 + number;
            fake.record(Seen::Booted(pid));
            Ok(FakeWorker {
                fake: fake.clone(),
                pid,
                requests: 0,
                exiting: false,
                rss,
            })
        }
    }
}

struct FakeWorker {
    fake: Arc<Fake>,
    pid: u32,
    requests: u64,
    exiting: bool,
    rss: u64,
}

impl WorkerProcess for FakeWorker {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn requests(&self) -> u64 {
        self.requests
    }

    fn rss_bytes(&self) -> Option<u64> {
        Some(self.rss)
    }

    fn is_exiting(&self) -> bool {
        self.exiting
    }

    async fn handle<F: FnOnce(Response, Option<BodyStream>) + Send>(
        &mut self,
        request: Request,
        _calls: &dyn HostCalls,
        on_response: F,
    ) -> Result<(), WorkerError> {
        {
            self.requests += 1;
            let task = request.task.clone().unwrap_or(Value::Null);
            self.fake
                .record(Seen::Handled(self.pid, request.id.clone()));
            if let Some(ms) = task["ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if task["crash"] == true {
                return Err(WorkerError::Exited {
                    status: "signal: 9".into(),
                    during: "handling a request",
                });
            }
            self.exiting = task["exit"] == true;
            on_response(
                Response {
                    id: request.id,
                    status: 200,
                    headers: HeaderMap::new(),
                    body: Body::from_bytes(self.pid.to_string().into_bytes()),
                    exiting: self.exiting,
                    terminating: task["after_ms"].is_u64(),
                    stream: false,
                },
                None,
            );
            if let Some(ms) = task["after_ms"].as_u64() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(())
        }
    }

    async fn watch_idle(&mut self) -> WorkerError {
        {
            loop {
                let notified = self.fake.idle_death.notified();
                if self.fake.die_idle.load(Ordering::SeqCst) == u64::from(self.pid) {
                    return WorkerError::Exited {
                        status: "signal: 11".into(),
                        during: "idle",
                    };
                }
                notified.await;
            }
        }
    }

    async fn stop(self, _grace: Duration) {
        self.fake.record(Seen::Stopped(self.pid))
    }

    async fn kill(&mut self) {
        self.fake.record(Seen::Killed(self.pid))
    }
}

/// Records which requests ended, so a test sees request_ended after every job.
struct Calls(Arc<Fake>);

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl HostCalls for Calls {
    fn call<'a>(&'a self, call: HostCall, _origin: CallOrigin<'a>) -> BoxFuture<'a, HostResult> {
        Box::pin(async move { HostResult::ok(call.id, Value::Null) })
    }

    fn request_ended<'a>(&'a self, request: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.0.record(Seen::Ended(request.to_owned())) })
    }
}

fn config(workers: usize) -> PoolConfig {
    PoolConfig {
        worker: WorkerConfig {
            php_binary: "unused".into(),
            ini: Vec::new(),
            script: "unused".into(),
            env: Vec::new(),
            cwd: None,
            boot_timeout: Duration::from_secs(30),
            max_line: 1024,
            max_host_call: 1024,
            credentials: None,
            batch_scheduling: false,
        },
        workers,
        exec_timeout: Duration::from_secs(30),
        allocate_timeout: Duration::from_secs(10),
        max_queue: 16,
        max_jobs: 0,
        max_memory: 0,
        memory_check_interval: Duration::from_secs(1),
        idle_timeout: Duration::ZERO,
        stop_grace: Duration::from_secs(10),
        name: "test",
    }
}

async fn start(config: PoolConfig, script: Script) -> (Pool<FakeSpawner>, Arc<Fake>) {
    let fake = Fake::new(script);
    let pool = Pool::start_with(
        config,
        FakeSpawner(fake.clone()),
        Arc::new(Calls(fake.clone())),
    )
    .await
    .expect("pool starts");
    let booted = fake.count(|s| matches!(s, Seen::Booted(_)));
    assert_eq!(
        pool.live_workers(),
        booted,
        "workers booted at start are live when start returns"
    );
    settle().await;
    (pool, fake)
}

/// Lets every task run until all wait on time or on each other.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn task(id: &str, payload: Value) -> Request {
    Request {
        id: id.into(),
        kind: RequestKind::Task,
        http: None,
        task: Some(payload),
        scope: serde_json::Map::new(),
    }
}

/// The pid that answered.
fn pid_of(response: &Response) -> u32 {
    response
        .body
        .clone()
        .into_bytes()
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .expect("pid body")
}

fn states(pool: &Pool<FakeSpawner>) -> Vec<(WorkerState, Option<u32>)> {
    pool.workers().iter().map(|w| (w.state, w.pid)).collect()
}

#[tokio::test(start_paused = true)]
async fn boots_and_serves_and_every_job_ends() {
    let (pool, fake) = start(config(2), Script::default()).await;
    assert_eq!(pool.live_workers(), 2);
    assert_eq!(
        states(&pool),
        vec![
            (WorkerState::Idle, Some(1001)),
            (WorkerState::Idle, Some(1002))
        ]
    );
    let response = pool.dispatch(task("r-1", json!({}))).await.expect("served");
    assert_eq!(response.status, 200);
    settle().await;
    assert!(fake.seen().contains(&Seen::Ended("r-1".into())));
    assert_eq!(pool.workers().iter().map(|w| w.requests).sum::<u64>(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_boots_back_off_doubling() {
    let script = Script {
        failing_boots: vec![2, 3, 4, 5],
        ..Script::default()
    };
    let (pool, fake) = start(config(2), script).await;
    assert_eq!(pool.live_workers(), 1, "one slot up, one backing off");
    assert_eq!(states(&pool)[1], (WorkerState::Down, None));
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle().await;
    assert_eq!(pool.live_workers(), 2);
    // The slot whose boot failed at start tries again at once, then 100, 200, 400 ms after
    // each failure.
    let attempts = fake.times_of(|s| matches!(s, Seen::BootFailed | Seen::Booted(_)));
    let gaps: Vec<u128> = attempts[1..]
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, vec![0, 100, 200, 400], "{attempts:?}");
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_slot_boots_means_no_pool() {
    let fake = Fake::new(Script {
        failing_boots: vec![1, 2],
        ..Script::default()
    });
    let result =
        Pool::start_with(config(2), FakeSpawner(fake.clone()), Arc::new(Calls(fake))).await;
    assert!(matches!(result, Err(PoolError::Boot(_))));
}

#[tokio::test(start_paused = true)]
async fn max_jobs_recycles_warm_without_failing_a_request() {
    let mut config = config(1);
    config.max_jobs = 3;
    let script = Script {
        boot_time: Duration::from_millis(50),
        ..Script::default()
    };
    let (pool, fake) = start(config, script).await;
    let mut pids = Vec::new();
    for i in 0..7 {
        let response = pool
            .dispatch(task(&format!("r-{i}"), json!({"ms": 20})))
            .await
            .expect("no request fails while recycling");
        pids.push(pid_of(&response));
    }
    settle().await;
    // The old worker serves while its replacement boots, then leaves.
    assert_eq!(pids[..3], [1001, 1001, 1001]);
    assert!(
        pids.iter().all(|p| [1001, 1002, 1003].contains(p)),
        "{pids:?}"
    );
    assert!(fake.seen().contains(&Seen::Stopped(1001)));
    assert!(pids.contains(&1002));
    assert_eq!(fake.count(|s| matches!(s, Seen::Killed(_))), 0);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn max_memory_recycles_after_a_request_and_while_idle() {
    let mut config = config(1);
    config.max_memory = 50 * 1024 * 1024;
    let script = Script {
        rss: 100 * 1024 * 1024,
        ..Script::default()
    };
    let (pool, fake) = start(config, script).await;
    // While idle: the memory check replaces it within a check interval or two.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    settle().await;
    assert!(
        fake.seen().contains(&Seen::Stopped(1001)),
        "{:?}",
        fake.seen()
    );
    let pid = pool.workers()[0].pid.expect("a worker");
    assert!(pid > 1001);
    // After a request: the one that served it is replaced.
    let response = pool.dispatch(task("r-1", json!({}))).await.expect("served");
    settle().await;
    assert!(fake.seen().contains(&Seen::Stopped(pid_of(&response))));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_recycles() {
    let mut config = config(1);
    config.idle_timeout = Duration::from_secs(60);
    let (pool, fake) = start(config, Script::default()).await;
    tokio::time::sleep(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(fake.count(|s| matches!(s, Seen::Booted(_))), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert!(fake.seen().contains(&Seen::Stopped(1001)));
    assert_eq!(states(&pool), vec![(WorkerState::Idle, Some(1002))]);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_request_fails_that_request_only() {
    let script = Script {
        boot_time: Duration::from_millis(200),
        ..Script::default()
    };
    let (pool, fake) = start(config(1), script).await;
    let crashed = pool.dispatch(task("r-1", json!({"crash": true}))).await;
    assert!(
        matches!(crashed, Err(PoolError::WorkerFailed(_))),
        "{crashed:?}"
    );
    settle().await;
    // While the new worker boots, the slot says so: not idle with a dead pid.
    assert_eq!(states(&pool), vec![(WorkerState::Booting, None)]);
    assert_eq!(pool.live_workers(), 0);
    assert!(fake.seen().contains(&Seen::Ended("r-1".into())));
    let response = pool.dispatch(task("r-2", json!({}))).await.expect("served");
    assert_eq!(pid_of(&response), 1002);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exec_timeout_kills_and_replaces_the_worker() {
    let mut config = config(1);
    config.exec_timeout = Duration::from_secs(1);
    let (pool, fake) = start(config, Script::default()).await;
    let started = Instant::now();
    let result = pool.dispatch(task("r-1", json!({"ms": 60_000}))).await;
    assert!(matches!(result, Err(PoolError::Timeout(_))), "{result:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    settle().await;
    assert!(fake.seen().contains(&Seen::Killed(1001)));
    assert!(fake.seen().contains(&Seen::Ended("r-1".into())));
    let response = pool.dispatch(task("r-2", json!({}))).await.expect("served");
    assert_eq!(pid_of(&response), 1002);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_response_work_keeps_the_worker_busy_under_exec_timeout() {
    let mut config = config(1);
    config.exec_timeout = Duration::from_secs(1);
    let (pool, fake) = start(config, Script::default()).await;
    let started = Instant::now();
    let response = pool
        .dispatch(task("r-1", json!({"after_ms": 500})))
        .await
        .expect("answered before the after-response work");
    assert_eq!(response.status, 200);
    assert_eq!(started.elapsed(), Duration::ZERO);
    settle().await;
    assert_eq!(states(&pool), vec![(WorkerState::Busy, Some(1001))]);
    // The next request waits for that work to finish.
    pool.dispatch(task("r-2", json!({}))).await.expect("served");
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    // After-response work that overruns exec_timeout kills the worker; the client had its answer.
    let response = pool
        .dispatch(task("r-3", json!({"after_ms": 5000})))
        .await
        .expect("answered");
    assert_eq!(response.status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert!(fake.seen().contains(&Seen::Killed(1001)));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_exits_after_its_response_is_replaced() {
    let (pool, fake) = start(config(1), Script::default()).await;
    let response = pool
        .dispatch(task("r-1", json!({"exit": true})))
        .await
        .expect("answered");
    assert_eq!(pid_of(&response), 1001);
    let response = pool.dispatch(task("r-2", json!({}))).await.expect("served");
    assert_eq!(pid_of(&response), 1002);
    assert!(fake.seen().contains(&Seen::Stopped(1001)));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_that_dies_is_replaced_before_it_gets_work() {
    let (pool, fake) = start(config(1), Script::default()).await;
    fake.die_idle.store(1001, Ordering::SeqCst);
    fake.idle_death.notify_waiters();
    settle().await;
    assert!(fake.seen().contains(&Seen::Killed(1001)));
    let response = pool.dispatch(task("r-1", json!({}))).await.expect("served");
    assert_eq!(pid_of(&response), 1002);
    assert_eq!(fake.count(|s| matches!(s, Seen::Handled(1001, _))), 0);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reload_during_a_replacement_boot_starts_over() {
    let mut config = config(1);
    config.max_jobs = 1;
    let script = Script {
        boot_time: Duration::from_secs(1),
        ..Script::default()
    };
    let (pool, fake) = start(config, script).await;
    pool.dispatch(task("r-1", json!({}))).await.expect("served");
    // max_jobs started a replacement (boot 2); a reload half way through aborts it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.reload();
    settle().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    let booted = fake.times_of(|s| matches!(s, Seen::Booted(_)));
    assert_eq!(
        booted.len(),
        2,
        "the stale boot never completed: {:?}",
        fake.seen()
    );
    assert!(booted[1] >= Duration::from_millis(2500), "{booted:?}");
    assert_eq!(states(&pool), vec![(WorkerState::Idle, Some(1003))]);
    assert!(fake.seen().contains(&Seen::Stopped(1001)));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reload_replaces_every_worker_warm() {
    let script = Script {
        boot_time: Duration::from_millis(100),
        ..Script::default()
    };
    let (pool, fake) = start(config(3), script).await;
    pool.reload();
    // Requests keep being served by the old workers while the new ones boot.
    let response = pool.dispatch(task("r-1", json!({}))).await.expect("served");
    assert!(pid_of(&response) <= 1003);
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    let pids: Vec<_> = states(&pool)
        .into_iter()
        .map(|(_, p)| p.expect("pid"))
        .collect();
    assert!(pids.iter().all(|p| *p > 1003), "{pids:?}");
    assert_eq!(fake.count(|s| matches!(s, Seen::Stopped(_))), 3);
    assert_eq!(pool.live_workers(), 3);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_a_busy_worker_stop_grace_then_kills_it() {
    let mut config = config(2);
    config.stop_grace = Duration::from_secs(3);
    let (pool, fake) = start(config, Script::default()).await;
    let pool = Arc::new(pool);
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.dispatch(task("r-1", json!({"ms": 60_000}))).await })
    };
    settle().await;
    let started = Instant::now();
    pool.shutdown().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let result = busy.await.expect("joined");
    assert!(matches!(result, Err(PoolError::ShuttingDown)), "{result:?}");
    assert!(fake.seen().contains(&Seen::Killed(1001)) || fake.seen().contains(&Seen::Killed(1002)));
    assert_eq!(
        fake.count(|s| matches!(s, Seen::Stopped(_))),
        1,
        "the idle one was stopped"
    );
    assert!(fake.seen().contains(&Seen::Ended("r-1".into())));
    assert_eq!(
        states(&pool),
        vec![(WorkerState::Down, None), (WorkerState::Down, None)]
    );
    assert_eq!(pool.live_workers(), 0);
    assert!(matches!(
        pool.dispatch(task("r-2", json!({}))).await,
        Err(PoolError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn waiting_is_bounded_and_withdrawn_requests_never_run() {
    let mut config = config(1);
    config.allocate_timeout = Duration::from_secs(2);
    config.max_queue = 1;
    let (pool, fake) = start(config, Script::default()).await;
    let pool = Arc::new(pool);
    let long = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.dispatch(task("r-long", json!({"ms": 10_000}))).await })
    };
    settle().await;
    // One waits (the queue holds one); the next is refused at once.
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.dispatch(task("r-wait", json!({}))).await })
    };
    settle().await;
    let full = pool.dispatch(task("r-full", json!({}))).await;
    assert!(matches!(full, Err(PoolError::QueueFull(1))), "{full:?}");
    let waited = waiting.await.expect("joined");
    assert!(matches!(waited, Err(PoolError::NoWorker(_))), "{waited:?}");
    long.await.expect("joined").expect("served");
    settle().await;
    assert_eq!(
        fake.count(|s| matches!(s, Seen::Handled(_, id) if id == "r-wait" || id == "r-full")),
        0,
        "withdrawn or refused requests never ran"
    );
    pool.shutdown().await;
}

/// `zeno_worker_restarts_total` by reason, from a recorder local to this (single) thread.
fn restarts(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "zeno_worker_restarts_total")
        .filter_map(|(key, _, _, value)| {
            let reason = key
                .key()
                .labels()
                .find(|l| l.key() == "reason")?
                .value()
                .to_owned();
            match value {
                metrics_util::debugging::DebugValue::Counter(n) => Some((reason, n)),
                _ => None,
            }
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(start_paused = true)]
async fn restarts_are_counted_by_reason_and_shutdown_is_not_one() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut config = config(1);
    config.exec_timeout = Duration::from_secs(2);
    config.stop_grace = Duration::from_secs(1);
    let (pool, _fake) = start(config, Script::default()).await;
    let pool = Arc::new(pool);
    let _ = pool.dispatch(task("r-1", json!({"crash": true}))).await;
    let _ = pool.dispatch(task("r-2", json!({"ms": 5000}))).await;
    pool.dispatch(task("r-3", json!({"exit": true})))
        .await
        .expect("served");
    settle().await;
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.dispatch(task("r-4", json!({"ms": 60_000}))).await })
    };
    settle().await;
    pool.shutdown().await;
    let _ = busy.await;
    // One snapshot (it drains the counters): the kill at shutdown is not among them.
    assert_eq!(
        restarts(&snapshotter),
        vec![
            ("crashed".to_owned(), 1),
            ("exec_timeout".to_owned(), 1),
            ("exited".to_owned(), 1)
        ]
    );
}
