//! `zeno.toml`, `ZENO_<SECTION>__<KEY>` environment overrides and command-line flags, merged
//! in that order of precedence (flags win).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// The whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub workers: WorkersConfig,
    /// Static scope values every request carries.
    pub scope: serde_json::Map<String, serde_json::Value>,
    /// Named databases: `[db] default = "postgres://…"`, or a table with pool settings.
    pub db: BTreeMap<String, DbEntry>,
    pub log: LogConfig,
    pub admin: AdminConfig,
}

/// One named database: a URL, or a table with the URL and pool settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DbEntry {
    Url(String),
    Full(DbTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbTable {
    pub url: String,
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub sticky: bool,
    pub max_connections: Option<u32>,
    pub min_connections: Option<u32>,
    pub acquire_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub max_lifetime: Option<Dur>,
    pub statement_timeout: Option<Dur>,
}

impl DbEntry {
    /// The pool settings, defaults filled in.
    pub fn connection(&self) -> zeno_host::ConnectionConfig {
        match self {
            DbEntry::Url(url) => zeno_host::ConnectionConfig::new(url),
            DbEntry::Full(t) => {
                let mut c = zeno_host::ConnectionConfig::new(&t.url);
                c.read = t.read.clone();
                c.sticky = t.sticky;
                if let Some(v) = t.max_connections {
                    c.max_connections = v;
                }
                if let Some(v) = t.min_connections {
                    c.min_connections = v;
                }
                if let Some(v) = t.acquire_timeout {
                    c.acquire_timeout = v.0;
                }
                if let Some(v) = t.idle_timeout {
                    c.idle_timeout = v.0;
                }
                if let Some(v) = t.max_lifetime {
                    c.max_lifetime = v.0;
                }
                if let Some(v) = t.statement_timeout {
                    c.statement_timeout = v.0;
                }
                c
            }
        }
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
pub struct ServerConfig {
    pub listen: String,
    pub max_body: Size,
    pub max_header: Size,
    pub shutdown_grace: Dur,
    /// A client that has not sent complete headers by then is disconnected (0: never).
    pub header_timeout: Dur,
    /// Longest wait for the next chunk of a request body: 408 past it.
    pub body_timeout: Dur,
    /// An idle keep-alive connection is closed after this long (0: only header_timeout).
    pub keepalive_timeout: Dur,
    /// Most connections at once; past it new ones wait until one closes.
    pub max_connections: usize,
    /// Pass header names containing `_` to PHP (nginx's `underscores_in_headers`).
    pub underscores_in_headers: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    pub handler: Option<PathBuf>,
    pub laravel: Option<PathBuf>,
    pub count: usize,
    pub php: PathBuf,
    pub exec_timeout: Dur,
    pub allocate_timeout: Dur,
    pub boot_timeout: Dur,
    pub stop_grace: Dur,
    pub max_jobs: u64,
    pub max_memory: Size,
    pub idle_timeout: Dur,
    pub max_queue: usize,
    pub max_line: Size,
    pub max_host_call: Size,
    pub env_allowlist: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub ini: BTreeMap<String, String>,
    /// The user workers run as (a name or a numeric id); the host must run as root.
    pub user: Option<String>,
    /// The group workers run as; by default the user's primary group.
    pub group: Option<String>,
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

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            workers: WorkersConfig::default(),
            scope: serde_json::Map::new(),
            db: BTreeMap::new(),
            log: LogConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body: Size(16 * 1024 * 1024),
            max_header: Size(64 * 1024),
            shutdown_grace: Dur(Duration::from_secs(30)),
            header_timeout: Dur(Duration::from_secs(30)),
            body_timeout: Dur(Duration::from_secs(30)),
            keepalive_timeout: Dur(Duration::from_secs(15)),
            max_connections: 10_000,
            underscores_in_headers: false,
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            handler: None,
            laravel: None,
            count: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            php: PathBuf::from("php-cgi"),
            exec_timeout: Dur(Duration::from_secs(30)),
            allocate_timeout: Dur(Duration::from_secs(10)),
            boot_timeout: Dur(Duration::from_secs(30)),
            stop_grace: Dur(Duration::from_secs(10)),
            max_jobs: 0,
            max_memory: Size(0),
            idle_timeout: Dur(Duration::ZERO),
            max_queue: 1024,
            max_line: Size(zeno_protocol_max_line()),
            max_host_call: Size(1024 * 1024),
            env_allowlist: zeno_host::DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            env: BTreeMap::new(),
            ini: BTreeMap::new(),
            user: None,
            group: None,
        }
    }
}

fn zeno_protocol_max_line() -> u64 {
    64 * 1024 * 1024
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// A byte size: a number of bytes, or a string with a K/M/G suffix (`"256M"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// A duration: a number of seconds, or a string with a unit (`"500ms"`, `"30s"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a size (examples: 1048576, 64K, 256M, 1G)"))?;
        let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1024,
            "M" | "MB" | "MIB" => 1024 * 1024,
            "G" | "GB" | "GIB" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {s:?} (use K, M or G)"
                ))
            }
        };
        n.checked_mul(factor)
            .map(Size)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 30s, 2m)"))?;
        let duration = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "" | "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {s:?} (use ms, s, m or h)"
                ))
            }
        };
        Ok(Dur(duration))
    }
}

macro_rules! number_or_string {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Number(u64),
                    Text(String),
                }
                match Raw::deserialize(d)? {
                    Raw::Number(n) => n.to_string().parse().map_err(serde::de::Error::custom),
                    Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
                }
            }
        }
    };
}
number_or_string!(Size);
number_or_string!(Dur);

impl Config {
    /// Reads `path` (if given), then applies `ZENO_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
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
        toml::Value::Table(table)
            .try_into()
            .context("invalid configuration (from the config file or ZENO_* variables)")
    }
}

/// `ZENO_WORKERS__COUNT=8` → `workers.count = 8`; `ZENO_DB_MAIN=url` → `db.main = "url"`.
fn apply_env(table: &mut toml::Table, name: &str, value: &str) -> anyhow::Result<()> {
    let Some(rest) = name.strip_prefix("ZENO_") else {
        return Ok(());
    };
    if let Some(db) = rest.strip_prefix("DB_") {
        if !db.is_empty() && !db.contains("__") {
            let dbs = table
                .entry("db")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(dbs) = dbs {
                let name = db.to_ascii_lowercase();
                // A URL from the environment replaces the URL, keeping the file's pool settings.
                match dbs.get_mut(&name) {
                    Some(toml::Value::Table(entry)) => {
                        entry.insert("url".into(), toml::Value::String(value.to_owned()));
                    }
                    _ => {
                        dbs.insert(name, toml::Value::String(value.to_owned()));
                    }
                }
            }
            return Ok(());
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
        let config = Config::load(None, env(&[])).expect("load");
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.workers.php, PathBuf::from("php-cgi"));
        assert_eq!(config.workers.exec_timeout.0, Duration::from_secs(30));
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
        )
        .expect("load");
        assert_eq!(config.server.listen, "127.0.0.1:9000");
        assert_eq!(config.server.max_body, Size(1024 * 1024));
        assert_eq!(config.server.max_header, Size(8 * 1024));
        assert_eq!(config.workers.count, 7);
        assert_eq!(config.workers.exec_timeout.0, Duration::from_millis(500));
        assert_eq!(config.scope["tenant"], "acme");
        assert_eq!(config.db["main"].connection().url, "postgres://u:p@h/db");
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
        )
        .expect("load");
        assert_eq!(config.server.header_timeout.0, Duration::from_secs(5));
        assert_eq!(config.server.max_connections, 50);
        assert!(config.server.underscores_in_headers);
        assert_eq!(config.server.keepalive_timeout.0, Duration::ZERO);
        assert_eq!(config.server.body_timeout.0, Duration::from_millis(250));
        assert_eq!(config.workers.user.as_deref(), Some("www-data"));
        assert_eq!(
            config.workers.group.as_deref(),
            Some("1000"),
            "a numeric group from the environment stays a name"
        );
        let defaults = Config::load(None, env(&[])).expect("defaults");
        assert_eq!(defaults.server.header_timeout.0, Duration::from_secs(30));
        assert_eq!(defaults.server.keepalive_timeout.0, Duration::from_secs(15));
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
        )
        .expect("load");
        let main = config.db["main"].connection();
        assert_eq!(main.url, "postgres://override/x");
        assert_eq!(main.read, vec!["postgres://r/x".to_owned()]);
        assert!(main.sticky);
        assert_eq!(main.max_connections, 20);
        assert_eq!(main.acquire_timeout, Duration::from_secs(2));
        assert_eq!(config.db["simple"].connection().url, "sqlite://a.db");
        assert_eq!(config.db["simple"].connection().max_connections, 10);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::load(None, env(&[("ZENO_WORKERS__EXEC_TIMEOUT", "soon")]))
            .expect_err("must fail");
        assert!(format!("{err:#}").contains("not a duration"), "{err:#}");
        let err = Config::load(None, env(&[("ZENO_WORKERS__NOPE", "1")])).expect_err("unknown key");
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        let err = Config::load(Some(Path::new("/nonexistent/zeno.toml")), env(&[]))
            .expect_err("missing file");
        assert!(format!("{err:#}").contains("/nonexistent/zeno.toml"));
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!("256M".parse::<Size>(), Ok(Size(256 * 1024 * 1024)));
        assert_eq!("1024".parse::<Size>(), Ok(Size(1024)));
        assert!("12X".parse::<Size>().is_err());
        assert_eq!("2m".parse::<Dur>(), Ok(Dur(Duration::from_secs(120))));
        assert_eq!("15".parse::<Dur>(), Ok(Dur(Duration::from_secs(15))));
        assert!("fast".parse::<Dur>().is_err());
    }
}
