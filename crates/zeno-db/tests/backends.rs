//! zeno-db against the real PostgreSQL, MariaDB and SQLite of this machine. The servers must
//! be running (`scripts/services.sh` starts them); these tests fail, not skip, without them.
//! `ZENO_TEST_POSTGRES` and `ZENO_TEST_MYSQL` override the URLs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zeno_db::{ConnectionConfig, Databases, DbError};

fn pg_url() -> String {
    std::env::var("ZENO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://zeno:zeno@127.0.0.1:5432/zeno_test".into())
}

fn my_url() -> String {
    std::env::var("ZENO_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://zeno:zeno@127.0.0.1:3306/zeno_test".into())
}

fn lite_url(tag: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("zeno-db-test-{}-{tag}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    format!("sqlite://{}", path.display())
}

fn dbs(url: &str) -> Databases {
    dbs_with(ConnectionConfig::new(url))
}

fn dbs_with(config: ConnectionConfig) -> Databases {
    let mut map = BTreeMap::new();
    map.insert("default".to_owned(), config);
    Databases::connect(map).expect("connect")
}

/// A table name unique to this test run.
fn table(tag: &str) -> String {
    format!("zt_{}_{}", tag, std::process::id())
}

async fn q(db: &Databases, req: &str, sql: &str, params: Value) -> Value {
    db.query(req, &json!({"sql": sql, "params": params}))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn x(db: &Databases, req: &str, sql: &str) {
    db.exec(req, &json!({"sql": sql}))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn postgres_types_match_pdo_pgsql() {
    let db = dbs(&pg_url());
    let t = table("pgtypes");
    x(&db, "", &format!("drop table if exists {t}")).await;
    x(
        &db,
        "",
        &format!(
            "create table {t} (id serial primary key, i int, b bigint, s smallint, f double precision, r real, n numeric(10,2),
             flag boolean, name text, v varchar(20), c char(3), d date, ts timestamp, tz timestamptz, tm time,
             j json, jb jsonb, u uuid, bin bytea, nothing text)"
        ),
    )
    .await;
    // Strings bind to int, numeric, date and timestamp columns as under pdo_pgsql.
    let inserted = q(
        &db,
        "",
        &format!(
            "insert into {t} (i, b, s, f, r, n, flag, name, v, c, d, ts, tz, tm, j, jb, u, bin, nothing)
             values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, decode(?, 'hex'), ?) returning id"
        ),
        json!(["42", 9007199254740993i64, 7, "1.5", 2.25, "12.50", true, "it's", "v", "abc", "2024-02-29",
               "2024-01-02 03:04:05.5", "2024-01-02 03:04:05+02", "13:14:15", "{\"a\": [1, 2]}", "{\"b\":1, \"a\":2}",
               "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00ff10", null]),
    )
    .await;
    assert_eq!(inserted["rows"][0]["id"], 1);
    assert_eq!(inserted["affected"], 1);
    let got = q(
        &db,
        "",
        &format!("select * from {t} where id = ?"),
        json!(["1"]),
    )
    .await;
    let row = &got["rows"][0];
    assert_eq!(row["i"], 42);
    assert_eq!(row["b"], 9007199254740993i64);
    assert_eq!(row["s"], 7);
    assert_eq!(row["f"], 1.5);
    assert_eq!(row["r"], 2.25);
    assert_eq!(row["n"], "12.50");
    assert_eq!(row["flag"], true);
    assert_eq!(row["name"], "it's");
    assert_eq!(row["c"], "abc");
    assert_eq!(row["d"], "2024-02-29");
    assert_eq!(row["ts"], "2024-01-02 03:04:05.5");
    assert_eq!(row["tz"], "2024-01-02 01:04:05+00");
    assert_eq!(row["tm"], "13:14:15");
    assert_eq!(row["j"], "{\"a\": [1, 2]}", "json keeps the text as stored");
    assert_eq!(
        row["jb"], "{\"a\": 2, \"b\": 1}",
        "jsonb as the server renders it"
    );
    assert_eq!(row["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(row["bin"], "AP8Q", "bytea as base64");
    assert_eq!(row["nothing"], Value::Null);
    let names: Vec<&str> = got["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(&names[..4], ["id", "i", "b", "s"], "columns in table order");
    let keys: Vec<&String> = row.as_object().expect("object").keys().collect();
    assert_eq!(keys[0], "id", "row keys in column order");
    let bin_col = got["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "bin")
        .expect("bin");
    assert_eq!(bin_col["binary"], true);
    // Literal ? inside strings and the jsonb ?? operator.
    let got = q(
        &db,
        "",
        &format!("select '?' as lit, jb ?? 'a' as has_a from {t} where i = ?"),
        json!([42]),
    )
    .await;
    assert_eq!(got["rows"][0], json!({"lit": "?", "has_a": true}));
    // Types the host does not decode come back as the server prints them, as libpq gives
    // them to pdo_pgsql — never null, never binary.
    let got = q(
        &db,
        "",
        "select array[1,2] as arr, array[1,2]::text as arr_text, interval '1 day' as iv",
        json!([]),
    )
    .await;
    assert_eq!(
        got["rows"][0],
        json!({"arr": "{1,2}", "arr_text": "{1,2}", "iv": "1 day"})
    );
    // Inside a transaction too, where printing runs under a savepoint: a value the server
    // cannot take back fails the query clearly, and the transaction goes on.
    db.begin("rp", &json!({})).await.expect("begin");
    let got = q(
        &db,
        "rp",
        "select '192.168.0.1'::inet as ip, row(1, 'a b', null::int) as r",
        json!([]),
    )
    .await;
    assert_eq!(
        got["rows"][0],
        json!({"ip": "192.168.0.1", "r": "(1,\"a b\",)"})
    );
    let err = db
        .query("rp", &json!({"sql": "select row(row(1)) as nested"}))
        .await
        .expect_err("a nested anonymous record has no binary input");
    assert!(err.to_string().contains("could not print"), "{err}");
    let got = q(&db, "rp", "select 1 as one", json!([])).await;
    assert_eq!(got["rows"][0]["one"], 1, "the transaction is not aborted");
    db.rollback("rp", &json!({})).await.expect("rollback");
    x(&db, "", &format!("drop table {t}")).await;
}

#[tokio::test]
async fn mysql_types_match_pdo_mysql() {
    let db = dbs(&my_url());
    let t = table("mytypes");
    x(&db, "", &format!("drop table if exists {t}")).await;
    x(
        &db,
        "",
        &format!(
            "create table {t} (id int auto_increment primary key, i int, b bigint unsigned, tiny tinyint(1), f double,
             dec_col decimal(10,2), name varchar(50), d date, dt datetime, ts timestamp null, j json, bin varbinary(8), nothing text)"
        ),
    )
    .await;
    let inserted = q(
        &db,
        "",
        &format!("insert into {t} (i, b, tiny, f, dec_col, name, d, dt, ts, j, bin, nothing) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, unhex(?), ?)"),
        json!(["42", 18446744073709551615u64, true, 1.5, "12.50", "it's \"quoted\"", "2024-02-29", "2024-01-02 03:04:05", "2024-01-02 03:04:05", "{\"a\": 1}", "00ff", null]),
    )
    .await;
    assert_eq!(inserted["affected"], 1);
    assert_eq!(inserted["last_insert_id"], 1);
    let got = q(
        &db,
        "",
        &format!("select * from {t} where id = ?"),
        json!([1]),
    )
    .await;
    let row = &got["rows"][0];
    assert_eq!(row["i"], 42);
    assert_eq!(
        row["b"], "18446744073709551615",
        "BIGINT UNSIGNED above PHP_INT_MAX is a string"
    );
    assert_eq!(row["tiny"], 1, "TINYINT(1) is an int, as PDO gives it");
    assert_eq!(row["f"], 1.5);
    assert_eq!(row["dec_col"], "12.50");
    assert_eq!(row["name"], "it's \"quoted\"");
    assert_eq!(row["d"], "2024-02-29");
    assert_eq!(row["dt"], "2024-01-02 03:04:05");
    assert_eq!(row["ts"], "2024-01-02 03:04:05");
    assert!(
        row["j"].as_str().expect("json text").contains("\"a\""),
        "{got}"
    );
    assert_eq!(
        row["bin"], "AP8=",
        "binary that is not UTF-8 travels as base64"
    );
    let bin_col = got["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "bin")
        .expect("bin");
    assert_eq!(bin_col["binary"], true);
    assert_eq!(row["nothing"], Value::Null);
    x(&db, "", &format!("drop table {t}")).await;
}

#[tokio::test]
async fn sqlite_types_follow_storage_classes() {
    let db = dbs(&lite_url("types"));
    x(
        &db,
        "",
        "create table t (id integer primary key, i int, f real, s text, b blob, n text)",
    )
    .await;
    let inserted = q(
        &db,
        "",
        "insert into t (i, f, s, b, n) values (?, ?, ?, x'00ff', ?)",
        json!([42, 1.5, "héllo", null]),
    )
    .await;
    assert_eq!(inserted["last_insert_id"], 1);
    let row = &q(&db, "", "select * from t", json!([])).await["rows"][0];
    assert_eq!(
        *row,
        json!({"id": 1, "i": 42, "f": 1.5, "s": "héllo", "b": "AP8=", "n": null})
    );
}

async fn unique_violation(url: &str, sqlstate: &str) {
    let db = dbs(url);
    let t = table(&format!("uniq{}", sqlstate));
    x(&db, "", &format!("drop table if exists {t}")).await;
    x(
        &db,
        "",
        &format!("create table {t} (email varchar(100) unique)"),
    )
    .await;
    q(
        &db,
        "",
        &format!("insert into {t} (email) values (?)"),
        json!(["a@x"]),
    )
    .await;
    let err = db
        .query(
            "",
            &json!({"sql": format!("insert into {t} (email) values (?)"), "params": ["a@x"]}),
        )
        .await
        .expect_err("duplicate");
    let DbError::Database {
        sqlstate: got,
        message,
        ..
    } = &err
    else {
        panic!("not a database error: {err:?}");
    };
    assert_eq!(got, sqlstate);
    assert!(
        message.to_lowercase().contains("unique") || message.contains("Duplicate"),
        "{message}"
    );
    assert_eq!(err.kind(), "db");
    let err = db
        .query("", &json!({"sql": "selec nonsense"}))
        .await
        .expect_err("syntax");
    let DbError::Database { sqlstate, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        sqlstate == "42601" || sqlstate == "42000" || sqlstate == "HY000",
        "{sqlstate}"
    );
    x(&db, "", &format!("drop table {t}")).await;
}

#[tokio::test]
async fn unique_violations_carry_sqlstate() {
    unique_violation(&pg_url(), "23505").await;
    unique_violation(&my_url(), "23000").await;
    unique_violation(&lite_url("uniq"), "23000").await;
}

#[tokio::test]
async fn hostile_strings_are_bound_never_spliced() {
    for url in [pg_url(), my_url(), lite_url("hostile")] {
        let db = dbs(&url);
        let t = table("hostile");
        x(&db, "", &format!("drop table if exists {t}")).await;
        x(&db, "", &format!("create table {t} (s text)")).await;
        let evil = [
            "'; drop table users; --",
            "\\' or 1=1 --",
            "?",
            "$1",
            "\u{0}nul",
            "😀 ünïcode",
            "\" ` \\",
        ];
        for s in evil {
            if s.contains('\u{0}') && url.starts_with("postgres") {
                continue; // PostgreSQL text cannot hold NUL, as with PDO.
            }
            q(
                &db,
                "",
                &format!("insert into {t} (s) values (?)"),
                json!([s]),
            )
            .await;
            let got = q(
                &db,
                "",
                &format!("select s from {t} where s = ?"),
                json!([s]),
            )
            .await;
            assert_eq!(got["rows"][0]["s"], s, "{url}");
        }
        x(&db, "", &format!("drop table {t}")).await;
    }
}

async fn transactions(url: &str) {
    let db = dbs(url);
    let t = table("tx");
    x(&db, "", &format!("drop table if exists {t}")).await;
    x(&db, "", &format!("create table {t} (n int)")).await;
    // Commit.
    db.begin("r1", &json!({})).await.expect("begin");
    q(
        &db,
        "r1",
        &format!("insert into {t} values (?)"),
        json!([1]),
    )
    .await;
    db.commit("r1", &json!({})).await.expect("commit");
    // Rollback.
    db.begin("r2", &json!({})).await.expect("begin");
    q(
        &db,
        "r2",
        &format!("insert into {t} values (?)"),
        json!([2]),
    )
    .await;
    db.rollback("r2", &json!({})).await.expect("rollback");
    // Savepoints through db_exec.
    db.begin("r3", &json!({})).await.expect("begin");
    q(
        &db,
        "r3",
        &format!("insert into {t} values (?)"),
        json!([3]),
    )
    .await;
    x(&db, "r3", "SAVEPOINT trans2").await;
    q(
        &db,
        "r3",
        &format!("insert into {t} values (?)"),
        json!([4]),
    )
    .await;
    x(&db, "r3", "ROLLBACK TO SAVEPOINT trans2").await;
    db.commit("r3", &json!({})).await.expect("commit");
    // A request that leaves its transaction open: rolled back when it ends.
    db.begin("r4", &json!({})).await.expect("begin");
    q(
        &db,
        "r4",
        &format!("insert into {t} values (?)"),
        json!([5]),
    )
    .await;
    let nested = db.begin("r4", &json!({})).await.expect_err("nested begin");
    assert_eq!(nested.kind(), "transaction");
    db.end_request("r4").await;
    for r in ["r1", "r2", "r3"] {
        db.end_request(r).await;
    }
    assert_eq!(db.open_requests().await, 0);
    let got = q(
        &db,
        "r5",
        &format!("select n from {t} order by n"),
        json!([]),
    )
    .await;
    assert_eq!(got["rows"], json!([{"n": 1}, {"n": 3}]), "{url}");
    assert!(
        db.commit("r5", &json!({})).await.is_err(),
        "commit without begin is an error"
    );
    db.end_request("r5").await;
    x(&db, "", &format!("drop table {t}")).await;
}

#[tokio::test]
async fn transactions_commit_roll_back_nest_and_never_leak() {
    transactions(&pg_url()).await;
    transactions(&my_url()).await;
    transactions(&lite_url("tx")).await;
}

#[tokio::test]
async fn an_exhausted_pool_and_a_down_database_are_distinct_clear_errors() {
    let mut config = ConnectionConfig::new(pg_url());
    config.max_connections = 1;
    // Long enough to open the one connection (SCRAM) on a loaded CI machine: 300 ms was not.
    config.acquire_timeout = Duration::from_millis(1500);
    let db = dbs_with(config);
    db.begin("holder", &json!({}))
        .await
        .expect("begin holds the only connection");
    let started = Instant::now();
    let err = db
        .query("other", &json!({"sql": "select 1"}))
        .await
        .expect_err("exhausted");
    assert_eq!(err.kind(), "pool_exhausted", "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    db.end_request("holder").await;
    assert_eq!(
        q(&db, "other", "select 1 as one", json!([])).await["rows"][0]["one"],
        1
    );

    let mut config = ConnectionConfig::new("postgres://zeno:zeno@127.0.0.1:1/zeno_test");
    config.acquire_timeout = Duration::from_millis(500);
    let down = dbs_with(config);
    let started = Instant::now();
    let err = down
        .query("r", &json!({"sql": "select 1"}))
        .await
        .expect_err("down");
    assert_eq!(err.kind(), "db_unavailable", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within the acquire timeout"
    );
}

#[tokio::test]
async fn reads_go_to_the_replica_unless_written_with_sticky_or_in_a_transaction() {
    // A second database stands in for the replica: the same table, different contents.
    let admin = dbs(&pg_url());
    let _ = admin
        .exec("", &json!({"sql": "create database zeno_replica_test"}))
        .await;
    let replica_url = pg_url()
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/zeno_replica_test"))
        .expect("url");
    let t = table("rw");
    for (url, who) in [(pg_url(), "primary"), (replica_url.clone(), "replica")] {
        let db = dbs(&url);
        x(&db, "", &format!("drop table if exists {t}")).await;
        x(&db, "", &format!("create table {t} (who text)")).await;
        q(
            &db,
            "",
            &format!("insert into {t} values (?)"),
            json!([who]),
        )
        .await;
    }
    // Counted from here: where each query of this test ran.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut config = ConnectionConfig::new(pg_url());
    config.read = vec![replica_url];
    config.sticky = true;
    let db = dbs_with(config);
    let roles: Vec<&str> = db.pool_stats().iter().map(|pool| pool.role).collect();
    assert_eq!(roles, ["primary", "replica"]);
    let read = format!("select who from {t}");
    assert_eq!(
        q(&db, "a", &read, json!([])).await["rows"][0]["who"],
        "replica"
    );
    // Explicit mode wins.
    let forced = db
        .query("a", &json!({"sql": read, "mode": "write"}))
        .await
        .expect("query");
    assert_eq!(forced["rows"][0]["who"], "primary");
    // With sticky, after a write the request reads from the primary; another request does not.
    q(
        &db,
        "b",
        &format!("update {t} set who = who where false"),
        json!([]),
    )
    .await;
    assert_eq!(
        q(&db, "b", &read, json!([])).await["rows"][0]["who"],
        "primary"
    );
    assert_eq!(
        q(&db, "c", &read, json!([])).await["rows"][0]["who"],
        "replica"
    );
    // In a transaction, everything goes to the primary.
    db.begin("d", &json!({})).await.expect("begin");
    assert_eq!(
        q(&db, "d", &read, json!([])).await["rows"][0]["who"],
        "primary"
    );
    assert_eq!(db.open_transactions().expect("not busy")["default"], 1);
    db.end_request("d").await;
    assert_eq!(db.open_transactions().expect("not busy")["default"], 0);
    let mut routed: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "zeno_db_routed_total")
        .filter_map(|(key, _, _, value)| match value {
            metrics_util::debugging::DebugValue::Counter(n) => key
                .key()
                .labels()
                .find(|label| label.key() == "target")
                .map(|label| (label.value().to_owned(), n)),
            _ => None,
        })
        .collect();
    routed.sort();
    assert_eq!(
        routed,
        [
            ("primary".to_owned(), 3),
            ("replica".to_owned(), 2),
            ("transaction".to_owned(), 1)
        ]
    );
    for r in ["a", "b", "c"] {
        db.end_request(r).await;
    }
    assert_eq!(
        db.open_requests().await,
        0,
        "sticky state is dropped when requests end"
    );
}

#[tokio::test]
async fn bad_calls_are_clear_errors() {
    let db = dbs(&lite_url("bad"));
    assert_eq!(
        db.query("", &json!({})).await.expect_err("no sql").kind(),
        "invalid_parameters"
    );
    assert_eq!(
        db.query("", &json!({"sql": "select 1", "connection": "nope"}))
            .await
            .expect_err("unknown")
            .kind(),
        "unknown_connection"
    );
    assert_eq!(
        db.query("", &json!({"sql": "select ?", "params": {"a": 1}}))
            .await
            .expect_err("named")
            .kind(),
        "invalid_parameters"
    );
    assert_eq!(
        db.query("", &json!({"sql": "select 1", "mode": "sideways"}))
            .await
            .expect_err("mode")
            .kind(),
        "invalid_parameters"
    );
    assert_eq!(
        db.begin("", &json!({}))
            .await
            .expect_err("no request")
            .kind(),
        "transaction"
    );
    let mut map = BTreeMap::new();
    map.insert("x".to_owned(), ConnectionConfig::new("oracle://nope"));
    assert!(matches!(Databases::connect(map), Err(DbError::Config(_))));
}

#[tokio::test]
async fn db_exec_runs_unprepared_multi_statement_sql() {
    for url in [pg_url(), my_url(), lite_url("exec")] {
        let db = dbs(&url);
        let t = table("exec");
        x(&db, "", &format!("drop table if exists {t}")).await;
        let done = db
            .exec("", &json!({"sql": format!("create table {t} (n int); insert into {t} values (1); insert into {t} values (2)")}))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(done["affected"].as_u64().is_some(), "{url}");
        if url.starts_with("mysql") {
            // Statements MySQL cannot prepare go through db_exec; session state such as a
            // table lock belongs on a pinned connection, inside a transaction.
            db.begin("r", &json!({})).await.expect("begin");
            x(&db, "r", &format!("LOCK TABLES {t} WRITE")).await;
            x(&db, "r", "UNLOCK TABLES").await;
            db.commit("r", &json!({})).await.expect("commit");
        }
        assert_eq!(
            q(
                &db,
                "",
                &format!("select count(*) as c from {t}"),
                json!([])
            )
            .await["rows"][0]["c"],
            2,
            "{url}"
        );
        x(&db, "", &format!("drop table {t}")).await;
        db.end_request("r").await;
    }
}

#[tokio::test]
async fn statement_timeout_stops_long_queries() {
    for (url, sql) in [
        (pg_url(), "select pg_sleep(3)"),
        (my_url(), "select sleep(3)"),
    ] {
        let mut config = ConnectionConfig::new(&url);
        config.statement_timeout = Duration::from_millis(300);
        let db = dbs_with(config);
        let started = Instant::now();
        let result = db.query("", &json!({"sql": sql})).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url}: the statement was stopped"
        );
        // MariaDB's max_statement_time ends SLEEP() early with a result of 1 rather than an
        // error; PostgreSQL cancels with 57014.
        if url.starts_with("postgres") {
            let err = result.expect_err("cancelled");
            let DbError::Database { sqlstate, .. } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(sqlstate, "57014");
        }
    }
}

/// Ends connection `id` from the server's side and waits until it is gone there.
async fn end_connection(admin: &Databases, url: &str, kill: &str, gone: &str, id: i64) {
    q(admin, "", kill, json!([id])).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while q(admin, "", gone, json!([id])).await["rows"][0]["n"].as_i64() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "{url}: the connection never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A pooled connection the server dropped while it sat idle ("MySQL server has gone away"
/// after `wait_timeout`, a PostgreSQL backend terminated by an admin) is noticed and replaced:
/// idle for over a second, it is tested before use and the next query succeeds; dropped
/// within a second of its last query (the host skips the test then, as PgBouncer does within
/// `server_check_delay`), one query fails with a clear error and the next gets a new
/// connection.
#[tokio::test]
async fn a_connection_the_server_killed_is_replaced_before_use() {
    for (url, id_sql, kill, gone) in [
        (
            my_url(),
            "select connection_id() as id",
            "kill ?",
            "select count(*) as n from information_schema.processlist where id = ?",
        ),
        (
            pg_url(),
            "select pg_backend_pid() as id",
            "select pg_terminate_backend(?::int)",
            "select count(*) as n from pg_stat_activity where pid = ?::int",
        ),
    ] {
        let mut config = ConnectionConfig::new(&url);
        config.max_connections = 1;
        let db = dbs_with(config);
        let admin = dbs(&url);
        // Idle past the check delay: tested, replaced, the query succeeds.
        let first = q(&db, "", id_sql, json!([])).await;
        let id = first["rows"][0]["id"].as_i64().expect("connection id");
        end_connection(&admin, &url, kill, gone, id).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = q(&db, "", id_sql, json!([])).await;
        let second = again["rows"][0]["id"].as_i64().expect("connection id");
        assert_ne!(second, id, "{url}: a new connection serves the query");

        // Killed right after its last query: one clean error, then a new connection.
        end_connection(&admin, &url, kill, gone, second).await;
        let err = db
            .query("", &json!({"sql": id_sql}))
            .await
            .expect_err("the killed connection was used untested");
        assert!(
            matches!(err.kind(), "db_unavailable" | "db"),
            "{url}: {err} ({})",
            err.kind()
        );
        let third = q(&db, "", id_sql, json!([])).await["rows"][0]["id"]
            .as_i64()
            .expect("connection id");
        assert_ne!(third, second, "{url}: the broken connection was not kept");
    }
}

/// The connections the host keeps between queries never starve a transaction or unprepared
/// SQL, which take theirs from sqlx's pool: with one connection, a query, then a transaction,
/// `db_exec` and a query again all run at once, not after the acquire timeout; under a mixed
/// concurrent load on two connections nothing fails.
#[tokio::test]
async fn kept_connections_never_starve_transactions() {
    for url in [pg_url(), my_url(), lite_url("kept")] {
        let mut config = ConnectionConfig::new(&url);
        config.max_connections = 1;
        config.acquire_timeout = Duration::from_secs(3);
        let db = dbs_with(config);
        q(&db, "a", "select 1 as one", json!([])).await;
        let started = Instant::now();
        db.begin("b", &json!({}))
            .await
            .unwrap_or_else(|e| panic!("{url}: begin: {e}"));
        q(&db, "b", "select 1 as one", json!([])).await;
        db.commit("b", &json!({}))
            .await
            .unwrap_or_else(|e| panic!("{url}: commit: {e}"));
        x(&db, "c", "select 1").await;
        q(&db, "d", "select 1 as one", json!([])).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url}: waited {:?}",
            started.elapsed()
        );

        let mut config = ConnectionConfig::new(&url);
        config.max_connections = 2;
        config.acquire_timeout = Duration::from_secs(10);
        let db = std::sync::Arc::new(dbs_with(config));
        let mut load = Vec::new();
        for i in 0..24 {
            let db = db.clone();
            load.push(tokio::spawn(async move {
                let req = format!("r{i}");
                for _ in 0..10 {
                    if i % 3 == 0 {
                        db.begin(&req, &json!({})).await?;
                        db.query(&req, &json!({"sql": "select 1 as one"})).await?;
                        db.commit(&req, &json!({})).await?;
                    } else if i % 3 == 1 {
                        db.exec(&req, &json!({"sql": "select 1"})).await?;
                    } else {
                        db.query(&req, &json!({"sql": "select 1 as one"})).await?;
                    }
                }
                db.end_request(&req).await;
                Ok::<_, DbError>(())
            }));
        }
        let started = Instant::now();
        for task in load {
            task.await
                .expect("task")
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{url}: the load took {:?}",
            started.elapsed()
        );
    }
}

/// A cached statement that meets a changed schema inside a transaction: PostgreSQL has already
/// aborted the transaction, so the error stands (run again, it would leave it half done) —
/// and the stale statement is gone, so the application's retry in a new transaction works.
#[tokio::test]
async fn a_stale_statement_in_a_transaction_fails_once_and_the_retry_works() {
    let t = table("stale_tx");
    let mut config = ConnectionConfig::new(pg_url());
    config.max_connections = 1; // one connection: the one whose statement is cached
    let db = dbs_with(config);
    let other = dbs(&pg_url());
    x(&db, "", &format!("drop table if exists {t}")).await;
    x(&db, "", &format!("create table {t} (a int)")).await;
    x(&db, "", &format!("insert into {t} values (1)")).await;
    let star = format!("select * from {t}");
    assert_eq!(
        q(&db, "", &star, json!([])).await["rows"][0],
        json!({"a": 1})
    );
    // Another connection (a migration elsewhere) changes the table.
    x(
        &other,
        "",
        &format!("alter table {t} add column b int default 2"),
    )
    .await;

    db.begin("stale", &json!({})).await.expect("begin");
    let err = db
        .query("stale", &json!({"sql": star}))
        .await
        .expect_err("inside a transaction the stale plan's error stands");
    let DbError::Database { sqlstate, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(sqlstate, "0A000", "{err}");
    db.rollback("stale", &json!({})).await.expect("rollback");

    db.begin("retry", &json!({})).await.expect("begin");
    let got = q(&db, "retry", &star, json!([])).await;
    assert_eq!(
        got["rows"][0],
        json!({"a": 1, "b": 2}),
        "the retry sees the new column"
    );
    db.commit("retry", &json!({})).await.expect("commit");
    x(&db, "", &format!("drop table {t}")).await;
}
