//! Several `zeno serve --laravel` hosts behind a load balancer, on loopback: nginx (Debian's)
//! and HAProxy (Debian's) with the configurations docs/deploy.md shows. Under load, rolling
//! restarts (SIGTERM, start again, wait for `/ready`; `POST /reload`) lose no request; a host
//! killed with SIGKILL costs at most the requests it had in flight; a login made on one host
//! holds on the other through shared sessions (the database through `zeno_proxy`, Redis).
//! nginx and HAProxy are installed by `./dev test` (scripts/setup.sh); missing, these fail.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use zeno_e2e::{client, pg_url, LaravelApp, Server};

/// The same key on every host: each one must read the cookies another one encrypted.
const APP_KEY: &str = "base64:q3UHXk6QJ2bHq6T8cPz0YtFJ7v6hV5gk4m2m9Qy0b1E=";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One Zeno host of the cluster, on a fixed port so it can come back where it was.
fn host(app: &LaravelApp, port: u16, env: &[(&str, &str)]) -> Server {
    let mut builder = Server::bare()
        .listen(&format!("127.0.0.1:{port}"))
        .arg("--laravel")
        .arg(app.dir.display().to_string())
        .args([
            "--workers",
            "2",
            "--task-workers",
            "0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("ZENO_WORKERS__ENV__APP_KEY", APP_KEY);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.start()
}

/// A load balancer process, stopped when dropped.
struct Balancer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Balancer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error log and the requests whose answers were not 200 (empty for HAProxy,
    /// which logs nowhere here).
    fn log(&self) -> String {
        let errors = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let access =
            std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let odd: Vec<&str> = access
            .lines()
            .filter(|line| !line.ends_with(" 200 200"))
            .take(40)
            .collect();
        format!("{errors}\nnot 200 at once:\n{}", odd.join("\n"))
    }

    fn start(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Balancer {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e} (./dev test installs it)"));
        let balancer = Balancer { child, port, dir };
        let up = zeno_e2e::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "{cmd:?} did not listen on {port}");
        balancer
    }
}

/// docs/deploy.md's nginx configuration, in front of `upstreams`.
fn nginx_config(listen: u16, upstreams: &[u16], dir: &Path) -> String {
    let servers: String = upstreams
        .iter()
        .map(|port| format!("        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        r#"worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$msec $upstream_addr $upstream_status $status';
    access_log {dir}/access.log upstreams;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    upstream zeno {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://zeno;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A host that refuses or drops a connection (restarting, killed): try the next.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 1s;
        }}
    }}
}}
"#,
        dir = dir.display()
    )
}

fn nginx(upstreams: &[u16]) -> Balancer {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_config(port, upstreams, dir.path())).expect("write");
    let mut cmd = Command::new(which("nginx"));
    cmd.arg("-c").arg(&conf).arg("-p").arg(dir.path());
    Balancer::start(cmd, port, dir)
}

/// docs/deploy.md's HAProxy configuration: hosts checked on `/ready` every 200 ms, out after
/// two failures. No retries and no redispatch, so that only the drain delay keeps requests
/// off a host that is stopping.
fn haproxy_config(listen: u16, upstreams: &[u16]) -> String {
    let servers: String = upstreams
        .iter()
        .enumerate()
        .map(|(i, port)| {
            format!("    server zeno{i} 127.0.0.1:{port} check inter 200ms fall 2 rise 1\n")
        })
        .collect();
    format!(
        r#"global
    maxconn 1024
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 0
frontend www
    bind 127.0.0.1:{listen}
    default_backend zeno
backend zeno
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
{servers}"#
    )
}

fn haproxy(upstreams: &[u16]) -> Balancer {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("haproxy.cfg");
    std::fs::write(&conf, haproxy_config(port, upstreams)).expect("write");
    let mut cmd = Command::new(which("haproxy"));
    cmd.arg("-db").arg("-f").arg(&conf).stderr(Stdio::null());
    Balancer::start(cmd, port, dir)
}

fn which(binary: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let path = Path::new(dir).join(binary);
        if path.is_file() {
            return path;
        }
    }
    panic!("{binary} is not installed (./dev test installs it from Debian's packages)");
}

/// Clients hitting `url` without pause until stopped: what succeeded, what failed and why,
/// and which hosts answered.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    hosts: Arc<Mutex<HashSet<i64>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, clients: usize) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicUsize::new(0)),
            failures: Arc::new(Mutex::new(Vec::new())),
            hosts: Arc::new(Mutex::new(HashSet::new())),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (url, stop, ok, failures, hosts) = (
                url.clone(),
                load.stop.clone(),
                load.ok.clone(),
                load.failures.clone(),
                load.hosts.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let client = client();
                while !stop.load(Ordering::SeqCst) {
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == 200 => {
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            if let Some(host) = body["host"].as_i64() {
                                hosts.lock().expect("lock").insert(host);
                            }
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(response) => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            failures
                                .lock()
                                .expect("lock")
                                .push(format!("{status}: {text}"));
                        }
                        Err(err) => failures.lock().expect("lock").push(err.to_string()),
                    }
                }
            }));
        }
        Load { tasks, ..load }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until the balancer sends requests to the host with process id `pid` again.
    async fn wait_for_host(&self, pid: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.hosts.lock().expect("lock").contains(&i64::from(pid)) {
            assert!(
                Instant::now() < deadline,
                "the balancer never sent requests to {pid}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `more` further requests succeeded (the cluster serves).
    async fn wait_for(&self, more: usize) {
        let target = self.ok() + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ok() < target {
            assert!(Instant::now() < deadline, "the cluster stopped serving");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> (usize, Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let failures = self.failures.lock().expect("lock").clone();
        let hosts = self.hosts.lock().expect("lock").len();
        (self.ok.load(Ordering::SeqCst), failures, hosts)
    }
}

async fn wait_ready(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client().get(server.url("/ready")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the host never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops `server` with SIGTERM, waits for it to exit cleanly, starts it again on its port and
/// waits until it is ready.
async fn restart(server: Server, app: &LaravelApp, port: u16, env: &[(&str, &str)]) -> Server {
    let mut server = server;
    server.signal(Signal::SIGTERM);
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(30)))
        .expect("the host exits after SIGTERM");
    assert!(status.success(), "{status}");
    drop(server);
    let server = tokio::task::block_in_place(|| host(app, port, env));
    wait_ready(&server).await;
    server
}

async fn reload(server: &Server) {
    let admin = server.admin_addr();
    let response = client()
        .post(format!("http://{admin}/reload"))
        .send()
        .await
        .expect("reload");
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restarts_behind_nginx_lose_no_request() {
    let app = LaravelApp::copy("cluster-nginx");
    let ports = [free_port(), free_port()];
    let mut hosts = vec![host(&app, ports[0], &[]), host(&app, ports[1], &[])];
    let nginx = nginx(&ports);
    let load = Load::start(nginx.url("/_cluster/work?us=2000"), 8);
    load.wait_for(200).await;

    // SIGTERM, start again, wait for /ready: one host after the other.
    for i in 0..2 {
        let server = hosts.remove(i);
        hosts.insert(i, restart(server, &app, ports[i], &[]).await);
        // nginx (without active checks) tries a host it marked failed again only after
        // `fail_timeout`: the next host may go once this one has answered through nginx
        // again (docs/deploy.md).
        load.wait_for_host(hosts[i].pid()).await;
        load.wait_for(100).await;
    }
    // Rolling restarts of the workers inside each host.
    for server in &hosts {
        reload(server).await;
        load.wait_for(200).await;
    }
    let (ok, failures, answered) = load.finish().await;
    eprintln!(
        "nginx, two rolling restarts and two reloads: {ok} requests, {} failed",
        failures.len()
    );
    let log = nginx.log();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}\nnginx: {}",
        failures.len(),
        &failures[..failures.len().min(3)],
        &log[..log.len().min(6000)],
    );
    assert!(
        answered >= 2,
        "both hosts served (host pids seen: {answered})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_killed_behind_nginx_costs_at_most_its_requests_in_flight() {
    let app = LaravelApp::copy("cluster-kill");
    let ports = [free_port(), free_port()];
    let victim = host(&app, ports[0], &[]);
    let _survivor = host(&app, ports[1], &[]);
    let nginx = nginx(&ports);
    let clients = 8;
    // 20 ms per request: the victim always has requests in flight.
    let load = Load::start(nginx.url("/_cluster/work?us=20000"), clients);
    load.wait_for(100).await;
    let before = load.ok();
    victim.signal(Signal::SIGKILL);
    load.wait_for(300).await;
    let (ok, failures, _) = load.finish().await;
    eprintln!(
        "nginx, a host killed with SIGKILL: {ok} requests ({} after the kill), {} failed: {:?}",
        ok - before,
        failures.len(),
        failures
    );
    // Each client has at most one request in flight: at most `clients` were on the victim.
    assert!(
        failures.len() <= clients,
        "{} failed, more than the {clients} that could be in flight",
        failures.len()
    );
    drop(victim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_delay_takes_a_host_out_of_haproxy_before_it_stops() {
    let app = LaravelApp::copy("cluster-haproxy");
    let ports = [free_port(), free_port()];
    // Longer than HAProxy's two failed checks 200 ms apart.
    let env = [("ZENO_SERVER__DRAIN_DELAY", "1s")];
    let mut hosts = vec![host(&app, ports[0], &env), host(&app, ports[1], &env)];
    let haproxy = haproxy(&ports);
    // Both hosts up in HAProxy's eyes before the load starts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let load = Load::start(haproxy.url("/_cluster/work?us=2000"), 8);
    load.wait_for(200).await;
    for i in 0..2 {
        let server = hosts.remove(i);
        hosts.insert(i, restart(server, &app, ports[i], &env).await);
        // The restarted host passed HAProxy's check and gets requests before the other goes.
        load.wait_for_host(hosts[i].pid()).await;
        load.wait_for(100).await;
    }
    let (ok, failures, answered) = load.finish().await;
    eprintln!(
        "HAProxy, two rolling restarts with drain_delay: {ok} requests, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        answered >= 2,
        "both hosts served (host pids seen: {answered})"
    );
}

/// A client keeping cookies across hosts (cookies belong to 127.0.0.1, whatever the port).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The CSRF token from `on`, a login posted to `at`, then who `check` thinks we are.
async fn login_across(browser: &reqwest::Client, on: &Server, at: &Server, email: &str) -> Value {
    let csrf: Value = browser
        .get(on.url("/_cluster/csrf"))
        .send()
        .await
        .expect("csrf")
        .json()
        .await
        .expect("json");
    let token = csrf["token"].as_str().expect("token");
    let login = browser
        .post(at.url("/_cluster/login"))
        .header("X-CSRF-TOKEN", token)
        .header("Accept", "application/json")
        .form(&[("email", email), ("name", "Ada")])
        .send()
        .await
        .expect("login");
    let status = login.status();
    let body: Value = login.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        200,
        "login on the second host with the first host's CSRF token: {body}\n{}",
        at.log().join("\n")
    );
    assert_ne!(csrf["host"], body["host"], "two different hosts answered");
    body
}

/// `GET path` on `server` with the browser's cookies: 200 and JSON, or a panic with the
/// server's log.
async fn json_of(browser: &reqwest::Client, server: &Server, path: &str) -> Value {
    let response = browser.get(server.url(path)).send().await.expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(
        status,
        200,
        "GET {path}: {text}\n{}",
        server.log().join("\n")
    );
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("GET {path}: not JSON: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_on_one_host_holds_on_another_with_shared_sessions() {
    let app = LaravelApp::copy("cluster-sessions");
    let app_b = LaravelApp::copy("cluster-sessions-b");
    let db = format!("default={}", pg_url());
    let migrate = Command::new(zeno_e2e::zeno_bin())
        .arg("artisan")
        .arg(&app.dir)
        .args(["--db", &db, "--", "migrate", "--force"])
        .output()
        .expect("zeno artisan");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let pg = pg_url();
    let tag = std::process::id().to_string();
    let prefix = format!("zeno_test_{tag}_");
    for driver in ["database", "redis"] {
        let env = [
            ("ZENO_DB_DEFAULT", pg.as_str()),
            ("ZENO_WORKERS__ENV__SESSION_DRIVER", driver),
            ("ZENO_WORKERS__ENV__CACHE_DRIVER", "redis"),
            ("ZENO_WORKERS__ENV__REDIS_PREFIX", prefix.as_str()),
            ("ZENO_WORKERS__ENV__REDIS_DB", "5"),
            ("ZENO_WORKERS__ENV__REDIS_CACHE_DB", "6"),
        ];
        // Each host on its own copy of the app, as on two machines: nothing on disk is shared.
        let a = host(&app, free_port(), &env);
        let b = host(&app_b, free_port(), &env);
        let browser = browser();
        let email = format!("{driver}-{tag}@example.com");
        let login = login_across(&browser, &a, &b, &email).await;
        for server in [&a, &b] {
            let who = json_of(&browser, server, "/_cluster/me").await;
            assert_eq!(who["id"], login["id"], "{driver}: logged in on {who}");
            assert_eq!(who["email"], email.as_str(), "{driver}");
        }
        // A host with another APP_KEY cannot read the session cookie: not logged in.
        let mut other_env = env.to_vec();
        other_env.push((
            "ZENO_WORKERS__ENV__APP_KEY",
            "base64:Zm9yZWlnbmtleWZvcmVpZ25rZXlmb3JlaWdua2V5MDE=",
        ));
        let stranger = Server::bare()
            .arg("--laravel")
            .arg(app.dir.display().to_string())
            .args(["--workers", "1", "--task-workers", "0"]);
        let stranger = other_env
            .iter()
            .fold(stranger, |builder, (name, value)| builder.env(name, value))
            .start();
        assert_eq!(
            json_of(&browser, &stranger, "/_cluster/me").await["id"],
            Value::Null,
            "{driver}"
        );

        // The cache is shared too.
        let value = format!("{driver}-{tag}");
        let put = json_of(&browser, &a, &format!("/_cluster/cache?put={value}")).await;
        assert_eq!(put["value"], value.as_str());
        let got = json_of(&browser, &b, "/_cluster/cache").await;
        assert_eq!(
            got["value"],
            value.as_str(),
            "{driver}: the cache is shared"
        );
        assert_ne!(put["host"], got["host"]);
    }
}
