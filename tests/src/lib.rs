//! Helpers for the end-to-end tests: start the real `zeno` binary on a free port with real
//! PHP, read its log, stop it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An HTTP client for the tests: a generous timeout, so a hung server fails the test instead of
/// stalling it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The PostgreSQL database the tests use (`scripts/services.sh` creates it).
pub fn pg_url() -> String {
    std::env::var("ZENO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://zeno:zeno@127.0.0.1:5432/zeno_test".into())
}

/// The MariaDB database the tests use (`scripts/services.sh` creates it).
pub fn my_url() -> String {
    std::env::var("ZENO_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://zeno:zeno@127.0.0.1:3306/zeno_test".into())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// The `zeno` binary: `$ZENO_BIN`, or the one cargo built next to this test.
pub fn zeno_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ZENO_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/zeno
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join("zeno");
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build -p zeno-cli), or set ZENO_BIN",
        bin.display()
    );
    bin
}

/// PHP 8.4 with Laravel 13 from the Debian sid chroot that `scripts/sid.sh` builds (once;
/// later calls reuse it): the path of its php-cgi wrapper for `--php`, and of its php-cli
/// wrapper. Fails the test, never skips it, when the chroot cannot be built.
pub fn sid_php() -> (PathBuf, PathBuf) {
    static PATHS: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    PATHS
        .get_or_init(|| {
            let script = repo_root().join("scripts/sid.sh");
            let run = |arg: Option<&str>| {
                let output = Command::new(&script)
                    .args(arg)
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run scripts/sid.sh");
                assert!(
                    output.status.success(),
                    "scripts/sid.sh failed: the Laravel 13 / PHP 8.4 tests need its Debian sid chroot"
                );
                PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
            };
            (run(None), run(Some("php")))
        })
        .clone()
}

/// A running `zeno serve`.
pub struct Server {
    child: Child,
    /// The address it listens on.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// A fresh path in the temp directory, unique to this process, call and moment (pids are
/// reused across runs, and a file left by an earlier run must never be taken for a new one).
pub fn temp_path(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "zeno-e2e-{}-{n}-{nanos}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// A URL path with `?started=FILE` (or `&started=`) added, for the fixtures that write FILE
/// the moment PHP starts the request; and FILE.
pub fn started(path: &str) -> (String, PathBuf) {
    let file = temp_path("started");
    let glue = if path.contains('?') { '&' } else { '?' };
    (format!("{path}{glue}started={}", file.display()), file)
}

/// Waits until PHP has started the request marked by `file` (see [`started`]).
pub async fn wait_started(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the request never reached PHP");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_file(file);
}

/// Waits up to `timeout` for `condition` to hold, checking every 10 ms; whether it did. For
/// conditions the test can observe (a file gone, a process exited), never a guessed delay.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What to start.
pub struct ServerBuilder {
    listen: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    run_as: Option<(u32, u32)>,
}

impl ServerBuilder {
    /// Listens on `addr` instead of a free port of the system's choice.
    pub fn listen(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.listen);
        self
    }

    /// Extra command-line arguments after `zeno serve`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Several extra arguments.
    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.args.extend(args.into_iter().map(str::to_owned));
        self
    }

    /// An environment variable for the zeno process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The working directory of the zeno process.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs zeno itself as this user and group (the tests must run as root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.run_as = Some((uid, gid));
        self
    }

    /// Starts the server and waits until it listens; panics with its log if it does not.
    pub fn start(self) -> Server {
        match self.try_start() {
            Ok(server) => server,
            Err((status, log)) => panic!("zeno did not start ({status:?}):\n{}", log.join("\n")),
        }
    }

    /// Starts the server; on failure returns its exit status and log.
    pub fn try_start(self) -> Result<Server, (Option<ExitStatus>, Vec<String>)> {
        let mut cmd = Command::new(zeno_bin());
        cmd.arg("serve")
            .args(["--listen", &self.listen, "--log-format", "json"])
            .args(&self.args)
            .env("ZENO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().expect("spawn zeno");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                    if value["fields"]["message"] == "zeno is serving" {
                        if let Some(addr) = value["fields"]["addr"].as_str() {
                            let _ = tx.send(addr.to_owned());
                        }
                    }
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Server { child, addr, log });
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader thread collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let lines = log.lock().expect("log lock").clone();
                return Err((Some(status), lines));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let lines = log.lock().expect("log lock").clone();
                return Err((None, lines));
            }
        }
    }
}

impl Server {
    /// `GET path`: the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = client().get(self.url(path)).send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// `GET path`, which must answer 200 with JSON; panics with the server's log otherwise.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, text) = self.get_text(path).await;
        assert_eq!(status, 200, "GET {path}: {text}\n{}", self.log().join("\n"));
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("GET {path}: not JSON: {text}"))
    }

    /// `zeno serve --worker <handler>` with extra arguments to add.
    pub fn worker(handler: &Path) -> ServerBuilder {
        ServerBuilder {
            listen: "127.0.0.1:0".into(),
            args: vec!["--worker".into(), handler.display().to_string()],
            env: Vec::new(),
            cwd: None,
            run_as: None,
        }
    }

    /// `zeno serve` with only the given arguments.
    pub fn bare() -> ServerBuilder {
        ServerBuilder {
            listen: "127.0.0.1:0".into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            run_as: None,
        }
    }

    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The zeno process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits up to `timeout` for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return Some(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The admin listener's address (the server must run with `--admin 127.0.0.1:0`).
    pub fn admin_addr(&self) -> String {
        let line = self
            .wait_for_log("admin listener serving", Duration::from_secs(10))
            .expect("admin listener started");
        let value: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        value["fields"]["admin_addr"]
            .as_str()
            .expect("admin_addr field")
            .to_owned()
    }

    /// The admin listener's `/metrics` page (the server must run with `--admin 127.0.0.1:0`).
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("http://{}/metrics", self.admin_addr()))
            .send()
            .await
            .expect("admin /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// How many log lines contain `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Sends a signal to zeno.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal zeno");
    }

    /// Waits for zeno to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a process with this pid exists (zombies count as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// A private copy of examples/laravel with the test routes (`tests/fixtures/laravel/routes.php`)
/// added, so tests never write into the repository. Removed when dropped.
pub struct LaravelApp {
    /// The app directory.
    pub dir: PathBuf,
}

impl LaravelApp {
    /// Copies the example app into a fresh temporary directory.
    pub fn copy(tag: &str) -> LaravelApp {
        let dir = std::env::temp_dir().join(format!("zeno-laravel-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&repo_root().join("examples/laravel"), &dir);
        let routes = dir.join("routes/web.php");
        let mut web = std::fs::read_to_string(&routes).expect("routes/web.php");
        web.push_str(&format!(
            "\nrequire {:?};\n",
            fixture("laravel/routes.php").display().to_string()
        ));
        std::fs::write(&routes, web).expect("write routes");
        LaravelApp { dir }
    }
}

impl LaravelApp {
    /// A copy of `tests/fixtures/laravel-modern` — a Laravel 11+ shaped app
    /// (`Application::configure()`, no HTTP kernel class, a partial `config/`) for Laravel 13
    /// — with the same test routes and the Concurrency routes added.
    pub fn modern(tag: &str) -> LaravelApp {
        let dir = std::env::temp_dir().join(format!("zeno-laravel13-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&fixture("laravel-modern"), &dir);
        // What both shapes of app share comes from the example.
        let example = repo_root().join("examples/laravel");
        copy_dir(&example.join("app/Models"), &dir.join("app/Models"));
        copy_dir(
            &example.join("database/migrations"),
            &dir.join("database/migrations"),
        );
        for file in ["bootstrap/autoload.php", "config/database.php"] {
            std::fs::copy(example.join(file), dir.join(file)).expect("copy");
        }
        let routes = dir.join("routes/web.php");
        let mut web = std::fs::read_to_string(&routes).expect("routes/web.php");
        for extra in ["laravel/routes.php", "laravel/concurrency.php"] {
            web.push_str(&format!(
                "\nrequire {:?};\n",
                fixture(extra).display().to_string()
            ));
        }
        std::fs::write(&routes, web).expect("write routes");
        LaravelApp { dir }
    }
}

impl Drop for LaravelApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
