//! TLS to the database, against servers that accept only TLS and one that has none, with a CA
//! made for the test (`scripts/tls-services.sh`, which `./dev test` runs; these tests fail, not
//! skip, without it): full verification works, a wrong CA, a wrong host name and a server
//! without TLS under `require` each fail with an error that says so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use zeno_db::{ConnectionConfig, Databases, DbError};

/// Where tls-services.sh keeps the CA (`ZENO_TLS_DIR`, or ~/.cache/zeno/tls).
fn tls_dir() -> PathBuf {
    let dir = std::env::var_os("ZENO_TLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                });
            cache.join("zeno/tls")
        });
    assert!(
        dir.join("ca.pem").is_file(),
        "no test CA in {}: run scripts/tls-services.sh",
        dir.display()
    );
    dir
}

fn ca() -> String {
    tls_dir().join("ca.pem").display().to_string()
}

fn other_ca() -> String {
    tls_dir().join("other-ca.pem").display().to_string()
}

fn db(url: &str) -> Databases {
    let mut config = ConnectionConfig::new(url);
    config.acquire_timeout = Duration::from_secs(3);
    let mut map = BTreeMap::new();
    map.insert("default".to_owned(), config);
    Databases::connect(map).expect("the URL parses")
}

async fn one(url: &str, sql: &str) -> Result<serde_json::Value, DbError> {
    db(url)
        .query("", &json!({"sql": sql}))
        .await
        .map(|data| data["rows"][0].clone())
}

const PG_TLS: &str = "postgres://zeno:zeno@localhost:5433/zeno_test";
const PG_TLS_BY_IP: &str = "postgres://zeno:zeno@127.0.0.1:5433/zeno_test";
const PG_PLAIN: &str = "postgres://zeno:zeno@127.0.0.1:5434/zeno_test";
const MY_TLS: &str = "mysql://zeno:zeno@localhost:3307/zeno_test";
const MY_TLS_BY_IP: &str = "mysql://zeno:zeno@127.0.0.1:3307/zeno_test";
const MY_PLAIN: &str = "mysql://zeno:zeno@127.0.0.1:3306/zeno_test";

const PG_SSL: &str = "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()";

fn unavailable_saying(err: &DbError, words: &[&str]) {
    eprintln!("error: {err}");
    assert_eq!(err.kind(), "db_unavailable", "{err}");
    let text = err.to_string().to_lowercase();
    assert!(
        words.iter().any(|w| text.contains(w)),
        "the error should say why ({words:?}): {err}"
    );
}

#[tokio::test]
async fn postgres_verify_full_verify_ca_and_require() {
    let row = one(
        &format!("{PG_TLS}?sslmode=verify-full&sslrootcert={}", ca()),
        PG_SSL,
    )
    .await
    .expect("verify-full with the right CA and name");
    assert_eq!(row["ssl"], true, "{row}");
    assert!(
        row["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLS")),
        "{row}"
    );
    // verify-ca checks the chain, not the name.
    let row = one(
        &format!("{PG_TLS_BY_IP}?sslmode=verify-ca&sslrootcert={}", ca()),
        PG_SSL,
    )
    .await
    .expect("verify-ca by address");
    assert_eq!(row["ssl"], true);
    // require encrypts without verifying; prefer takes TLS where the server has it.
    for mode in ["require", "prefer"] {
        let row = one(&format!("{PG_TLS_BY_IP}?sslmode={mode}"), PG_SSL)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(row["ssl"], true, "{mode}");
    }
}

#[tokio::test]
async fn postgres_wrong_ca_wrong_name_and_no_tls_fail_clearly() {
    let err = one(
        &format!("{PG_TLS}?sslmode=verify-full&sslrootcert={}", other_ca()),
        "select 1",
    )
    .await
    .expect_err("a certificate from another CA");
    unavailable_saying(&err, &["certificate", "tls", "issuer"]);
    let err = one(
        &format!("{PG_TLS_BY_IP}?sslmode=verify-full&sslrootcert={}", ca()),
        "select 1",
    )
    .await
    .expect_err("the certificate names localhost, not 127.0.0.1");
    unavailable_saying(&err, &["certificate", "name", "tls"]);
    let err = one(&format!("{PG_PLAIN}?sslmode=require"), "select 1")
        .await
        .expect_err("require against a server without TLS");
    unavailable_saying(&err, &["tls", "ssl"]);
    let err = one(&format!("{PG_TLS_BY_IP}?sslmode=disable"), "select 1")
        .await
        .expect_err("a TLS-only server refuses plain connections");
    assert!(err.to_string().contains("no encryption"), "{err}");
    // prefer falls back to plain where the server has no TLS.
    let row = one(&format!("{PG_PLAIN}?sslmode=prefer"), "select 1 as one")
        .await
        .expect("prefer");
    assert_eq!(row["one"], 1);
}

#[tokio::test]
async fn mariadb_verify_identity_verify_ca_and_required() {
    const SSL: &str = "show status like 'Ssl_version'";
    let row = one(
        &format!("{MY_TLS}?ssl-mode=verify_identity&ssl-ca={}", ca()),
        SSL,
    )
    .await
    .expect("verify_identity with the right CA and name");
    assert!(
        row["Value"].as_str().is_some_and(|v| v.starts_with("TLS")),
        "{row}"
    );
    let row = one(
        &format!("{MY_TLS_BY_IP}?ssl-mode=verify_ca&ssl-ca={}", ca()),
        SSL,
    )
    .await
    .expect("verify_ca by address");
    assert!(
        row["Value"].as_str().is_some_and(|v| v.starts_with("TLS")),
        "{row}"
    );
    let row = one(&format!("{MY_TLS_BY_IP}?ssl-mode=required"), SSL)
        .await
        .expect("required");
    assert!(
        row["Value"].as_str().is_some_and(|v| v.starts_with("TLS")),
        "{row}"
    );
}

#[tokio::test]
async fn mariadb_wrong_ca_wrong_name_and_no_tls_fail_clearly() {
    let err = one(
        &format!("{MY_TLS}?ssl-mode=verify_identity&ssl-ca={}", other_ca()),
        "select 1",
    )
    .await
    .expect_err("a certificate from another CA");
    unavailable_saying(&err, &["certificate", "tls", "issuer"]);
    let err = one(
        &format!("{MY_TLS_BY_IP}?ssl-mode=verify_identity&ssl-ca={}", ca()),
        "select 1",
    )
    .await
    .expect_err("the certificate names localhost, not 127.0.0.1");
    unavailable_saying(&err, &["certificate", "name", "tls"]);
    let err = one(&format!("{MY_PLAIN}?ssl-mode=required"), "select 1")
        .await
        .expect_err("required against a server without TLS");
    unavailable_saying(&err, &["tls", "ssl"]);
    let err = one(&format!("{MY_TLS_BY_IP}?ssl-mode=disabled"), "select 1")
        .await
        .expect_err("a TLS-only server refuses plain connections");
    assert!(
        err.to_string().to_lowercase().contains("secure transport")
            || err.to_string().contains("denied"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_client_certificates() {
    let dir = tls_dir();
    let url = format!(
        "postgres://zeno_cert@localhost:5433/zeno_test?sslmode=verify-full&sslrootcert={}",
        ca()
    );
    let row = one(
        &format!(
            "{url}&sslcert={}&sslkey={}",
            dir.join("client.pem").display(),
            dir.join("client.key").display()
        ),
        "select current_user as who",
    )
    .await
    .expect("the user whose certificate it is logs in with it");
    assert_eq!(row["who"], "zeno_cert");
    let err = one(&url, "select 1")
        .await
        .expect_err("without a client certificate");
    assert!(
        err.to_string()
            .contains("requires a valid client certificate"),
        "{err}"
    );
}
