//! The host's database pools and the `db_*` host functions PHP calls through
//! `\Zeno::call('db_query', …)`.
//!
//! Connections stay open in the host, so no request pays a handshake and credentials never
//! reach PHP. Each named connection is one concrete sqlx pool (PostgreSQL, MySQL/MariaDB or
//! SQLite) plus optional read replicas. A transaction pins one pooled connection to the request
//! that opened it; when the request ends — answered, failed, timed out, or its worker died —
//! [`Databases::end_request`] rolls it back and the connection goes back to the pool clean.

mod decode;
mod exec;
mod param;
pub mod placeholders;
mod warm;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor as _, Transaction};
use tokio::sync::Mutex;

use warm::Warm;

pub use exec::QueryOutput;

/// Settings of one named connection. In `zeno.toml` a connection is a URL
/// (`default = "postgres://…"`) or a table with the URL and pool settings; the defaults are
/// those of [`ConnectionConfig::new`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "RawConnection")]
pub struct ConnectionConfig {
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://path` (`sqlite::memory:`).
    pub url: String,
    /// Read replicas; reads are spread over them unless the request wrote (with `sticky`) or
    /// is in a transaction.
    pub read: Vec<String>,
    /// After a request writes, its reads go to the writer too (read-your-writes).
    pub sticky: bool,
    /// Most connections the pool opens (per URL).
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// Longest a query waits for a free connection (or for the database to accept one).
    pub acquire_timeout: Duration,
    /// An idle connection is closed after this long.
    pub idle_timeout: Duration,
    /// A connection is replaced after this long.
    pub max_lifetime: Duration,
    /// Longest a statement may run on the server (zero: no limit). PostgreSQL and MariaDB.
    pub statement_timeout: Duration,
}

impl ConnectionConfig {
    /// A connection to `url` with the documented defaults.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionConfig {
            url: url.into(),
            read: Vec::new(),
            sticky: false,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(1800),
            statement_timeout: Duration::ZERO,
        }
    }
}

/// The host functions this crate gives PHP (`\Zeno::call('db_query', …)`), by name: the
/// host registers each of [`DbFunction::ALL`] under [`DbFunction::name`] and runs it with
/// [`Databases::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFunction {
    /// `db_query`: a statement that returns rows.
    Query,
    /// `db_exec`: statements without rows (several allowed).
    Exec,
    /// `db_begin`: opens a transaction pinned to the request.
    Begin,
    /// `db_commit`: commits it.
    Commit,
    /// `db_rollback`: rolls it back.
    Rollback,
    /// `db_connections`: the configured connections and their backends.
    Connections,
}

impl DbFunction {
    /// Every function, for registering them all.
    pub const ALL: [DbFunction; 6] = [
        DbFunction::Query,
        DbFunction::Exec,
        DbFunction::Begin,
        DbFunction::Commit,
        DbFunction::Rollback,
        DbFunction::Connections,
    ];

    /// The name PHP calls it by.
    pub fn name(self) -> &'static str {
        match self {
            DbFunction::Query => "db_query",
            DbFunction::Exec => "db_exec",
            DbFunction::Begin => "db_begin",
            DbFunction::Commit => "db_commit",
            DbFunction::Rollback => "db_rollback",
            DbFunction::Connections => "db_connections",
        }
    }
}

/// A connection as `zeno.toml` writes it: a URL, or a table.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RawConnection {
    Url(String),
    Table(ConnectionTable),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionTable {
    url: String,
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    sticky: bool,
    max_connections: Option<u32>,
    min_connections: Option<u32>,
    #[serde(default, deserialize_with = "optional_duration")]
    acquire_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    max_lifetime: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    statement_timeout: Option<Duration>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    zeno_config::duration(d).map(Some)
}

impl TryFrom<RawConnection> for ConnectionConfig {
    type Error = String;

    fn try_from(raw: RawConnection) -> Result<Self, String> {
        let table = match raw {
            RawConnection::Url(url) => return Ok(ConnectionConfig::new(url)),
            RawConnection::Table(table) => table,
        };
        let mut config = ConnectionConfig::new(table.url);
        config.read = table.read;
        config.sticky = table.sticky;
        let defaults = config.clone();
        config.max_connections = table.max_connections.unwrap_or(defaults.max_connections);
        config.min_connections = table.min_connections.unwrap_or(defaults.min_connections);
        config.acquire_timeout = table.acquire_timeout.unwrap_or(defaults.acquire_timeout);
        config.idle_timeout = table.idle_timeout.unwrap_or(defaults.idle_timeout);
        config.max_lifetime = table.max_lifetime.unwrap_or(defaults.max_lifetime);
        config.statement_timeout = table
            .statement_timeout
            .unwrap_or(defaults.statement_timeout);
        Ok(config)
    }
}

/// Which database a connection talks to; PHP uses it to pick Laravel's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// `pgsql`, `mysql` or `sqlite`: Laravel's driver names.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "pgsql",
            Backend::MySql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }

    fn of(url: &str) -> Result<Backend, DbError> {
        let scheme = url.split(':').next().unwrap_or("");
        match scheme {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(DbError::Config(format!(
                "unsupported database URL {} (use postgres://, mysql:// or sqlite://)",
                redact(url)
            ))),
        }
    }
}

/// A failure of a database host function, as PHP receives it: `error` is the database's own
/// message, `error_info` carries `kind`, and for database errors `sqlstate` and `driver_code`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Bad configuration (unknown scheme, invalid URL).
    #[error("{0}")]
    Config(String),
    /// The parameters of the call were wrong.
    #[error("{0}")]
    Invalid(String),
    /// No connection of that name is configured.
    #[error("no database connection named {0:?} is configured")]
    UnknownConnection(String),
    /// The database rejected the statement.
    #[error("{message}")]
    Database {
        /// The database's own message.
        message: String,
        /// SQLSTATE (`23505`, `42601`, …).
        sqlstate: String,
        /// The driver's own code (MySQL error number, SQLite result code).
        driver_code: Option<String>,
        /// PostgreSQL's other fields: `detail`, `hint`, `schema`, `table`, `column`,
        /// `datatype`, `constraint` (those the server sent).
        fields: BTreeMap<&'static str, String>,
    },
    /// Every connection of the pool is busy and none freed up within the acquire timeout.
    #[error("{0}")]
    PoolExhausted(String),
    /// The database cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A transaction call that does not fit the request's state.
    #[error("{0}")]
    Transaction(String),
}

impl DbError {
    /// `error_info.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            DbError::Config(_) => "config",
            DbError::Invalid(_) => "invalid_parameters",
            DbError::UnknownConnection(_) => "unknown_connection",
            DbError::Database { .. } => "db",
            DbError::PoolExhausted(_) => "pool_exhausted",
            DbError::Unavailable(_) => "db_unavailable",
            DbError::Transaction(_) => "transaction",
        }
    }

    /// `error_info` without `kind`.
    pub fn info(&self) -> Value {
        match self {
            DbError::Database {
                sqlstate,
                driver_code,
                fields,
                ..
            } => {
                let mut info = json!({"sqlstate": sqlstate, "driver_code": driver_code});
                for (key, value) in fields {
                    info[*key] = Value::String(value.clone());
                }
                info
            }
            _ => json!({}),
        }
    }
}

/// One pool of a concrete backend: sqlx's, with the connections used last kept out of it.
#[derive(Debug)]
pub(crate) enum AnyPool {
    Pg(Warm<sqlx::Postgres>),
    My(Warm<sqlx::MySql>),
    Lite(Warm<sqlx::Sqlite>),
}

impl AnyPool {
    /// Connections open, and of those idle.
    fn counts(&self) -> (u32, usize) {
        match self {
            AnyPool::Pg(p) => p.counts(),
            AnyPool::My(p) => p.counts(),
            AnyPool::Lite(p) => p.counts(),
        }
    }
}

/// A transaction pinned to a request.
pub(crate) enum AnyTx {
    Pg(Transaction<'static, sqlx::Postgres>),
    My(Transaction<'static, sqlx::MySql>),
    Lite(Transaction<'static, sqlx::Sqlite>),
}

impl AnyTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            AnyTx::Pg(tx) => tx.commit().await,
            AnyTx::My(tx) => tx.commit().await,
            AnyTx::Lite(tx) => tx.commit().await,
        }
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            AnyTx::Pg(tx) => tx.rollback().await,
            AnyTx::My(tx) => tx.rollback().await,
            AnyTx::Lite(tx) => tx.rollback().await,
        }
    }
}

pub(crate) struct Connection {
    name: String,
    backend: Backend,
    config: ConnectionConfig,
    write: AnyPool,
    reads: Vec<AnyPool>,
    next_read: AtomicUsize,
    /// PostgreSQL: final SQL (placeholders numbered and cast) by the SQL PHP sent.
    pub(crate) pg_sql: std::sync::Mutex<HashMap<String, Arc<exec::PgPlan>>>,
    /// When a statement last met a changed schema: transactions begun soon after start with
    /// a fresh statement cache (see [`Connection::schema_changed`]).
    schema_changed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after a schema change every transaction starts with a fresh statement cache: a
/// migration touches the schema once, and each pooled connection is used within seconds
/// under load; 60 s covers the slow ones at the cost of a re-prepare per statement.
const SCHEMA_CHANGE_WINDOW: Duration = Duration::from_secs(60);

impl Connection {
    /// Records that a cached statement met a changed schema. A statement outside a
    /// transaction is re-prepared and run again; one inside a transaction cannot be (the
    /// transaction is aborted), so for a while transactions clear their connection's cached
    /// statements first.
    pub(crate) fn schema_changed(&self) {
        if let Ok(mut at) = self.schema_changed_at.lock() {
            *at = Some(std::time::Instant::now());
        }
    }

    /// Whether a transaction begun now should clear its connection's cached statements.
    pub(crate) fn schema_recently_changed(&self) -> bool {
        self.schema_changed_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < SCHEMA_CHANGE_WINDOW)
    }
}

#[derive(Default)]
struct RequestState {
    transactions: HashMap<String, AnyTx>,
    wrote: HashSet<String>,
}

/// Every configured connection, and the per-request state (open transactions, sticky flags).
pub struct Databases {
    connections: BTreeMap<String, Arc<Connection>>,
    requests: Mutex<HashMap<String, RequestState>>,
}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Databases")
            .field("connections", &self.connections.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Counts a query by where it ran: `primary`, `replica` or the request's `transaction`.
fn routed(db: &str, target: &'static str) {
    metrics::counter!("zeno_db_routed_total", "db" => db.to_owned(), "target" => target)
        .increment(1);
}

/// One pool's connections, for metrics and `/workers`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolStats {
    /// The connection's name (`default`).
    pub db: String,
    /// `primary`, or `replica` for a read replica (one entry per replica URL).
    pub role: &'static str,
    /// Connections open.
    pub open: u32,
    /// Of those, idle (in the pool or kept by the host between queries).
    pub idle: usize,
    /// `max_connections`.
    pub max: u32,
}

/// The `sql` parameter of a `db_*` call.
fn sql_param<'a>(params: &'a Value, function: &str) -> Result<&'a str, DbError> {
    params
        .get("sql")
        .and_then(Value::as_str)
        .ok_or_else(|| DbError::Invalid(format!("{function} needs a string `sql`")))
}

/// Replaces the password in a URL with `***` for logs and error messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Databases {
    /// Opens the pools lazily: no connection is made until the first query, so the host
    /// starts even while a database is down, and reconnects once it is back.
    pub fn connect(configs: BTreeMap<String, ConnectionConfig>) -> Result<Databases, DbError> {
        let mut connections = BTreeMap::new();
        for (name, config) in configs {
            let backend = Backend::of(&config.url)?;
            let write = open_pool(&name, "primary", &config.url, &config)?;
            let reads = config
                .read
                .iter()
                .map(|url| {
                    if Backend::of(url)? != backend {
                        return Err(DbError::Config(format!(
                            "connection {name}: read URL {} is not the same kind of database",
                            redact(url)
                        )));
                    }
                    open_pool(&name, "replica", url, &config)
                })
                .collect::<Result<Vec<_>, _>>()?;
            tracing::info!(connection = %name, backend = backend.as_str(), url = %redact(&config.url), replicas = reads.len(), "database connection configured");
            connections.insert(
                name.clone(),
                Arc::new(Connection {
                    name,
                    backend,
                    config,
                    write,
                    reads,
                    next_read: AtomicUsize::new(0),
                    pg_sql: std::sync::Mutex::new(HashMap::new()),
                    schema_changed_at: std::sync::Mutex::new(None),
                }),
            );
        }
        Ok(Databases {
            connections,
            requests: Mutex::new(HashMap::new()),
        })
    }

    /// Connection names and their backends, for the worker (Laravel picks grammars by them).
    pub fn backends(&self) -> BTreeMap<String, Backend> {
        self.connections
            .iter()
            .map(|(name, c)| (name.clone(), c.backend))
            .collect()
    }

    fn connection(&self, params: &Value) -> Result<Arc<Connection>, DbError> {
        let name = match params.get("connection") {
            None | Some(Value::Null) => "default",
            Some(Value::String(name)) => name.as_str(),
            Some(_) => return Err(DbError::Invalid("`connection` must be a string".into())),
        };
        self.connections
            .get(name)
            .cloned()
            .ok_or_else(|| DbError::UnknownConnection(name.to_owned()))
    }

    /// Every pool's connections: open, idle, the limit.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut stats = Vec::new();
        for conn in self.connections.values() {
            let pools = std::iter::once(("primary", &conn.write))
                .chain(conn.reads.iter().map(|pool| ("replica", pool)));
            for (role, pool) in pools {
                let (open, idle) = pool.counts();
                stats.push(PoolStats {
                    db: conn.name.clone(),
                    role,
                    open,
                    idle,
                    max: conn.config.max_connections,
                });
            }
        }
        stats
    }

    /// Transactions open now, by connection name; `None` when the request table is busy (a
    /// caller that cannot wait, such as a metrics scrape, skips this one).
    pub fn open_transactions(&self) -> Option<BTreeMap<String, usize>> {
        let requests = self.requests.try_lock().ok()?;
        let mut open: BTreeMap<String, usize> = self
            .connections
            .keys()
            .map(|name| (name.clone(), 0))
            .collect();
        for state in requests.values() {
            for name in state.transactions.keys() {
                *open.entry(name.clone()).or_default() += 1;
            }
        }
        Some(open)
    }

    /// Runs one of the host functions for `request` (empty outside a request).
    pub async fn call(
        &self,
        function: DbFunction,
        request: &str,
        params: &Value,
    ) -> Result<Value, DbError> {
        let result = self.run(function, request, params).await;
        if function != DbFunction::Connections {
            // Only configured names become a label: PHP chooses the connection.
            let db = match params.get("connection") {
                None | Some(Value::Null) => "default",
                Some(Value::String(name)) if self.connections.contains_key(name) => name,
                Some(_) => "unknown",
            };
            let (outcome, class) = match &result {
                Ok(_) => ("ok", String::new()),
                Err(DbError::Database { sqlstate, .. }) => {
                    ("db", sqlstate.get(..2).unwrap_or("").to_owned())
                }
                Err(err) => (err.kind(), String::new()),
            };
            metrics::counter!(
                "zeno_db_calls_total",
                "db" => db.to_owned(),
                "function" => function.name(),
                "outcome" => outcome,
                "sqlstate_class" => class
            )
            .increment(1);
        }
        result
    }

    async fn run(
        &self,
        function: DbFunction,
        request: &str,
        params: &Value,
    ) -> Result<Value, DbError> {
        match function {
            DbFunction::Query => self.query(request, params).await,
            DbFunction::Exec => self.exec(request, params).await,
            DbFunction::Begin => self.begin(request, params).await,
            DbFunction::Commit => self.commit(request, params).await,
            DbFunction::Rollback => self.rollback(request, params).await,
            DbFunction::Connections => Ok(Value::Object(
                self.backends()
                    .into_iter()
                    .map(|(name, backend)| (name, Value::String(backend.as_str().to_owned())))
                    .collect(),
            )),
        }
    }

    /// `db_query {connection?, sql, params?, mode?}`.
    pub async fn query(&self, request: &str, params: &Value) -> Result<Value, DbError> {
        let conn = self.connection(params)?;
        let sql = sql_param(params, "db_query")?;
        let binds = match params.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(values)) => param::parse(values)?,
            Some(Value::Object(_)) => return Err(DbError::Invalid(
                "named parameters are not supported: pass `params` as a list for ? placeholders"
                    .into(),
            )),
            Some(_) => return Err(DbError::Invalid("`params` must be a list".into())),
        };
        let write = match params.get("mode").and_then(Value::as_str) {
            Some("read") => false,
            Some("write") => true,
            Some(other) => {
                return Err(DbError::Invalid(format!(
                    "`mode` must be \"read\" or \"write\", not {other:?}"
                )))
            }
            None => !is_read_only(sql),
        };

        let mut requests = self.requests.lock().await;
        let state = requests.entry(request.to_owned()).or_default();
        if let Some(mut tx) = state.transactions.remove(&conn.name) {
            drop(requests);
            routed(&conn.name, "transaction");
            let result = exec::query_tx(&conn, &mut tx, sql, &binds).await;
            self.put_tx(request, &conn.name, tx).await;
            return result.map(QueryOutput::into_json);
        }
        let sticky_write = conn.config.sticky && state.wrote.contains(&conn.name);
        let use_replica = !(write || conn.reads.is_empty() || sticky_write);
        if write {
            state.wrote.insert(conn.name.clone());
        }
        if request.is_empty() {
            requests.remove("");
        }
        drop(requests);
        let pool = if use_replica {
            let i = conn.next_read.fetch_add(1, Ordering::Relaxed) % conn.reads.len();
            routed(&conn.name, "replica");
            &conn.reads[i]
        } else {
            routed(&conn.name, "primary");
            &conn.write
        };
        exec::query_pool(&conn, pool, sql, &binds)
            .await
            .map(QueryOutput::into_json)
    }

    /// `db_exec {connection?, sql}`: unprepared SQL — several statements, transaction
    /// control, statements MySQL cannot prepare. Runs in the request's transaction if any.
    pub async fn exec(&self, request: &str, params: &Value) -> Result<Value, DbError> {
        let conn = self.connection(params)?;
        let sql = sql_param(params, "db_exec")?;
        let mut requests = self.requests.lock().await;
        let state = requests.entry(request.to_owned()).or_default();
        state.wrote.insert(conn.name.clone());
        let tx = state.transactions.remove(&conn.name);
        if request.is_empty() {
            requests.remove("");
        }
        drop(requests);
        match tx {
            Some(mut tx) => {
                let result = exec::exec_tx(&conn, &mut tx, sql).await;
                self.put_tx(request, &conn.name, tx).await;
                result
            }
            None => exec::exec_pool(&conn, &conn.write, sql).await,
        }
        .map(|affected| json!({"affected": affected}))
    }

    /// `db_begin {connection?}`: pins a connection to the request and starts a transaction.
    pub async fn begin(&self, request: &str, params: &Value) -> Result<Value, DbError> {
        if request.is_empty() {
            return Err(DbError::Transaction(
                "a transaction needs a request; none is in flight".into(),
            ));
        }
        let conn = self.connection(params)?;
        {
            let requests = self.requests.lock().await;
            if requests
                .get(request)
                .is_some_and(|s| s.transactions.contains_key(&conn.name))
            {
                return Err(DbError::Transaction(format!(
                    "a transaction is already open on {:?}; use savepoints (db_exec) to nest",
                    conn.name
                )));
            }
        }
        let tx = exec::begin(&conn).await?;
        let mut requests = self.requests.lock().await;
        let state = requests.entry(request.to_owned()).or_default();
        state.transactions.insert(conn.name.clone(), tx);
        state.wrote.insert(conn.name.clone());
        Ok(json!(true))
    }

    /// `db_commit {connection?}`.
    pub async fn commit(&self, request: &str, params: &Value) -> Result<Value, DbError> {
        let conn = self.connection(params)?;
        let tx = self.take_tx(request, &conn.name).await?;
        tx.commit().await.map_err(|e| exec::error(&conn, e))?;
        Ok(json!(true))
    }

    /// `db_rollback {connection?}`.
    pub async fn rollback(&self, request: &str, params: &Value) -> Result<Value, DbError> {
        let conn = self.connection(params)?;
        let tx = self.take_tx(request, &conn.name).await?;
        tx.rollback().await.map_err(|e| exec::error(&conn, e))?;
        Ok(json!(true))
    }

    /// Gives a request its pinned transaction back after a statement ran on it.
    async fn put_tx(&self, request: &str, name: &str, tx: AnyTx) {
        self.requests
            .lock()
            .await
            .entry(request.to_owned())
            .or_default()
            .transactions
            .insert(name.to_owned(), tx);
    }

    async fn take_tx(&self, request: &str, name: &str) -> Result<AnyTx, DbError> {
        self.requests
            .lock()
            .await
            .get_mut(request)
            .and_then(|s| s.transactions.remove(name))
            .ok_or_else(|| DbError::Transaction(format!("no transaction is open on {name:?}")))
    }

    /// Called when a request is over, however it ended: rolls back what it left open and
    /// forgets its sticky state.
    pub async fn end_request(&self, request: &str) {
        let state = self.requests.lock().await.remove(request);
        let Some(state) = state else { return };
        for (name, tx) in state.transactions {
            tracing::warn!(request, connection = %name, "request ended with an open transaction; rolling it back");
            if let Err(err) = tx.rollback().await {
                tracing::warn!(request, connection = %name, error = %err, "rollback failed; the connection is discarded");
            }
        }
    }

    /// Requests holding state right now (open transactions or sticky flags).
    pub async fn open_requests(&self) -> usize {
        self.requests.lock().await.len()
    }
}

/// Whether SQL only reads: starts with SELECT (or a read-only keyword) and does not lock rows.
pub(crate) fn is_read_only(sql: &str) -> bool {
    let trimmed = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    let first: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    match first.as_str() {
        "select" => {
            let lower = sql.to_ascii_lowercase();
            !(lower.contains(" for update")
                || lower.contains(" for share")
                || lower.contains(" into "))
        }
        "show" | "explain" | "describe" | "pragma" => true,
        _ => false,
    }
}

fn open_pool(
    name: &str,
    role: &'static str,
    url: &str,
    config: &ConnectionConfig,
) -> Result<AnyPool, DbError> {
    let label = (name.to_owned(), role);
    let bad =
        |e: sqlx::Error| DbError::Config(format!("invalid database URL {}: {e}", redact(url)));
    let statement_timeout_ms = config.statement_timeout.as_millis();
    Ok(match Backend::of(url)? {
        Backend::Postgres => {
            let mut options: PgConnectOptions = url.parse().map_err(bad)?;
            // Timestamps with time zone come back in UTC, rendered with "+00".
            options = options.options([("TimeZone", "UTC")]);
            if statement_timeout_ms > 0 {
                options =
                    options.options([("statement_timeout", statement_timeout_ms.to_string())]);
            }
            AnyPool::Pg(Warm::new(
                label,
                PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .min_connections(config.min_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .idle_timeout(config.idle_timeout)
                    .max_lifetime(config.max_lifetime)
                    .connect_lazy_with(options),
            ))
        }
        Backend::MySql => {
            let options: MySqlConnectOptions = url.parse().map_err(bad)?;
            let mut pool = MySqlPoolOptions::new()
                .max_connections(config.max_connections)
                .min_connections(config.min_connections)
                .acquire_timeout(config.acquire_timeout)
                .idle_timeout(config.idle_timeout)
                .max_lifetime(config.max_lifetime);
            if statement_timeout_ms > 0 {
                let seconds = config.statement_timeout.as_secs_f64();
                pool = pool.after_connect(move |conn, _| {
                    Box::pin(async move {
                        // MariaDB's name; MySQL ignores unknown variables only with an error, so try both.
                        if conn
                            .execute(format!("SET SESSION max_statement_time = {seconds}").as_str())
                            .await
                            .is_err()
                        {
                            let ms = (seconds * 1000.0) as u64;
                            let _ = conn
                                .execute(format!("SET SESSION max_execution_time = {ms}").as_str())
                                .await;
                        }
                        Ok(())
                    })
                });
            }
            AnyPool::My(Warm::new(label, pool.connect_lazy_with(options)))
        }
        Backend::Sqlite => {
            let options: SqliteConnectOptions = url.parse().map_err(bad)?;
            let options = options
                .create_if_missing(true)
                .busy_timeout(config.acquire_timeout);
            AnyPool::Lite(Warm::new(
                label,
                SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .min_connections(config.min_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .idle_timeout(config.idle_timeout)
                    .max_lifetime(config.max_lifetime)
                    .connect_lazy_with(options),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact("mysql://root@localhost/test"),
            "mysql://root@localhost/test"
        );
        assert_eq!(redact("sqlite://zeno.sqlite"), "sqlite://zeno.sqlite");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn reads_are_recognised() {
        assert!(is_read_only("SELECT * FROM t"));
        assert!(is_read_only("  (select 1) union (select 2)"));
        assert!(!is_read_only("select * from t for update"));
        assert!(!is_read_only("insert into t values (1)"));
        assert!(!is_read_only(
            "with x as (delete from t returning *) select * from x"
        ));
        assert!(!is_read_only("update t set a = 1"));
    }

    #[test]
    fn unknown_schemes_are_config_errors() {
        assert!(matches!(Backend::of("oracle://x"), Err(DbError::Config(_))));
        assert_eq!(Backend::of("postgresql://x").ok(), Some(Backend::Postgres));
    }
}
