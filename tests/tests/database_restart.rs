//! PostgreSQL restarted under load: requests during the outage fail cleanly (the handler's
//! error, never a dead worker or host), and the pool reconnects once it is back.
//! Its own test binary, so the restart cannot disturb other tests. Needs root (pg_ctlcluster).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeno_e2e::{fixture, pg_url, Server};

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql: PostgreSQL from Debian's packages")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a PostgreSQL cluster");
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL failed");
}

#[tokio::test]
async fn the_pool_survives_a_database_restart_under_load() {
    let mut server = Server::worker(&fixture("db.php"))
        .args(["--workers", "2", "--db"])
        .arg(format!("default={}", pg_url()))
        .start();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let bad_gateway = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url) = (client.clone(), server.url("/ping"));
        let (ok, failed, bad_gateway, stop) = (
            ok.clone(),
            failed.clone(),
            bad_gateway.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match client.get(&url).send().await.map(|r| r.status().as_u16()) {
                    Ok(200) => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(502) => bad_gateway.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // The load runs before the restart: wait for its first answers.
    while ok.load(Ordering::SeqCst) < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = ok.load(Ordering::SeqCst);
    assert!(before > 0, "load runs before the restart");
    tokio::task::spawn_blocking(restart_postgres)
        .await
        .expect("restart");
    // Once PostgreSQL is back, requests succeed again.
    let recovered_by = Instant::now() + Duration::from_secs(15);
    let mark = ok.load(Ordering::SeqCst);
    while ok.load(Ordering::SeqCst) < mark + 50 && Instant::now() < recovered_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.expect("load task");
    }
    assert!(
        ok.load(Ordering::SeqCst) >= mark + 50,
        "the pool reconnected after the restart"
    );
    assert_eq!(
        bad_gateway.load(Ordering::SeqCst),
        0,
        "no worker died because the database did"
    );
    assert!(
        server.wait_exit(Duration::from_millis(10)).is_none(),
        "the host is still running"
    );
    eprintln!(
        "restart under load: {} ok, {} failed cleanly during the outage",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
}
