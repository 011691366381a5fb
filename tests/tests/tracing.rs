//! PHP's log records land inside the request's span, and a client's W3C `traceparent` names
//! the trace it belongs to.

use std::time::Duration;

use serde_json::Value;
use zeno_e2e::{client, fixture, Server};

#[tokio::test]
async fn php_logs_carry_the_request_span_and_the_callers_trace() {
    let server = Server::worker(&fixture("logs.php"))
        .args(["--workers", "1", "--task-workers", "0"])
        .start();
    let response = client()
        .get(server.url("/?marker=traced"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let line = server
        .wait_for_log("traced", Duration::from_secs(5))
        .expect("PHP's record in the host log");
    let record: Value = serde_json::from_str(&line).expect("json log line");
    assert_eq!(record["fields"]["message"], "logged by php");
    assert_eq!(record["span"]["name"], "request");
    assert_eq!(
        record["span"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(record["span"]["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(record["span"]["id"], record["fields"]["request"]);

    // A malformed traceparent is ignored, the span is still there.
    client()
        .get(server.url("/?marker=untraced"))
        .header("traceparent", "00-zzzz-0000-01")
        .send()
        .await
        .expect("send");
    let line = server
        .wait_for_log("untraced", Duration::from_secs(5))
        .expect("record");
    let record: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(record["span"]["name"], "request");
    assert!(record["span"].get("trace_id").is_none(), "{record}");
}
