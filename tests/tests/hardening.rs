//! The host against hostile clients and hostile PHP: forged scope headers, PHP reaching for
//! the host's secrets, slow and abusive connections, large static files, uploads that must
//! outlive the response. Everything through the real binary, real PHP and real sockets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeno_e2e::{client, fixture, process_alive, wait_until, LaravelApp, Server};

/// A raw HTTP exchange on a fresh connection (`Connection: close`): status, headers, body.
async fn raw(addr: &str, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("response within 30 s")
        .expect("read");
    split_response(&response)
}

fn split_response(response: &[u8]) -> (u16, String, Vec<u8>) {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(response)));
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, response[end + 4..].to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(body)))
}

/// zeno's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    try_rss(pid).expect("VmRSS of zeno")
}

fn try_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Samples zeno's RSS every 20 ms until dropped; `peak()` is the highest seen.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Some(rss) = try_rss(pid) else { break };
                p.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The `nobody` user, whom the tests switch workers to.
fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("user nobody")
}

/// GET `url` and its JSON body.
async fn get_json(url: impl reqwest::IntoUrl) -> Value {
    client()
        .get(url)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// POST a multipart `form` to `url` and its JSON body.
async fn post_form_json(url: impl reqwest::IntoUrl, form: reqwest::multipart::Form) -> Value {
    client()
        .post(url)
        .multipart(form)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// Tests that switch users need root, which CI has; elsewhere they say so and pass.
fn require_root() -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs as root; this test must run"
    );
    eprintln!("not root: skipping a test that switches users");
    false
}

/// A temp directory with the given mode (so other users can or cannot enter it).
fn temp_dir(mode: u32) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
    dir
}

/// The hostile fixture copied where any user can read it.
fn hostile_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("hostile.php");
    std::fs::copy(fixture("hostile.php"), &path).expect("copy fixture");
    path
}

#[tokio::test]
async fn client_headers_never_forge_scope_in_any_spelling() {
    let server = Server::worker(&fixture("hostile.php"))
        .args(["--workers", "1"])
        .env("ZENO_SCOPE__USER_ID", "7")
        .start();
    let request = "GET /headers HTTP/1.1\r\nHost: x\r\n\
        X_Zeno_User_Id: 666\r\nX-ZENO-USER-ID: 667\r\nx-zeno-user-id: 668\r\n\
        x-zeno_user-id: 669\r\nX-Zeno-Tenant: evil\r\nX_Forwarded_For: 6.6.6.6\r\n\
        X.Zeno.Role: admin\r\nX-Custom: fine\r\nConnection: close\r\n\r\n";
    let (status, head, body) = raw(&server.addr, request).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-length: "), "{head}");
    let seen = json(&body);
    let server_vars = seen["server"].as_object().expect("server");
    assert_eq!(seen["server"]["HTTP_X_ZENO_USER_ID"], "7", "{seen}");
    assert_eq!(seen["server"]["HTTP_X_CUSTOM"], "fine");
    for key in server_vars.keys() {
        assert!(
            !key.contains("TENANT") && !key.contains("FORWARDED") && !key.contains("ROLE"),
            "{key} reached PHP: {seen}"
        );
    }
    assert_eq!(seen["headers"]["x-zeno-user-id"], serde_json::json!(["7"]));
    assert!(body_lacks(
        &body,
        &["666", "667", "668", "669", "evil", "6.6.6.6", "admin"]
    ));

    // An obsolete line fold is refused outright, before PHP.
    let folded = "GET /headers HTTP/1.1\r\nHost: x\r\nX-Custom: a\r\n X-Zeno-User-Id: 666\r\n\
        Connection: close\r\n\r\n";
    let (status, _, body) = raw(&server.addr, folded).await;
    assert_eq!(status, 400);
    assert!(body_lacks(&body, &["666"]));
    drop(server);

    // underscores_in_headers keeps them, but never on a dash name's key nor on scope.
    let server = Server::worker(&fixture("hostile.php"))
        .args(["--workers", "1"])
        .env("ZENO_SCOPE__USER_ID", "7")
        .env("ZENO_SERVER__UNDERSCORES_IN_HEADERS", "true")
        .start();
    let request = "GET /headers HTTP/1.1\r\nHost: x\r\nX_Zeno_User_Id: 666\r\n\
        X_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1\r\nX_Legacy_Token: t1\r\n\
        Connection: close\r\n\r\n";
    let (status, _, body) = raw(&server.addr, request).await;
    assert_eq!(status, 200);
    let seen = json(&body);
    assert_eq!(seen["server"]["HTTP_X_ZENO_USER_ID"], "7", "{seen}");
    assert_eq!(seen["server"]["HTTP_X_FORWARDED_FOR"], "10.0.0.1");
    assert_eq!(seen["server"]["HTTP_X_LEGACY_TOKEN"], "t1");
    assert!(body_lacks(&body, &["666", "6.6.6.6"]));
}

fn body_lacks(body: &[u8], needles: &[&str]) -> bool {
    let text = String::from_utf8_lossy(body);
    needles.iter().all(|n| !text.contains(n))
}

#[tokio::test]
async fn workers_user_cannot_read_the_hosts_secrets() {
    if !require_root() {
        return;
    }
    let nobody = nobody();
    let dir = temp_dir(0o755);
    let handler = hostile_fixture(dir.path());
    let config = dir.path().join("zeno.toml");
    std::fs::write(
        &config,
        "# the database password: hunter2-config\n[workers]\nuser = \"nobody\"\n",
    )
    .expect("config");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = Server::worker(&handler)
        .args(["--workers", "1", "--config"])
        .arg(config.display().to_string())
        .env("ZENO_DB_SECRET", "sqlite://hunter2-env.sqlite")
        .start();

    let who: Value = get_json(server.url("/whoami")).await;
    assert_eq!(who["uid"], nobody.uid.as_raw(), "{who}");
    assert_eq!(who["euid"], nobody.uid.as_raw());
    assert_eq!(who["gid"], nobody.gid.as_raw());
    for group in who["groups"].as_array().expect("groups") {
        assert_eq!(
            group,
            nobody.gid.as_raw(),
            "supplementary groups cleared: {who}"
        );
    }

    let url = format!("/steal?pid={}&config={}", server.pid(), config.display());
    let stolen: Value = get_json(server.url(&url)).await;
    assert_eq!(stolen["environ"], Value::Null, "{stolen}");
    assert_eq!(stolen["mem_opened"], false);
    assert_eq!(stolen["config"], Value::Null);
    assert!(!stolen.to_string().contains("hunter2"), "{stolen}");
    assert!(
        server.count_log("PHP runs as root") == 0,
        "no root warning with workers.user"
    );

    // Uploads belong to the worker's user, which can read and move them.
    let target_dir = temp_dir(0o1777);
    let target = target_dir.path().join("moved.txt");
    let form = reqwest::multipart::Form::new().part(
        "doc",
        reqwest::multipart::Part::bytes(b"one".to_vec()).file_name("a.txt"),
    );
    let moved: Value = post_form_json(
        server.url(&format!("/upload-move?to={}", target.display())),
        form,
    )
    .await;
    assert_eq!(moved["owner"], nobody.uid.as_raw(), "{moved}");
    assert_eq!(moved["sha1"], "fe05bcdcdc4928012781a5f1a2a77cbb5398e106");
    assert_eq!(moved["moved"], true);
    assert_eq!(std::fs::read(&target).expect("moved file"), b"one");

    // A worker that switched users still dies with the host.
    let worker = who["pid"].as_u64().expect("pid") as u32;
    server.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(5), || !process_alive(worker)),
        "worker {worker} outlived the host"
    );
    drop(server);

    // The config file readable by that user is warned about; root PHP too.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let server = Server::worker(&handler)
        .args(["--workers", "1", "--config"])
        .arg(config.display().to_string())
        .start();
    assert!(server
        .wait_for_log("readable by workers.user", Duration::from_secs(5))
        .is_some());
    drop(server);
    let server = Server::worker(&handler).args(["--workers", "1"]).start();
    assert!(server
        .wait_for_log("PHP runs as root", Duration::from_secs(5))
        .is_some());
}

#[tokio::test]
async fn a_non_dumpable_host_hides_its_environment_from_php_of_its_own_user() {
    if !require_root() {
        return;
    }
    let nobody = nobody();
    let dir = temp_dir(0o777);
    let handler = hostile_fixture(dir.path());
    let server = Server::worker(&handler)
        .args(["--workers", "1"])
        .env("ZENO_DB_SECRET", "sqlite://hunter2-env.sqlite")
        .env("TMPDIR", &dir.path().display().to_string())
        .cwd(dir.path())
        .run_as(nobody.uid.as_raw(), nobody.gid.as_raw())
        .start();
    let response = client()
        .get(server.url(&format!("/steal?pid={}", server.pid())))
        .send()
        .await
        .expect("send");
    let text = response.text().await.expect("text");
    let stolen: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", server.log().join("\n")));
    assert_eq!(stolen["environ"], Value::Null, "{stolen}");
    assert_eq!(stolen["mem_opened"], false);
    assert!(!stolen.to_string().contains("hunter2"), "{stolen}");
}

#[tokio::test]
async fn a_db_flag_with_a_password_is_warned_about() {
    let server = Server::worker(&fixture("hostile.php"))
        .args([
            "--workers",
            "1",
            "--db",
            "main=postgres://app:pw@127.0.0.1:9/app",
        ])
        .start();
    let line = server
        .wait_for_log("carries a password", Duration::from_secs(5))
        .expect("warning");
    assert!(line.contains("ZENO_DB_MAIN"), "{line}");
    assert!(
        !line.contains("pw@"),
        "the warning must not print the password: {line}"
    );
}

/// Raises this process's open-file limit for tests that hold thousands of sockets.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Opens `n` connections that each send half a request header and then nothing.
async fn slow_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
            .await
            .expect("half a header");
        streams.push(stream);
    }
    streams
}

/// Waits until the server closes `stream` (EOF or reset), up to `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_slow_clients_are_cut_off_while_others_are_served() {
    raise_nofile();
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "2"])
        .env("ZENO_SERVER__HEADER_TIMEOUT", "2s")
        .start();
    let opened = Instant::now();
    let mut slow = slow_connections(&server.addr, 3000).await;
    let open_took = opened.elapsed();
    // While they hang there, everyone else is served.
    let response = client().get(server.url("/pid")).send().await.expect("send");
    assert_eq!(response.status(), 200);
    let rss = rss_bytes(server.pid());

    let mut last = Duration::ZERO;
    for stream in &mut slow {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "a slow connection was still open 10 s later"
        );
        last = opened.elapsed();
    }
    eprintln!(
        "figure: 3000 slow connections opened in {open_took:?}, host RSS {} KiB while holding them, all closed {last:?} after the first opened (header_timeout 2s)",
        rss / 1024
    );
    assert!(last < Duration::from_secs(2) + open_took + Duration::from_secs(3));
    let response = client().get(server.url("/pid")).send().await.expect("send");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn stalled_bodies_get_408_and_idle_keepalive_connections_close() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1"])
        .env("ZENO_SERVER__HEADER_TIMEOUT", "20s")
        .env("ZENO_SERVER__BODY_TIMEOUT", "1s")
        .env("ZENO_SERVER__KEEPALIVE_TIMEOUT", "1s")
        .start();
    let started = Instant::now();
    let (status, head, _) = raw(
        &server.addr,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    assert_eq!(status, 408, "{head}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A request that runs longer than the keep-alive timeout is not cut…
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    stream
        .write_all(b"GET /sleep?ms=2500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    let (status, _, _) = split_response(&buf[..n]);
    assert_eq!(status, 200, "a long request outlives keepalive_timeout");
    // …but the connection, idle afterwards, is closed.
    let idle_from = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    let idle = idle_from.elapsed();
    eprintln!("figure: idle keep-alive connection closed after {idle:?} (keepalive_timeout 1s)");
    assert!(idle >= Duration::from_millis(800), "{idle:?}");
}

#[tokio::test]
async fn past_max_connections_new_clients_wait_while_open_ones_are_served() {
    let server = Server::worker(&fixture("dump.php"))
        .args(["--workers", "1"])
        .env("ZENO_SERVER__MAX_CONNECTIONS", "20")
        .env("ZENO_SERVER__HEADER_TIMEOUT", "3s")
        .env("ZENO_SERVER__KEEPALIVE_TIMEOUT", "30s")
        .start();
    let request = b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut kept = TcpStream::connect(&server.addr).await.expect("connect");
    kept.write_all(request).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.expect("read");
    assert_eq!(split_response(&buf[..n]).0, 200);

    let _slow = slow_connections(&server.addr, 19).await;
    let mut waiting = TcpStream::connect(&server.addr).await.expect("backlog");
    waiting.write_all(request).await.expect("send");
    let early = tokio::time::timeout(Duration::from_millis(1000), waiting.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the 21st connection was served past max_connections"
    );

    // The connection the host already has is still served.
    kept.write_all(request).await.expect("send");
    let n = tokio::time::timeout(Duration::from_secs(2), kept.read(&mut buf))
        .await
        .expect("kept connection answered")
        .expect("read");
    assert_eq!(split_response(&buf[..n]).0, 200);

    // Once the slow ones are cut, the waiting one gets its turn.
    let n = tokio::time::timeout(Duration::from_secs(10), waiting.read(&mut buf))
        .await
        .expect("served once a slot freed")
        .expect("read");
    assert_eq!(split_response(&buf[..n]).0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_public_files_stream_with_flat_memory_like_nginx() {
    let app = LaravelApp::copy("static");
    let public = app.dir.join("public");
    let big = public.join("big.bin");
    const SIZE: u64 = 512 * 1024 * 1024;
    std::fs::File::create(&big)
        .expect("create")
        .set_len(SIZE)
        .expect("sparse file");
    std::fs::write(public.join("data.txt"), b"0123456789abcdefghij").expect("write");
    std::fs::write(app.dir.join("secret.txt"), b"outside public").expect("write");
    std::os::unix::fs::symlink(app.dir.join("secret.txt"), public.join("leak.txt"))
        .expect("symlink");
    let server = Server::bare()
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args(["--workers", "1", "--admin", "127.0.0.1:0"])
        .start();
    let admin = format!("http://{}/workers", server.admin_addr());

    let before = rss_bytes(server.pid());
    let sampler = RssSampler::start(server.pid());
    let started = Instant::now();
    let downloads = (0..4).map(|_| {
        let addr = server.addr.clone();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("connect");
            stream
                .write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .expect("send");
            let mut buf = vec![0u8; 256 * 1024];
            let mut head = Vec::new();
            let mut in_body = false;
            let mut body = 0u64;
            loop {
                let n = stream.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                if in_body {
                    body += n as u64;
                    continue;
                }
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    in_body = true;
                    body = (head.len() - end - 4) as u64;
                    head.truncate(end);
                }
            }
            (String::from_utf8_lossy(&head).into_owned(), body)
        })
    });
    for download in futures_util::future::join_all(downloads).await {
        let (head, body) = download.expect("download");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains(&format!("content-length: {SIZE}")), "{head}");
        assert_eq!(body, SIZE);
    }
    let took = started.elapsed();
    let peak = sampler.peak();
    drop(sampler);
    eprintln!(
        "figure: 4 parallel downloads of 512 MiB from public/ in {took:?}; host RSS {} KiB before, peak {} KiB",
        before / 1024,
        peak / 1024
    );
    assert!(
        peak < before + 24 * 1024 * 1024,
        "host memory grew from {before} to {peak} bytes"
    );
    let workers: Value = client()
        .get(&admin)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(
        workers["workers"][0]["requests"], 0,
        "no PHP request was made for a static file: {workers}"
    );

    let (status, head, body) = raw(
        &server.addr,
        "GET /data.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=10-14\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 206, "{head}");
    assert!(head.contains("content-range: bytes 10-14/20"), "{head}");
    assert_eq!(body, b"abcde");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag")
        .to_owned();
    let (status, _, body) = raw(
        &server.addr,
        &format!("GET /data.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    let (status, head, body) = raw(
        &server.addr,
        "HEAD /data.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(head.contains("content-length: 20"), "{head}");
    assert!(
        head.contains("content-type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert!(body.is_empty());

    // What must never be served from disk goes to Laravel, which answers 404.
    for path in ["/leak.txt", "/index.php", "/.gitignore", "/../secret.txt"] {
        let response = client().get(server.url(path)).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("text");
        assert_eq!(status, 404, "{path}: {text}");
        assert!(
            !text.contains("outside public") && !text.contains("<?php"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn uploads_outlive_deferred_work_and_are_always_deleted() {
    let dir = temp_dir(0o755);
    let server = Server::worker(&fixture("hostile.php"))
        .args(["--workers", "1", "--exec-timeout", "2s"])
        .start();
    let form = |content: &'static [u8]| {
        reqwest::multipart::Form::new().part(
            "doc",
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("a.txt"),
        )
    };

    let out = dir.path().join("later.json");
    let response: Value = post_form_json(
        server.url(&format!("/upload-later?out={}", out.display())),
        form(b"one"),
    )
    .await;
    let path = PathBuf::from(response["path"].as_str().expect("path"));
    assert!(
        wait_until(Duration::from_secs(10), || out.exists()
            && std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)),
        "deferred work never ran"
    );
    let later = json(&std::fs::read(&out).expect("read"));
    assert_eq!(
        later["exists"], true,
        "the upload was gone before deferred work ran"
    );
    assert_eq!(later["sha1"], "fe05bcdcdc4928012781a5f1a2a77cbb5398e106");
    assert!(
        wait_until(Duration::from_secs(5), || !path.exists()),
        "{path:?} left behind"
    );

    // A worker killed in its after-response work: the upload is still deleted.
    let response: Value = post_form_json(server.url("/upload-crash"), form(b"two")).await;
    let path = PathBuf::from(response["path"].as_str().expect("path"));
    assert!(
        wait_until(Duration::from_secs(5), || !path.exists()),
        "{path:?} left behind"
    );

    // A request killed at exec_timeout: likewise.
    let out = dir.path().join("hang.txt");
    let response = client()
        .post(server.url(&format!("/upload-hang?out={}", out.display())))
        .multipart(form(b"three"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 504);
    let path = PathBuf::from(std::fs::read_to_string(&out).expect("path written"));
    assert!(
        wait_until(Duration::from_secs(5), || !path.exists()),
        "{path:?} left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_goes_to_disk_without_filling_the_hosts_memory() {
    let dir = temp_dir(0o1777);
    let server = Server::worker(&fixture("hostile.php"))
        .args(["--workers", "1"])
        .env("ZENO_SERVER__MAX_BODY", "300M")
        .start();
    const SIZE: usize = 200 * 1024 * 1024;
    let before = rss_bytes(server.pid());
    let sampler = RssSampler::start(server.pid());
    let target = dir.path().join("big.upload");
    // The body is produced as it is sent, so the test holds no copy of it either.
    let chunks = futures_util::stream::iter(
        (0..SIZE / (1 << 20)).map(|_| Ok::<_, std::io::Error>(vec![b'u'; 1 << 20])),
    );
    let part = reqwest::multipart::Part::stream_with_length(
        reqwest::Body::wrap_stream(chunks),
        SIZE as u64,
    )
    .file_name("big.bin");
    let response: Value = post_form_json(
        server.url(&format!("/upload-move?to={}", target.display())),
        reqwest::multipart::Form::new().part("doc", part),
    )
    .await;
    let peak = sampler.peak();
    drop(sampler);
    assert_eq!(response["size"], SIZE as u64, "{response}");
    assert_eq!(response["moved"], true);
    eprintln!(
        "figure: a 200 MiB upload; host RSS {} KiB before, peak {} KiB",
        before / 1024,
        peak / 1024
    );
    assert!(
        peak < before + 32 * 1024 * 1024,
        "host memory grew from {before} to {peak} bytes"
    );
}

#[tokio::test]
async fn a_workers_user_the_host_cannot_switch_to_is_refused_at_start() {
    let Err((status, log)) = Server::worker(&fixture("hostile.php"))
        .env("ZENO_WORKERS__USER", "no-such-user-zeno")
        .try_start()
    else {
        panic!("an unknown workers.user was accepted");
    };
    assert!(status.is_some_and(|s| !s.success()));
    assert!(log.join("\n").contains("no such user"), "{log:?}");
    if !require_root() {
        return;
    }
    let nobody = nobody();
    let dir = temp_dir(0o777);
    let Err((status, log)) = Server::worker(&hostile_fixture(dir.path()))
        .env("ZENO_WORKERS__USER", "root")
        .env("TMPDIR", &dir.path().display().to_string())
        .cwd(dir.path())
        .run_as(nobody.uid.as_raw(), nobody.gid.as_raw())
        .try_start()
    else {
        panic!("a non-root host accepted workers.user = root");
    };
    assert!(status.is_some_and(|s| !s.success()));
    assert!(
        log.join("\n").contains("needs zeno to run as root"),
        "{log:?}"
    );
}
