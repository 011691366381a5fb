//! Worker limits, recycling, reload, boot failures, signals and observability, against the
//! real binary and real PHP.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use zeno_e2e::{client, fixture, process_alive, temp_path, zeno_bin, Server};

async fn pid_of(server: &Server) -> u64 {
    let response = client().get(server.url("/pid")).send().await.expect("send");
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")["pid"]
        .as_u64()
        .expect("pid")
}

async fn admin_get(addr: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("admin request")
}

/// The second of the day a JSON log line was written at (its `timestamp`), for gaps.
fn log_seconds(line: &str) -> f64 {
    let value: Value = serde_json::from_str(line).expect("json log line");
    let stamp = value["timestamp"].as_str().expect("timestamp");
    let time = stamp
        .split('T')
        .nth(1)
        .expect("time part")
        .trim_end_matches('Z');
    time.split(':')
        .map(|part| part.parse::<f64>().expect("number"))
        .fold(0.0, |total, part| total * 60.0 + part)
}

#[tokio::test]
async fn max_jobs_recycles_workers_without_failing_a_request() {
    let server = Server::worker(&fixture("dump.php"))
        .args([
            "--workers",
            "1",
            "--max-jobs",
            "3",
            "--admin",
            "127.0.0.1:0",
        ])
        .start();
    // A retiring worker serves until its replacement has booted, so keep asking until three
    // workers have answered.
    let mut pids = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.len() < 3 && Instant::now() < deadline {
        pids.insert(pid_of(&server).await);
    }
    assert!(pids.len() >= 3, "workers were recycled: {pids:?}");
    let metrics = admin_get(&server.admin_addr(), "/metrics")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("zeno_worker_restarts_total{pool=\"http\",reason=\"max_jobs\"}"),
        "{metrics}"
    );
    // Retired workers are gone, not left running.
    let current = pid_of(&server).await;
    zeno_e2e::wait_until(Duration::from_secs(10), || {
        pids.iter()
            .filter(|p| **p != current)
            .all(|p| !process_alive(u32::try_from(*p).expect("pid")))
    });
    for pid in pids.iter().filter(|p| **p != current) {
        assert!(
            !process_alive(u32::try_from(*pid).expect("pid")),
            "retired worker {pid} still runs"
        );
    }
}

#[tokio::test]
async fn a_leaking_worker_is_replaced_past_max_memory() {
    let server = Server::worker(&fixture("dump.php"))
        .args([
            "--workers",
            "1",
            "--max-memory",
            "48M",
            "--admin",
            "127.0.0.1:0",
        ])
        .start();
    let before = pid_of(&server).await;
    let response = client()
        .get(server.url("/leak?mb=64"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        200,
        "the request that leaks still succeeds"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = before;
    while after == before && Instant::now() < deadline {
        after = pid_of(&server).await;
    }
    assert_ne!(after, before, "the worker over max_memory was replaced");
    let metrics = admin_get(&server.admin_addr(), "/metrics")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("zeno_worker_restarts_total{pool=\"http\",reason=\"max_memory\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_idle_worker_is_recycled_after_idle_timeout() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1", "--idle-timeout", "300ms"])
        .start();
    let before = pid_of(&server).await;
    // Nothing touches the worker (a request would reset its idle clock) until it is gone.
    assert!(
        zeno_e2e::wait_until(Duration::from_secs(10), || !process_alive(
            u32::try_from(before).expect("pid")
        )),
        "the idle worker was never recycled"
    );
    let after = pid_of(&server).await;
    assert_ne!(before, after);
    assert!(!process_alive(u32::try_from(before).expect("pid")));
}

#[tokio::test]
async fn stray_output_without_a_newline_fails_only_that_request() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1"])
        .start();
    let before = pid_of(&server).await;
    let response = client()
        .get(server.url("/stray-nonl"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 502);
    assert!(server
        .wait_for_log(
            "partial stray output without a newline",
            Duration::from_secs(5)
        )
        .is_some());
    assert_ne!(pid_of(&server).await, before);
}

#[tokio::test]
async fn a_client_that_disconnects_while_queued_never_runs() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1"])
        .start();
    let (path, running) = zeno_e2e::started("/sleep?ms=1000");
    let busy = tokio::spawn({
        let url = server.url(&path);
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    zeno_e2e::wait_started(&running).await;
    let marker = temp_path("marker");
    let impatient = client()
        .get(server.url(&format!("/mark?file={}", marker.display())))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(
        impatient.is_err(),
        "the client gave up while the only worker was busy"
    );
    assert_eq!(busy.await.expect("join").expect("busy request"), 200);
    // The worker is free now; the withdrawn request must not run on it.
    assert_eq!(
        client()
            .get(server.url("/pid"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    // One worker takes jobs in order: the withdrawn one was skipped before /pid ran.
    assert!(!marker.exists(), "a request whose client left must not run");
}

#[tokio::test]
async fn slow_boot_within_the_timeout_works_and_past_it_fails_clearly() {
    let server = Server::worker(&fixture("slow-boot.php"))
        .args(["--workers", "1"])
        .env("ZENO_WORKERS__ENV__BOOT_SLEEP_MS", "500")
        .start();
    assert_eq!(
        client()
            .get(server.url("/pid"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );

    let Err((Some(status), log)) = Server::worker(&fixture("slow-boot.php"))
        .args(["--workers", "1"])
        .env("ZENO_WORKERS__ENV__BOOT_SLEEP_MS", "3000")
        .env("ZENO_WORKERS__BOOT_TIMEOUT", "500ms")
        .try_start()
    else {
        panic!("a boot past the timeout must fail");
    };
    assert!(!status.success());
    assert!(log.join("\n").contains("did not become ready"), "{log:?}");
}

#[tokio::test]
async fn failing_boots_back_off_and_the_host_keeps_answering() {
    let marker = temp_path("boot-marker");
    let server = Server::worker(&fixture("fails-after-first.php"))
        .args([
            "--workers",
            "1",
            // Task workers would fail to boot too, and add their lines to the log read below.
            "--task-workers",
            "0",
            "--allocate-timeout",
            "300ms",
            "--admin",
            "127.0.0.1:0",
        ])
        .env(
            "ZENO_WORKERS__ENV__ZENO_TEST_MARKER",
            &marker.display().to_string(),
        )
        .start();
    // Kill the only worker: every later boot fails.
    assert_eq!(
        client()
            .get(server.url("/crash"))
            .send()
            .await
            .expect("send")
            .status(),
        502
    );
    // Three failed boots, spaced by the backoff (100 ms, then 200 ms), as the log's own
    // timestamps show.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.count_log("worker failed to boot") < 3 {
        assert!(Instant::now() < deadline, "boots were not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let times: Vec<f64> = server
        .log()
        .iter()
        .filter(|l| l.contains("worker failed to boot"))
        .take(3)
        .map(|l| log_seconds(l))
        .collect();
    let gaps = [times[1] - times[0], times[2] - times[1]];
    assert!(
        gaps[0] >= 0.095 && gaps[1] >= 0.195,
        "boots retried with backoff, not in a tight loop: {gaps:?}"
    );
    assert!(
        server.log().join("\n").contains("boot failed on purpose"),
        "PHP's own error is logged"
    );
    let response = client().get(server.url("/pid")).send().await.expect("send");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let admin = server.admin_addr();
    assert_eq!(
        admin_get(&admin, "/ready").await.status(),
        503,
        "no live worker: not ready"
    );
    assert_eq!(
        admin_get(&admin, "/health").await.status(),
        200,
        "but alive"
    );
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test]
async fn reloads_and_recycles_under_load_fail_no_request() {
    let mut server = Server::worker(&fixture("dump.php"))
        .args([
            "--workers",
            "2",
            "--max-jobs",
            "25",
            "--admin",
            "127.0.0.1:0",
        ])
        .start();
    let admin = server.admin_addr();
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let pids = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut load = Vec::new();
    for _ in 0..6 {
        let url = server.url("/pid");
        let (failures, served, pids) = (failures.clone(), served.clone(), pids.clone());
        load.push(tokio::spawn(async move {
            let client = client();
            // Bounded: stops at the deadline.
            while Instant::now() < deadline {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let pid = r.json::<Value>().await.expect("json")["pid"].as_u64();
                        pids.lock().expect("lock").insert(pid);
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    // Each event once the load has been running for a while, by the count of answers.
    let served_at_least = |n: usize| {
        let served = served.clone();
        async move {
            while served.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    served_at_least(200).await;
    let reload = client()
        .post(format!("http://{admin}/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(reload.status(), 202);
    let after_reload = served.load(Ordering::SeqCst) + 300;
    served_at_least(after_reload).await;
    server.signal(Signal::SIGHUP);
    for task in load {
        task.await.expect("load task");
    }
    let served = served.load(Ordering::SeqCst);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed ({served} served)"
    );
    assert!(served > 100, "the load actually ran: {served}");
    let pids = pids.lock().expect("lock").len();
    assert!(pids > 4, "workers were replaced many times: {pids} pids");
    let metrics = admin_get(&admin, "/metrics")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("zeno_worker_restarts_total{pool=\"http\",reason=\"reload\"}"),
        "{metrics}"
    );
    server.signal(Signal::SIGTERM);
    assert!(server
        .wait_exit(Duration::from_secs(20))
        .expect("exit")
        .success());
}

#[tokio::test]
async fn admin_reports_workers_and_metrics_and_zeno_workers_prints_them() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "2", "--admin", "127.0.0.1:0"])
        .start();
    let admin = server.admin_addr();
    assert!(admin.starts_with("127.0.0.1:"));
    for _ in 0..5 {
        pid_of(&server).await;
    }
    let _ = client()
        .get(server.url("/throw"))
        .send()
        .await
        .expect("send");
    let workers: Value = admin_get(&admin, "/workers")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(workers["live"], 2);
    let list = workers["workers"].as_array().expect("workers array");
    assert_eq!(list.len(), 2);
    let total: u64 = list
        .iter()
        .map(|w| w["requests"].as_u64().expect("requests"))
        .sum();
    assert_eq!(total, 6);
    for worker in list {
        assert_eq!(worker["state"], "idle");
        assert!(worker["rss_bytes"].as_u64().expect("rss") > 1_000_000);
        assert!(worker["pid"].as_u64().is_some());
        assert!(worker["age_seconds"].as_f64().is_some());
    }

    let metrics = admin_get(&admin, "/metrics").await;
    assert!(metrics.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/plain"));
    let metrics = metrics.text().await.expect("text");
    for needle in [
        "zeno_http_requests_total{status=\"200\"} 5",
        "zeno_http_requests_total{status=\"500\"} 1",
        "zeno_http_request_duration_seconds_bucket",
        "zeno_pool_queue_wait_seconds_bucket",
        "zeno_workers{state=\"idle\"} 2",
        "zeno_worker_rss_bytes{slot=\"0\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in:\n{metrics}");
    }
    assert_eq!(admin_get(&admin, "/nope").await.status(), 404);
    assert_eq!(
        client()
            .get(format!("http://{admin}/reload"))
            .send()
            .await
            .expect("send")
            .status(),
        405
    );

    let output = tokio::process::Command::new(zeno_bin())
        .args(["workers", "--admin", &admin])
        .output()
        .await
        .expect("zeno workers");
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("PID") && table.contains("idle"), "{table}");
    assert!(table.contains("2 live worker(s)"), "{table}");
    for worker in list {
        assert!(table.contains(&worker["pid"].to_string()), "{table}");
    }

    let output = tokio::process::Command::new(zeno_bin())
        .args(["workers", "--admin", "127.0.0.1:1"])
        .output()
        .await
        .expect("zeno workers");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("could not reach the admin listener"));
}

#[tokio::test]
async fn ready_turns_503_while_draining() {
    let mut server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1", "--admin", "127.0.0.1:0"])
        .start();
    let admin = server.admin_addr();
    assert_eq!(admin_get(&admin, "/ready").await.status(), 200);
    let (path, running) = zeno_e2e::started("/sleep?ms=1500");
    let slow = tokio::spawn({
        let url = server.url(&path);
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    zeno_e2e::wait_started(&running).await;
    server.signal(Signal::SIGTERM);
    assert!(server
        .wait_for_log("stopped accepting connections", Duration::from_secs(5))
        .is_some());
    let ready = admin_get(&admin, "/ready").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.expect("json")["draining"], true);
    assert!(
        std::net::TcpStream::connect(&server.addr).is_err(),
        "the main listener no longer accepts"
    );
    assert_eq!(slow.await.expect("join").expect("in-flight request"), 200);
    assert!(server
        .wait_exit(Duration::from_secs(20))
        .expect("exit")
        .success());
}

/// `server.drain_delay`: after SIGTERM, `/ready` answers 503 on both listeners at once while
/// the main listener still accepts and serves new connections for the delay; then it closes.
#[tokio::test]
async fn drain_delay_keeps_accepting_while_ready_says_503() {
    let mut server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1", "--admin", "127.0.0.1:0"])
        .env("ZENO_SERVER__DRAIN_DELAY", "1500ms")
        .start();
    let admin = server.admin_addr();
    assert_eq!(server.get_text("/ready").await.0, 200);
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    assert!(server
        .wait_for_log(
            "still accepting for the drain delay",
            Duration::from_secs(5)
        )
        .is_some());
    assert_eq!(admin_get(&admin, "/ready").await.status(), 503);
    // A new connection for every request (no pooling), during the delay: all served.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let ready = fresh.get(server.url("/ready")).send().await.expect("ready");
    assert_eq!(
        ready.status(),
        503,
        "the main listener's /ready says draining"
    );
    let mut served = 0;
    while signalled.elapsed() < Duration::from_millis(1200) {
        let response = fresh
            .get(server.url("/?during=drain"))
            .send()
            .await
            .expect("accepted during the drain delay");
        assert_eq!(response.status(), 200);
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 5, "{served} requests during the delay");
    assert!(server
        .wait_for_log("stopped accepting connections", Duration::from_secs(5))
        .is_some());
    assert!(
        signalled.elapsed() >= Duration::from_millis(1400),
        "closed after {:?}, before the delay",
        signalled.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(&server.addr).is_err(),
        "the main listener no longer accepts"
    );
    assert!(server
        .wait_exit(Duration::from_secs(20))
        .expect("exit")
        .success());
}

#[tokio::test]
async fn a_second_signal_exits_at_once_and_leaves_no_php() {
    let mut server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1"])
        .start();
    let worker = u32::try_from(pid_of(&server).await).expect("pid");
    let (path, running) = zeno_e2e::started("/hang");
    let _hang = tokio::spawn({
        let url = server.url(&path);
        async move { client().get(url).send().await }
    });
    zeno_e2e::wait_started(&running).await;
    server.signal(Signal::SIGTERM);
    assert!(server
        .wait_for_log("a second signal exits at once", Duration::from_secs(5))
        .is_some());
    let started = Instant::now();
    server.signal(Signal::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exits at once");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!status.success());
    zeno_e2e::wait_until(Duration::from_secs(5), || !process_alive(worker));
    assert!(!process_alive(worker), "the busy worker died with the host");
}

#[tokio::test]
async fn shutdown_is_bounded_when_a_request_never_finishes() {
    let mut server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1", "--exec-timeout", "60s"])
        .env("ZENO_SERVER__SHUTDOWN_GRACE", "1s")
        .env("ZENO_WORKERS__STOP_GRACE", "1s")
        .start();
    let worker = u32::try_from(pid_of(&server).await).expect("pid");
    let (path, running) = zeno_e2e::started("/hang");
    let hang = tokio::spawn({
        let url = server.url(&path);
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    zeno_e2e::wait_started(&running).await;
    let started = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("zeno exits");
    assert!(
        status.success(),
        "a bounded drain is still a clean exit: {status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(!process_alive(worker), "the hung worker was killed");
    // The client got an answer or a closed connection, never a hang.
    let answer = tokio::time::timeout(Duration::from_secs(5), hang)
        .await
        .expect("the client was left hanging")
        .expect("join");
    if let Ok(status) = answer {
        assert!(status >= 500, "a killed request cannot succeed: {status}");
    }
}

/// The pids of the HTTP workers, from the admin listener's `/workers`.
async fn worker_pids(admin: &str) -> Vec<u64> {
    let workers: Value = admin_get(admin, "/workers")
        .await
        .json()
        .await
        .expect("json");
    workers["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["pid"].as_u64())
        .collect()
}

/// `zeno serve --watch`: a changed PHP file of the app reloads every worker (rolling, no
/// request fails); a PHP file under `storage/` and a file that is not PHP do not.
#[tokio::test]
async fn watch_reloads_the_workers_when_php_files_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handler = dir.path().join("handler.php");
    std::fs::copy(fixture("dump.php"), &handler).expect("copy");
    std::fs::create_dir(dir.path().join("storage")).expect("mkdir");
    let server = Server::worker(&handler)
        .args(["--workers", "2", "--watch", "--admin", "127.0.0.1:0"])
        .start();
    assert!(server
        .wait_for_log("watching PHP files", Duration::from_secs(5))
        .is_some());
    let admin = server.admin_addr();
    let before = worker_pids(&admin).await;
    assert_eq!(before.len(), 2);

    std::fs::write(dir.path().join("storage/compiled.php"), "<?php // a cache").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not PHP").expect("write");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        worker_pids(&admin).await,
        before,
        "reloaded for a file that does not count"
    );
    assert_eq!(server.count_log("PHP files changed"), 0);

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn({
        let (url, stop, failed) = (server.url("/"), stop.clone(), failed.clone());
        async move {
            let client = client();
            while !stop.load(Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    let mut code = std::fs::read_to_string(&handler).expect("read");
    code.push_str("\n// edited\n");
    std::fs::write(&handler, code).expect("write");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = worker_pids(&admin).await;
        if now.len() == 2 && now.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers not replaced: {before:?} -> {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the reload"
    );
    assert_eq!(
        server.count_log("PHP files changed"),
        1,
        "one reload for one save"
    );
}
