//! examples/orchestrator end to end: an axum app with PHP mounted under `/app` and as the
//! fallback, scope from Rust (a signed login cookie, a Rust cart), a Rust host function PHP
//! calls, and a client that tries to forge its way in.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use zeno_e2e::{client, temp_path, wait_until};

struct Orchestrator {
    child: Child,
    base: String,
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Orchestrator {
    let bin = zeno_e2e::zeno_bin().with_file_name("zeno-example-orchestrator");
    assert!(
        bin.is_file(),
        "build it first: cargo build -p zeno-example-orchestrator"
    );
    let db = temp_path("orchestrator.sqlite");
    std::fs::write(&db, b"").expect("sqlite file");
    let mut child = Command::new(bin)
        .env("ZENO_ORCHESTRATOR_LISTEN", "127.0.0.1:0")
        .env("ZENO_DB_DEFAULT", format!("sqlite://{}", db.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the orchestrator");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Orchestrator {
        child,
        base: format!("http://{addr}"),
    }
}

/// `GET url` with `headers`: the status and the JSON body.
async fn json_get(client: &reqwest::Client, url: String, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client.get(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn php_under_a_rust_app_gets_its_scope_from_rust() {
    let app = start();
    let base = &app.base;
    let anonymous = client();
    assert_eq!(
        anonymous
            .get(format!("{base}/rust"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text"),
        "Hello from Rust"
    );

    // Not logged in, forging the scope header and an unsigned cookie: PHP sees no user.
    let (status_forged, forged) = json_get(
        &anonymous,
        format!("{base}/app/whoami"),
        &[
            ("x-zeno-user-id", "666"),
            ("x_zeno_user_id", "666"),
            ("cookie", "user_id=666"),
        ],
    )
    .await;
    assert_eq!(status_forged, 200, "{forged}");
    assert_eq!(forged["user_id"], Value::Null);
    assert_eq!(forged["header_user_id"], Value::Null);
    let (status, refused) =
        json_get(&anonymous, format!("{base}/app/cart/add?amount=5"), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error_info"]["kind"], "unauthenticated");

    // Logged in: the signed cookie makes the user, the Rust cart makes the total.
    let user = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    user.get(format!("{base}/login?user=7"))
        .send()
        .await
        .expect("login");
    let (status_nested, nested) = json_get(&user, format!("{base}/app/whoami"), &[]).await;
    assert_eq!(status_nested, 200, "{nested}");
    assert_eq!(nested["user_id"], 7);
    assert_eq!(nested["cart_total"].as_f64(), Some(0.0));
    assert_eq!(nested["header_user_id"], "7");
    assert_eq!(nested["path"], "whoami", "Laravel routes under the mount");
    assert_eq!(
        nested["url"],
        format!("{base}/app/whoami"),
        "Laravel's URLs carry the mount"
    );
    let (status_added, added) =
        json_get(&user, format!("{base}/app/cart/add?amount=12.5"), &[]).await;
    assert_eq!(status_added, 200, "{added}");
    assert_eq!(added["data"], json!({"user_id": 7, "cart_total": 12.5}));
    // The fallback mount sees the new total; a forged header changes nothing.
    let (status_fallback, fallback) = json_get(
        &user,
        format!("{base}/whoami"),
        &[("x-zeno-user-id", "666"), ("x-zeno-cart-total", "0")],
    )
    .await;
    assert_eq!(status_fallback, 200, "{fallback}");
    assert_eq!(fallback["user_id"], 7);
    assert_eq!(fallback["cart_total"], json!(12.5));
    assert_eq!(fallback["path"], "whoami");
    assert_eq!(fallback["url"], format!("{base}/whoami"));

    // One /metrics for both; static files of the app served by the host.
    let metrics = anonymous
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("zeno_pool_queue_wait_seconds"),
        "{metrics}"
    );
    let css = anonymous
        .get(format!("{base}/css/app.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.status(), 200);
}

#[test]
fn sigterm_stops_the_app_and_its_php_workers() {
    let mut app = start();
    let pid = app.child.id();
    let workers = || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || workers() >= 3),
        "PHP workers running"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    assert!(
        wait_until(Duration::from_secs(20), || app
            .child
            .try_wait()
            .ok()
            .flatten()
            .is_some()),
        "the orchestrator exited"
    );
    assert!(app
        .child
        .try_wait()
        .ok()
        .flatten()
        .is_some_and(|s| s.success()));
}
