//! A Laravel app under `zeno serve --laravel`: the same behaviours give the same answers
//! through the zeno_proxy driver as through native PDO on PostgreSQL, MariaDB and SQLite;
//! nothing one request changes is seen by the next; the response goes out before
//! terminate(); public/ is served by the host; artisan runs through the host.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeno_e2e::{client, fixture, my_url, pg_url, sid_php, LaravelApp, Server, ServerBuilder};

/// The two Laravels the suites run on: Debian's 8.83 on the system's PHP 8.2 with an 8-style
/// app (examples/laravel), and Debian sid's 13.x on PHP 8.4 (scripts/sid.sh) with an 11-style
/// app (tests/fixtures/laravel-modern).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stack {
    Laravel8,
    Laravel13,
}

impl Stack {
    fn app(self, tag: &str) -> LaravelApp {
        match self {
            Stack::Laravel8 => LaravelApp::copy(tag),
            Stack::Laravel13 => LaravelApp::modern(tag),
        }
    }

    /// The php-cli that runs the app natively.
    fn php(self) -> std::path::PathBuf {
        match self {
            Stack::Laravel8 => "php".into(),
            Stack::Laravel13 => sid_php().1,
        }
    }

    /// `zeno serve` for this stack's PHP.
    fn server(self) -> ServerBuilder {
        match self {
            Stack::Laravel8 => Server::bare(),
            Stack::Laravel13 => Server::bare()
                .arg("--php")
                .arg(sid_php().0.display().to_string()),
        }
    }

    /// The environment `zeno artisan` needs for this stack's PHP.
    fn artisan_env(self) -> Vec<(&'static str, String)> {
        match self {
            Stack::Laravel8 => Vec::new(),
            Stack::Laravel13 => vec![("ZENO_WORKERS__PHP", sid_php().0.display().to_string())],
        }
    }

    fn app_name(self) -> &'static str {
        match self {
            Stack::Laravel8 => "Zeno Laravel example",
            Stack::Laravel13 => "Zeno modern",
        }
    }
}

/// The suite under plain PHP with the native driver: `php native.php APP_DIR`.
fn native(stack: Stack, app: &LaravelApp, env: &[(&str, &str)]) -> Value {
    let output = Command::new(stack.php())
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
async fn same_answers(stack: Stack, tag: &str, env: &[(&str, &str)], url: &str) {
    let app = stack.app(tag);
    let expected = native(stack, &app, env);
    let server = stack
        .server()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--db"])
        .arg(format!("default={url}"))
        .start();
    let actual = server.get_json("/_suite").await;
    let (Value::Object(expected), Value::Object(actual)) = (&expected, &actual) else {
        panic!("suite answers are objects");
    };
    assert!(
        expected.len() > 40,
        "the suite ran: {} answers",
        expected.len()
    );
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

const PG_NATIVE: &[(&str, &str)] = &[
    ("DB_CONNECTION", "pgsql"),
    ("DB_HOST", "127.0.0.1"),
    ("DB_PORT", "5432"),
    ("DB_DATABASE", "zeno_test"),
    ("DB_USERNAME", "zeno"),
    ("DB_PASSWORD", "zeno"),
];

const MY_NATIVE: &[(&str, &str)] = &[
    ("DB_CONNECTION", "mysql"),
    ("DB_HOST", "127.0.0.1"),
    ("DB_PORT", "3306"),
    ("DB_DATABASE", "zeno_test"),
    ("DB_USERNAME", "zeno"),
    ("DB_PASSWORD", "zeno"),
];

const MARIADB_NATIVE: &[(&str, &str)] = &[
    ("DB_CONNECTION", "mariadb"),
    ("DB_HOST", "127.0.0.1"),
    ("DB_PORT", "3306"),
    ("DB_DATABASE", "zeno_test"),
    ("DB_USERNAME", "zeno"),
    ("DB_PASSWORD", "zeno"),
];

async fn sqlite_twins(stack: Stack, tag: &str) {
    let path = zeno_e2e::temp_path(&format!("{tag}.sqlite"));
    std::fs::write(&path, b"").expect("create sqlite file");
    let db = path.display().to_string();
    same_answers(
        stack,
        tag,
        &[("DB_CONNECTION", "sqlite"), ("DB_DATABASE", &db)],
        &format!("sqlite://{db}"),
    )
    .await;
    let _ = std::fs::remove_file(&path);
}

// PostgreSQL and MariaDB twins share one database per server: the two Laravels take turns.
static PG_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static MY_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn postgres_behaves_as_native_pdo_pgsql() {
    let _turn = PG_TURN.lock().await;
    same_answers(Stack::Laravel8, "pg", PG_NATIVE, &pg_url()).await;
}

#[tokio::test]
async fn postgres_behaves_as_native_pdo_pgsql_on_laravel13() {
    let _turn = PG_TURN.lock().await;
    same_answers(Stack::Laravel13, "pg13", PG_NATIVE, &pg_url()).await;
}

#[tokio::test]
async fn mariadb_behaves_as_native_pdo_mysql() {
    let _turn = MY_TURN.lock().await;
    same_answers(Stack::Laravel8, "my", MY_NATIVE, &my_url()).await;
}

#[tokio::test]
async fn mariadb_behaves_as_native_pdo_mysql_on_laravel13() {
    let _turn = MY_TURN.lock().await;
    // Laravel 11+ has a driver of its own for MariaDB, which zeno_proxy picks for it.
    same_answers(Stack::Laravel13, "my13", MARIADB_NATIVE, &my_url()).await;
}

#[tokio::test]
async fn sqlite_behaves_as_native_pdo_sqlite() {
    sqlite_twins(Stack::Laravel8, "lite").await;
}

#[tokio::test]
async fn sqlite_behaves_as_native_pdo_sqlite_on_laravel13() {
    sqlite_twins(Stack::Laravel13, "lite13").await;
}

/// `zeno artisan APP --db default=URL -- ARGS`, its output; panics with it unless it succeeded
/// (when `must_succeed`).
fn artisan(app: &LaravelApp, url: &str, args: &[&str], must_succeed: bool) -> std::process::Output {
    artisan_on(Stack::Laravel8, app, url, args, must_succeed)
}

fn artisan_on(
    stack: Stack,
    app: &LaravelApp,
    url: &str,
    args: &[&str],
    must_succeed: bool,
) -> std::process::Output {
    let output = Command::new(zeno_e2e::zeno_bin())
        .envs(stack.artisan_env())
        .arg("artisan")
        .arg(&app.dir)
        .args(["--db", &format!("default={url}"), "--"])
        .args(args)
        .output()
        .expect("zeno artisan");
    assert!(
        !must_succeed || output.status.success(),
        "zeno artisan {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// An app on a fresh SQLite file, migrated through `zeno artisan`, served with `workers`.
fn serve_sqlite(app: &LaravelApp, workers: &str, extra: &[&str]) -> (Server, String) {
    serve_sqlite_on(Stack::Laravel8, app, workers, extra)
}

fn serve_sqlite_on(
    stack: Stack,
    app: &LaravelApp,
    workers: &str,
    extra: &[&str],
) -> (Server, String) {
    let db = app.dir.join("database/test.sqlite");
    std::fs::write(&db, b"").expect("create sqlite file");
    let url = format!("sqlite://{}", db.display());
    artisan_on(stack, app, &url, &["migrate", "--force"], true);
    let server = stack
        .server()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", workers, "--db"])
        .arg(format!("default={url}"))
        .args(extra.iter().copied())
        .start();
    (server, url)
}

/// Everything `/_leak/write` changes — config, auth, session, queued cookie, locale, query
/// log, an open transaction, the sticky flag, a container instance, view shared data, the
/// request — is gone for the next request on the same worker.
#[tokio::test]
async fn no_state_leaks_between_requests() {
    no_state_leaks(Stack::Laravel8).await;
}

/// The same on Laravel 13, with what 11–13 added: Context, `Log::shareContext`, `Once`,
/// `Number`'s locale.
#[tokio::test]
async fn no_state_leaks_between_requests_on_laravel13() {
    no_state_leaks(Stack::Laravel13).await;
}

async fn no_state_leaks(stack: Stack) {
    let app = stack.app("leak");
    let (server, _) = serve_sqlite_on(stack, &app, "1", &[]);
    let setup = client()
        .get(server.url("/_leak/setup"))
        .send()
        .await
        .expect("setup");
    assert_eq!(setup.status(), 200);

    let before = server.get_json("/_leak/read?marker=first&page=3").await;
    assert_eq!(before["marker"], "first");
    assert_eq!(before["page"], 3);

    let write = client()
        .get(server.url("/_leak/write"))
        .send()
        .await
        .expect("write");
    assert_eq!(write.status(), 200);
    let cookies: Vec<_> = write.headers().get_all("set-cookie").iter().collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("leaked_cookie=")),
        "the write request queues its cookie: {cookies:?}"
    );
    let wrote: Value = write.json().await.expect("json");
    assert_eq!(wrote["level"], 1);
    assert_eq!(wrote["modified"], true);

    let after = client()
        .get(server.url("/_leak/read"))
        .send()
        .await
        .expect("read");
    let after_cookies: Vec<_> = after.headers().get_all("set-cookie").iter().collect();
    assert!(
        !after_cookies
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("leaked_cookie=")),
        "a queued cookie is not sent again: {after_cookies:?}"
    );
    let after: Value = after.json().await.expect("json");
    let expected = serde_json::json!({
        "app_name": stack.app_name(),
        "added_config": null,
        "user": false,
        "session": null,
        "locale": "en",
        "query_log": false,
        "logged": 0,
        "transaction_level": 0,
        "modified": false,
        "notes": ["committed"],
        "instance": false,
        "scoped": false,
        "shared": null,
        "marker": null,
        "url": server.url("/_leak/read"),
        "full_url": server.url("/_leak/read"),
        "page": 1,
        "context": false,
        "log_shared": false,
        "number_locale": "en",
        "once_fresh": true,
    });
    assert_eq!(
        after, expected,
        "state after a request that changed everything"
    );
}

/// The client gets the response before terminate() runs; the worker takes the next request
/// only after it; its log records reach the host's log with the request id.
#[tokio::test]
async fn response_goes_out_before_terminate_and_logs_reach_the_host() {
    let app = LaravelApp::copy("term");
    let (server, _) = serve_sqlite(&app, "1", &[]);
    let started = Instant::now();
    let response = client()
        .get(server.url("/_slow_terminate"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.text().await.expect("text"),
        "sent before terminate"
    );
    let first = started.elapsed();
    assert!(
        first < Duration::from_millis(700),
        "response took {first:?}: it waited for terminate"
    );
    // One worker: the next request waits for terminate to finish.
    let response = client().get(server.url("/")).send().await.expect("send");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "the worker was busy with terminate"
    );
    let line = server
        .wait_for_log("terminate finished", Duration::from_secs(5))
        .expect("terminate's log record");
    assert!(line.contains("\"request\":\"r-"), "{line}");

    let response = client()
        .get(server.url("/_log"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.text().await.expect("text"), "logged");
    let line = server
        .wait_for_log("hello from laravel", Duration::from_secs(5))
        .expect("the zeno log channel");
    assert!(
        line.contains("answer") && line.contains("\"request\":\"r-"),
        "{line}"
    );
}

/// Files under public/ come from the host (PHP never sees them); PHP files, dotfiles and
/// missing files go to Laravel's router.
#[tokio::test]
async fn public_files_are_served_by_the_host() {
    let app = LaravelApp::copy("static");
    std::fs::write(app.dir.join("public/.env"), "SECRET=1").expect("write");
    let (server, _) = serve_sqlite(&app, "1", &["--admin", "127.0.0.1:0"]);
    let admin = server.admin_addr();
    let (_, before) = worker_rss(&server, &admin).await;
    let response = client()
        .get(server.url("/css/app.css"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    let css = std::fs::read_to_string(app.dir.join("public/css/app.css")).expect("css");
    assert_eq!(response.text().await.expect("text"), css);
    let robots = client()
        .get(server.url("/robots.txt"))
        .send()
        .await
        .expect("send");
    assert_eq!(robots.status(), 200);
    let (_, after) = worker_rss(&server, &admin).await;
    assert_eq!(after, before, "static files never reach a PHP worker");
    for path in ["/index.php", "/.env", "/missing.css", "/../config/app.php"] {
        let response = client().get(server.url(path)).send().await.expect("send");
        assert_eq!(response.status(), 404, "{path} is Laravel's 404");
        let body = response.text().await.expect("text");
        assert!(
            !body.contains("SECRET") && !body.contains("<?php"),
            "{path}: {body}"
        );
    }
}

/// `$_ZENO`, `\Zeno::scope()` and the X-Zeno-* headers in a controller; a client cannot
/// spoof them. Uploads arrive as valid UploadedFiles that Laravel can store.
#[tokio::test]
async fn scope_headers_and_uploads_in_controllers() {
    let app = LaravelApp::copy("scope");
    let config = app.dir.join("zeno.toml");
    std::fs::write(&config, "[scope]\ntenant = \"acme\"\n").expect("write config");
    let (server, _) = serve_sqlite(&app, "1", &["--config", &config.display().to_string()]);
    let response = client()
        .get(server.url("/_scope"))
        .header("X-Zeno-Tenant", "spoofed")
        .send()
        .await
        .expect("send");
    let scope: Value = response.json().await.expect("json");
    let id = scope["facade"].as_str().expect("request id").to_owned();
    assert!(id.starts_with("r-"), "{scope}");
    assert_eq!(scope["header"], id.as_str());
    assert_eq!(scope["global"]["request_id"], id.as_str());
    assert_eq!(scope["tenant"], "acme");

    // PHP files X_Zeno_User_Id under the same key as X-Zeno-User-Id: it must never get there.
    let response = client()
        .get(server.url("/_scope"))
        .header("X_Zeno_User_Id", "666")
        .header("X_Zeno_Tenant", "forged")
        .header("x-zeno_request-id", "r-forged")
        .header("X_Forwarded_For", "6.6.6.6")
        .send()
        .await
        .expect("send");
    let scope: Value = response.json().await.expect("json");
    assert_eq!(scope["user"], Value::Null, "{scope}");
    assert_eq!(scope["tenant"], "acme");
    assert_eq!(scope["forwarded"], Value::Null);
    assert_ne!(scope["header"], "r-forged");
    assert_eq!(scope["header"], scope["facade"]);

    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let form = reqwest::multipart::Form::new().text("field", "value").part(
        "doc",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("data.bin"),
    );
    let response = client()
        .post(server.url("/_upload"))
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let upload: Value = response.json().await.expect("json");
    let sha1 = String::from_utf8(
        Command::new("sha1sum")
            .arg(write_temp(&bytes))
            .output()
            .expect("sha1sum")
            .stdout,
    )
    .expect("utf8");
    assert_eq!(upload["valid"], true, "{upload}");
    assert_eq!(upload["name"], "data.bin");
    assert_eq!(upload["sha1"], sha1.split_whitespace().next().expect("sum"));
    assert_eq!(upload["stored"], true);
    assert_eq!(upload["field"], "value");
}

fn write_temp(bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("zeno-upload-{}", std::process::id()));
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A worker's RSS after `n` requests, read by the host (admin /workers).
async fn worker_rss(server: &Server, admin: &str) -> (u64, u64) {
    let body = client()
        .get(format!("http://{admin}/workers"))
        .send()
        .await
        .expect("admin")
        .text()
        .await
        .expect("text");
    let workers: Value = serde_json::from_str(&body).expect("json");
    let worker = workers
        .as_array()
        .and_then(|w| w.first())
        .cloned()
        .or_else(|| {
            workers["workers"]
                .as_array()
                .and_then(|w| w.first())
                .cloned()
        })
        .unwrap_or_else(|| panic!("no worker in {body}\n{}", server.log().join("\n")));
    (
        worker["rss_bytes"].as_u64().expect("rss_bytes"),
        worker["requests"].as_u64().expect("requests"),
    )
}

async fn hammer(server: &Server, paths: &[&str], count: usize) {
    let client = client();
    let mut tasks = Vec::new();
    for lane in 0..4 {
        let client = client.clone();
        let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
        tasks.push(tokio::spawn(async move {
            for i in (lane..count).step_by(4) {
                let response = client
                    .get(&urls[i % urls.len()])
                    .send()
                    .await
                    .expect("send");
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("body");
            }
        }));
    }
    for task in tasks {
        task.await.expect("lane");
    }
}

/// 10,000 requests (a string, a query, a Blade page with pagination and eager loading) grow
/// one worker's RSS by less than 10 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_grow_a_worker_by_less_than_10_mb() {
    grows_less_than_10_mb(
        Stack::Laravel8,
        &["/", "/db", "/posts?page=2", "/posts.json"],
    )
    .await;
}

/// The same on Laravel 13: a string, a query, the health page (a Blade view).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_grow_a_laravel13_worker_by_less_than_10_mb() {
    grows_less_than_10_mb(Stack::Laravel13, &["/", "/db", "/up"]).await;
}

async fn grows_less_than_10_mb(stack: Stack, paths: &[&str]) {
    let app = stack.app("memory");
    let (server, url) = serve_sqlite_on(stack, &app, "1", &["--admin", "127.0.0.1:0"]);
    if stack == Stack::Laravel8 {
        // Posts for the paginated pages.
        artisan(&app, &url, &["db:seed", "--force"], true);
    }
    let admin = server.admin_addr();
    hammer(&server, paths, 500).await;
    let (warm, served) = worker_rss(&server, &admin).await;
    assert!(served >= 500, "one worker served the warm-up: {served}");
    hammer(&server, paths, 10_000).await;
    let (after, served_after) = worker_rss(&server, &admin).await;
    assert_eq!(
        served_after,
        served + 10_000,
        "the same worker served them all"
    );
    let growth = after.saturating_sub(warm);
    eprintln!("worker RSS {warm} -> {after} bytes after 10,000 requests (+{growth})");
    assert!(growth < 10 * 1024 * 1024, "RSS grew by {growth} bytes");
}

/// `zeno artisan` passes the command's output and exit code through, and refuses a
/// directory that is not a Laravel app.
#[test]
fn artisan_reports_output_and_exit_codes() {
    let app = LaravelApp::copy("artisan");
    let db = app.dir.join("database/artisan.sqlite");
    std::fs::write(&db, b"").expect("create");
    let url = format!("sqlite://{}", db.display());
    let run = |args: &[&str]| artisan(&app, &url, args, false);
    let migrated = run(&["migrate", "--force", "--seed"]);
    assert!(migrated.status.success());
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("Migrated:"));
    let counted = run(&["posts:count"]);
    assert_eq!(counted.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&counted.stdout).trim(), "posts: 27");
    let unknown = run(&["no:such-command"]);
    assert_ne!(unknown.status.code(), Some(0), "an unknown command fails");
    let status = run(&["migrate:status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("create_users_table"));

    // zeno artisan runs PHP as workers.user too.
    if nix::unistd::Uid::effective().is_root() {
        let console = app.dir.join("routes/console.php");
        let mut routes = std::fs::read_to_string(&console).expect("console routes");
        routes.push_str(
            "\nArtisan::command('zeno:whoami', function () { $this->line((string) posix_getuid()); });\n",
        );
        std::fs::write(&console, routes).expect("write");
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("passwd")
            .expect("nobody");
        let output = Command::new(zeno_e2e::zeno_bin())
            .arg("artisan")
            .arg(&app.dir)
            .args(["--db", &format!("default={url}"), "--", "zeno:whoami"])
            .env("ZENO_WORKERS__USER", "nobody")
            .output()
            .expect("zeno artisan");
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            nobody.uid.as_raw().to_string()
        );
    }

    let not_laravel = Command::new(zeno_e2e::zeno_bin())
        .args(["artisan", "/tmp", "--", "list"])
        .output()
        .expect("zeno artisan");
    assert!(!not_laravel.status.success());
    assert!(
        String::from_utf8_lossy(&not_laravel.stderr).contains("not a Laravel app"),
        "{}",
        String::from_utf8_lossy(&not_laravel.stderr)
    );
}

/// A worker that exits during terminate() has already answered; it is replaced and the next
/// request is served. A database that is down is Laravel's QueryException (500), and the
/// host keeps serving.
#[tokio::test]
async fn failures_after_the_response_and_a_database_that_is_down() {
    let app = LaravelApp::copy("fail");
    let (server, _) = serve_sqlite(&app, "1", &[]);
    let response = client()
        .get(server.url("/_exit_in_terminate"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "answered");
    for _ in 0..3 {
        let response = client().get(server.url("/")).send().await.expect("send");
        assert_eq!(response.status(), 200, "{}", server.log().join("\n"));
    }
    drop(server);

    let config = app.dir.join("down.toml");
    std::fs::write(
        &config,
        "[db.default]\nurl = \"postgres://zeno:zeno@127.0.0.1:1/nothing\"\nacquire_timeout = \"1s\"\n",
    )
    .expect("write config");
    let server = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--config"])
        .arg(config.display().to_string())
        .start();
    let started = Instant::now();
    let response = client()
        .get(server.url("/db"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 500);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed within the acquire timeout"
    );
    let line = server
        .wait_for_log("db_unavailable", Duration::from_secs(5))
        .expect("Laravel logged the QueryException through the zeno channel");
    assert!(
        line.contains("QueryException") || line.contains("SQLSTATE"),
        "{line}"
    );
    let response = client().get(server.url("/")).send().await.expect("send");
    assert_eq!(response.status(), 200, "the host keeps serving");
}

/// A directory that is not a Laravel app, or an app whose bootstrap fails, stops `zeno
/// serve` with a clear error.
#[test]
fn bad_apps_are_clear_errors() {
    let err = Server::bare()
        .args(["--laravel", "/tmp"])
        .try_start()
        .err()
        .expect("refused");
    assert!(err.0.is_some_and(|s| !s.success()));
    assert!(
        err.1.join("\n").contains("not a Laravel app"),
        "{:?}",
        err.1
    );

    let app = LaravelApp::copy("badboot");
    std::fs::write(
        app.dir.join("bootstrap/app.php"),
        "<?php\nthrow new RuntimeException('bootstrap exploded');\n",
    )
    .expect("write");
    let err = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1"])
        .try_start()
        .err()
        .expect("refused");
    assert!(err.0.is_some_and(|s| !s.success()));
    assert!(
        err.1.join("\n").contains("bootstrap exploded"),
        "{:?}",
        err.1
    );
}

/// examples/laravel itself on PostgreSQL and MariaDB, set by a URL: migrated and seeded
/// through `zeno artisan`, then its pages, its JSON paginator and its transactional POST.
async fn example_app_on(url: &str, tag: &str) {
    let app = LaravelApp::copy(tag);
    artisan(&app, url, &["migrate", "--force", "--seed"], true);
    let server = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "2", "--db"])
        .arg(format!("default={url}"))
        .start();
    let page = client()
        .get(server.url("/posts?page=2"))
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("text");
    assert!(
        html.contains("Page 2 of") && html.contains("<li>"),
        "{tag}: {html}"
    );
    let json = server.get_json("/posts.json").await;
    assert_eq!(json["current_page"], 1);
    assert_eq!(json["per_page"], 5);
    assert!(json["total"].as_u64().expect("total") >= 27, "{json}");
    assert!(
        json["data"][0]["author"]["name"].is_string(),
        "eager loaded: {json}"
    );
    assert!(
        json["data"][0]["score"].is_number(),
        "a double is a number: {json}"
    );
    let created = client()
        .post(server.url("/api/posts"))
        .header("accept", "application/json")
        .form(&[
            ("email", format!("{tag}@example.com")),
            ("name", "Test Author".into()),
            ("title", "Through the host".into()),
            ("body", "It's ünïcode".into()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(created.status(), 201);
    let post: Value = created.json().await.expect("json");
    assert_eq!(post["body"], "It's ünïcode");
    assert_eq!(
        post["author"]["email"],
        format!("{tag}@example.com").as_str()
    );
    let invalid = client()
        .post(server.url("/api/posts"))
        .header("accept", "application/json")
        .form(&[("email", "not-an-email")])
        .send()
        .await
        .expect("send");
    assert_eq!(invalid.status(), 422);
}

#[tokio::test]
async fn the_example_app_runs_on_postgres() {
    example_app_on(&pg_url(), "expg").await;
}

#[tokio::test]
async fn the_example_app_runs_on_mariadb() {
    example_app_on(&my_url(), "exmy").await;
}

/// A `zeno_proxy` connection that names a database the host does not have is a clear error
/// (Laravel's 500, the message in the log naming the connections there are), not a hang.
#[tokio::test]
async fn an_unknown_host_connection_is_a_clear_error() {
    let app = LaravelApp::copy("unknown");
    let server = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1"])
        .env("ZENO_WORKERS__ENV__ZENO_DB_CONNECTION", "nope")
        .start();
    let response = client()
        .get(server.url("/db"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 500);
    let line = server
        .wait_for_log("no database connection 'nope'", Duration::from_secs(5))
        .expect("the error is logged");
    assert!(
        line.contains("default"),
        "it names the connections there are: {line}"
    );
    let response = client().get(server.url("/")).send().await.expect("send");
    assert_eq!(response.status(), 200);
}

/// Laravel's streamed responses on both stacks: `streamDownload()` of a large export,
/// `download()` with `Range`, `response()->stream()` events one by one, and an X-Sendfile
/// download served by the host from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_responses_and_x_sendfile_on_laravel8() {
    streamed_responses(Stack::Laravel8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_responses_and_x_sendfile_on_laravel13() {
    streamed_responses(Stack::Laravel13).await;
}

async fn streamed_responses(stack: Stack) {
    use futures_util::StreamExt;
    let app = stack.app("stream");
    let storage = app.dir.join("storage/app");
    let dirs = format!("[{:?}]", storage.display().to_string());
    let db = app.dir.join("database/test.sqlite");
    std::fs::write(&db, b"").expect("create sqlite file");
    let server = stack
        .server()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--task-workers", "0", "--db"])
        .arg(format!("default=sqlite://{}", db.display()))
        .env("ZENO_SERVER__SENDFILE_DIRS", &dirs)
        .start();
    let (status, made) = server.get_text("/_stream/make?mb=64").await;
    assert_eq!((status, made.as_str()), (200, "made"));

    // A 256 MiB export, checked byte by byte as it arrives.
    let response = client()
        .get(server.url("/_stream/export?mb=256"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("export.bin"));
    let mut stream = response.bytes_stream();
    let mut offset: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        assert!(chunk
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (((offset + i as u64) / 1_048_576) % 251) as u8));
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, 256 << 20);

    // download() with a Range (Symfony answers it in PHP).
    let ranged = client()
        .get(server.url("/_stream/download"))
        .header("range", "bytes=1048576-1048585")
        .send()
        .await
        .expect("send");
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.expect("body").as_ref(), &[1u8; 10]);

    // Server-sent events, one by one.
    let response = client()
        .get(server.url("/_stream/sse"))
        .send()
        .await
        .expect("send");
    let mut stream = response.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        for _ in String::from_utf8_lossy(&chunk).matches("\n\n") {
            arrivals.push(std::time::Instant::now());
        }
    }
    assert_eq!(arrivals.len(), 3);
    assert!(arrivals
        .windows(2)
        .all(|w| w[1] - w[0] >= Duration::from_millis(350)));

    // X-Sendfile: PHP names the file, the host sends it (whole, and a range of it).
    let sent = client()
        .get(server.url("/_stream/sendfile"))
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status(), 200);
    assert!(sent.headers().get("x-sendfile").is_none());
    assert_eq!(
        sent.headers()["content-length"],
        (64u64 << 20).to_string().as_str()
    );
    assert!(sent.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("sent.bin"));
    let body = sent.bytes().await.expect("body");
    assert_eq!(body.len(), 64 << 20);
    assert_eq!(body[63 << 20], 63);
    let ranged = client()
        .get(server.url("/_stream/sendfile"))
        .header("range", "bytes=-5")
        .send()
        .await
        .expect("send");
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.expect("body").as_ref(), &[63u8; 5]);
}

/// X-Sendfile is the host's to offer: a client that claims it gets the file from PHP, and
/// a path outside `server.sendfile_dirs` is refused.
#[tokio::test]
async fn x_sendfile_cannot_be_claimed_by_a_client_or_leave_its_directories() {
    let app = LaravelApp::copy("sendfile");
    let db = app.dir.join("database/test.sqlite");
    std::fs::write(&db, b"").expect("create sqlite file");
    let plain = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--task-workers", "0", "--db"])
        .arg(format!("default=sqlite://{}", db.display()))
        .start();
    plain.get_text("/_stream/make?mb=1").await;
    let claimed = client()
        .get(plain.url("/_stream/sendfile"))
        .header("x-sendfile-type", "X-Sendfile")
        .send()
        .await
        .expect("send");
    assert_eq!(claimed.status(), 200);
    assert_eq!(claimed.bytes().await.expect("body").len(), 1 << 20);
    drop(plain);

    let elsewhere = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--task-workers", "0", "--db"])
        .arg(format!("default=sqlite://{}", db.display()))
        .env("ZENO_SERVER__SENDFILE_DIRS", "[\"/nonexistent-public\"]")
        .start();
    let refused = client()
        .get(elsewhere.url("/_stream/sendfile"))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 502);
    assert!(elsewhere
        .wait_for_log("outside server.sendfile_dirs", Duration::from_secs(5))
        .is_some());
}

/// Whether process `pid` has a handler for SIGCONT (signal 18: bit 17 of `SigCgt`), which
/// Laravel's queue worker installs with its SIGTERM handler when its loop starts (php-cgi
/// catches SIGTERM itself from the start, so that bit says nothing).
fn runs_queue_loop(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << 17) != 0)
}

/// `zeno artisan APP -- queue:work` under systemd: SIGTERM reaches the command (Laravel's
/// worker, with pcntl, finishes its job and leaves its loop), which exits 0, and no PHP is
/// left; without the forwarding the host died of the signal and took the job with it.
#[test]
fn artisan_passes_sigterm_on_to_the_command() {
    let app = LaravelApp::copy("artisan-signal");
    let db = format!("default=sqlite://{}/worker.sqlite", app.dir.display());
    let mut child = Command::new(zeno_e2e::zeno_bin())
        .arg("artisan")
        .arg(&app.dir)
        .args(["--db", &db, "--", "queue:work", "--sleep=1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("zeno artisan");
    // Killed if the test fails before it exits.
    struct Reap(Option<u32>);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Some(Ok(pid)) = self.0.map(i32::try_from) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let mut reap = Reap(Some(child.id()));
    // The worker is in queue:work's loop once Laravel installed its signal handlers.
    let pid = child.id();
    let worker = || -> Option<u32> {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().find_map(|p| p.parse().ok())
    };
    let listening = zeno_e2e::wait_until(Duration::from_secs(30), || {
        worker().is_some_and(runs_queue_loop)
    });
    assert!(listening, "queue:work never installed its SIGTERM handler");
    let php = worker().expect("worker pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            reap.0 = None;
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "zeno artisan did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("passed SIGTERM on"), "{stderr}");
    assert!(
        zeno_e2e::wait_until(Duration::from_secs(5), || !zeno_e2e::process_alive(php)),
        "the PHP worker is gone"
    );
}
