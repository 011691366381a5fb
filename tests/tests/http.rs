//! The real `zeno` binary, real PHP, real HTTP: what a PHP app sees of a request, and what
//! the client sees of PHP's answer.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use zeno_e2e::{fixture, repo_root, Server};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn dump(server: &Server, req: reqwest::RequestBuilder) -> Value {
    let _ = server;
    let response = req.send().await.expect("send");
    assert_eq!(response.status(), 200, "dump must answer 200");
    response.json().await.expect("json")
}

#[tokio::test]
async fn method_uri_query_and_headers_reach_php() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let seen = dump(
        &server,
        client()
            .request(
                reqwest::Method::PUT,
                server.url("/some/path?a=1&b[]=2&b[]=3&c%20d=e+f"),
            )
            .header("X-Custom", "one")
            .header("Accept-Language", "fr"),
    )
    .await;
    let s = &seen["server"];
    assert_eq!(s["REQUEST_METHOD"], "PUT");
    assert_eq!(s["REQUEST_URI"], "/some/path?a=1&b[]=2&b[]=3&c%20d=e+f");
    assert_eq!(s["QUERY_STRING"], "a=1&b[]=2&b[]=3&c%20d=e+f");
    assert_eq!(s["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(s["REMOTE_ADDR"], "127.0.0.1");
    assert!(s["REMOTE_PORT"]
        .as_str()
        .is_some_and(|p| p.parse::<u16>().is_ok()));
    assert_eq!(s["SERVER_NAME"], "127.0.0.1");
    assert_eq!(s["HTTP_X_CUSTOM"], "one");
    assert_eq!(s["HTTP_ACCEPT_LANGUAGE"], "fr");
    assert_eq!(s["HTTP_HOST"], server.addr.as_str());
    assert_eq!(s["REQUEST_SCHEME"], "http");
    assert_eq!(s["SCRIPT_NAME"], "/dump.php");
    assert_eq!(s["GATEWAY_INTERFACE"], "CGI/1.1");
    assert!(s.get("HTTPS").is_none());
    assert_eq!(
        seen["get"],
        json!({"a": "1", "b": ["2", "3"], "c_d": "e f"})
    );
    assert_eq!(seen["post"], json!([]));
}

#[tokio::test]
async fn cookies_are_parsed_like_php() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let seen = dump(
        &server,
        client().get(server.url("/")).header(
            "Cookie",
            "session=abc%20def; theme=dark; session=second; empty=",
        ),
    )
    .await;
    assert_eq!(
        seen["cookie"],
        json!({"session": "abc def", "theme": "dark", "empty": ""})
    );
    assert_eq!(
        seen["server"]["HTTP_COOKIE"],
        "session=abc%20def; theme=dark; session=second; empty="
    );
}

#[tokio::test]
async fn urlencoded_form_fills_post_and_request() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let seen = dump(
        &server,
        client()
            .post(server.url("/?from=query&both=q"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("name=Ada+Lovelace&tags[]=x&tags[]=y&both=p&nested[k]=v"),
    )
    .await;
    assert_eq!(
        seen["post"],
        json!({"name": "Ada Lovelace", "tags": ["x", "y"], "both": "p", "nested": {"k": "v"}})
    );
    assert_eq!(
        seen["request"]["both"], "p",
        "POST wins over GET in $_REQUEST"
    );
    assert_eq!(seen["request"]["from"], "query");
    assert_eq!(
        seen["server"]["CONTENT_TYPE"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(seen["server"]["CONTENT_LENGTH"], "54");
    assert_eq!(
        seen["input"],
        "name=Ada+Lovelace&tags[]=x&tags[]=y&both=p&nested[k]=v"
    );
}

#[tokio::test]
async fn multipart_form_fills_post_and_files_and_cleans_up() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let png: Vec<u8> = (0u8..=255).cycle().take(5000).collect();
    let form = Form::new()
        .text("title", "héllo wörld")
        .text("tags[]", "a")
        .text("tags[]", "b")
        .part(
            "avatar",
            Part::bytes(png.clone())
                .file_name("a.png")
                .mime_str("image/png")
                .expect("mime"),
        )
        .part("docs[]", Part::bytes(b"one".to_vec()).file_name("1.txt"))
        .part("docs[]", Part::bytes(b"two!".to_vec()).file_name("2.txt"));
    let seen = dump(&server, client().post(server.url("/")).multipart(form)).await;
    assert_eq!(
        seen["post"],
        json!({"title": "héllo wörld", "tags": ["a", "b"]})
    );
    let avatar = &seen["files"]["avatar"];
    assert_eq!(avatar["name"], "a.png");
    assert_eq!(avatar["type"], "image/png");
    assert_eq!(avatar["size"], 5000);
    assert_eq!(avatar["error"], 0);
    assert_eq!(avatar["tmp_name"]["exists"], true);
    let expected_sha1 = {
        // sha1 of the bytes, computed by PHP on the host's temp file; compare with a second
        // opinion from the docs[] entries, whose content we know.
        avatar["tmp_name"]["sha1"]
            .as_str()
            .expect("sha1")
            .to_owned()
    };
    assert_eq!(expected_sha1.len(), 40);
    let docs = &seen["files"]["docs"];
    assert_eq!(docs["name"], json!(["1.txt", "2.txt"]));
    assert_eq!(docs["size"], json!([3, 4]));
    assert_eq!(docs["error"], json!([0, 0]));
    assert_eq!(
        docs["tmp_name"][0]["sha1"], "fe05bcdcdc4928012781a5f1a2a77cbb5398e106",
        "sha1('one')"
    );
    assert_eq!(
        seen["input"], "",
        "php://input is empty for multipart, as under PHP-FPM"
    );
    // The host deletes the temp files once PHP is done with the request.
    for path in [&avatar["tmp_name"]["path"], &docs["tmp_name"][1]["path"]] {
        let path = path.as_str().expect("path");
        assert!(
            zeno_e2e::wait_until(Duration::from_secs(5), || !std::path::Path::new(path)
                .exists()),
            "{path} must be deleted"
        );
    }
}

#[tokio::test]
async fn json_and_binary_bodies_travel_both_ways() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let seen = dump(
        &server,
        client()
            .post(server.url("/"))
            .header("Content-Type", "application/json")
            .body(r#"{"sku":1,"name":"ünïcode"}"#),
    )
    .await;
    assert_eq!(seen["input"], r#"{"sku":1,"name":"ünïcode"}"#);
    assert_eq!(seen["post"], json!([]), "JSON does not fill $_POST");

    let binary: Vec<u8> = (0..=255u8).rev().cycle().take(70_000).collect();
    let response = client()
        .post(server.url("/binary"))
        .body(binary.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let back = response.bytes().await.expect("bytes");
    assert_eq!(back.len(), binary.len());
    assert!(
        back.as_ref() == binary.as_slice(),
        "binary body must round-trip unchanged"
    );
}

#[tokio::test]
async fn echo_header_cookie_and_status_make_the_response() {
    let server = Server::worker(&repo_root().join("examples/hello/index.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let response = client()
        .get(server.url("/echo"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-hello"], "world");
    assert_eq!(response.headers()["set-cookie"], "visited=1");
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=UTF-8"
    );
    assert_eq!(response.text().await.expect("text"), "echoed\n");

    // Headers and status do not leak into the next request on the same worker.
    let response = client()
        .get(server.url("/?name=Ada"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-hello").is_none());
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(response.text().await.expect("text"), "Hello, Ada!\n");

    let response = client()
        .get(server.url("/missing"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn location_header_redirects_like_fpm() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let response = client()
        .get(server.url("/redirect"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/elsewhere");
}

#[tokio::test]
async fn scope_reaches_php_and_clients_cannot_spoof_it() {
    let dir = tempfile_dir();
    let config = dir.join("zeno.toml");
    std::fs::write(&config, "[scope]\ntenant = \"acme\"\nuser_id = 42\n").expect("write config");
    let server = Server::worker(&fixture("dump.php"))
        .arg("--config")
        .arg(config.display().to_string())
        .arg("--workers")
        .arg("1")
        .start();
    let seen = dump(
        &server,
        client()
            .get(server.url("/"))
            .header("X-Zeno-User-Id", "1")
            .header("X-Zeno-Admin", "yes")
            .header("x-zeno-request-id", "forged"),
    )
    .await;
    let request_id = seen["zeno"]["request_id"]
        .as_str()
        .expect("request_id")
        .to_owned();
    assert!(request_id.starts_with("r-"));
    assert_eq!(
        seen["zeno"],
        json!({"tenant": "acme", "user_id": 42, "request_id": request_id})
    );
    assert_eq!(
        seen["scope"], seen["zeno"],
        "Zeno::scope() and $_ZENO agree"
    );
    let s = &seen["server"];
    assert_eq!(s["HTTP_X_ZENO_USER_ID"], "42");
    assert_eq!(s["HTTP_X_ZENO_TENANT"], "acme");
    assert_eq!(s["HTTP_X_ZENO_REQUEST_ID"], request_id.as_str());
    assert!(
        s.get("HTTP_X_ZENO_ADMIN").is_none(),
        "client X-Zeno-* headers are removed"
    );
}

#[tokio::test]
async fn health_and_ready_are_answered_by_the_host() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let health: Value = client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert!(health["server"].as_str().is_some_and(|s| !s.is_empty()));
    let ready = client()
        .get(server.url("/ready"))
        .send()
        .await
        .expect("send");
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["workers"], 1);
}

#[tokio::test]
async fn many_concurrent_requests_spread_over_workers() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("3")
        .start();
    let client = client();
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let client = client.clone();
        let url = server.url("/slow");
        tasks.push(tokio::spawn(async move {
            let response = client.get(url).send().await.expect("send");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("json")["pid"]
                .as_u64()
                .expect("pid")
        }));
    }
    let mut pids = HashSet::new();
    for task in tasks {
        pids.insert(task.await.expect("task"));
    }
    assert_eq!(pids.len(), 3, "all three workers served: {pids:?}");
}

#[tokio::test]
async fn worker_environment_is_an_allowlist() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .env("ZENO_TEST_SECRET", "hunter2")
        .start();
    let seen = dump(&server, client().get(server.url("/"))).await;
    assert_eq!(seen["env_secret"], false, "host variables do not reach PHP");
    assert_eq!(seen["env_path"], true, "allowlisted variables do");
}

#[tokio::test]
async fn host_functions_answer_and_unknown_ones_fail_clearly() {
    let server = Server::worker(&fixture("dump.php"))
        .arg("--workers")
        .arg("1")
        .start();
    let ok: Value = client()
        .get(server.url("/call?fn=log"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ok,
        json!({"success": true, "data": true, "error": null, "error_info": null})
    );
    assert!(server
        .wait_for_log("from test", Duration::from_secs(5))
        .is_some());
    let unknown: Value = client()
        .get(server.url("/call?fn=launch_missiles"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(unknown["success"], false);
    assert_eq!(unknown["error_info"]["kind"], "unknown_function");
    assert!(unknown["error"]
        .as_str()
        .expect("error")
        .contains("launch_missiles"));
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zeno-e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// examples/hello, route by route, as the README shows it.
#[tokio::test]
async fn the_hello_example_works_as_documented() {
    let server = Server::worker(&repo_root().join("examples/hello/index.php"))
        .arg("--workers")
        .arg("2")
        .start();
    let c = client();
    let text = c
        .get(server.url("/?name=<b>Zeno</b>"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert_eq!(text, "Hello, &lt;b&gt;Zeno&lt;/b&gt;!\n");

    let form: Value = c
        .post(server.url("/form"))
        .form(&[("a", "1"), ("b", "two")])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        form,
        json!({"post": {"a": "1", "b": "two"}, "method": "POST"})
    );

    let response = c
        .post(server.url("/json"))
        .json(&json!({"x": [1, 2]}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"received": {"x": [1, 2]}})
    );

    let upload: Value = c
        .post(server.url("/upload"))
        .multipart(
            Form::new().part(
                "file",
                Part::bytes(b"abc".to_vec())
                    .file_name("abc.txt")
                    .mime_str("text/plain")
                    .expect("mime"),
            ),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        upload,
        json!({"name": "abc.txt", "type": "text/plain", "size": 3, "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d"})
    );

    let scope: Value = c
        .get(server.url("/scope"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(scope["scope"]["request_id"], scope["request_id_header"]);
    assert!(server
        .wait_for_log("scope requested", Duration::from_secs(5))
        .is_some());

    let info: Value = c
        .get(server.url("/info"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(info["sapi"], "cgi-fcgi", "workers run php-cgi by default");
}
