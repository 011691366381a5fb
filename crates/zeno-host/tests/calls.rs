//! Host functions with real PHP: the call gets its request's scope and worker pid, and a call
//! still running when its request ends (past `exec_timeout`) is cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use zeno_host::{CallContext, Dispatch, HostBuilder};

fn handler() -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".php")
        .tempfile()
        .expect("temp handler");
    std::io::Write::write_all(
        &mut file,
        br#"<?php
return function (Zeno\Request $request) {
    $task = $request->task();
    return \Zeno::call($task['function'], ['n' => 1]);
};
"#,
    )
    .expect("write handler");
    file
}

/// Sets its flag when dropped: a future that owns it was cancelled (or ended).
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_call_sees_its_request_and_is_cancelled_when_the_request_ends() {
    let file = handler();
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let host = HostBuilder::new(file.path())
        .workers(1)
        .task_workers(0)
        .exec_timeout(Duration::from_millis(500))
        .function("whoami", |ctx: CallContext, _params: Value| async move {
            Ok(json!({"request": ctx.request_id, "user": ctx.scope.get("user_id"), "pid": ctx.pid}))
        })
        .function("slow", {
            let dropped = dropped.clone();
            let finished = finished.clone();
            move |_ctx: CallContext, _params: Value| {
                let guard = Dropped(dropped.clone());
                let finished = finished.clone();
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok(Value::Null)
                }
            }
        })
        .build()
        .await
        .expect("host");
    let response = host
        .dispatch(
            Dispatch::task(json!({"function": "whoami"}))
                .with_id("r-whoami")
                .scope("user_id", 7),
        )
        .await
        .expect("dispatch");
    let body: Value =
        serde_json::from_slice(&response.body.into_bytes().expect("body")).expect("json");
    assert_eq!(body["data"]["request"], "r-whoami");
    assert_eq!(body["data"]["user"], 7);
    let pid = body["data"]["pid"].as_u64().expect("pid");
    assert!(host.workers().iter().any(|w| w.pid == Some(pid as u32)));

    let started = std::time::Instant::now();
    let timed_out = host
        .dispatch(Dispatch::task(json!({"function": "slow"})))
        .await;
    assert!(timed_out.is_err(), "the request ran past exec_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running call was cancelled with its request"
    );
    assert!(!finished.load(Ordering::SeqCst), "and never finished");
    host.shutdown().await;
}

#[tokio::test]
async fn a_panicking_host_function_fails_its_call_and_the_worker_serves_on() {
    let file = handler();
    let host = HostBuilder::new(file.path())
        .workers(1)
        .task_workers(0)
        .function("boom", |_ctx: CallContext, _params: Value| async move {
            let values: Vec<u32> = Vec::new();
            // An index out of bounds, as sqlx-sqlite's row decoding once panicked.
            Ok(json!(values[usize::from(values.is_empty())]))
        })
        .function("fine", |_ctx: CallContext, _params: Value| async move {
            Ok(json!("fine"))
        })
        .build()
        .await
        .expect("host");
    let pid_before = host.workers()[0].pid;
    for _ in 0..3 {
        let response = host
            .dispatch(Dispatch::task(json!({"function": "boom"})))
            .await
            .expect("the request is answered");
        let body: Value =
            serde_json::from_slice(&response.body.into_bytes().expect("body")).expect("json");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["error_info"]["kind"], "internal", "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("boom") && e.contains("index out of bounds")),
            "{body}"
        );
        let response = host
            .dispatch(Dispatch::task(json!({"function": "fine"})))
            .await
            .expect("the next request is served");
        let body: Value =
            serde_json::from_slice(&response.body.into_bytes().expect("body")).expect("json");
        assert_eq!(body["data"], "fine", "{body}");
    }
    assert_eq!(host.live_workers(), 1);
    assert_eq!(
        host.workers()[0].pid,
        pid_before,
        "the same worker, not a replacement"
    );
    host.shutdown().await;
}
