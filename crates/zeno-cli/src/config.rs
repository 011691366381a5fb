//! `zeno.toml`, `ZENO_<SECTION>__<KEY>` environment variables and command-line flags, layered
//! in that order (flags win) onto one TOML table, which is then read once into the libraries'
//! own config types: [`zeno_http::HttpConfig`] for `[server]`, [`zeno_host::WorkersConfig`] for
//! `[workers]`, [`zeno_host::TasksConfig`] for `[tasks]`, [`zeno_host::ConnectionConfig`] for each `[db]` entry. They own the defaults;
//! this file only knows where values come from.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// The whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: zeno_http::HttpConfig,
    pub workers: zeno_host::WorkersConfig,
    pub tasks: zeno_host::TasksConfig,
    /// Static scope values every request carries.
    pub scope: serde_json::Map<String, serde_json::Value>,
    /// Named databases: `[db] default = "postgres://…"`, or a table with pool settings.
    pub db: BTreeMap<String, zeno_host::ConnectionConfig>,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub runtime: RuntimeConfig,
}

/// The binary's async runtime (an embedding app owns its own): how many threads run the
/// HTTP connections, the workers' pipes and the database pools.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads of the runtime; `0` picks one per four CPUs, at least one. One thread runs a
    /// single-threaded runtime: no work stealing and no wake-ups across threads, which is the
    /// cheapest per request (docs/benchmarks.md).
    pub threads: usize,
}

impl RuntimeConfig {
    /// The number of threads to run: `threads`, or the automatic choice for this machine.
    pub fn resolved_threads(&self) -> usize {
        match self.threads {
            0 => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cpus / 4).max(1)
            }
            n => n,
        }
    }

    /// Builds the runtime.
    pub fn build(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let threads = self.resolved_threads();
        let mut builder = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        };
        builder
            .enable_all()
            .build()
            .context("starting the async runtime")
    }
}

/// The admin listener: `/metrics`, `/workers`, `/reload`. Off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// A byte size given as a flag: a number of bytes, or with a K/M/G suffix (`256M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// A duration given as a flag: seconds, or with a unit (`500ms`, `30s`, `2m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        zeno_config::parse_size(s).map(Size)
    }
}

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        zeno_config::parse_duration(s).map(Dur)
    }
}

impl From<Size> for toml::Value {
    fn from(size: Size) -> Self {
        toml::Value::Integer(i64::try_from(size.0).unwrap_or(i64::MAX))
    }
}

impl From<Dur> for toml::Value {
    fn from(duration: Dur) -> Self {
        toml::Value::String(format!("{}ms", duration.0.as_millis()))
    }
}

/// The last layer: what the command line says, as dotted keys onto the table.
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(&'static str, toml::Value)>,
    removed: Vec<&'static str>,
    databases: Vec<(String, String)>,
}

impl Flags {
    /// Sets `key` (`workers.count`) when the flag was given.
    pub fn set(&mut self, key: &'static str, value: Option<impl Into<toml::Value>>) {
        if let Some(value) = value {
            self.values.push((key, value.into()));
        }
    }

    /// Removes `key` (`--worker` removes `workers.laravel`).
    pub fn remove(&mut self, key: &'static str) {
        self.removed.push(key);
    }

    /// `--db NAME=URL`: the connection's URL, keeping its pool settings from the file.
    pub fn database(&mut self, name: &str, url: &str) {
        self.databases.push((name.to_owned(), url.to_owned()));
    }

    fn apply(&self, table: &mut toml::Table) -> anyhow::Result<()> {
        for key in &self.removed {
            let (section, name) = key.split_once('.').context("a dotted key")?;
            if let Some(toml::Value::Table(inner)) = table.get_mut(section) {
                inner.remove(name);
            }
        }
        for (key, value) in &self.values {
            let (section, name) = key.split_once('.').context("a dotted key")?;
            section_of(table, section, key)?.insert(name.to_owned(), value.clone());
        }
        for (name, url) in &self.databases {
            set_database_url(table, name, url)?;
        }
        Ok(())
    }
}

fn section_of<'a>(
    table: &'a mut toml::Table,
    section: &str,
    what: &str,
) -> anyhow::Result<&'a mut toml::Table> {
    match table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
    {
        toml::Value::Table(inner) => Ok(inner),
        _ => bail!("{what}: {section} is not a section"),
    }
}

/// A database URL from the environment or a flag replaces the URL, keeping the file's pool
/// settings for that connection.
fn set_database_url(table: &mut toml::Table, name: &str, url: &str) -> anyhow::Result<()> {
    let dbs = section_of(table, "db", "a database URL")?;
    match dbs.get_mut(name) {
        Some(toml::Value::Table(entry)) => {
            entry.insert("url".into(), toml::Value::String(url.to_owned()));
        }
        _ => {
            dbs.insert(name.to_owned(), toml::Value::String(url.to_owned()));
        }
    }
    Ok(())
}

impl Config {
    /// Reads `path` (if given), then applies `ZENO_*` variables from `env`, then `flags`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Flags,
    ) -> anyhow::Result<Config> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            apply_env(&mut table, &name, &value)?;
        }
        flags.apply(&mut table)?;
        toml::Value::Table(table)
            .try_into()
            .context("invalid configuration (from the config file, ZENO_* variables or flags)")
    }
}

/// `ZENO_WORKERS__COUNT=8` → `workers.count = 8`; `ZENO_DB_MAIN=url` → `db.main = "url"`.
fn apply_env(table: &mut toml::Table, name: &str, value: &str) -> anyhow::Result<()> {
    let Some(rest) = name.strip_prefix("ZENO_") else {
        return Ok(());
    };
    if let Some(db) = rest.strip_prefix("DB_") {
        if !db.is_empty() && !db.contains("__") {
            return set_database_url(table, &db.to_ascii_lowercase(), value);
        }
    }
    if !rest.contains("__") {
        // ZENO_HANDLER, ZENO_PROTOCOL and the like are not settings.
        return Ok(());
    }
    let raw: Vec<&str> = rest.split("__").collect();
    if raw.iter().any(|part| part.is_empty()) {
        bail!("environment variable {name} has an empty section or key");
    }
    let mut path: Vec<String> = raw.iter().map(|p| p.to_ascii_lowercase()).collect();
    // Keys of these maps are names whose case matters (ZENO_WORKERS__ENV__APP_ENV=prod).
    if matches!(path.as_slice(), [a, b, _] if a == "workers" && b == "env") {
        if let (Some(last), Some(original)) = (path.last_mut(), raw.last()) {
            *last = (*original).to_owned();
        }
    }
    let (last, sections) = path.split_last().context("empty variable name")?;
    let mut node = table;
    for section in sections {
        let entry = node
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(inner) => inner,
            _ => bail!("environment variable {name}: {section} is not a section"),
        };
    }
    let value = if path.first().is_some_and(|s| s == "workers")
        && path
            .get(1)
            .is_some_and(|s| s == "env" || s == "ini" || s == "user" || s == "group")
    {
        // Environment and ini values, and user and group names, are strings whatever they
        // look like (ZENO_WORKERS__USER=1000 is a uid).
        toml::Value::String(value.to_owned())
    } else {
        env_value(value)
    };
    node.insert(last.clone(), value);
    Ok(())
}

fn env_value(value: &str) -> toml::Value {
    if let Ok(n) = value.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match value {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    if value.starts_with('[') {
        if let Ok(toml::Value::Array(items)) = format!("v = {value}")
            .parse::<toml::Table>()
            .map(|mut t| t.remove("v").unwrap_or(toml::Value::Boolean(false)))
        {
            return toml::Value::Array(items);
        }
    }
    toml::Value::String(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let config = Config::load(None, env(&[]), &Flags::default()).expect("load");
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.workers.php, std::path::PathBuf::from("php-cgi"));
        assert_eq!(config.workers.exec_timeout, Duration::from_secs(30));
    }

    #[test]
    fn runtime_threads_from_file_env_and_flag() {
        let config = Config::load(None, env(&[]), &Flags::default()).expect("load");
        assert_eq!(config.runtime.threads, 0, "automatic by default");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(config.runtime.resolved_threads(), (cpus / 4).max(1));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zeno.toml");
        std::fs::write(&path, "[runtime]\nthreads = 3\n").expect("write");
        let config = Config::load(Some(&path), env(&[]), &Flags::default()).expect("load");
        assert_eq!(config.runtime.resolved_threads(), 3);
        let config = Config::load(
            Some(&path),
            env(&[("ZENO_RUNTIME__THREADS", "2")]),
            &Flags::default(),
        )
        .expect("load");
        assert_eq!(config.runtime.resolved_threads(), 2);
        let mut flags = Flags::default();
        flags.set("runtime.threads", Some(1_i64));
        let config = Config::load(Some(&path), env(&[("ZENO_RUNTIME__THREADS", "2")]), &flags)
            .expect("load");
        assert_eq!(config.runtime.resolved_threads(), 1, "the flag wins");

        std::fs::write(&path, "[runtime]\nthreads = -1\n").expect("write");
        let err = Config::load(Some(&path), env(&[]), &Flags::default())
            .expect_err("negative thread count");
        assert!(format!("{err:#}").contains("threads"), "{err:#}");
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zeno.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:9000\"\nmax_body = \"1M\"\n[workers]\ncount = 3\nexec_timeout = \"500ms\"\n[scope]\ntenant = \"acme\"\n",
        )
        .expect("write");
        let config = Config::load(
            Some(&path),
            env(&[
                ("ZENO_WORKERS__COUNT", "7"),
                ("ZENO_SERVER__MAX_HEADER", "8K"),
                ("ZENO_DB_MAIN", "postgres://u:p@h/db"),
                ("ZENO_HANDLER", "ignored"),
                ("ZENO_WORKERS__ENV__APP_ENV", "prod"),
                ("ZENO_WORKERS__ENV__RETRIES", "3"),
                ("OTHER", "ignored"),
            ]),
            &Flags::default(),
        )
        .expect("load");
        assert_eq!(config.server.listen, "127.0.0.1:9000");
        assert_eq!(config.server.max_body, 1024 * 1024);
        assert_eq!(config.server.max_header_bytes, 8 * 1024);
        assert_eq!(config.workers.count, 7);
        assert_eq!(config.workers.exec_timeout, Duration::from_millis(500));
        assert_eq!(config.scope["tenant"], "acme");
        assert_eq!(config.db["main"].url, "postgres://u:p@h/db");
        assert_eq!(
            config.workers.env["APP_ENV"], "prod",
            "env names keep their case"
        );
        assert_eq!(
            config.workers.env["RETRIES"], "3",
            "env values stay strings"
        );
    }

    #[test]
    fn hardening_settings_from_file_and_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zeno.toml");
        std::fs::write(
            &path,
            "[server]\nheader_timeout = \"5s\"\nmax_connections = 50\nunderscores_in_headers = true\n[workers]\nuser = \"www-data\"\n",
        )
        .expect("write");
        let config = Config::load(
            Some(&path),
            env(&[
                ("ZENO_WORKERS__GROUP", "1000"),
                ("ZENO_SERVER__KEEPALIVE_TIMEOUT", "0"),
                ("ZENO_SERVER__BODY_TIMEOUT", "250ms"),
            ]),
            &Flags::default(),
        )
        .expect("load");
        assert_eq!(config.server.header_timeout, Some(Duration::from_secs(5)));
        assert_eq!(config.server.max_connections, 50);
        assert!(config.server.underscores_in_headers);
        assert_eq!(config.server.keepalive_timeout, None);
        assert_eq!(config.server.body_timeout, Duration::from_millis(250));
        assert_eq!(config.workers.user.as_deref(), Some("www-data"));
        assert_eq!(
            config.workers.group.as_deref(),
            Some("1000"),
            "a numeric group from the environment stays a name"
        );
        let defaults = Config::load(None, env(&[]), &Flags::default()).expect("defaults");
        assert_eq!(
            defaults.server.header_timeout,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            defaults.server.keepalive_timeout,
            Some(Duration::from_secs(15))
        );
        assert_eq!(defaults.server.max_connections, 10_000);
        assert!(!defaults.server.underscores_in_headers);
        assert!(defaults.workers.user.is_none());
    }

    #[test]
    fn databases_as_urls_or_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zeno.toml");
        std::fs::write(
            &path,
            "[db]\nsimple = \"sqlite://a.db\"\n[db.main]\nurl = \"postgres://p/x\"\nread = [\"postgres://r/x\"]\nsticky = true\nmax_connections = 20\nacquire_timeout = \"2s\"\n",
        )
        .expect("write");
        let config = Config::load(
            Some(&path),
            env(&[("ZENO_DB_MAIN", "postgres://override/x")]),
            &Flags::default(),
        )
        .expect("load");
        let main = &config.db["main"];
        assert_eq!(main.url, "postgres://override/x");
        assert_eq!(main.read, vec!["postgres://r/x".to_owned()]);
        assert!(main.sticky);
        assert_eq!(main.max_connections, 20);
        assert_eq!(main.acquire_timeout, Duration::from_secs(2));
        assert_eq!(config.db["simple"].url, "sqlite://a.db");
        assert_eq!(config.db["simple"].max_connections, 10);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::load(
            None,
            env(&[("ZENO_WORKERS__EXEC_TIMEOUT", "soon")]),
            &Flags::default(),
        )
        .expect_err("must fail");
        assert!(format!("{err:#}").contains("not a duration"), "{err:#}");
        let err = Config::load(None, env(&[("ZENO_WORKERS__NOPE", "1")]), &Flags::default())
            .expect_err("unknown key");
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        let err = Config::load(
            Some(Path::new("/nonexistent/zeno.toml")),
            env(&[]),
            &Flags::default(),
        )
        .expect_err("missing file");
        assert!(format!("{err:#}").contains("/nonexistent/zeno.toml"));
    }

    #[test]
    fn flags_are_the_last_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zeno.toml");
        std::fs::write(
            &path,
            "[workers]\nlaravel = \"app\"\ncount = 3\n[db.main]\nurl = \"postgres://file/x\"\nmax_connections = 20\n",
        )
        .expect("write");
        let mut flags = Flags::default();
        flags.set("workers.handler", Some("index.php"));
        flags.remove("workers.laravel");
        flags.set("workers.count", Some(9));
        flags.set(
            "workers.exec_timeout",
            Some(Dur(Duration::from_millis(1500))),
        );
        flags.set("workers.max_memory", Some(Size(1024)));
        flags.set("server.listen", None::<String>);
        flags.database("main", "postgres://flag/x");
        let config =
            Config::load(Some(&path), env(&[("ZENO_WORKERS__COUNT", "7")]), &flags).expect("load");
        assert_eq!(config.workers.count, 9, "flags win over the environment");
        assert_eq!(
            config.workers.handler.as_deref(),
            Some(Path::new("index.php"))
        );
        assert!(config.workers.laravel.is_none());
        assert_eq!(config.workers.exec_timeout, Duration::from_millis(1500));
        assert_eq!(config.workers.max_memory, 1024);
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.db["main"].url, "postgres://flag/x");
        assert_eq!(
            config.db["main"].max_connections, 20,
            "the file's pool settings stay"
        );
    }

    #[test]
    fn one_default_for_the_library_and_the_binary() {
        let config = Config::load(None, env(&[]), &Flags::default()).expect("load");
        let library = zeno_host::WorkersConfig::default();
        assert_eq!(config.workers.count, library.count);
        assert_eq!(config.workers.exec_timeout, library.exec_timeout);
        assert_eq!(
            config.server.max_body,
            zeno_http::HttpConfig::default().max_body
        );
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!("256M".parse::<Size>(), Ok(Size(256 * 1024 * 1024)));
        assert_eq!(
            toml::Value::from(Dur(Duration::from_secs(2))).as_str(),
            Some("2000ms")
        );
        assert_eq!("1024".parse::<Size>(), Ok(Size(1024)));
        assert!("12X".parse::<Size>().is_err());
        assert_eq!("2m".parse::<Dur>(), Ok(Dur(Duration::from_secs(120))));
        assert_eq!("15".parse::<Dur>(), Ok(Dur(Duration::from_secs(15))));
        assert!("fast".parse::<Dur>().is_err());
    }
}
