//! HTTP request → protocol request, protocol response → HTTP response.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use zeno_host::{Dispatch, Host, HostError, PoolError};
use zeno_protocol::{Body, HeaderMap, HttpRequest};

use crate::multipart;
use crate::HttpConfig;

/// The header a scope key travels in: `user_id` → `X-Zeno-User-Id`.
pub fn scope_header_name(key: &str) -> String {
    let mut name = String::from("X-Zeno");
    for part in key.split(['_', '-']).filter(|p| !p.is_empty()) {
        name.push('-');
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(&chars.as_str().to_lowercase());
        }
    }
    name
}

pub(crate) async fn dispatch(
    host: &Host,
    config: &HttpConfig,
    req: Request<Incoming>,
    remote: SocketAddr,
    local: SocketAddr,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();

    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > config.max_header_bytes {
        return text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request header fields too large\n",
        );
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.max_body as u64) {
        return too_large(config.max_body);
    }
    let body = match Limited::new(body, config.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(config.max_body);
            }
            return text(StatusCode::BAD_REQUEST, "Could not read the request body\n");
        }
    };

    let id = host.next_request_id();
    let scope = host.merge_scope(&id, serde_json::Map::new());

    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let name = name.as_str();
        // Client-sent scope headers are dropped: scope comes from the host only.
        if name.starts_with("x-zeno-") {
            continue;
        }
        headers
            .entry(name.to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    if let Some(authority) = parts.uri.authority() {
        headers
            .entry("host".to_owned())
            .or_insert_with(|| vec![authority.to_string()]);
    }
    for (key, value) in &scope {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            _ => continue,
        };
        headers.insert(scope_header_name(key).to_lowercase(), vec![value]);
    }

    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Uploaded files live until this function returns, that is until the response is built.
    let mut _uploads_guard = Vec::new();
    let (wire_body, fields, uploads) =
        if parts.method == http::Method::POST && is_multipart(content_type) {
            match multipart::parse(content_type, body).await {
                Ok(form) => {
                    _uploads_guard = form.files;
                    (Body::default(), form.fields, form.uploads)
                }
                Err(err) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("Malformed multipart body: {err}\n"),
                    )
                }
            }
        } else {
            (Body::from_bytes(body.to_vec()), Vec::new(), Vec::new())
        };

    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let http = HttpRequest {
        method: parts.method.as_str().to_owned(),
        uri,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        protocol: format!("{:?}", parts.version),
        scheme: "http".into(),
        remote_addr: remote.to_string(),
        server_addr: local.to_string(),
        headers,
        body: wire_body,
        fields,
        uploads,
    };

    let dispatch = Dispatch::http(http).with_id(id.clone());
    match host.dispatch(dispatch).await {
        Ok(response) => to_http(response, &id),
        Err(err) => error_response(&err, &id),
    }
}

fn is_multipart(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("multipart/form-data"))
}

fn to_http(response: zeno_protocol::Response, id: &str) -> Response<Full<Bytes>> {
    let status = match StatusCode::from_u16(response.status) {
        Ok(status) => status,
        Err(_) => {
            tracing::error!(request = %id, status = response.status, "worker answered with an invalid status");
            return text(StatusCode::BAD_GATEWAY, "Bad Gateway\n");
        }
    };
    let body = match response.body.into_bytes() {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(request = %id, error = %err, "worker answered with an undecodable body");
            return text(StatusCode::BAD_GATEWAY, "Bad Gateway\n");
        }
    };
    let mut out = Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, values) in response.headers {
        // Framing is hyper's job; a handler's idea of it would be wrong after mapping.
        if matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection" | "keep-alive"
        ) {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::warn!(request = %id, header = %name, "dropping invalid response header name");
            continue;
        };
        for value in values {
            match HeaderValue::from_str(&value) {
                Ok(value) => {
                    headers.append(name.clone(), value);
                }
                Err(_) => {
                    tracing::warn!(request = %id, header = %name, "dropping invalid response header value")
                }
            }
        }
    }
    out
}

fn error_response(err: &HostError, id: &str) -> Response<Full<Bytes>> {
    let HostError::Pool(pool) = err else {
        tracing::error!(request = %id, error = %err, "request failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
    };
    match pool {
        PoolError::Timeout(_) => {
            tracing::warn!(request = %id, error = %pool, "request timed out");
            text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n")
        }
        PoolError::WorkerFailed(_) => text(StatusCode::BAD_GATEWAY, "Bad Gateway\n"),
        PoolError::NoWorker(_)
        | PoolError::QueueFull(_)
        | PoolError::ShuttingDown
        | PoolError::Boot(_) => {
            tracing::warn!(request = %id, error = %pool, "no worker for request");
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

fn too_large(limit: usize) -> Response<Full<Bytes>> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Request body larger than the limit of {limit} bytes\n"),
    )
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn json(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_become_header_names() {
        assert_eq!(scope_header_name("user_id"), "X-Zeno-User-Id");
        assert_eq!(scope_header_name("request_id"), "X-Zeno-Request-Id");
        assert_eq!(scope_header_name("tenant"), "X-Zeno-Tenant");
        assert_eq!(scope_header_name("TRACE-ID"), "X-Zeno-Trace-Id");
    }

    #[test]
    fn multipart_detection_ignores_case_and_parameters() {
        assert!(is_multipart("multipart/form-data; boundary=x"));
        assert!(is_multipart("Multipart/Form-Data"));
        assert!(!is_multipart("application/x-www-form-urlencoded"));
        assert!(!is_multipart(""));
    }

    #[test]
    fn worker_response_maps_headers_and_drops_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("set-cookie".into(), vec!["a=1".into(), "b=2".into()]);
        headers.insert("content-length".into(), vec!["999".into()]);
        headers.insert("bad header".into(), vec!["x".into()]);
        headers.insert("x-ok".into(), vec!["line\nbreak".into(), "fine".into()]);
        let response = to_http(
            zeno_protocol::Response {
                id: "r-1".into(),
                status: 201,
                headers,
                body: Body::from_bytes(vec![0xff, 0x01]),
                exiting: false,
                terminating: false,
            },
            "r-1",
        );
        assert_eq!(response.status(), StatusCode::CREATED);
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies.len(), 2);
        assert!(response.headers().get("content-length").is_none());
        assert_eq!(response.headers().get_all("x-ok").iter().count(), 1);
    }

    #[test]
    fn invalid_status_from_worker_is_bad_gateway() {
        let response = to_http(
            zeno_protocol::Response {
                id: "r-1".into(),
                status: 1000,
                headers: HeaderMap::new(),
                body: Body::default(),
                exiting: false,
                terminating: false,
            },
            "r-1",
        );
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
}
