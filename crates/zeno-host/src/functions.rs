//! The host-function registry: the names PHP may `\Zeno::call`, each bound to an async Rust
//! handler. Anything not registered is refused with a clear error.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};

/// What a host function knows about the call it serves.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The id of the request in flight (empty for calls made while a worker boots).
    pub request_id: String,
    /// The name the function was called by.
    pub function: String,
    /// The scope of the request in flight (`$_ZENO`), empty for calls made while a worker
    /// boots.
    pub scope: serde_json::Map<String, Value>,
    /// The process id of the calling worker.
    pub pid: u32,
}

/// A host function's failure, sent back to PHP as `success: false`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    /// A short machine-readable kind (`invalid_parameters`, `db`, …), `error_info.kind` in PHP.
    pub kind: String,
    /// The message for people, `error` in PHP.
    pub message: String,
    /// More fields for `error_info` (merged next to `kind`).
    pub info: Option<Value>,
}

impl CallError {
    /// An error of `kind` with a message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        CallError {
            kind: kind.into(),
            message: message.into(),
            info: None,
        }
    }

    /// The parameters were missing or of the wrong type.
    pub fn invalid(message: impl Into<String>) -> Self {
        CallError::new("invalid_parameters", message)
    }

    /// The `error_info` object PHP receives.
    pub fn error_info(&self) -> Value {
        let mut info = match &self.info {
            Some(Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        info.insert("kind".into(), Value::String(self.kind.clone()));
        Value::Object(info)
    }
}

/// The future a host function returns.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send>>;

type Handler = Arc<dyn Fn(CallContext, Value) -> CallFuture + Send + Sync>;

/// Maps function names to handlers. Built once by the [`crate::HostBuilder`], read-only after.
#[derive(Clone, Default)]
pub struct Registry {
    functions: HashMap<String, Handler>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.functions.keys().collect();
        names.sort();
        f.debug_struct("Registry")
            .field("functions", &names)
            .finish()
    }
}

impl Registry {
    /// A registry holding the built-in functions (`log`).
    pub fn with_builtins() -> Self {
        let mut registry = Registry::default();
        registry.register(
            "log",
            |ctx, params| async move { builtin_log(&ctx, &params) },
        );
        registry
    }

    /// Registers (or replaces) a function.
    pub fn register<F, Fut>(&mut self, name: impl Into<String>, handler: F)
    where
        F: Fn(CallContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, CallError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx, params| Box::pin(handler(ctx, params)));
        self.functions.insert(name.into(), handler);
    }

    /// Registers (or replaces) a function whose parameters and result are Rust types: the
    /// parameters PHP sends are deserialized into `P` (a mismatch answers PHP with
    /// `kind: invalid_parameters` and serde's message, without calling `handler`), and the
    /// result is serialized from `R`.
    ///
    /// ```
    /// # let mut registry = zeno_host::Registry::default();
    /// #[derive(serde::Deserialize)]
    /// struct Add { amount: f64 }
    /// registry.register_typed("cart_add", |_ctx, add: Add| async move {
    ///     Ok::<_, zeno_host::CallError>(add.amount * 2.0)
    /// });
    /// ```
    pub fn register_typed<P, R, F, Fut>(&mut self, name: impl Into<String>, handler: F)
    where
        P: serde::de::DeserializeOwned + Send + 'static,
        R: serde::Serialize + 'static,
        F: Fn(CallContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, CallError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.register(name, move |ctx, params: Value| {
            let handler = handler.clone();
            async move {
                let params: P = serde_json::from_value(params)
                    .map_err(|err| CallError::invalid(format!("{}: {err}", ctx.function)))?;
                let result = handler(ctx, params).await?;
                serde_json::to_value(result).map_err(|err| {
                    CallError::new(
                        "internal",
                        format!("the result could not be encoded: {err}"),
                    )
                })
            }
        });
    }

    /// Whether a function of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Runs a function by name.
    pub async fn call(&self, ctx: CallContext, params: Value) -> Result<Value, CallError> {
        match self.functions.get(&ctx.function) {
            Some(handler) => handler(ctx, params).await,
            None => Err(CallError::new(
                "unknown_function",
                format!("no host function named {:?} is registered", ctx.function),
            )),
        }
    }
}

fn builtin_log(ctx: &CallContext, params: &Value) -> Result<Value, CallError> {
    let message = params
        .get("message")
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::invalid("log needs a string `message`"))?;
    let level = params
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("info");
    let context = params.get("context").cloned().unwrap_or(Value::Null);
    let request = ctx.request_id.as_str();
    match level {
        "debug" => tracing::debug!(target: "php", request, %context, "{message}"),
        "info" | "notice" => tracing::info!(target: "php", request, %context, "{message}"),
        "warning" => tracing::warn!(target: "php", request, %context, "{message}"),
        _ => tracing::error!(target: "php", request, level, %context, "{message}"),
    }
    Ok(json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(function: &str) -> CallContext {
        CallContext {
            request_id: "r-1".into(),
            function: function.into(),
            scope: serde_json::Map::new(),
            pid: 1,
        }
    }

    #[tokio::test]
    async fn typed_functions_get_rust_types_and_refuse_bad_parameters() {
        #[derive(serde::Deserialize)]
        struct Add {
            amount: f64,
        }
        #[derive(serde::Serialize)]
        struct Total {
            total: f64,
            request: String,
        }
        let mut registry = Registry::default();
        registry.register_typed("add", |ctx: CallContext, add: Add| async move {
            Ok(Total {
                total: add.amount + 1.0,
                request: ctx.request_id,
            })
        });
        let total = registry
            .call(ctx("add"), json!({"amount": 2.5}))
            .await
            .expect("typed call");
        assert_eq!(total, json!({"total": 3.5, "request": "r-1"}));
        let err = registry
            .call(ctx("add"), json!({"amount": "lots"}))
            .await
            .expect_err("refused");
        assert_eq!(err.kind, "invalid_parameters");
        assert!(err.message.contains("add:"), "{}", err.message);
    }

    #[tokio::test]
    async fn unknown_function_is_a_clear_error() {
        let registry = Registry::with_builtins();
        let err = registry
            .call(ctx("nope"), json!({}))
            .await
            .expect_err("must fail");
        assert_eq!(err.kind, "unknown_function");
        assert!(err.message.contains("nope"));
        assert_eq!(err.error_info()["kind"], "unknown_function");
    }

    #[tokio::test]
    async fn registered_function_gets_context_and_parameters() {
        let mut registry = Registry::with_builtins();
        registry.register("greet", |ctx, params| async move {
            Ok(json!(format!(
                "{} {}",
                ctx.request_id,
                params["name"].as_str().unwrap_or("?")
            )))
        });
        let value = registry
            .call(ctx("greet"), json!({"name": "ada"}))
            .await
            .expect("call");
        assert_eq!(value, json!("r-1 ada"));
    }

    #[tokio::test]
    async fn builtin_log_validates_parameters() {
        let registry = Registry::with_builtins();
        assert_eq!(
            registry
                .call(ctx("log"), json!({"message": "hi"}))
                .await
                .expect("log"),
            json!(true)
        );
        let err = registry
            .call(ctx("log"), json!({"level": "info"}))
            .await
            .expect_err("invalid");
        assert_eq!(err.kind, "invalid_parameters");
    }
}
