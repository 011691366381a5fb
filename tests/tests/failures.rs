//! Every failure ends in exactly one clear response, and the pool serves the next request.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use zeno_e2e::{client, fixture, process_alive, Server};

async fn get(server: &Server, path: &str) -> reqwest::Response {
    client().get(server.url(path)).send().await.expect("send")
}

async fn pid_of(server: &Server) -> u64 {
    let response = get(server, "/pid").await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")["pid"]
        .as_u64()
        .expect("pid")
}

fn one_worker(extra: &[&str]) -> Server {
    let mut builder = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1");
    for arg in extra {
        builder = builder.arg(*arg);
    }
    builder.start()
}

#[tokio::test]
async fn an_exception_gives_500_and_the_worker_keeps_serving() {
    let server = one_worker(&[]);
    let before = pid_of(&server).await;
    let response = get(&server, "/throw").await;
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.expect("text"),
        "Internal Server Error\n"
    );
    assert_eq!(pid_of(&server).await, before, "same worker, still alive");
    assert!(server
        .wait_for_log("boom from the handler", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn a_fatal_error_gives_500_with_the_message_in_the_log() {
    let server = one_worker(&[]);
    let response = get(&server, "/fatal").await;
    assert_eq!(response.status(), 500);
    assert!(server
        .wait_for_log("Allowed memory size", Duration::from_secs(5))
        .is_some());
    assert_eq!(get(&server, "/pid").await.status(), 200);
}

#[tokio::test]
async fn a_worker_that_dies_mid_request_gives_502_and_is_replaced() {
    let server = one_worker(&[]);
    let before = pid_of(&server).await;
    let response = get(&server, "/crash").await;
    assert_eq!(response.status(), 502);
    let after = pid_of(&server).await;
    assert_ne!(after, before, "a new worker took over");
    assert!(!process_alive(u32::try_from(before).expect("pid")));
}

#[tokio::test]
async fn exit_in_a_handler_still_answers_and_the_worker_is_replaced() {
    let server = one_worker(&[]);
    let before = pid_of(&server).await;
    let response = get(&server, "/exit").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "said goodbye");
    assert_ne!(pid_of(&server).await, before);
}

#[tokio::test]
async fn a_hung_request_gives_504_and_its_worker_is_killed() {
    let server = one_worker(&["--exec-timeout", "1s"]);
    let before = pid_of(&server).await;
    let started = Instant::now();
    let response = get(&server, "/hang").await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!process_alive(u32::try_from(before).expect("pid")));
    assert_ne!(pid_of(&server).await, before);
}

#[tokio::test]
async fn stray_stdout_fails_the_request_cleanly_and_replaces_the_worker() {
    let server = one_worker(&[]);
    let before = pid_of(&server).await;
    let response = get(&server, "/stray").await;
    assert_eq!(response.status(), 502);
    assert!(
        server
            .wait_for_log("stray output on stdout", Duration::from_secs(5))
            .is_some(),
        "the junk is logged verbatim"
    );
    assert_ne!(pid_of(&server).await, before);
}

#[tokio::test]
async fn a_response_over_the_line_limit_is_refused_not_buffered() {
    let server = one_worker(&[]);
    // Under the default 64 MiB limit: fine.
    let response = get(&server, "/big?n=3000000").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.expect("bytes").len(), 3_000_000);

    let small = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .env("ZENO_WORKERS__MAX_LINE", "64K")
        .start();
    let response = get(&small, "/big?n=100000").await;
    assert_eq!(response.status(), 502);
    assert_eq!(get(&small, "/big?n=10").await.status(), 200);
}

#[tokio::test]
async fn no_free_worker_in_time_gives_503_with_retry_after() {
    let server = one_worker(&["--allocate-timeout", "200ms", "--exec-timeout", "30s"]);
    let (path, running) = zeno_e2e::started("/hang");
    let slow = tokio::spawn({
        let url = server.url(&path);
        async move {
            client()
                .get(url)
                .timeout(Duration::from_secs(3))
                .send()
                .await
        }
    });
    zeno_e2e::wait_started(&running).await;
    let response = get(&server, "/pid").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    slow.abort();
}

#[tokio::test]
async fn bodies_and_headers_over_the_limits_get_413_and_431() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .env("ZENO_SERVER__MAX_BODY", "1K")
        .env("ZENO_SERVER__MAX_HEADER", "2K")
        .start();
    let response = client()
        .post(server.url("/"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);

    // A chunked body without Content-Length is cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'b'; 512])).collect();
    let response = client()
        .post(server.url("/"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);

    let response = client()
        .get(server.url("/"))
        .header("X-Big", "v".repeat(3000))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 431);

    // Just under the limits still works.
    let response = client()
        .post(server.url("/"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn boot_failures_exit_non_zero_with_phps_error() {
    for (file, needle) in [
        ("bad-return.php", "must return a callable"),
        ("syntax-error.php", "syntax error"),
    ] {
        let err = Server::worker(&fixture(file))
            .arg("--workers")
            .arg("1")
            .env("ZENO_WORKERS__BOOT_TIMEOUT", "10s")
            .try_start();
        let Err((status, log)) = err else {
            panic!("{file}: zeno must not start");
        };
        let status =
            status.unwrap_or_else(|| panic!("{file}: zeno must exit, log:\n{}", log.join("\n")));
        assert!(!status.success(), "{file}: exit status {status}");
        let log = log.join("\n");
        assert!(log.contains(needle), "{file}: log lacks {needle:?}:\n{log}");
    }
    let err = Server::worker(std::path::Path::new("/nonexistent/handler.php")).try_start();
    let Err((Some(status), log)) = err else {
        panic!("a missing handler must make zeno exit");
    };
    assert!(!status.success());
    assert!(log.join("\n").contains("handler file not found"));

    // A PHP binary that cannot start: each cause of the error is printed once.
    let err = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1", "--php", "/nonexistent/php-cgi"])
        .env("RUST_BACKTRACE", "0")
        .try_start();
    let Err((Some(status), log)) = err else {
        panic!("a missing PHP binary must make zeno exit");
    };
    assert!(!status.success());
    let report: Vec<&String> = log
        .iter()
        .skip_while(|l| !l.starts_with("Error:"))
        .collect();
    let text = report
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "each cause once:\n{text}"
    );
    assert_eq!(
        text.matches("could not start /nonexistent/php-cgi").count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    let Err((Some(status), log)) = Server::worker(&fixture("dump.php"))
        .env("ZENO_WORKERS__EXEC_TIMEOUT", "soon")
        .try_start()
    else {
        panic!("must fail");
    };
    assert!(!status.success());
    assert!(log.join("\n").contains("not a duration"), "{log:?}");
}

#[tokio::test]
async fn sigterm_drains_and_leaves_no_php_behind() {
    let mut server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("2")
        .start();
    let worker = u32::try_from(pid_of(&server).await).expect("pid");
    // A request in flight when the signal arrives still gets its answer.
    let (path, running) = zeno_e2e::started("/sleep?ms=1500");
    let slow = tokio::spawn({
        let url = server.url(&path);
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    zeno_e2e::wait_started(&running).await;
    server.signal(Signal::SIGTERM);
    assert_eq!(slow.await.expect("join").expect("response"), 200);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("zeno exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(!process_alive(worker), "worker {worker} outlived zeno");
}

#[tokio::test]
async fn kill_9_of_the_host_leaves_no_php_alive() {
    let mut server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("2")
        .start();
    let mut workers = std::collections::HashSet::new();
    for _ in 0..20 {
        workers.insert(u32::try_from(pid_of(&server).await).expect("pid"));
    }
    server.signal(Signal::SIGKILL);
    server
        .wait_exit(Duration::from_secs(5))
        .expect("zeno is dead");
    zeno_e2e::wait_until(Duration::from_secs(5), || {
        !workers.iter().any(|pid| process_alive(*pid))
    });
    let alive: Vec<_> = workers.iter().filter(|pid| process_alive(**pid)).collect();
    assert!(
        alive.is_empty(),
        "workers alive after kill -9 of the host: {alive:?}"
    );
}
