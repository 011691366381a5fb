//! Streamed responses from a plain handler: delivered as produced, at any size, with flat
//! memory; a client that goes away frees its worker.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zeno_e2e::{client, fixture, temp_path, Server};

fn streaming_server(extra: &[&str]) -> Server {
    Server::worker(&fixture("stream.php"))
        .args(["--workers", "1", "--task-workers", "0"])
        .args(extra.iter().copied())
        .start()
}

/// The host's peak resident memory so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_from_php_arrives_intact_with_flat_memory() {
    // PHP's memory_limit stays 128M: the body is never held whole, in PHP or in the host.
    let server = streaming_server(&["--exec-timeout", "120s"]);
    let response = client()
        .get(server.url("/?case=big&mb=1024"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        "1073741824",
        "the declared length is kept"
    );
    let mut stream = response.bytes_stream();
    let mut offset: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        for (i, byte) in chunk.iter().enumerate() {
            let at = offset + i as u64;
            let expected = ((at / 1_048_576) % 251) as u8;
            assert_eq!(*byte, expected, "byte {at}");
        }
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, 1 << 30, "every byte arrived");
    let peak = peak_rss(server.pid());
    assert!(
        peak < 64 * 1024 * 1024,
        "host peak RSS {peak} bytes while sending 1 GiB"
    );
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one() {
    let server = streaming_server(&[]);
    let response = client()
        .get(server.url("/?case=sse"))
        .send()
        .await
        .expect("send");
    // PHP adds the default charset to text types, as under PHP-FPM.
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = response.bytes_stream();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            assert!(event.starts_with("data: "), "{event:?}");
            arrivals.push(Instant::now());
        }
    }
    assert_eq!(arrivals.len(), 3, "three events");
    for gap in arrivals.windows(2).map(|w| w[1] - w[0]) {
        assert!(
            gap >= Duration::from_millis(350),
            "each event arrives when it is sent, half a second apart: {gap:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_worker() {
    let server = streaming_server(&[]);
    let ticks = temp_path("ticks");
    let url = server.url(&format!("/?case=long&file={}", ticks.display()));
    let response = client().get(url).send().await.expect("send");
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("a first tick").expect("bytes");
    assert!(String::from_utf8_lossy(&first).starts_with("tick 0"));
    drop(stream);
    let gone = Instant::now();
    // The only worker serves again within a second.
    let response = client()
        .get(server.url("/?case=none"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "served again {:?} after the client left",
        gone.elapsed()
    );
    // And the script stopped: no more ticks.
    let seen = std::fs::read_to_string(&ticks).expect("ticks");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        std::fs::read_to_string(&ticks).expect("ticks"),
        seen,
        "the script ended at its next output"
    );
    let _ = std::fs::remove_file(ticks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_slows_php_down() {
    let server = streaming_server(&["--exec-timeout", "120s"]);
    let produced = temp_path("produced");
    let url = server.url(&format!("/?case=slow&mb=256&file={}", produced.display()));
    let response = client().get(url).send().await.expect("send");
    let mut stream = response.bytes_stream();
    // Read about 100 KB/s for three seconds.
    let mut read: u64 = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if let Some(chunk) = stream.next().await {
            read += chunk.expect("chunk").len() as u64;
        }
        let due = Duration::from_secs_f64(read as f64 / 100_000.0);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let made: u64 = std::fs::read_to_string(&produced)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // PHP kept up with the reader (it records each part once the host took it)…
    assert!(
        read > 0 && made + 65_536 >= read,
        "PHP produced {made} bytes, the client read {read}"
    );
    // …and is at most the host's window and the sockets' buffers ahead of it, not 256 MiB.
    assert!(
        made < read + 16 * 1024 * 1024,
        "PHP produced {made} bytes while the client read {read}"
    );
    let peak = peak_rss(server.pid());
    assert!(peak < 64 * 1024 * 1024, "host peak RSS {peak}");
    drop(stream);
    let _ = std::fs::remove_file(produced);
}

#[tokio::test]
async fn headers_after_the_first_byte_are_not_sent_and_say_so() {
    let server = streaming_server(&[]);
    let response = client()
        .get(server.url("/?case=late-header"))
        .send()
        .await
        .expect("send");
    assert!(response.headers().get("x-too-late").is_none());
    let body = response.text().await.expect("body");
    assert_eq!(body.len(), 300_003);
    assert!(body.ends_with("end"));
    assert!(server
        .wait_for_log("headers already sent", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn small_responses_are_not_streamed() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1", "--task-workers", "0"])
        .start();
    let response = client().get(server.url("/")).send().await.expect("send");
    assert!(
        response.headers().get("content-length").is_some(),
        "one message, with its length"
    );
}

#[tokio::test]
async fn deferred_work_runs_after_the_last_byte() {
    let server = streaming_server(&[]);
    let marker = temp_path("deferred");
    let response = client()
        .get(server.url(&format!("/?case=deferred&file={}", marker.display())))
        .send()
        .await
        .expect("send");
    let body = response.bytes().await.expect("body");
    assert_eq!(body.len(), 1 << 20, "the whole body arrived");
    assert!(
        !marker.exists(),
        "the client had its body before the deferred work ended"
    );
    assert!(
        zeno_e2e::wait_until(Duration::from_secs(5), || marker.exists()),
        "the deferred work ran"
    );
    let _ = std::fs::remove_file(marker);
}

#[tokio::test]
async fn x_sendfile_answers_keep_phps_headers_and_fail_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "zeno sends this\n").expect("file");
    let missing = dir.path().join("missing.txt");

    let server = streaming_server(&[]);
    let dirs = format!("[{:?}]", dir.path().display().to_string());
    let allowed = Server::worker(&fixture("stream.php"))
        .args(["--workers", "1", "--task-workers", "0"])
        .env("ZENO_SERVER__SENDFILE_DIRS", &dirs)
        .start();

    let sent = client()
        .get(allowed.url(&format!("/?case=sendfile&path={}", file.display())))
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status(), 200);
    let cookies: Vec<_> = sent.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"], "both of PHP's cookies");
    assert_eq!(
        sent.headers()["content-disposition"],
        "attachment; filename=\"notes.txt\""
    );
    assert!(sent.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(sent.text().await.expect("body"), "zeno sends this\n");

    // A file that is not there: 404, logged.
    let gone = client()
        .get(allowed.url(&format!("/?case=sendfile&path={}", missing.display())))
        .send()
        .await
        .expect("send");
    assert_eq!(gone.status(), 404);
    assert!(allowed
        .wait_for_log(
            "X-Sendfile names a file that cannot be opened",
            Duration::from_secs(5)
        )
        .is_some());

    // A host that does not offer X-Sendfile never sends a file for PHP: 502, logged.
    let refused = client()
        .get(server.url(&format!("/?case=sendfile&path={}", file.display())))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 502);
    assert!(server
        .wait_for_log("server.sendfile_dirs is not set", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn a_fatal_error_mid_stream_ends_the_body_and_the_worker_is_replaced() {
    let server = streaming_server(&[]);
    let response = client()
        .get(server.url("/?case=fatal"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "the head had gone out");
    let body = response.bytes().await.expect("body ends");
    assert_eq!(body.len(), 300_000, "what was sent before the error");
    assert!(server
        .wait_for_log("zeno_no_such_function", Duration::from_secs(5))
        .is_some());
    let (status, text) = server.get_text("/?case=none").await;
    assert_eq!((status, text.as_str()), (200, "unknown case"));
}
