//! A Rust program that embeds the Zeno host: it boots PHP workers in-process, registers its
//! own host function `greet`, dispatches a task carrying scope, and prints PHP's answer.
//!
//! Run it with `cargo run -p zeno-example-embed` (PHP's `php-cgi` must be installed).

use std::path::Path;

use anyhow::Context as _;
use serde_json::{json, Value};
use zeno_host::{CallError, Dispatch, HostBuilder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handler = Path::new(env!("CARGO_MANIFEST_DIR")).join("handler.php");
    let host = HostBuilder::new(handler)
        .workers(2)
        .function("greet", |_ctx, params: Value| async move {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| CallError::invalid("greet needs a string `name`"))?;
            Ok(json!(format!("Hello, {name}, from Rust")))
        })
        .build()
        .await
        .context("starting the PHP workers")?;

    let response = host
        .dispatch(Dispatch::task(json!({"name": "Ada"})).scope("user_id", 42))
        .await
        .context("dispatching the task")?;
    let body = response
        .body
        .into_bytes()
        .context("decoding PHP's answer")?;
    let answer: Value = serde_json::from_slice(&body).context("PHP's answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&answer)?);

    host.shutdown().await;
    anyhow::ensure!(
        answer["greeting"] == "Hello, Ada, from Rust" && answer["user_id"] == 42,
        "unexpected answer from PHP: {answer}"
    );
    Ok(())
}
