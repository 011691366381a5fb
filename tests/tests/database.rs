//! The host's database pool seen from PHP over HTTP: a transaction never outlives its
//! request, however the request ends, and credentials never reach PHP.

use std::time::Duration;

use serde_json::Value;
use zeno_e2e::{client, fixture, my_url, pg_url, Server};

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = client().get(server.url(path)).send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// With one pooled connection, a transaction left open, a worker killed mid-transaction and
/// a request killed by exec_timeout mid-transaction all leave the pool usable and the data
/// unchanged.
async fn transactions_never_leak(url: &str, tag: &str) {
    let dir = std::env::temp_dir().join(format!("zeno-e2e-db-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let config = dir.join("zeno.toml");
    std::fs::write(
        &config,
        format!("[db.default]\nurl = \"{url}\"\nmax_connections = 1\nacquire_timeout = \"3s\"\n"),
    )
    .expect("write config");
    let server = Server::worker(&fixture("db.php"))
        .args(["--workers", "2", "--exec-timeout", "2s", "--config"])
        .arg(config.display().to_string())
        .start();
    let t = format!("zt_e2e_{tag}_{}", std::process::id());
    let (status, _) = get(&server, &format!("/setup?t={t}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        get(&server, &format!("/tx-commit?t={t}&v=kept")).await.0,
        200
    );
    assert_eq!(get(&server, &format!("/tx-open?t={t}&v=open")).await.0, 200);
    assert_eq!(
        get(&server, &format!("/tx-crash?t={t}&v=crash")).await.0,
        502
    );
    assert_eq!(get(&server, &format!("/tx-hang?t={t}&v=hang")).await.0, 504);
    // The one connection is free again and none of the uncommitted rows exist.
    let (status, count) = get(&server, &format!("/count?t={t}")).await;
    assert_eq!(status, 200, "{count}");
    assert_eq!(count["count"], 1, "{tag}: only the committed row remains");
    // The same values can be inserted again: nothing is locked by a leaked transaction.
    for v in ["open", "crash", "hang"] {
        assert_eq!(
            get(&server, &format!("/insert?t={t}&v={v}")).await.0,
            200,
            "{tag} {v}"
        );
    }
    let (_, dup) = get(&server, &format!("/dup?t={t}&v=twice")).await;
    assert_eq!(dup["success"], false);
    let sqlstate = dup["error_info"]["sqlstate"].as_str().expect("sqlstate");
    assert!(sqlstate == "23505" || sqlstate == "23000", "{dup}");
    assert_eq!(dup["error_info"]["kind"], "db");
}

#[tokio::test]
async fn postgres_transactions_never_leak_into_other_requests() {
    transactions_never_leak(&pg_url(), "pg").await;
}

#[tokio::test]
async fn mariadb_transactions_never_leak_into_other_requests() {
    transactions_never_leak(&my_url(), "my").await;
}

#[tokio::test]
async fn sqlite_is_the_default_database() {
    let dir = std::env::temp_dir().join(format!("zeno-e2e-lite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let server = Server::worker(&fixture("db.php"))
        .args(["--workers", "1"])
        .cwd(&dir)
        .start();
    let (_, connections) = get(&server, "/connections").await;
    assert_eq!(connections["data"]["default"], "sqlite");
    assert_eq!(get(&server, "/setup?t=lite").await.0, 200);
    assert_eq!(get(&server, "/insert?t=lite&v=a").await.0, 200);
    assert_eq!(get(&server, "/count?t=lite").await.1["count"], 1);
    assert!(
        dir.join("zeno.sqlite").is_file(),
        "the SQLite file lives in the working directory"
    );
}

#[tokio::test]
async fn credentials_stay_in_the_host() {
    let secret = "hunter2pw";
    let url = pg_url().replacen("zeno:zeno@", &format!("zeno:{secret}@"), 1);
    let server = Server::worker(&fixture("db.php"))
        .args(["--workers", "1", "--db"])
        .arg(format!("default={url}"))
        .env("ZENO_DB_OTHER", &url)
        .start();
    // The password is wrong, so queries fail; the point is where it travels.
    let _ = get(&server, "/ping").await;
    let (_, env) = get(&server, "/env").await;
    let env = env.to_string();
    assert!(
        !env.contains(secret),
        "PHP must not see the password: {env}"
    );
    assert!(
        !env.contains("postgres://"),
        "PHP must not see database URLs: {env}"
    );
    let log = server.log().join("\n");
    assert!(
        !log.contains(secret),
        "the log must not contain the password"
    );
    assert!(log.contains("zeno:***@"), "the log shows the redacted URL");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_and_the_host_keeps_serving() {
    let server = Server::worker(&fixture("db.php"))
        .args([
            "--workers",
            "1",
            "--db",
            "default=postgres://zeno:zeno@127.0.0.1:1/zeno_test",
        ])
        .start();
    let started = std::time::Instant::now();
    let (status, body) = get(&server, "/connections").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["default"], "pgsql");
    let response = client()
        .get(server.url("/ping"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 500, "the handler's exception");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(server
        .wait_for_log("db_unavailable", Duration::from_secs(5))
        .is_some());
    assert_eq!(
        get(&server, "/connections").await.0,
        200,
        "the host still serves"
    );
}

/// A database reached both ways in one worker: by PDO directly (`dsn`, `user`, `pass`) and
/// through the host (`url`).
struct Twin {
    dsn: String,
    user: &'static str,
    pass: &'static str,
    url: String,
}

impl Twin {
    fn postgres() -> Twin {
        Twin {
            dsn: "pgsql:host=127.0.0.1;port=5432;dbname=zeno_test".into(),
            user: "zeno",
            pass: "zeno",
            url: pg_url(),
        }
    }

    fn mariadb() -> Twin {
        Twin {
            dsn: "mysql:host=127.0.0.1;port=3306;dbname=zeno_test".into(),
            user: "zeno",
            pass: "zeno",
            url: my_url(),
        }
    }

    /// A fresh SQLite file of this test run.
    fn sqlite(tag: &str) -> Twin {
        let path = std::env::temp_dir().join(format!("zeno-{tag}-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Twin {
            dsn: format!("sqlite:{}", path.display()),
            user: "",
            pass: "",
            url: format!("sqlite://{}", path.display()),
        }
    }
}

/// Runs a comparing fixture (on `php`, or the default php-cgi) and returns its report once it
/// found no difference between PDO and the host.
async fn no_differences(fixture_name: &str, php: Option<&str>, twin: &Twin) -> Value {
    let mut server = Server::worker(&fixture(fixture_name));
    if let Some(php) = php {
        server = server.args(["--php", php]);
    }
    let server = server
        .args(["--workers", "1", "--db"])
        .arg(format!("default={}", twin.url))
        .env("ZENO_WORKERS__ENV__PDO_DSN", &twin.dsn)
        .env("ZENO_WORKERS__ENV__PDO_USER", twin.user)
        .env("ZENO_WORKERS__ENV__PDO_PASS", twin.pass)
        .start();
    let (status, report) = get(&server, "/").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["differences"],
        serde_json::json!([]),
        "{}: {report:#}",
        twin.dsn
    );
    report
}

/// The same statements through PDO and through the host give PHP identical rows, types and
/// SQLSTATEs, on each backend.
async fn same_as_pdo(twin: Twin) {
    let report = no_differences("pdo-compare.php", None, &twin).await;
    assert_eq!(report["queries"], 5, "{report}");
}

#[tokio::test]
async fn postgres_rows_types_and_errors_match_pdo() {
    same_as_pdo(Twin::postgres()).await;
}

#[tokio::test]
async fn mariadb_rows_types_and_errors_match_pdo() {
    same_as_pdo(Twin::mariadb()).await;
}

#[tokio::test]
async fn sqlite_rows_types_and_errors_match_pdo() {
    same_as_pdo(Twin::sqlite("cmp")).await;
}

/// The value of the Prometheus sample `name` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| labels_text.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// `/metrics` shows each database pool (connections in use, idle, the limit), acquire waits,
/// calls by outcome and SQLSTATE class, where queries ran, open transactions, and host calls
/// by function and outcome with their durations; `zeno workers` shows the pools.
#[tokio::test]
async fn database_and_host_call_metrics() {
    let server = Server::worker(&fixture("db.php"))
        .args(["--workers", "2", "--admin", "127.0.0.1:0", "--db"])
        .arg(format!("default={}", pg_url()))
        .start();
    let admin = server.admin_addr();
    let t = format!("zmetrics_{}", std::process::id());
    assert_eq!(get(&server, &format!("/setup?t={t}")).await.0, 200);
    assert_eq!(get(&server, &format!("/insert?t={t}&v=a")).await.0, 200);
    // One insert succeeds, the second is a unique violation (SQLSTATE 23505).
    assert_eq!(get(&server, &format!("/dup?t={t}&v=b")).await.0, 200);
    // A missing table: 42P01.
    assert_eq!(get(&server, "/count?t=zmetrics_missing").await.0, 500);
    // Functions PHP makes up all count under one label.
    for name in ["no_such_function", "another_made_up_name"] {
        let (status, body) = get(&server, &format!("/call?fn={name}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], false);
    }
    // A transaction held open by a request still running.
    let hang = tokio::spawn({
        let url = server.url(&format!("/tx-hang?t={t}&v=c"));
        async move { client().get(url).send().await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = server.metrics().await;
        if sample(&metrics, "zeno_db_transactions_open", &[("db", "default")]) == Some(1.0) {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no open transaction shown:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ok = sample(
        &metrics,
        "zeno_db_calls_total",
        &[
            ("db", "default"),
            ("function", "db_query"),
            ("outcome", "ok"),
        ],
    );
    assert!(ok >= Some(3.0), "{ok:?}\n{metrics}");
    for class in ["23", "42"] {
        assert_eq!(
            sample(
                &metrics,
                "zeno_db_calls_total",
                &[
                    ("function", "db_query"),
                    ("outcome", "db"),
                    ("sqlstate_class", class)
                ],
            ),
            Some(1.0),
            "class {class}:\n{metrics}"
        );
    }
    assert!(
        sample(
            &metrics,
            "zeno_db_routed_total",
            &[("db", "default"), ("target", "primary")]
        ) >= Some(4.0)
    );
    assert!(
        sample(
            &metrics,
            "zeno_db_routed_total",
            &[("db", "default"), ("target", "transaction")]
        ) >= Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "zeno_db_acquire_seconds_count",
            &[("db", "default"), ("role", "primary")]
        ) >= Some(4.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "zeno_db_connections_max",
            &[("db", "default"), ("role", "primary")]
        ),
        Some(10.0)
    );
    let in_use = sample(
        &metrics,
        "zeno_db_connections",
        &[("db", "default"), ("state", "in_use")],
    );
    assert!(
        in_use >= Some(1.0),
        "the open transaction holds one: {in_use:?}"
    );
    assert!(sample(
        &metrics,
        "zeno_db_connections",
        &[("db", "default"), ("state", "idle")]
    )
    .is_some());
    assert!(
        sample(
            &metrics,
            "zeno_host_calls_total",
            &[("function", "db_query"), ("outcome", "ok")]
        ) >= Some(3.0)
    );
    assert!(
        sample(
            &metrics,
            "zeno_host_calls_total",
            &[("function", "db_query"), ("outcome", "db")]
        ) >= Some(2.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "zeno_host_calls_total",
            &[("function", "unknown"), ("outcome", "unknown_function")]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(
        !metrics.contains("no_such_function"),
        "a made-up name became a label"
    );
    assert!(
        sample(
            &metrics,
            "zeno_host_call_duration_seconds_count",
            &[("function", "db_exec")]
        ) >= Some(2.0)
    );

    // `zeno workers` prints the pools.
    let out = std::process::Command::new(zeno_e2e::zeno_bin())
        .args(["workers", "--admin", &admin])
        .output()
        .expect("zeno workers");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .skip_while(|line| !line.starts_with("database pools:"))
        .find(|line| line.starts_with("default"))
        .unwrap_or_else(|| panic!("no pool row:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "primary", "{row}");
    assert_eq!(cells[4], "10", "max: {row}");
    assert_eq!(cells[5], "1", "open transactions: {row}");
    hang.abort();
}

/// A column of every type the backend has, read and written through PDO and through the host
/// in one worker: every value identical in value and PHP type — on the default php-cgi, or on
/// PHP 8.4 (sid), whose PDO gives floats where 8.2's pdo_pgsql gave strings, and
/// `Zeno\Db\Rows::asPdo` must follow.
async fn every_type_as_pdo(twin: Twin, php84: bool) {
    let php = php84.then(|| zeno_e2e::sid_php().0.display().to_string());
    let report = no_differences("pdo-types.php", php.as_deref(), &twin).await;
    assert_eq!(report["queries"], 3, "{report:#}");
    assert!(report["values"].as_u64() > Some(5), "{report}");
}

#[tokio::test]
async fn postgres_every_type_reads_and_writes_as_pdo() {
    every_type_as_pdo(Twin::postgres(), false).await;
}

#[tokio::test]
async fn mariadb_every_type_reads_and_writes_as_pdo() {
    every_type_as_pdo(Twin::mariadb(), false).await;
}

#[tokio::test]
async fn sqlite_every_type_reads_and_writes_as_pdo() {
    every_type_as_pdo(Twin::sqlite("types"), false).await;
}

#[tokio::test]
async fn postgres_every_type_reads_and_writes_as_pdo_on_php84() {
    every_type_as_pdo(Twin::postgres(), true).await;
}

#[tokio::test]
async fn mariadb_every_type_reads_and_writes_as_pdo_on_php84() {
    every_type_as_pdo(Twin::mariadb(), true).await;
}

#[tokio::test]
async fn sqlite_every_type_reads_and_writes_as_pdo_on_php84() {
    every_type_as_pdo(Twin::sqlite("types84"), true).await;
}
