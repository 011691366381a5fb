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

use std::collections::BTreeMap;

use sqlx::postgres::{PgRow, PgTypeInfo};

use crate::param::Param;
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
    params: &'a [Param],
) -> BoxFuture<'a, Result<QueryOutput, DbError>> {
    Box::pin(async move {
        // A connection goes back on the warm stack only after a query that succeeded; after a
        // failure sqlx's pool tests it.
        match pool {
            AnyPool::Pg(p) => {
                let mut c = p.acquire().await.map_err(|e| pool_error(conn, pool, e))?;
                let output = pg_query(conn, &mut c, sql, params, false).await?;
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
                // A read waiting on another connection's schema change can meet it more than once.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let mut c = p.acquire().await.map_err(|e| pool_error(conn, pool, e))?;
                    match lite_query(conn, &mut c, sql, params).await {
                        Ok(output) => {
                            c.keep();
                            return Ok(output);
                        }
                        // A read that met a schema change mid-flight runs again, on another
                        // connection: the statement that met it may be left mid-result,
                        // holding a read snapshot from before the change, so that connection
                        // is closed, not pooled.
                        Err(LiteFailure::SchemaRace) => {
                            c.discard();
                            if attempts >= 4 || !crate::is_read_only(sql) {
                                return Err(LiteFailure::SchemaRace.into_error());
                            }
                            tracing::info!(connection = %conn.name, attempts, "the schema changed while a read ran; running it again");
                        }
                        Err(failure) => return Err(failure.into_error()),
                    }
                }
            }
        }
    })
}

pub(crate) fn query_tx<'a>(
    conn: &'a Connection,
    tx: &'a mut AnyTx,
    sql: &'a str,
    params: &'a [Param],
) -> BoxFuture<'a, Result<QueryOutput, DbError>> {
    Box::pin(async move {
        match tx {
            AnyTx::Pg(tx) => pg_query(conn, tx, sql, params, true).await,
            AnyTx::My(tx) => my_query(conn, tx, sql, params).await,
            AnyTx::Lite(tx) => lite_query(conn, tx, sql, params)
                .await
                .map_err(LiteFailure::into_error),
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
    let mut tx = match pool {
        AnyPool::Pg(p) => p.through_pool(|pool| pool.begin()).await.map(AnyTx::Pg),
        AnyPool::My(p) => p.through_pool(|pool| pool.begin()).await.map(AnyTx::My),
        AnyPool::Lite(p) => p.through_pool(|pool| pool.begin()).await.map(AnyTx::Lite),
    }
    .map_err(|e| pool_error(conn, pool, e))?;
    if let AnyTx::Pg(pg) = &mut tx {
        // A statement cached before a schema change would abort this transaction.
        if conn.schema_recently_changed() {
            sqlx::Connection::clear_cached_statements(&mut **pg)
                .await
                .map_err(|e| error(conn, e))?;
        }
    }
    Ok(tx)
}

/// PostgreSQL: `?` become `$n`, and each is cast from text to the type the server inferred
/// for it, so a PHP string binds to an int, numeric or date column as under pdo_pgsql (which
/// sends text and lets the server parse it).
///
/// A schema change under a running host (a deploy's migration) is survived: a cached
/// statement whose result changed (`0A000 cached plan must not change result type`) or that
/// vanished (`26000`) is re-prepared and run again, and a statement whose parameters now infer
/// other types is re-planned and run again — outside a transaction only, where the failed
/// attempt did nothing. Inside one the error stands (the transaction is already aborted) and
/// the stale statement is forgotten, so the application's retry succeeds.
async fn pg_query(
    conn: &Connection,
    c: &mut PgConnection,
    sql: &str,
    params: &[Param],
    in_tx: bool,
) -> Result<QueryOutput, DbError> {
    let mut plan = pg_plan(conn, c, sql).await?;
    let mut retried = false;
    loop {
        let err = match pg_run(conn, c, &plan, params, in_tx).await {
            Ok(output) => return Ok(output),
            Err(PgFailure::Db(err)) => err,
            Err(PgFailure::Other(err)) => return Err(err),
        };
        let stale_statement = is_stale_statement(&err);
        if stale_statement {
            conn.schema_changed();
            tracing::info!(connection = %conn.name, "the schema changed under a cached statement; preparing it again");
            if let Err(e) = sqlx::Connection::clear_cached_statements(&mut *c).await {
                return Err(error(conn, e));
            }
        }
        if in_tx || retried {
            forget_plan(conn, sql);
            return Err(error(conn, err));
        }
        if !stale_statement {
            // Parameters typed from the old schema? Plan again; run again only if that changed.
            if plan.types.is_empty() || !matches!(err, sqlx::Error::Database(_)) {
                return Err(error(conn, err));
            }
            forget_plan(conn, sql);
            let fresh = pg_plan(conn, c, sql).await?;
            if fresh.types == plan.types {
                return Err(error(conn, err));
            }
            plan = fresh;
        }
        retried = true;
    }
}

/// What PostgreSQL raises when a cached statement no longer fits the schema.
fn is_stale_statement(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    match db.code().as_deref() {
        Some("0A000") => db
            .message()
            .contains("cached plan must not change result type"),
        Some("26000") => true,
        _ => false,
    }
}

/// A PostgreSQL statement ready to run: the SQL with numbered, cast placeholders and the type
/// the server inferred for each parameter.
#[derive(Debug, PartialEq)]
pub(crate) struct PgPlan {
    sql: Arc<str>,
    types: Vec<String>,
}

fn forget_plan(conn: &Connection, sql: &str) {
    if let Ok(mut cache) = conn.pg_sql.lock() {
        cache.remove(sql);
    }
}

async fn pg_plan(
    conn: &Connection,
    c: &mut PgConnection,
    sql: &str,
) -> Result<Arc<PgPlan>, DbError> {
    if let Some(cached) = conn.pg_sql.lock().ok().and_then(|m| m.get(sql).cloned()) {
        return Ok(cached);
    }
    let (numbered, count) = rewrite_for_postgres(sql);
    let plan = if count == 0 {
        PgPlan {
            sql: numbered.into(),
            types: Vec::new(),
        }
    } else {
        // Unnamed: this statement only asks for the parameters' types and is never run.
        let statement = c.prepare(&numbered).await.map_err(|e| error(conn, e))?;
        let types: Vec<String> = match statement.parameters() {
            Some(Either::Left(types)) => types.iter().map(|t| t.name().to_owned()).collect(),
            _ => Vec::new(),
        };
        let sql = rewrite_with(sql, |n| match types.get(n - 1).map(String::as_str) {
            // Text-like and unknown parameters need no cast; a cast to CHAR would also cut
            // the value to one character (the name has no length).
            None | Some("TEXT" | "VARCHAR" | "UNKNOWN" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT") => {
                format!("${n}")
            }
            // sqlx names `"char"` (one byte) "\"CHAR\"", which as SQL is another name; a cast to
            // BIT would cut to bit(1), to varbit keeps the length for the column's own cast.
            Some("\"CHAR\"") => format!("(${n}::text::\"char\")"),
            Some("BIT") => format!("(${n}::text::varbit)"),
            Some(ty) => format!("(${n}::text::{ty})"),
        })
        .0
        .into();
        PgPlan { sql, types }
    };
    let plan = Arc::new(plan);
    if let Ok(mut cache) = conn.pg_sql.lock() {
        if cache.len() >= PG_SQL_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), plan.clone());
    }
    Ok(plan)
}

/// Why a PostgreSQL statement failed: the database's error (which the caller may answer by
/// re-preparing) or one already turned into PHP's.
enum PgFailure {
    Db(sqlx::Error),
    Other(DbError),
}

async fn pg_run(
    conn: &Connection,
    c: &mut PgConnection,
    plan: &PgPlan,
    params: &[Param],
    in_tx: bool,
) -> Result<QueryOutput, PgFailure> {
    let mut query = sqlx::query(&plan.sql);
    for (i, value) in params.iter().enumerate() {
        query = match value {
            // bytea takes bytes as hex text (`\x00ff`), as pdo_pgsql sends a LOB's contents.
            Param::Binary(bytes) if plan.types.get(i).map(String::as_str) == Some("BYTEA") => {
                query.bind(Some(hex_bytea(bytes)))
            }
            // Anything else gets the bytes as text: the server accepts them if they are text
            // in its encoding and refuses them (22021) as it refuses them from pdo_pgsql.
            Param::Binary(bytes) => query.bind(RawValue {
                type_info: <String as sqlx::Type<sqlx::Postgres>>::type_info(),
                bytes: bytes.clone(),
            }),
            other => query.bind(other.text()),
        };
    }
    let mut rows = Vec::new();
    let mut affected = 0;
    {
        let mut stream = c.fetch_many(query);
        while let Some(item) = stream.try_next().await.map_err(PgFailure::Db)? {
            match item {
                Either::Left(done) => affected += done.rows_affected(),
                Either::Right(row) => rows.push(row),
            }
        }
    }
    let mut decoded = decode::pg_cells(&rows);
    if !decoded.pending.is_empty() {
        pg_print(conn, c, &rows, &mut decoded, in_tx)
            .await
            .map_err(PgFailure::Other)?;
    }
    let (rows, columns) = decode::pg_rows(&rows, decoded.cells);
    Ok(QueryOutput {
        rows,
        columns,
        affected,
        last_insert_id: None,
    })
}

fn hex_bytea(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A value sent as the bytes it is, declared as `type_info`: a value of the result in its
/// type's binary form, sent back to be printed, or a PHP binary string as `text`, for the
/// server to accept or refuse.
struct RawValue {
    type_info: PgTypeInfo,
    bytes: Vec<u8>,
}

impl sqlx::Type<sqlx::Postgres> for RawValue {
    fn type_info() -> PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for RawValue {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        buf.extend_from_slice(&self.bytes);
        Ok(sqlx::encode::IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.type_info.clone())
    }
}

/// Values printed per round trip; well under PostgreSQL's 65,535 parameters per statement.
const PRINT_BATCH: usize = 1000;

/// Has the server print the values the host does not decode, with each type's own output
/// function — `format('%s', v)` calls it, where a cast to text would not (`inet::text` adds
/// `/32`, `bool::text` says `true`) — so PHP gets exactly the text libpq gives pdo_pgsql, in
/// this session's settings (IntervalStyle, lc_monetary, extra_float_digits). One extra round
/// trip per 1,000 such values, only for results that have them. Inside a transaction it runs
/// under a savepoint, so a failure here cannot abort the application's transaction.
async fn pg_print(
    conn: &Connection,
    c: &mut PgConnection,
    rows: &[PgRow],
    decoded: &mut decode::PgCells,
    in_tx: bool,
) -> Result<(), DbError> {
    use sqlx::{Column as _, Row as _};
    let mut values = Vec::with_capacity(decoded.pending.len());
    // How each pending cell is put together from printed values (indexes into `values`).
    let mut shapes = Vec::with_capacity(decoded.pending.len());
    for &(r, i) in &decoded.pending {
        let row = &rows[r];
        let type_info = row.columns()[i].type_info().clone();
        let raw = row.try_get_raw(i).map_err(|e| error(conn, e))?;
        let unreadable = |e: &dyn std::fmt::Display| DbError::Database {
            message: format!("cannot read a value of type {}: {e}", type_info.name()),
            sqlstate: "HY000".into(),
            driver_code: None,
            fields: BTreeMap::new(),
        };
        let bytes = raw.as_bytes().map_err(|e| unreadable(&e))?;
        if type_info.name() == "RECORD" {
            // An anonymous row (`select row(1, 'a')`) has no binary input: its fields are
            // printed one by one and put together as record_out does.
            let fields =
                decode::pg_record_fields(bytes).ok_or_else(|| unreadable(&"malformed record"))?;
            let mut parts = Vec::with_capacity(fields.len());
            for (oid, field) in fields {
                // text, varchar, bpchar, name, unknown (a literal), json: already text.
                if let (25 | 1043 | 1042 | 19 | 705 | 114, Some(bytes)) = (oid, field) {
                    if let Ok(text) = std::str::from_utf8(bytes) {
                        parts.push(Part::Text(text.to_owned()));
                        continue;
                    }
                }
                parts.push(match field {
                    None => Part::Null,
                    Some(bytes) => {
                        values.push(RawValue {
                            type_info: PgTypeInfo::with_oid(sqlx::postgres::types::Oid(oid)),
                            bytes: bytes.to_vec(),
                        });
                        Part::Printed(values.len() - 1)
                    }
                });
            }
            shapes.push(Shape::Record(parts));
        } else {
            values.push(RawValue {
                type_info,
                bytes: bytes.to_vec(),
            });
            shapes.push(Shape::Whole(values.len() - 1));
        }
    }
    if in_tx {
        (&mut *c)
            .execute("SAVEPOINT zeno_print")
            .await
            .map_err(|e| error(conn, e))?;
    }
    // For the error, should printing fail: the values are moved into the queries.
    let types: Vec<String> = values
        .iter()
        .map(|v| v.type_info.name().to_owned())
        .collect();
    let mut printed: Vec<String> = Vec::with_capacity(values.len());
    let mut failure = None;
    let mut values = values.into_iter().peekable();
    while values.peek().is_some() {
        let batch: Vec<RawValue> = values.by_ref().take(PRINT_BATCH).collect();
        let list: Vec<String> = (1..=batch.len())
            .map(|n| format!("format('%s', ${n})"))
            .collect();
        let sql = format!("SELECT {}", list.join(", "));
        let count = batch.len();
        let mut query = sqlx::query(&sql).persistent(false);
        for value in batch {
            query = query.bind(value);
        }
        let texts = match c.fetch_one(query).await {
            Ok(row) => (0..count)
                .map(|n| row.try_get::<String, _>(n))
                .collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        match texts {
            Ok(texts) => printed.extend(texts),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if in_tx {
        let end = if failure.is_some() {
            "ROLLBACK TO SAVEPOINT zeno_print; RELEASE SAVEPOINT zeno_print"
        } else {
            "RELEASE SAVEPOINT zeno_print"
        };
        (&mut *c).execute(end).await.map_err(|e| error(conn, e))?;
    }
    if let Some(e) = failure {
        let mut err = error(conn, e);
        if let DbError::Database { message, .. } = &mut err {
            *message = format!(
                "the query ran, but the server could not print its values of type {} as text: {message}",
                types.join(", ")
            );
        }
        return Err(err);
    }
    for (&(r, i), shape) in decoded.pending.iter().zip(shapes) {
        let text = match shape {
            // Each printed value belongs to one cell.
            Shape::Whole(n) => std::mem::take(&mut printed[n]),
            Shape::Record(parts) => decode::pg_record_text(parts.iter().map(|p| match p {
                Part::Null => None,
                Part::Text(text) => Some(text.as_str()),
                Part::Printed(n) => Some(printed[*n].as_str()),
            })),
        };
        decoded.cells[r][i] = Value::String(text);
    }
    Ok(())
}

/// How a printed cell is made: one printed value, or a record's fields.
enum Shape {
    Whole(usize),
    Record(Vec<Part>),
}

/// A field of a record: NULL, text as it came, or a value the server printed.
enum Part {
    Null,
    Text(String),
    Printed(usize),
}

async fn my_query(
    conn: &Connection,
    c: &mut MySqlConnection,
    sql: &str,
    params: &[Param],
) -> Result<QueryOutput, DbError> {
    let mut query = sqlx::query(sql);
    for value in params {
        query = match value {
            Param::Null => query.bind(None::<String>),
            Param::Bool(b) => query.bind(i64::from(*b)),
            Param::Int(i) => query.bind(*i),
            Param::UInt(u) => query.bind(*u),
            Param::Float(f) => query.bind(*f),
            Param::Text(s) | Param::Json(s) => query.bind(s.clone()),
            // Bytes as bytes, as pdo_mysql sends a binary string.
            Param::Binary(b) => query.bind(b.clone()),
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

/// Why a SQLite statement failed.
enum LiteFailure {
    /// The database's error, as PHP sees it.
    Db(DbError),
    /// The schema changed between the statement's prepare and its run (another connection's
    /// DDL): its rows may not match the columns sqlx read at the prepare.
    SchemaRace,
}

impl LiteFailure {
    fn into_error(self) -> DbError {
        match self {
            LiteFailure::Db(err) => err,
            LiteFailure::SchemaRace => DbError::Database {
                message: "the database schema changed while the statement ran (another connection \
                          altered a table it reads); if it writes, it may have been applied"
                    .into(),
                sqlstate: "HY000".into(),
                driver_code: Some("17".into()), // SQLITE_SCHEMA
                fields: BTreeMap::new(),
            },
        }
    }
}

/// SQLite statements are prepared for each run, never cached: SQLite re-prepares a cached
/// statement by itself after a schema change, but sqlx keeps the column list it read at the
/// first prepare, so after `drop table t; create table t (…)` by any process a cached
/// `select * from t` decoded the new rows with the old names — or read past their end and
/// panicked. Preparing costs a few microseconds in-process.
///
/// That leaves the moment between a statement's prepare and its first step, in which SQLite
/// may re-prepare it for DDL that committed meanwhile (a statement waiting on another
/// connection's write lock waits exactly there): the schema version is read before and
/// after, and a change, a row that does not fit its columns, or sqlx's connection thread
/// dying of one, is a [`LiteFailure::SchemaRace`] — run again for a read, an error otherwise.
async fn lite_query(
    conn: &Connection,
    c: &mut SqliteConnection,
    sql: &str,
    params: &[Param],
) -> Result<QueryOutput, LiteFailure> {
    let before = lite_schema_version(conn, c).await?;
    let mut query = sqlx::query(sql).persistent(false);
    for value in params {
        query = match value {
            Param::Null => query.bind(None::<String>),
            Param::Bool(b) => query.bind(i64::from(*b)),
            Param::Int(i) => query.bind(*i),
            // SQLite has no unsigned 64-bit integer; pdo_sqlite binds such a value as text.
            Param::UInt(u) => query.bind(u.to_string()),
            Param::Float(f) => query.bind(*f),
            Param::Text(s) | Param::Json(s) => query.bind(s.clone()),
            Param::Binary(b) => query.bind(b.clone()),
        };
    }
    let mut rows = Vec::new();
    let mut affected = 0;
    let mut last_insert_id = None;
    {
        let mut stream = c.fetch_many(query);
        loop {
            match stream.try_next().await {
                Ok(Some(Either::Left(done))) => {
                    affected += done.rows_affected();
                    if done.rows_affected() > 0 {
                        last_insert_id = Some(done.last_insert_rowid());
                    }
                }
                Ok(Some(Either::Right(row))) => rows.push(row),
                Ok(None) => break,
                Err(sqlx::Error::WorkerCrashed) => return Err(LiteFailure::SchemaRace),
                Err(e) => return Err(LiteFailure::Db(error(conn, e))),
            }
        }
    }
    if affected == 0 {
        affected = rows.len() as u64;
    }
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode::sqlite_rows(&rows)));
    // Only rows can be decoded with a stale column list; a statement that changes the schema
    // itself (Laravel's migrations run `create table` here) returns none, and needs no look.
    if !rows.is_empty() && lite_schema_version(conn, c).await? != before {
        return Err(LiteFailure::SchemaRace);
    }
    let Ok((rows, columns)) = decoded else {
        return Err(LiteFailure::SchemaRace);
    };
    Ok(QueryOutput {
        rows,
        columns,
        affected,
        last_insert_id,
    })
}

async fn lite_schema_version(
    conn: &Connection,
    c: &mut SqliteConnection,
) -> Result<i64, LiteFailure> {
    // Stepped to the end (fetch_all), not fetch_one: a statement left mid-result holds its
    // read transaction open, and under WAL the connection would go on reading that snapshot.
    match sqlx::query_scalar::<_, i64>("PRAGMA schema_version")
        .fetch_all(&mut *c)
        .await
    {
        Ok(versions) => Ok(versions.first().copied().unwrap_or_default()),
        Err(sqlx::Error::WorkerCrashed) => Err(LiteFailure::SchemaRace),
        Err(e) => Err(LiteFailure::Db(error(conn, e))),
    }
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
                    fields: db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .map(pg_fields)
                        .unwrap_or_default(),
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
                        fields: BTreeMap::new(),
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
                        fields: BTreeMap::new(),
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
            fields: BTreeMap::new(),
        },
    }
}

/// The fields of a PostgreSQL error beyond its message, by the names libpq gives them
/// (`detail`, `hint`, `schema`, `table`, `column`, `datatype`, `constraint`): pdo_pgsql puts
/// `DETAIL:` and `HINT:` lines in its message, and Laravel reads a unique violation's columns
/// from the detail.
fn pg_fields(e: &sqlx::postgres::PgDatabaseError) -> BTreeMap<&'static str, String> {
    [
        ("detail", e.detail()),
        ("hint", e.hint()),
        ("schema", e.schema()),
        ("table", e.table()),
        ("column", e.column()),
        ("datatype", e.data_type()),
        ("constraint", e.constraint()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v.to_owned())))
    .collect()
}
