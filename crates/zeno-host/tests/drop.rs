//! A host dropped without `shutdown()` leaves no PHP behind: an orchestrator that builds hosts
//! per tenant or on reconfiguration must not leak workers or descriptors.

use std::time::Duration;

use serde_json::{json, Map, Value};
use zeno_host::{Dispatch, HostBuilder};

/// This process's children that are running PHP (not zombies waiting to be reaped).
fn php_children() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so split after its closing paren.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid = fields.get(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) && fields.first() != Some(&"Z") && head.contains("php") {
            found.push(pid);
        }
    }
    found
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fd").count()
}

/// Waits until no PHP child is left, or gives up after `limit`.
async fn no_php_left(limit: Duration) -> Vec<u32> {
    let wait = async {
        loop {
            let left = php_children();
            if left.is_empty() {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| php_children())
}

#[tokio::test]
async fn dropping_a_host_stops_its_workers_and_task_workers() {
    let mut file = tempfile::Builder::new()
        .suffix(".php")
        .tempfile()
        .expect("temp handler");
    std::io::Write::write_all(
        &mut file,
        br#"<?php
return fn (Zeno\Request $request) => ['pid' => getmypid(), 'task' => $request->task()];
"#,
    )
    .expect("write handler");
    let mut baseline = None;
    for round in 0..20 {
        let host = HostBuilder::new(file.path())
            .workers(2)
            .task_workers(2)
            .build()
            .await
            .expect("host");
        let response = host
            .dispatch(Dispatch::task(json!({"round": round})))
            .await
            .expect("dispatch");
        let body: Value =
            serde_json::from_slice(&response.body.into_bytes().expect("body")).expect("json");
        assert_eq!(body["task"]["round"], round);
        // A batch starts the task pool, whose workers are the ones that used to leak.
        let results = host
            .run_tasks(
                vec![json!(1), json!(2)],
                Map::new(),
                Some(Duration::from_secs(10)),
            )
            .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!(php_children().len() >= 4, "workers and task workers run");
        drop(host);
        let left = no_php_left(Duration::from_secs(15)).await;
        assert!(
            left.is_empty(),
            "round {round}: PHP left running after the drop: {left:?}"
        );
        // The slots let go of their workers' pipes once the stop is done; wait for that.
        let first = *baseline.get_or_insert_with(open_descriptors);
        let settle = async {
            while open_descriptors() > first + 4 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(15), settle).await;
        let fds = open_descriptors();
        let targets: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .expect("fd")
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|t| t.display().to_string())
            .collect();
        assert!(
            fds <= first + 4,
            "round {round}: descriptors grew from {first} to {fds}: {targets:?}"
        );
    }
}
