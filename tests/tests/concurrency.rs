//! Work run concurrently on the host's task pool: Laravel 13's `Concurrency` (on PHP 8.4 from
//! the Debian sid chroot, `scripts/sid.sh`) under `zeno serve --laravel` and `zeno artisan`,
//! and `\Zeno::concurrently` in a plain handler.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use zeno_e2e::{client, fixture, pg_url, sid_php, temp_path, wait_until, LaravelApp, Server};

/// A copy of the Laravel 13 app served on PHP 8.4 with `extra` arguments, its database an
/// SQLite file of its own unless `db` is given, and the Concurrency tables set up.
async fn laravel13(
    tag: &str,
    db: Option<String>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Server, LaravelApp) {
    let (php_cgi, _) = sid_php();
    let app = LaravelApp::modern(tag);
    let db = db.unwrap_or_else(|| {
        let file = app.dir.join("database/test.sqlite");
        std::fs::write(&file, b"").expect("create sqlite file");
        format!("sqlite://{}", file.display())
    });
    let mut builder = Server::bare();
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    let server = builder
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .arg("--php")
        .arg(php_cgi.display().to_string())
        .args(["--db"])
        .arg(format!("default={db}"))
        .args(extra.iter().copied())
        .env("ZENO_SCOPE__TENANT", "acme")
        .start();
    let (status, body) = server.get_text("/_conc/setup").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok"),
        "{}",
        server.log().join("\n")
    );
    (server, app)
}

fn pids(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|pid| pid.as_u64().expect("a pid"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_concurrency_runs_on_warm_task_workers() {
    let (server, _app) = laravel13(
        "conc",
        Some(pg_url()),
        &[
            "--workers",
            "2",
            "--task-workers",
            "3",
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    let (status, body) = server.get_text("/").await;
    assert_eq!((status, body.as_str()), (200, "Laravel 13.31.0"));

    // The documentation's example, with Laravel's default configuration (the process driver).
    let counts = server.get_json("/_conc/counts").await;
    assert_eq!(
        counts,
        json!({"users": 3, "orders": 2, "driver": "process"})
    );

    // Keys and order as the caller gave them.
    let keyed = server.get_json("/_conc/keyed").await;
    assert_eq!(keyed["keys"], json!(["z", "a", 10, "obj"]));
    assert_eq!(
        keyed["values"]["a"],
        json!({"nested": [1, 2.5, null, true]})
    );
    assert_eq!(keyed["values"]["10"], 42);
    assert_eq!(keyed["values"]["obj"], json!({"ArrayObject": {"k": "v"}}));

    // `process` and `zeno` run on the task workers, which are warm: the same pids again;
    // `sync` stays in the caller.
    let task_pids: Vec<u64> = server_task_pids(&server).await;
    assert_eq!(task_pids.len(), 3, "three task workers");
    for driver in ["process", "zeno"] {
        let ran = server.get_json(&format!("/_conc/driver/{driver}")).await;
        for pid in pids(&ran["tasks"]) {
            assert!(
                task_pids.contains(&pid),
                "{driver}: {pid} is a task worker ({task_pids:?})"
            );
            assert_ne!(Some(pid), ran["caller"].as_u64());
        }
    }
    let sync = server.get_json("/_conc/driver/sync").await;
    assert_eq!(
        pids(&sync["tasks"]),
        vec![sync["caller"].as_u64().unwrap(); 2]
    );

    // Three tasks of 100 ms each run at the same time: each started before any ended.
    let slept = server.get_json("/_conc/sleep").await;
    let runs = slept["runs"].as_array().expect("runs");
    let last_start = runs
        .iter()
        .map(|r| r[0].as_f64().unwrap())
        .fold(0.0, f64::max);
    let first_end = runs
        .iter()
        .map(|r| r[1].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "the three tasks overlapped: {slept}"
    );

    // A closure capturing a controller's `$this`; container injection, Context and scope.
    assert_eq!(
        server.get_json("/_conc/controller").await,
        json!(["report:3", "report:2"])
    );
    let context = server.get_json("/_conc/context").await;
    assert_eq!(context["injected"], "Illuminate\\Config\\Repository");
    assert_eq!(context["app_name"], "Zeno modern");
    assert_eq!(context["context"], "abc-123");
    assert_eq!(context["tenant"], "acme", "the caller's scope");
    let task_request = context["request_id"].as_str().expect("request id");
    assert!(task_request.starts_with("t-"), "{context}");
    assert_ne!(context["request_id"], context["caller_request_id"]);

    // Transactions: a task does not see the caller's, and one it leaves open is rolled back.
    assert_eq!(
        server.get_json("/_conc/transactions").await,
        json!({"caller_uncommitted_seen_by_task": 0, "after": {"left_open": 0, "level": 0}})
    );

    // Nested run() and output printed by a task.
    assert_eq!(
        server.get_json("/_conc/nested").await,
        json!({"outer": {"a": "inner a", "b": "inner b"}, "sibling": "sibling"})
    );
    assert_eq!(server.get_json("/_conc/echo").await, json!(["the result"]));
    assert!(
        server
            .wait_for_log("printed by a task", Duration::from_secs(5))
            .is_some(),
        "a task's output is logged"
    );

    // defer(): the row is written after the response, by a task worker.
    let deferred = server
        .get_json("/_conc/defer?note=after-response&delay_ms=300")
        .await;
    let caller = deferred["caller"].as_u64().expect("caller pid");
    let mut rows = Value::Null;
    let written = wait_until(Duration::from_secs(10), || {
        rows = block_on(server.get_json("/_conc/deferred"));
        rows.as_array().is_some_and(|r| !r.is_empty())
    });
    assert!(written, "the deferred task wrote its row");
    assert_eq!(rows[0]["note"], "after-response");
    let writer = rows[0]["pid"].as_u64().expect("pid");
    assert_ne!(writer, caller, "not the request's worker");
    assert!(server_task_pids(&server).await.contains(&writer));

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("zeno_task_workers{state=\"idle\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zeno_tasks_total{outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zeno_pool_queue_wait_seconds_count{pool=\"tasks\"}"),
        "{metrics}"
    );
}

/// Runs a future to completion from inside a `wait_until` condition.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

async fn server_task_pids(server: &Server) -> Vec<u64> {
    let admin = server.admin_addr();
    let workers: Value = client()
        .get(format!("http://{admin}/workers"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    workers["tasks"]
        .as_array()
        .expect("tasks list")
        .iter()
        .filter_map(|w| w["pid"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failures_come_back_as_clear_exceptions() {
    let (server, _app) = laravel13(
        "conc-fail",
        None,
        &[
            "--workers",
            "1",
            "--task-workers",
            "2",
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    // The task's own class, message and code — also when its constructor needs arguments
    // (Laravel's process driver answers those with an ArgumentCountError).
    assert_eq!(
        server.get_json("/_conc/exception/plain").await,
        json!({"thrown": true, "class": "InvalidArgumentException", "message": "bad input", "code": 7, "order": null})
    );
    assert_eq!(
        server.get_json("/_conc/exception/constructor").await,
        json!({"thrown": true, "class": "ZenoTestOrderFailed", "message": "order 12: out of stock", "code": 409, "order": 12})
    );
    assert!(
        server
            .wait_for_log("task threw ZenoTestOrderFailed", Duration::from_secs(5))
            .is_some_and(|line| line.contains("#0 ")),
        "the trace is in the log"
    );

    // A timeout (13.x's `$timeout`, one second) stops that task's worker only.
    let before = server_task_pids(&server).await;
    let timed_out = server.get_json("/_conc/timeout").await;
    assert_eq!(timed_out["class"], "Zeno\\TaskTimedOut", "{timed_out}");
    assert!(timed_out["seconds"].as_f64().unwrap() < 4.0, "{timed_out}");
    // A task that kills its worker: a clear exception, and the worker is replaced.
    let killed = server.get_json("/_conc/kill").await;
    assert_eq!(killed["class"], "Zeno\\TaskFailed", "{killed}");
    assert!(
        killed["message"].as_str().unwrap().contains("SIGKILL"),
        "{killed}"
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            let now = block_on(server_task_pids(&server));
            now.len() == 2 && now != before
        }),
        "the task workers were replaced"
    );
    // And the pool serves on.
    assert_eq!(server.get_json("/_conc/counts").await["users"], json!(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_with_three_tasks_each_never_deadlock() {
    let (server, _app) = laravel13(
        "conc-load",
        None,
        &["--workers", "4", "--task-workers", "2"],
        &[],
    )
    .await;
    let mut requests = Vec::new();
    for i in 0..50 {
        let url = server.url(if i % 5 == 0 {
            "/_conc/nested"
        } else {
            "/_conc/three"
        });
        requests.push(tokio::spawn(async move {
            let response = client().get(url).send().await.expect("send");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }));
    }
    let mut errors = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        let (status, body) = request.await.expect("join");
        let expected = if i % 5 == 0 {
            r#"{"outer":{"a":"inner a","b":"inner b"},"sibling":"sibling"}"#
        } else {
            r#"["ada","grace",5]"#
        };
        if status != 200 || body != expected {
            errors.push(format!("{i}: {status} {body}"));
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors:\n{}\n{}",
        errors.len(),
        errors.join("\n"),
        server.log().join("\n")
    );
}

#[tokio::test]
async fn deferred_tasks_get_the_drain_period_and_dropped_ones_are_named() {
    let (server, _app) = laravel13(
        "conc-drain",
        None,
        &["--workers", "1", "--task-workers", "1"],
        &[("ZENO_TASKS__DRAIN", "1s")],
    )
    .await;
    // Two deferred tasks on one task worker: the first finishes within the drain period,
    // the second is still queued when the drain period (1 s) ends.
    server
        .get_json("/_conc/defer?note=first&delay_ms=600")
        .await;
    server
        .get_json("/_conc/defer?note=second&delay_ms=600")
        .await;
    let mut server = server;
    drop_with_term(&mut server);
    let log = server.log();
    let dropped: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("deferred task dropped"))
        .collect();
    assert_eq!(
        dropped.len(),
        1,
        "the first finished within the drain period, the second was dropped:\n{}",
        log.join("\n")
    );
    assert!(
        dropped[0].contains("concurrency.php:"),
        "named: {}",
        dropped[0]
    );
}

fn drop_with_term(server: &mut Server) {
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(30)).is_some(),
        "zeno exited after SIGTERM"
    );
}

#[test]
fn zeno_artisan_runs_concurrency_on_its_task_workers() {
    let (php_cgi, _) = sid_php();
    let app = LaravelApp::modern("conc-artisan");
    let db = app.dir.join("database/test.sqlite");
    std::fs::write(&db, b"").expect("create");
    let output = Command::new(zeno_e2e::zeno_bin())
        .arg("artisan")
        .arg(&app.dir)
        .args(["--db", &format!("default=sqlite://{}", db.display()), "--"])
        .args(["conc:pids", "process"])
        .env("ZENO_WORKERS__PHP", &php_cgi)
        .output()
        .expect("zeno artisan");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ran: Value = serde_json::from_str(stdout.trim()).expect("json");
    let caller = ran["caller"].as_u64().expect("caller");
    let tasks = pids(&ran["tasks"]);
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|pid| *pid != caller), "{ran}");
}

#[tokio::test]
async fn plain_handlers_run_closures_with_zeno_concurrently() {
    let server = Server::worker(&fixture("tasks.php"))
        .args(["--workers", "1", "--task-workers", "2"])
        .env("ZENO_SCOPE__TENANT", "acme")
        .env("ZENO_TASKS__EXEC_TIMEOUT", "1s")
        .start();
    let basic = server.get_json("/?case=basic").await;
    assert_ne!(basic["results"]["pid"], basic["caller"]);
    assert_eq!(basic["results"]["scope"], "acme");
    assert_eq!(basic["results"]["printed"], "clean");
    assert_eq!(basic["results"]["3"], json!({"list": [1, 2.5, null]}));
    assert!(server
        .wait_for_log("noise from a task", Duration::from_secs(5))
        .is_some());
    assert_eq!(
        server.get_json("/?case=fail").await,
        json!({"class": "DomainException", "message": "no such order", "code": 404})
    );
    let timeout = server.get_json("/?case=timeout").await;
    assert_eq!(timeout["class"], "Zeno\\TaskTimedOut", "{timeout}");
    // tasks.exec_timeout when the caller gives none.
    let started = std::time::Instant::now();
    let timeout = server.get_json("/?case=default-timeout").await;
    assert_eq!(timeout["class"], "Zeno\\TaskTimedOut", "{timeout}");
    assert!(
        timeout["message"].as_str().unwrap().contains("1s"),
        "{timeout}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // A class the caller cannot rebuild: a clear exception that names it.
    let anonymous = server.get_json("/?case=anonymous").await;
    assert_eq!(anonymous["class"], "Zeno\\TaskFailed", "{anonymous}");
    let message = anonymous["message"].as_str().unwrap();
    assert!(
        message.contains("RuntimeException@anonymous") && message.contains("made in the task"),
        "{anonymous}"
    );
    let exited = server.get_json("/?case=exit").await;
    assert_eq!(exited["class"], "Zeno\\TaskFailed", "{exited}");
    assert!(
        exited["message"].as_str().unwrap().contains("exit"),
        "{exited}"
    );
    assert_eq!(
        server.get_json("/?case=nested").await,
        json!({"outer": {"a": "a", "b": "b"}})
    );
    let (writer, caller) = deferred_task(&server, "deferred-task").await;
    assert_ne!(writer, caller);
}

/// `?case=defer`: the pid of the worker that ran the deferred task (it writes it to a marker
/// file after the response) and the pid of the caller.
async fn deferred_task(server: &Server, tag: &str) -> (Option<u64>, Option<u64>) {
    let marker = temp_path(tag);
    let deferred = server
        .get_json(&format!("/?case=defer&file={}", marker.display()))
        .await;
    assert!(
        wait_until(Duration::from_secs(10), || marker.exists()),
        "the deferred task ran"
    );
    let writer: u64 = std::fs::read_to_string(&marker)
        .expect("marker")
        .parse()
        .expect("pid");
    let _ = std::fs::remove_file(marker);
    (Some(writer), deferred["caller"].as_u64())
}

#[tokio::test]
async fn without_a_task_pool_tasks_run_inline() {
    let server = Server::worker(&fixture("tasks.php"))
        .args(["--workers", "1", "--task-workers", "0"])
        .start();
    let basic = server.get_json("/?case=basic").await;
    assert_eq!(basic["results"]["pid"], basic["caller"]);
    // Deferred tasks run after the response, in the caller's worker.
    let (writer, caller) = deferred_task(&server, "inline-deferred").await;
    assert_eq!(writer, caller);
    assert_eq!(
        server.get_json("/?case=fail").await,
        json!({"class": "DomainException", "message": "no such order", "code": 404})
    );
}
