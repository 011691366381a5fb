//! A Rust program that embeds the Zeno host: it boots PHP workers in-process, registers its
//! own host function `greet`, dispatches a task carrying scope, runs a batch of tasks at once
//! on the task pool, and prints PHP's answers.
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
    anyhow::ensure!(
        answer["greeting"] == "Hello, Ada, from Rust" && answer["user_id"] == 42,
        "unexpected answer from PHP: {answer}"
    );

    // A batch at once on the task pool (warm workers of their own), answers in order.
    let mut scope = serde_json::Map::new();
    scope.insert("user_id".into(), json!(7));
    let batch = host
        .run_tasks(
            vec![json!({"name": "Grace"}), json!({"name": "Linus"})],
            scope,
            None,
        )
        .await;
    let mut greetings = Vec::new();
    for result in batch {
        let body = result.context("a task of the batch")?.body.into_bytes()?;
        let answer: Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(answer["user_id"] == 7, "the batch's scope: {answer}");
        greetings.push(answer["greeting"].clone());
    }
    println!("batch: {greetings:?}");
    host.shutdown().await;
    anyhow::ensure!(
        greetings
            == [
                json!("Hello, Grace, from Rust"),
                json!("Hello, Linus, from Rust")
            ],
        "unexpected batch answers: {greetings:?}"
    );
    Ok(())
}
