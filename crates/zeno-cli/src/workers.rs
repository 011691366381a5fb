//! `zeno workers`: asks a running server's admin listener for `/workers` and prints a table.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;

pub fn print(admin: &str, json: bool) -> anyhow::Result<()> {
    let body = get(admin, "/workers")?;
    let value: Value =
        serde_json::from_str(&body).context("the admin listener sent invalid JSON")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print_table(&value["workers"]);
    if value["tasks"]
        .as_array()
        .is_some_and(|tasks| !tasks.is_empty())
    {
        println!("task workers:");
        print_table(&value["tasks"]);
    }
    if let Some(pools) = value["databases"].as_array().filter(|p| !p.is_empty()) {
        println!("database pools:");
        println!(
            "{:<16}  {:<8}  {:>6}  {:>6}  {:>6}  {:>12}",
            "DB", "ROLE", "IN USE", "IDLE", "MAX", "TRANSACTIONS"
        );
        for pool in pools {
            let db = pool["db"].as_str().unwrap_or("?");
            let open = pool["open"].as_u64().unwrap_or(0);
            let idle = pool["idle"].as_u64().unwrap_or(0);
            let transactions = if pool["role"] == "primary" {
                value["transactions"][db]
                    .as_u64()
                    .map_or("-".to_owned(), |n| n.to_string())
            } else {
                String::new()
            };
            println!(
                "{:<16}  {:<8}  {:>6}  {:>6}  {:>6}  {:>12}",
                db,
                pool["role"].as_str().unwrap_or("?"),
                open.saturating_sub(idle),
                idle,
                pool["max"].as_u64().unwrap_or(0),
                transactions,
            );
        }
    }
    println!(
        "{} live worker(s){}",
        value["live"].as_u64().unwrap_or(0),
        if value["draining"] == true {
            ", draining"
        } else {
            ""
        }
    );
    Ok(())
}

fn print_table(workers: &Value) {
    println!(
        "{:>4}  {:>8}  {:<9}  {:>9}  {:>10}  {:>9}",
        "SLOT", "PID", "STATE", "REQUESTS", "RSS", "AGE"
    );
    for worker in workers.as_array().map(Vec::as_slice).unwrap_or_default() {
        let pid = worker["pid"]
            .as_u64()
            .map_or("-".to_owned(), |p| p.to_string());
        let rss = worker["rss_bytes"].as_u64().map_or("-".to_owned(), |b| {
            format!("{:.1} MiB", b as f64 / 1_048_576.0)
        });
        println!(
            "{:>4}  {:>8}  {:<9}  {:>9}  {:>10}  {:>8.0}s",
            worker["slot"].as_u64().unwrap_or(0),
            pid,
            worker["state"].as_str().unwrap_or("?"),
            worker["requests"].as_u64().unwrap_or(0),
            rss,
            worker["age_seconds"].as_f64().unwrap_or(0.0),
        );
    }
}

/// A minimal HTTP/1.0 GET: enough for the local admin listener, no client stack needed.
fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| {
        format!("could not reach the admin listener at {addr} (is zeno serve running with --admin {addr}?)")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("malformed response from {addr}");
    };
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!(
            "{addr}{path} answered: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}
