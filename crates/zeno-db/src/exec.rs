//! Running SQL on a backend: binding PHP's values the way PDO does, decoding rows, and
//! turning sqlx errors into the errors PHP sees.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::TryStreamExt as _;
use serde_json::{json, Value};
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Either, Executor as _, Statement as _, TypeInfo as _};

use crate::placeholders::{rewrite_for_postgres, rewrite_with};
use crate::{decode, AnyPool, AnyTx, Backend, Connection, DbError};

/// What a query produced.
pub struct QueryOutput {
    /// Rows as JSON objects, columns in order.
    pub rows: Vec<Value>,
    /// `[{name, type, binary?}]`.
    pub columns: Vec<Value>,
    /// Rows the statement changed.
    pub affected: u64,
    /// MySQL's and SQLite's last generated id (PostgreSQL uses `RETURNING`).
    pub last_insert_id: Option<i64>,
}

impl QueryOutput {
    /// The `data` of a `db_query` result.
    pub fn into_json(self) -> Value {
        json!({
            "rows": self.rows,
            "columns": self.columns,
            "affected": self.affected,
            "last_insert_id": self.last_insert_id,
        })
    }
}

/// Most distinct SQL texts whose PostgreSQL rewrite is remembered per connection.
const PG_SQL_CACHE: usize = 4096;

// The futures below are boxed as `Send` here, where the executor types are concrete:
// left to inference, rustc cannot prove `Send` for sqlx's executors through `&mut`.
pub(crate) fn query_pool<'a>(
    conn: &'a Connection,
    pool: &'a AnyPool,
    sql: &'a str,
    params: &'a [Value],
) -> BoxFuture<'a, Result<QueryOutput, DbError>> {
    Box::pin(async move {
        // A connection goes back on the warm stack only after a query that succeeded; after a
        // failure sqlx's pool tests it.
        match pool {
            AnyPool::Pg(p) => {
                let mut c = p.acquire().await.map_err(|e| pool_error(conn, pool, e))?;
                let output = pg_query(conn, &mut c, sql, params).await?;
                c.keep();
                Ok(output)
            }
            AnyPool::My(p) => {
                let mut c = p.acquire().await.map_err(|e| pool_error(conn, pool, e))?;
                let output = my_query(conn, &mut c, sql, params).await?;
                c.keep();
                Ok(output)
            }
            AnyPool::Lite(p) => {
                let mut c = p.acquire().await.map_err(|e| pool_error(conn, pool, e))?;
                let output = lite_query(conn, &mut c, sql, params).await?;
                c.keep();
                Ok(output)
            }
        }
    })
}

pub(crate) fn query_tx<'a>(
    conn: &'a Connection,
    tx: &'a mut AnyTx,
    sql: &'a str,
    params: &'a [Value],
) -> BoxFuture<'a, Result<QueryOutput, DbError>> {
    Box::pin(async move {
        match tx {
            AnyTx::Pg(tx) => pg_query(conn, tx, sql, params).await,
            AnyTx::My(tx) => my_query(conn, tx, sql, params).await,
            AnyTx::Lite(tx) => lite_query(conn, tx, sql, params).await,
        }
    })
}

pub(crate) fn exec_pool<'a>(
    conn: &'a Connection,
    pool: &'a AnyPool,
    sql: &'a str,
) -> BoxFuture<'a, Result<u64, DbError>> {
    Box::pin(async move {
        let result = match pool {
            AnyPool::Pg(p) => p
                .through_pool(|pool| sqlx::raw_sql(sql).execute(pool))
                .await
                .map(|r| r.rows_affected()),
            AnyPool::My(p) => p
                .through_pool(|pool| sqlx::raw_sql(sql).execute(pool))
                .await
                .map(|r| r.rows_affected()),
            AnyPool::Lite(p) => p
                .through_pool(|pool| sqlx::raw_sql(sql).execute(pool))
                .await
                .map(|r| r.rows_affected()),
        };
        result.map_err(|e| pool_error(conn, pool, e))
    })
}

pub(crate) fn exec_tx<'a>(
    conn: &'a Connection,
    tx: &'a mut AnyTx,
    sql: &'a str,
) -> BoxFuture<'a, Result<u64, DbError>> {
    Box::pin(async move {
        // A bare string with no arguments runs unprepared (the simple query protocol), like
        // raw_sql, which rustc cannot prove Send for through `&mut` here.
        let result = match tx {
            AnyTx::Pg(tx) => (&mut **tx).execute(sql).await.map(|r| r.rows_affected()),
            AnyTx::My(tx) => (&mut **tx).execute(sql).await.map(|r| r.rows_affected()),
            AnyTx::Lite(tx) => (&mut **tx).execute(sql).await.map(|r| r.rows_affected()),
        };
        result.map_err(|e| error(conn, e))
    })
}

pub(crate) async fn begin(conn: &Connection) -> Result<AnyTx, DbError> {
    let pool = &conn.write;
    match pool {
        AnyPool::Pg(p) => p.through_pool(|pool| pool.begin()).await.map(AnyTx::Pg),
        AnyPool::My(p) => p.through_pool(|pool| pool.begin()).await.map(AnyTx::My),
        AnyPool::Lite(p) => p.through_pool(|pool| pool.begin()).await.map(AnyTx::Lite),
    }
    .map_err(|e| pool_error(conn, pool, e))
}

/// PostgreSQL: `?` become `$n`, and each is cast from text to the type the server inferred
/// for it, so a PHP string binds to an int, numeric or date column as under pdo_pgsql (which
/// sends text and lets the server parse it).
async fn pg_query(
    conn: &Connection,
    c: &mut PgConnection,
    sql: &str,
    params: &[Value],
) -> Result<QueryOutput, DbError> {
    let final_sql = pg_final_sql(conn, c, sql).await?;
    let mut query = sqlx::query(&final_sql);
    for value in params {
        query = query.bind(text_of(value));
    }
    let mut rows = Vec::new();
    let mut affected = 0;
    let mut stream = c.fetch_many(query);
    while let Some(item) = stream.try_next().await.map_err(|e| error(conn, e))? {
        match item {
            Either::Left(done) => affected += done.rows_affected(),
            Either::Right(row) => rows.push(row),
        }
    }
    let (rows, columns) = decode::pg_rows(&rows);
    Ok(QueryOutput {
        rows,
        columns,
        affected,
        last_insert_id: None,
    })
}

async fn pg_final_sql(
    conn: &Connection,
    c: &mut PgConnection,
    sql: &str,
) -> Result<Arc<str>, DbError> {
    if let Some(cached) = conn.pg_sql.lock().ok().and_then(|m| m.get(sql).cloned()) {
        return Ok(cached);
    }
    let (numbered, count) = rewrite_for_postgres(sql);
    let final_sql: Arc<str> = if count == 0 {
        numbered.into()
    } else {
        let statement = c.prepare(&numbered).await.map_err(|e| error(conn, e))?;
        let types: Vec<String> = match statement.parameters() {
            Some(Either::Left(types)) => types.iter().map(|t| t.name().to_owned()).collect(),
            _ => Vec::new(),
        };
        rewrite_with(sql, |n| match types.get(n - 1).map(String::as_str) {
            // Text-like and unknown parameters need no cast; a cast to CHAR would also cut
            // the value to one character (the name has no length).
            None | Some("TEXT" | "VARCHAR" | "UNKNOWN" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT") => {
                format!("${n}")
            }
            Some(ty) => format!("(${n}::text::{ty})"),
        })
        .0
        .into()
    };
    if let Ok(mut cache) = conn.pg_sql.lock() {
        if cache.len() >= PG_SQL_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), final_sql.clone());
    }
    Ok(final_sql)
}

/// A PHP value as PostgreSQL text input. Arrays and objects become JSON text.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn my_query(
    conn: &Connection,
    c: &mut MySqlConnection,
    sql: &str,
    params: &[Value],
) -> Result<QueryOutput, DbError> {
    let mut query = sqlx::query(sql);
    for value in params {
        query = match value {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(i64::from(*b)),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => query.bind(i),
                (None, Some(u)) => query.bind(u),
                _ => query.bind(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => query.bind(s.clone()),
            other => query.bind(other.to_string()),
        };
    }
    let mut rows = Vec::new();
    let mut affected = 0;
    let mut last_insert_id = None;
    let mut stream = c.fetch_many(query);
    while let Some(item) = stream.try_next().await.map_err(|e| error(conn, e))? {
        match item {
            Either::Left(done) => {
                affected += done.rows_affected();
                if done.last_insert_id() > 0 {
                    last_insert_id = i64::try_from(done.last_insert_id()).ok();
                }
            }
            Either::Right(row) => rows.push(row),
        }
    }
    if affected == 0 {
        // PDO's rowCount() for a SELECT: the rows returned.
        affected = rows.len() as u64;
    }
    let (rows, columns) = decode::mysql_rows(&rows);
    Ok(QueryOutput {
        rows,
        columns,
        affected,
        last_insert_id,
    })
}

async fn lite_query(
    conn: &Connection,
    c: &mut SqliteConnection,
    sql: &str,
    params: &[Value],
) -> Result<QueryOutput, DbError> {
    let mut query = sqlx::query(sql);
    for value in params {
        query = match value {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(i64::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => query.bind(s.clone()),
            other => query.bind(other.to_string()),
        };
    }
    let mut rows = Vec::new();
    let mut affected = 0;
    let mut last_insert_id = None;
    let mut stream = c.fetch_many(query);
    while let Some(item) = stream.try_next().await.map_err(|e| error(conn, e))? {
        match item {
            Either::Left(done) => {
                affected += done.rows_affected();
                if done.rows_affected() > 0 {
                    last_insert_id = Some(done.last_insert_rowid());
                }
            }
            Either::Right(row) => rows.push(row),
        }
    }
    if affected == 0 {
        affected = rows.len() as u64;
    }
    let (rows, columns) = decode::sqlite_rows(&rows);
    Ok(QueryOutput {
        rows,
        columns,
        affected,
        last_insert_id,
    })
}

/// An error while acquiring from `pool`: tells an exhausted pool from a database that is down.
fn pool_error(conn: &Connection, pool: &AnyPool, err: sqlx::Error) -> DbError {
    if !matches!(err, sqlx::Error::PoolTimedOut) {
        return error(conn, err);
    }
    let (size, idle) = pool.counts();
    let max = conn.config.max_connections;
    if size >= max && idle == 0 {
        DbError::PoolExhausted(format!(
            "connection pool {:?} exhausted: all {max} connections are in use and none freed up within {:?}",
            conn.name, conn.config.acquire_timeout
        ))
    } else {
        DbError::Unavailable(format!(
            "database {:?} is unreachable: no connection could be opened within {:?}",
            conn.name, conn.config.acquire_timeout
        ))
    }
}

/// A database's own error, with SQLSTATE and driver code as PDO reports them.
pub(crate) fn error(conn: &Connection, err: sqlx::Error) -> DbError {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match conn.backend {
                Backend::Postgres => DbError::Database {
                    message,
                    sqlstate: db
                        .code()
                        .map_or_else(|| "HY000".to_owned(), |c| c.into_owned()),
                    driver_code: None,
                },
                Backend::MySql => {
                    let (sqlstate, number) = db
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .map_or((None, None), |e| {
                            (e.code().map(str::to_owned), Some(e.number()))
                        });
                    DbError::Database {
                        message,
                        sqlstate: sqlstate.unwrap_or_else(|| "HY000".into()),
                        driver_code: number.map(|n| n.to_string()),
                    }
                }
                Backend::Sqlite => {
                    let code = db.code().map(|c| c.into_owned());
                    // pdo_sqlite reports constraint violations as 23000, the rest as HY000, and
                    // the primary result code (19), not the extended one (2067).
                    let primary = code
                        .as_deref()
                        .and_then(|c| c.parse::<i32>().ok())
                        .map(|c| c & 0xff);
                    DbError::Database {
                        message,
                        sqlstate: if primary == Some(19) {
                            "23000"
                        } else {
                            "HY000"
                        }
                        .into(),
                        driver_code: primary.map(|c| c.to_string()).or(code),
                    }
                }
            }
        }
        sqlx::Error::PoolTimedOut => DbError::Unavailable(format!(
            "database {:?}: no connection within {:?}",
            conn.name, conn.config.acquire_timeout
        )),
        sqlx::Error::Io(e) => {
            DbError::Unavailable(format!("database {:?} connection failed: {e}", conn.name))
        }
        sqlx::Error::Tls(e) => {
            DbError::Unavailable(format!("database {:?} TLS failed: {e}", conn.name))
        }
        sqlx::Error::PoolClosed => {
            DbError::Unavailable(format!("database {:?} pool is closed", conn.name))
        }
        sqlx::Error::Protocol(e) => {
            DbError::Unavailable(format!("database {:?} protocol error: {e}", conn.name))
        }
        other => DbError::Database {
            message: other.to_string(),
            sqlstate: "HY000".into(),
            driver_code: None,
        },
    }
}
