//! A Laravel app under `zeno serve --laravel`: the same behaviours give the same answers
//! through the zeno_proxy driver as through native PDO on PostgreSQL, MariaDB and SQLite;
//! nothing one request changes is seen by the next; the response goes out before
//! terminate(); public/ is served by the host; artisan runs through the host.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeno_e2e::{fixture, LaravelApp, Server};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn pg_url() -> String {
    std::env::var("ZENO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://zeno:zeno@127.0.0.1:5432/zeno_test".into())
}

fn my_url() -> String {
    std::env::var("ZENO_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://zeno:zeno@127.0.0.1:3306/zeno_test".into())
}

async fn get_json(server: &Server, path: &str) -> Value {
    let response = client().get(server.url(path)).send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text");
    assert_eq!(status, 200, "GET {path}: {text}\n{}", server.log().join("\n"));
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("GET {path}: not JSON: {text}"))
}

/// The suite under plain PHP with the native driver: `php native.php APP_DIR`.
fn native(app: &LaravelApp, env: &[(&str, &str)]) -> Value {
    let output = Command::new("php")
        .arg(fixture("laravel/native.php"))
        .arg(&app.dir)
        .env("LOG_CHANNEL", "stderr")
        .envs(env.iter().copied())
        .output()
        .expect("run php");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "native run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {stdout}"))
}

/// Runs the suite natively, then under the host against the same database, and requires
/// identical answers, key by key.
async fn same_answers(tag: &str, env: &[(&str, &str)], url: &str) {
    let app = LaravelApp::copy(tag);
    let expected = native(&app, env);
    let server = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--db"])
        .arg(format!("default={url}"))
        .start();
    let actual = get_json(&server, "/_suite").await;
    let (Value::Object(expected), Value::Object(actual)) = (&expected, &actual) else {
        panic!("suite answers are objects");
    };
    assert!(expected.len() > 40, "the suite ran: {} answers", expected.len());
    let mut differences = Vec::new();
    for (key, want) in expected {
        let got = actual.get(key).unwrap_or(&Value::Null);
        if got != want {
            differences.push(format!("{key}:\n  native PDO: {want}\n  zeno_proxy: {got}"));
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        differences.push(format!("{key}: only under zeno"));
    }
    assert!(
        differences.is_empty(),
        "{tag}: {} differences\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[tokio::test]
async fn postgres_behaves_as_native_pdo_pgsql() {
    let url = pg_url();
    same_answers(
        "pg",
        &[
            ("DB_CONNECTION", "pgsql"),
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "5432"),
            ("DB_DATABASE", "zeno_test"),
            ("DB_USERNAME", "zeno"),
            ("DB_PASSWORD", "zeno"),
        ],
        &url,
    )
    .await;
}

#[tokio::test]
async fn mariadb_behaves_as_native_pdo_mysql() {
    let url = my_url();
    same_answers(
        "my",
        &[
            ("DB_CONNECTION", "mysql"),
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "3306"),
            ("DB_DATABASE", "zeno_test"),
            ("DB_USERNAME", "zeno"),
            ("DB_PASSWORD", "zeno"),
        ],
        &url,
    )
    .await;
}

#[tokio::test]
async fn sqlite_behaves_as_native_pdo_sqlite() {
    let path = std::env::temp_dir().join(format!("zeno-laravel-{}.sqlite", std::process::id()));
    std::fs::write(&path, b"").expect("create sqlite file");
    let db = path.display().to_string();
    same_answers(
        "lite",
        &[("DB_CONNECTION", "sqlite"), ("DB_DATABASE", &db)],
        &format!("sqlite://{db}"),
    )
    .await;
    let _ = std::fs::remove_file(&path);
}
