//! The typed messages of protocol v1. Field names are a contract (see `docs/protocol.md`):
//! fields may be added, none renamed.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// HTTP headers as they travel on the wire: lower-case name to every value, in order.
pub type HeaderMap = BTreeMap<String, Vec<String>>;

/// A message from the host to a worker (written to the worker's stdin).
// Messages live only between construction and serialization; boxing would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Work for the worker: an HTTP request or a task.
    Request(Request),
    /// The answer to a `host_call` the worker made.
    HostResult(HostResult),
    /// Finish the current request, then exit 0.
    Stop,
    /// The `chunk` of a streamed response was taken: send the next one. Sent only once the
    /// client's side has room, so a slow client slows PHP down.
    Ack(StreamAck),
    /// The client of a streamed response went away: stop producing (as PHP-FPM ends a
    /// script at its next output when the client is gone).
    Abort(StreamAck),
}

/// Names the request whose stream an [`HostMessage::Ack`] or [`HostMessage::Abort`] is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAck {
    /// The `id` of the request.
    pub id: String,
}

/// A message from a worker to the host (read from the worker's stdout).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// Sent once, after the worker booted, before any request.
    Ready(Ready),
    /// The worker asks the host to run a registered host function and blocks for the result.
    HostCall(HostCall),
    /// The answer to the request in flight.
    Response(Response),
    /// A log record for the host's log.
    Log(Log),
    /// The worker finished the after-response work of a request whose response said
    /// `terminating` (Laravel's `terminate()`, `Zeno::defer` callbacks).
    Done(Done),
    /// A part of a streamed response's body: the line is followed by exactly `len` raw bytes
    /// (no JSON, no base64). The codec reads both and yields [`crate::Frame::Chunk`].
    Chunk(ChunkHeader),
    /// The end of a streamed response's body.
    End(End),
}

/// The line before a chunk's raw bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkHeader {
    /// The `id` of the request.
    pub id: String,
    /// How many raw bytes follow the line.
    pub len: usize,
}

/// The end of a streamed body; like a `response`, it may say the worker goes on with
/// after-response work (`terminating`, then `done`) or exits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// The `id` of the request.
    pub id: String,
    /// After-response work follows, then `done`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    /// The worker exits after this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exiting: bool,
}

/// The end of a request's after-response work: the worker is free again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// The `id` of the request.
    pub id: String,
    /// The worker will exit now (a fatal error in the after-response work).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exiting: bool,
}

/// The worker's handshake: who it is and which protocol it speaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Protocol version the worker speaks.
    pub protocol: u32,
    /// The worker's process id (as PHP sees it).
    pub pid: u32,
    /// PHP's version string.
    #[serde(default)]
    pub php: String,
    /// What the worker runs: `handler`, `laravel`, …
    #[serde(default)]
    pub app: String,
}

/// What a request carries: an HTTP exchange or a task for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// An HTTP request; `http` is set.
    Http,
    /// Work dispatched by the host or an embedder; `task` is set.
    Task,
}

/// One unit of work for a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per host; host calls and the response refer to it.
    pub id: String,
    /// Which of `http` / `task` is set.
    pub kind: RequestKind,
    /// The HTTP request, for `kind: http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// The task's payload, for `kind: task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Value>,
    /// Per-request context merged by the host; PHP sees it as `$_ZENO`.
    #[serde(rename = "_zeno_scope", default)]
    pub scope: Map<String, Value>,
}

/// An HTTP request as PHP needs it to fill its superglobals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target as the client sent it: path and query.
    pub uri: String,
    /// The path part of `uri`, still percent-encoded.
    pub path: String,
    /// The query string without `?`, empty when there is none.
    pub query: String,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The client's address, `ip:port`.
    pub remote_addr: String,
    /// The listener's address, `ip:port`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_addr: String,
    /// Request headers, names in lower case.
    #[serde(default)]
    pub headers: HeaderMap,
    /// The raw body; empty for a multipart form, whose parts arrive as `fields` and `uploads`.
    #[serde(flatten)]
    pub body: Body,
    /// Non-file parts of a `multipart/form-data` body, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FormField>,
    /// File parts of a `multipart/form-data` body, stored by the host in temp files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uploads: Vec<Upload>,
    /// The path the app is mounted under (`/app`) when an embedding app nests it; PHP's
    /// `SCRIPT_NAME` and `PHP_SELF` start with it and `PATH_INFO` is the rest, as under
    /// PHP-FPM for an app in a sub-path. Empty at the root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub script_prefix: String,
}

/// A non-file part of a multipart form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    /// The part's field name, brackets included (`tags[]`).
    pub name: String,
    /// The part's value.
    pub value: String,
}

/// An uploaded file, written by the host to a temp file that lives until the worker is done
/// with the request (after-response work included), then is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The form field name, brackets included.
    pub field: String,
    /// The file name the client sent.
    pub name: String,
    /// The content type the client sent.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the host stored the content.
    pub tmp_name: String,
    /// PHP's `UPLOAD_ERR_*` code; 0 means the file arrived whole.
    #[serde(default)]
    pub error: u8,
}

/// A body on the wire: UTF-8 text travels as `body`, anything else base64-encoded as
/// `body_b64`. At most one of the two is set; neither means empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// The body, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body, base64-encoded, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_b64: Option<String>,
}

/// A `body_b64` that is not valid base64.
#[derive(Debug, thiserror::Error)]
#[error("body_b64 is not valid base64")]
pub struct BodyError(#[from] base64::DecodeError);

impl Body {
    /// Chooses `body` for UTF-8 bytes and `body_b64` for anything else.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            return Body::default();
        }
        match String::from_utf8(bytes) {
            Ok(text) => Body {
                body: Some(text),
                body_b64: None,
            },
            Err(err) => Body {
                body: None,
                body_b64: Some(B64.encode(err.as_bytes())),
            },
        }
    }

    /// The body's bytes, whichever field carried them.
    pub fn into_bytes(self) -> Result<Vec<u8>, BodyError> {
        match (self.body, self.body_b64) {
            (_, Some(b64)) => Ok(B64.decode(b64)?),
            (Some(text), None) => Ok(text.into_bytes()),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// A worker's request to run a host function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCall {
    /// Unique within the worker; the `host_result` carries it back.
    pub id: String,
    /// The id of the request in flight the call belongs to.
    #[serde(default)]
    pub request: String,
    /// The registered function's name, e.g. `db_query`.
    pub function: String,
    /// The function's arguments.
    #[serde(default)]
    pub parameters: Value,
}

/// The answer to a [`HostCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostResult {
    /// The `id` of the host call answered.
    pub id: String,
    /// Whether the function succeeded.
    pub success: bool,
    /// The function's result, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// A message for people, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Machine-readable details of the failure (`kind`, and e.g. `sqlstate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<Value>,
}

impl HostResult {
    /// A successful result carrying `data`.
    pub fn ok(id: impl Into<String>, data: Value) -> Self {
        HostResult {
            id: id.into(),
            success: true,
            data: Some(data),
            error: None,
            error_info: None,
        }
    }

    /// A failed result with a message and an error kind (`unknown_function`, `too_large`, …).
    pub fn err(id: impl Into<String>, kind: &str, error: impl Into<String>) -> Self {
        HostResult {
            id: id.into(),
            success: false,
            data: None,
            error: Some(error.into()),
            error_info: Some(serde_json::json!({ "kind": kind })),
        }
    }
}

/// The worker's answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The `id` of the request answered.
    pub id: String,
    /// HTTP status (for tasks, 200 means the task succeeded).
    pub status: u16,
    /// Response headers; a name may carry several values (`set-cookie`).
    #[serde(default)]
    pub headers: HeaderMap,
    /// The response body.
    #[serde(flatten)]
    pub body: Body,
    /// The worker will exit after this response (a handler called `exit`, or a fatal error);
    /// the host must not send it more work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exiting: bool,
    /// The worker goes on with after-response work for this request and sends `done` when
    /// it is finished: the client gets the response now, the worker stays busy until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    /// The body follows in `chunk`s, then `end`; `body`/`body_b64` hold its first part, if
    /// any. The host sends status and headers to the client at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// A log record from PHP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// PSR-3 level: `debug`, `info`, `notice`, `warning`, `error`, `critical`, `alert`, `emergency`.
    #[serde(default = "default_level")]
    pub level: String,
    /// The message.
    #[serde(default)]
    pub message: String,
    /// Structured context.
    #[serde(default)]
    pub context: Value,
    /// The request it belongs to, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

fn default_level() -> String {
    "info".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip_worker(line: &str) -> WorkerMessage {
        let msg: WorkerMessage = serde_json::from_str(line).expect("parse");
        let again: WorkerMessage =
            serde_json::from_str(&serde_json::to_string(&msg).expect("serialize"))
                .expect("reparse");
        assert_eq!(msg, again);
        msg
    }

    #[test]
    fn ready_parses_design_example() {
        let msg = roundtrip_worker(
            r#"{"type":"ready","protocol":1,"pid":4242,"php":"8.2.36","app":"laravel"}"#,
        );
        assert_eq!(
            msg,
            WorkerMessage::Ready(Ready {
                protocol: 1,
                pid: 4242,
                php: "8.2.36".into(),
                app: "laravel".into()
            })
        );
    }

    #[test]
    fn request_serializes_with_contract_names() {
        let req = HostMessage::Request(Request {
            id: "r-17".into(),
            kind: RequestKind::Http,
            http: Some(HttpRequest {
                method: "POST".into(),
                uri: "/orders?x=1".into(),
                path: "/orders".into(),
                query: "x=1".into(),
                protocol: "HTTP/1.1".into(),
                scheme: "http".into(),
                script_prefix: String::new(),
                remote_addr: "127.0.0.1:50514".into(),
                server_addr: String::new(),
                headers: [(
                    "content-type".to_owned(),
                    vec!["application/json".to_owned()],
                )]
                .into_iter()
                .collect(),
                body: Body::from_bytes(br#"{"sku":1}"#.to_vec()),
                fields: vec![],
                uploads: vec![Upload {
                    field: "avatar".into(),
                    name: "a.png".into(),
                    content_type: "image/png".into(),
                    size: 1234,
                    tmp_name: "/tmp/zeno-up-1".into(),
                    error: 0,
                }],
            }),
            task: None,
            scope: json!({"request_id":"r-17","user_id":42})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        });
        let value = serde_json::to_value(&req).expect("serialize");
        assert_eq!(value["type"], "request");
        assert_eq!(value["kind"], "http");
        assert_eq!(value["http"]["body"], r#"{"sku":1}"#);
        assert!(value["http"].get("body_b64").is_none());
        assert_eq!(value["http"]["uploads"][0]["type"], "image/png");
        assert_eq!(value["http"]["uploads"][0]["tmp_name"], "/tmp/zeno-up-1");
        assert_eq!(value["_zeno_scope"]["user_id"], 42);
        assert!(value.get("task").is_none());
        let back: HostMessage = serde_json::from_value(value).expect("parse back");
        assert_eq!(back, req);
    }

    #[test]
    fn task_request_carries_task_not_http() {
        let req = HostMessage::Request(Request {
            id: "r-1".into(),
            kind: RequestKind::Task,
            http: None,
            task: Some(json!({"name":"resize","w":10})),
            scope: Map::new(),
        });
        let value = serde_json::to_value(&req).expect("serialize");
        assert_eq!(value["kind"], "task");
        assert_eq!(value["task"]["name"], "resize");
        assert!(value.get("http").is_none());
    }

    #[test]
    fn host_call_parses_design_example() {
        let msg = roundtrip_worker(
            r#"{"type":"host_call","id":"c-3","request":"r-17","function":"db_query","parameters":{"connection":"default","sql":"select * from users where id = ?","params":[5]}}"#,
        );
        let WorkerMessage::HostCall(call) = msg else {
            panic!("not a host_call: {msg:?}");
        };
        assert_eq!(call.function, "db_query");
        assert_eq!(call.request, "r-17");
        assert_eq!(call.parameters["params"][0], 5);
    }

    #[test]
    fn host_result_ok_and_err_use_contract_names() {
        let ok = serde_json::to_value(HostMessage::HostResult(HostResult::ok(
            "c-3",
            json!({"rows":[]}),
        )))
        .expect("serialize");
        assert_eq!(ok["type"], "host_result");
        assert_eq!(ok["success"], true);
        assert_eq!(ok["data"]["rows"], json!([]));
        assert!(ok.get("error").is_none());

        let err = serde_json::to_value(HostMessage::HostResult(HostResult::err(
            "c-4",
            "unknown_function",
            "no host function named nope",
        )))
        .expect("serialize");
        assert_eq!(err["success"], false);
        assert_eq!(err["error"], "no host function named nope");
        assert_eq!(err["error_info"]["kind"], "unknown_function");
    }

    #[test]
    fn response_parses_with_text_and_binary_bodies() {
        let msg = roundtrip_worker(
            r#"{"type":"response","id":"r-17","status":201,"headers":{"content-type":["application/json"]},"body":"{\"ok\":true}"}"#,
        );
        let WorkerMessage::Response(resp) = msg else {
            panic!("not a response");
        };
        assert_eq!(resp.status, 201);
        assert_eq!(resp.body.into_bytes().expect("bytes"), br#"{"ok":true}"#);

        let msg =
            roundtrip_worker(r#"{"type":"response","id":"r-1","status":200,"body_b64":"AP8="}"#);
        let WorkerMessage::Response(resp) = msg else {
            panic!("not a response");
        };
        assert!(resp.headers.is_empty());
        assert_eq!(resp.body.into_bytes().expect("bytes"), vec![0u8, 255]);
    }

    #[test]
    fn terminating_response_and_done() {
        let msg = roundtrip_worker(
            r#"{"type":"response","id":"r-2","status":200,"body":"hi","terminating":true}"#,
        );
        let WorkerMessage::Response(resp) = msg else {
            panic!("not a response");
        };
        assert!(resp.terminating && !resp.exiting);
        let msg = roundtrip_worker(r#"{"type":"done","id":"r-2"}"#);
        assert_eq!(
            msg,
            WorkerMessage::Done(Done {
                id: "r-2".into(),
                exiting: false
            })
        );
        let msg = roundtrip_worker(r#"{"type":"done","id":"r-3","exiting":true}"#);
        assert!(matches!(
            msg,
            WorkerMessage::Done(Done { exiting: true, .. })
        ));
    }

    #[test]
    fn log_defaults_level_and_context() {
        let msg = roundtrip_worker(r#"{"type":"log","message":"hi"}"#);
        let WorkerMessage::Log(log) = msg else {
            panic!("not a log");
        };
        assert_eq!(log.level, "info");
        assert_eq!(log.context, Value::Null);
        assert_eq!(log.request, None);
    }

    #[test]
    fn stop_is_a_bare_type() {
        assert_eq!(
            serde_json::to_string(&HostMessage::Stop).expect("serialize"),
            r#"{"type":"stop"}"#
        );
    }

    #[test]
    fn body_picks_text_or_base64() {
        let text = Body::from_bytes("héllo".as_bytes().to_vec());
        assert_eq!(text.body.as_deref(), Some("héllo"));
        assert_eq!(text.body_b64, None);
        let bin = Body::from_bytes(vec![0xff, 0x00, 0xfe]);
        assert_eq!(bin.body, None);
        assert_eq!(
            bin.clone().into_bytes().expect("bytes"),
            vec![0xff, 0x00, 0xfe]
        );
        assert_eq!(Body::from_bytes(vec![]), Body::default());
        let bad = Body {
            body: None,
            body_b64: Some("!!!".into()),
        };
        assert!(bad.into_bytes().is_err());
    }

    #[test]
    fn unknown_type_and_missing_fields_are_errors() {
        assert!(serde_json::from_str::<WorkerMessage>(r#"{"type":"bogus"}"#).is_err());
        assert!(serde_json::from_str::<WorkerMessage>(r#"{"type":"response","id":"x"}"#).is_err());
        assert!(serde_json::from_str::<WorkerMessage>(r#"{"id":"x"}"#).is_err());
    }

    #[test]
    fn extra_fields_are_ignored_for_forward_compatibility() {
        let msg = roundtrip_worker(
            r#"{"type":"ready","protocol":1,"pid":1,"php":"8.3","app":"x","future":true}"#,
        );
        assert!(matches!(msg, WorkerMessage::Ready(_)));
    }
}
