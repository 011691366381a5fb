//! A deploy's migration under a running host: the schema changes through another connection
//! (as `artisan migrate` run elsewhere) while clients query through the host's pool. No request
//! may fail, and none that starts after a change may see the schema before it — a statement the
//! host cached must be prepared again, not decoded with the old column list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeno_e2e::*;

/// What one client saw: when its request started, and the answer.
struct Seen {
    started: Instant,
    path: &'static str,
    status: u16,
    body: Value,
}

async fn migrate_under_load(dsn: &str, user: &str, pass: &str, url: &str, tag: &str) {
    let table = format!("zt_mig_{tag}_{}", std::process::id());
    let server = Server::worker(&fixture("migrate.php"))
        .args(["--workers", "4", "--db"])
        .arg(format!("default={url}"))
        .env("ZENO_WORKERS__ENV__PDO_DSN", dsn)
        .env("ZENO_WORKERS__ENV__PDO_USER", user)
        .env("ZENO_WORKERS__ENV__PDO_PASS", pass)
        .env("ZENO_WORKERS__ENV__TABLE", &table)
        .start();
    let http = client();
    let ddl = |step: u32| {
        let http = http.clone();
        let url = server.url(&format!("/ddl?step={step}"));
        async move {
            let response = http.get(url).send().await.expect("ddl request");
            assert_eq!(
                response.status(),
                200,
                "step {step}: {}",
                response.text().await.unwrap_or_default()
            );
        }
    };
    ddl(0).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..3 {
        let http = http.clone();
        let stop = stop.clone();
        let star = server.url("/star");
        let one = server.url("/one");
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            // Bounded: the steps take about two seconds.
            for i in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (path, url) = if (i + n) % 2 == 0 {
                    ("/star", &star)
                } else {
                    ("/one", &one)
                };
                let started = Instant::now();
                let response = http.get(url.as_str()).send().await.expect("request");
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                seen.push(Seen {
                    started,
                    path,
                    status,
                    body,
                });
            }
            seen
        }));
    }
    // (step, the columns after it, when the change was complete)
    let schemas = [
        (1, vec!["id", "a", "b", "c"]),
        (2, vec!["id", "a", "b2", "c"]),
        (3, vec!["id", "a", "b2"]),
        (4, vec!["id", "a", "z"]),
    ];
    let mut done = Vec::new();
    for (step, keys) in &schemas {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = Instant::now();
        ddl(*step).await;
        done.push((before, Instant::now(), keys.clone()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for c in clients {
        seen.extend(c.await.expect("client"));
    }

    let failed: Vec<String> = seen
        .iter()
        .filter(|s| s.status != 200 || s.body["ok"] != true)
        .map(|s| format!("{} {} {}", s.path, s.status, s.body))
        .collect();
    assert!(seen.len() > 100, "{tag}: only {} requests", seen.len());
    assert!(
        failed.is_empty(),
        "{tag}: {} of {} failed: {:#?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(10)]
    );
    // A request started after a change completed sees it (or a later one, if it ran on into
    // the next change): never a schema from before.
    let mut checked = 0;
    for (k, (_, complete, _)) in done.iter().enumerate() {
        let next = done.get(k + 1).map(|(before, _, _)| *before);
        let allowed: Vec<&Vec<&str>> = done[k..].iter().map(|(_, _, keys)| keys).collect();
        for s in seen.iter().filter(|s| {
            s.path == "/star" && s.started > *complete && next.is_none_or(|n| s.started < n)
        }) {
            let got: Vec<&str> = s.body["keys"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert!(
                allowed.contains(&&got),
                "{tag}: after step {} a request saw an old schema: {}",
                k + 1,
                s.body
            );
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "{tag}: only {checked} answers checked against the new schema"
    );
}

#[tokio::test]
async fn postgres_schema_changes_under_load_fail_no_request() {
    migrate_under_load(
        "pgsql:host=127.0.0.1;port=5432;dbname=zeno_test",
        "zeno",
        "zeno",
        &pg_url(),
        "pg",
    )
    .await;
}

#[tokio::test]
async fn mariadb_schema_changes_under_load_fail_no_request() {
    migrate_under_load(
        "mysql:host=127.0.0.1;port=3306;dbname=zeno_test",
        "zeno",
        "zeno",
        &my_url(),
        "my",
    )
    .await;
}

#[tokio::test]
async fn sqlite_schema_changes_under_load_fail_no_request() {
    let path = std::env::temp_dir().join(format!("zeno-mig-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    migrate_under_load(
        &format!("sqlite:{}", path.display()),
        "",
        "",
        &format!("sqlite://{}", path.display()),
        "lite",
    )
    .await;
}
