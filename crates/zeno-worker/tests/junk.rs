//! A worker that writes arbitrary bytes on stdout never panics or wedges the host: each
//! case ends in an error promptly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::NoCalls;
use zeno_protocol::{Request, RequestKind};
use zeno_worker::{Worker, WorkerConfig, WorkerError};

fn config(mode: &str, seed: u32) -> WorkerConfig {
    WorkerConfig {
        php_binary: PathBuf::from("php"),
        ini: vec![],
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junk.php"),
        env: vec![
            ("JUNK_MODE".into(), mode.into()),
            ("JUNK_SEED".into(), seed.to_string()),
        ],
        cwd: None,
        // Long enough for PHP to start on a loaded 2-core machine (2 s was not, once, with
        // builds running beside the tests); the silent worker is the one meant to reach it.
        boot_timeout: Duration::from_secs(if mode == "silent" { 2 } else { 10 }),
        max_line: 4096,
        max_host_call: 1024,
        credentials: None,
        batch_scheduling: false,
    }
}

fn request() -> Request {
    Request {
        id: "r-1".into(),
        kind: RequestKind::Task,
        http: None,
        task: Some(serde_json::json!({})),
        scope: serde_json::Map::new(),
    }
}

#[tokio::test]
async fn random_bytes_instead_of_a_handshake_fail_the_boot() {
    for seed in 0..8 {
        let started = Instant::now();
        let err = Worker::spawn(&config("boot", seed), &NoCalls)
            .await
            .expect_err("junk is not a handshake");
        assert!(
            matches!(err, WorkerError::Exited { .. } | WorkerError::Protocol(_)),
            "seed {seed}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn random_bytes_instead_of_a_response_fail_the_request() {
    for seed in 0..8 {
        let mut worker = Worker::spawn(&config("request", seed), &NoCalls)
            .await
            .expect("handshake");
        let pid = worker.pid();
        let started = Instant::now();
        let err = worker
            .handle(request(), &NoCalls, |_, _| {})
            .await
            .expect_err("junk is not a response");
        assert!(
            matches!(err, WorkerError::StrayOutput(_) | WorkerError::Protocol(_)),
            "seed {seed}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "seed {seed} wedged"
        );
        worker.kill().await;
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker reaped"
        );
    }
}

#[tokio::test]
async fn a_silent_worker_times_out_and_a_wrong_version_is_refused() {
    let err = Worker::spawn(&config("silent", 0), &NoCalls)
        .await
        .expect_err("no handshake");
    assert!(matches!(err, WorkerError::BootTimeout(_)), "{err}");
    let err = Worker::spawn(&config("version", 0), &NoCalls)
        .await
        .expect_err("wrong version");
    assert!(matches!(err, WorkerError::UnsupportedProtocol(99)), "{err}");
}
