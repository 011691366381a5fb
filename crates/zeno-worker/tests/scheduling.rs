//! `batch_scheduling` puts the PHP process under `SCHED_BATCH`; off, it keeps the normal
//! policy.

use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::NoCalls;
use zeno_worker::{Worker, WorkerConfig};

const SCHED_OTHER: i32 = 0;
const SCHED_BATCH: i32 = 3;

/// The scheduling policy of `pid`: field 41 of `/proc/<pid>/stat`.
fn policy(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    rest.split_whitespace()
        .nth(41 - 3)
        .expect("policy field")
        .parse()
        .expect("number")
}

async fn spawn(batch_scheduling: bool) -> Worker {
    let config = WorkerConfig {
        php_binary: PathBuf::from("php"),
        ini: vec![],
        // Its "request" mode completes the handshake normally.
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junk.php"),
        env: vec![("JUNK_MODE".into(), "request".into())],
        cwd: None,
        boot_timeout: Duration::from_secs(10),
        max_line: 4096,
        max_host_call: 1024,
        credentials: None,
        batch_scheduling,
    };
    Worker::spawn(&config, &NoCalls).await.expect("handshake")
}

#[tokio::test]
async fn batch_scheduling_sets_sched_batch() {
    let worker = spawn(true).await;
    assert_eq!(policy(worker.pid()), SCHED_BATCH);
    let worker = spawn(false).await;
    assert_eq!(policy(worker.pid()), SCHED_OTHER);
    // The host itself keeps the normal policy.
    assert_eq!(policy(std::process::id()), SCHED_OTHER);
}
