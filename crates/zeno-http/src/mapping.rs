//! HTTP request → protocol request, protocol response → HTTP response, in named steps:
//! [`check_limits`], [`headers::forwarded`] and [`headers::add_scope`], [`read_payload`]
//! (body or multipart form), [`build_request`].

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use serde_json::Value;
use zeno_host::{Dispatch, Host, HostError, PoolError};
use zeno_protocol::{Body, FormField, HeaderMap, HttpRequest, Upload};

use crate::body::{self, ReadError};
use crate::multipart::{self, MultipartError};
use crate::{headers, HttpConfig, ResponseBody};

pub(crate) async fn dispatch<B>(
    host: &Host,
    config: &HttpConfig,
    req: Request<B>,
    scope: serde_json::Map<String, Value>,
    prefix: &str,
    remote: SocketAddr,
    local: SocketAddr,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let id = host.next_request_id();
    // The request's span, a child of the embedding app's own (if any): the host's events and
    // PHP's log records for the request are recorded inside it. A W3C `traceparent` sent by
    // the client names the trace it belongs to.
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    if let Some((trace, parent)) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(traceparent)
    {
        span.record("trace_id", trace);
        span.record("parent_span_id", parent);
    }
    tracing::Instrument::instrument(
        dispatch_in_span(host, config, req, scope, prefix, remote, local, id),
        span,
    )
    .await
}

/// A W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`): its trace
/// and parent ids, or `None` when malformed (all zeros is invalid too).
fn traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    valid.then_some((trace, parent))
}

#[allow(clippy::too_many_arguments)]
async fn dispatch_in_span<B>(
    host: &Host,
    config: &HttpConfig,
    req: Request<B>,
    scope: serde_json::Map<String, Value>,
    prefix: &str,
    remote: SocketAddr,
    local: SocketAddr,
    id: String,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let extra = scope;
    let scope = host.merge_scope(&id, extra.clone());
    // What an X-Sendfile answer needs of the request (its method and conditional headers).
    let sendfile =
        (!config.sendfile_dirs.is_empty()).then(|| (req.method().clone(), req.headers().clone()));
    let (mut http, files) =
        match map_request(req, config, &scope, host.worker_owner(), remote, local).await {
            Ok(mapped) => mapped,
            Err(refusal) => return refusal.into_response(),
        };
    if !prefix.is_empty()
        && (http.path == prefix
            || http
                .path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/')))
    {
        http.script_prefix = prefix.to_owned();
    }
    // The upload temp files live until the request has fully ended — after the response,
    // `terminate()` and deferred work — however it ends.
    let mut dispatch = Dispatch::http(http).with_id(id.clone()).hold(files);
    for (key, value) in extra {
        dispatch = dispatch.scope(key, value);
    }
    match host.dispatch_streaming(dispatch).await {
        Ok(reply) => match (&sendfile, sendfile_path(&reply.response)) {
            (Some((method, headers)), Some(path)) => {
                send_file(config, reply.response, &path, method, headers, &id).await
            }
            (None, Some(_)) => {
                tracing::error!(request = %id, "PHP answered with X-Sendfile, but server.sendfile_dirs is not set");
                text(StatusCode::BAD_GATEWAY, "Bad Gateway\n")
            }
            _ => to_http(reply.response, reply.body, &id),
        },
        Err(err) => error_response(&err, &id),
    }
}

/// The file an `X-Sendfile` response header names.
fn sendfile_path(response: &zeno_protocol::Response) -> Option<String> {
    response
        .headers
        .get("x-sendfile")
        .and_then(|values| values.first())
        .map(|path| path.trim().to_owned())
}

/// Answers an `X-Sendfile` response from disk — `Range`, `If-Range`, validators and `HEAD` as
/// for static files — with PHP's status and headers (type, disposition, cookies) kept. The
/// file must lie in one of `server.sendfile_dirs`, symlinks resolved.
async fn send_file(
    config: &HttpConfig,
    mut response: zeno_protocol::Response,
    path: &str,
    method: &http::Method,
    request_headers: &http::HeaderMap,
    id: &str,
) -> Response<ResponseBody> {
    let full = match tokio::fs::canonicalize(path).await {
        Ok(full) => full,
        Err(err) => {
            tracing::error!(request = %id, path, error = %err, "X-Sendfile names a file that cannot be opened");
            return text(StatusCode::NOT_FOUND, "Not Found\n");
        }
    };
    let allowed =
        futures_util::future::join_all(config.sendfile_dirs.iter().map(tokio::fs::canonicalize))
            .await
            .into_iter()
            .flatten()
            .any(|dir| full.starts_with(dir));
    if !allowed {
        tracing::error!(request = %id, path = %full.display(), "X-Sendfile names a file outside server.sendfile_dirs; refused");
        return text(StatusCode::BAD_GATEWAY, "Bad Gateway\n");
    }
    let Some(mut out) = crate::static_files::serve_file(&full, method, request_headers).await
    else {
        tracing::error!(request = %id, path = %full.display(), "X-Sendfile names something that is not a readable file");
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    };
    // PHP's headers, but the file's own framing and validators.
    response.headers.remove("x-sendfile");
    let status = out.status();
    let php = to_http(
        zeno_protocol::Response {
            body: zeno_protocol::Body::default(),
            stream: false,
            ..response
        },
        None,
        id,
    );
    // The type is PHP's; every other header the file response set (length, range,
    // validators) stays the file's.
    out.headers_mut().remove(http::header::CONTENT_TYPE);
    let file_headers: Vec<http::HeaderName> = out.headers().keys().cloned().collect();
    for (name, value) in php.headers() {
        if !file_headers.contains(name) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    if status == StatusCode::OK && php.status() != StatusCode::OK {
        *out.status_mut() = php.status();
    }
    out
}

/// A streamed response's body: its first part, then the chunks as PHP produces them. Polled
/// only as fast as the client reads; dropping it (the client went away) stops PHP.
struct Streamed {
    first: Option<Bytes>,
    rest: zeno_host::BodyStream,
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(first))));
        }
        self.rest
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(http_body::Frame::data(data))))
    }
}

/// The whole mapping of an HTTP request to PHP's protocol request, or the response that
/// refuses it. The temp files of uploads come back beside the request: they must outlive it.
pub(crate) async fn map_request<B>(
    req: Request<B>,
    config: &HttpConfig,
    scope: &serde_json::Map<String, Value>,
    owner: Option<(u32, u32)>,
    remote: SocketAddr,
    local: SocketAddr,
) -> Result<(HttpRequest, Vec<tempfile::TempPath>), Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let (parts, body) = req.into_parts();
    check_limits(&parts, config)?;
    let mut headers = headers::forwarded(&parts.headers, config.underscores_in_headers);
    if let Some(authority) = parts.uri.authority() {
        headers
            .entry("host".to_owned())
            .or_insert_with(|| vec![authority.to_string()]);
    }
    headers::add_scope(&mut headers, scope);
    if !config.sendfile_dirs.is_empty() {
        headers.insert("x-sendfile-type".into(), vec!["X-Sendfile".into()]);
    }
    let payload = read_payload(&parts, body, config, owner).await?;
    let http = build_request(
        &parts,
        headers,
        payload.body,
        payload.fields,
        payload.uploads,
        remote,
        local,
    );
    Ok((http, payload.files))
}

/// Refuses requests whose headers are too large (431) or whose declared body is (413),
/// before any of the body is read.
fn check_limits(parts: &Parts, config: &HttpConfig) -> Result<(), Refusal> {
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > config.max_header_bytes {
        return Err(Refusal {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            message: "Request header fields too large".into(),
            close: false,
        });
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.max_body as u64) {
        return Err(ReadError::TooLarge(config.max_body).into());
    }
    Ok(())
}

/// A request's body as PHP gets it: raw bytes, or for a multipart POST the fields and the
/// uploaded files (already on disk; `files` deletes them when dropped).
struct Payload {
    body: Body,
    fields: Vec<FormField>,
    uploads: Vec<Upload>,
    files: Vec<tempfile::TempPath>,
}

async fn read_payload<B>(
    parts: &Parts,
    body: B,
    config: &HttpConfig,
    owner: Option<(u32, u32)>,
) -> Result<Payload, Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if parts.method == http::Method::POST && is_multipart(content_type) {
        let stream = body::chunks(body, config.max_body, config.body_timeout);
        return match multipart::parse(content_type, stream, owner).await {
            Ok(form) => Ok(Payload {
                body: Body::default(),
                fields: form.fields,
                uploads: form.uploads,
                files: form.files,
            }),
            Err(MultipartError::Body(err)) => Err(err.into()),
            Err(err) => {
                let message = zeno_protocol::report(&err);
                tracing::debug!(error = %message, "refusing a multipart body");
                Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    message,
                    close: false,
                })
            }
        };
    }
    match body::collect(body, config.max_body, config.body_timeout).await {
        Ok(bytes) => Ok(Payload {
            body: Body::from_bytes(bytes),
            fields: Vec::new(),
            uploads: Vec::new(),
            files: Vec::new(),
        }),
        Err(err) => Err(err.into()),
    }
}

/// A request the host answers itself without PHP: limits, unreadable or malformed bodies.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
    /// The connection is in an unknown state (a body half read): close it after answering.
    close: bool,
}

impl Refusal {
    pub(crate) fn into_response(self) -> Response<ResponseBody> {
        let mut response = text(self.status, &format!("{}\n", self.message));
        if self.close {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A body that could not be read: 413, 408 or 400.
impl From<ReadError> for Refusal {
    fn from(err: ReadError) -> Self {
        let status = match err {
            ReadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ReadError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ReadError::Read(_) => StatusCode::BAD_REQUEST,
        };
        Refusal {
            status,
            message: err.to_string(),
            close: status != StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// The protocol request for PHP.
fn build_request(
    parts: &Parts,
    headers: HeaderMap,
    body: Body,
    fields: Vec<FormField>,
    uploads: Vec<Upload>,
    remote: SocketAddr,
    local: SocketAddr,
) -> HttpRequest {
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    HttpRequest {
        method: parts.method.as_str().to_owned(),
        uri,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        protocol: format!("{:?}", parts.version),
        scheme: "http".into(),
        remote_addr: remote.to_string(),
        server_addr: local.to_string(),
        headers,
        body,
        fields,
        uploads,
        script_prefix: String::new(),
    }
}

fn is_multipart(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("multipart/form-data"))
}

pub(crate) fn to_http(
    response: zeno_protocol::Response,
    stream: Option<zeno_host::BodyStream>,
    id: &str,
) -> Response<ResponseBody> {
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
            tracing::error!(request = %id, error = %zeno_protocol::report(&err), "worker answered with an undecodable body");
            return text(StatusCode::BAD_GATEWAY, "Bad Gateway\n");
        }
    };
    let streamed = stream.is_some();
    let mut out = match stream {
        Some(rest) => {
            let first = (!body.is_empty()).then(|| Bytes::from(body));
            Response::new(http_body_util::BodyExt::boxed_unsync(Streamed {
                first,
                rest,
            }))
        }
        None => Response::new(crate::full(body)),
    };
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, values) in response.headers {
        // Framing is hyper's job; a handler's idea of it would be wrong after mapping. A
        // streamed body keeps the length PHP declared (a download shows its progress), and
        // hyper ends the connection if PHP sends a different number of bytes.
        let declared_length = streamed
            && name == "content-length"
            && values.len() == 1
            && values[0].trim().parse::<u64>().is_ok();
        if !declared_length
            && matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "keep-alive"
            )
        {
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

fn error_response(err: &HostError, id: &str) -> Response<ResponseBody> {
    let HostError::Pool(pool) = err else {
        tracing::error!(request = %id, error = %zeno_protocol::report(err), "request failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
    };
    match pool {
        PoolError::Timeout(_) => {
            tracing::warn!(request = %id, error = %zeno_protocol::report(pool), "request timed out");
            text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n")
        }
        PoolError::WorkerFailed(_) => text(StatusCode::BAD_GATEWAY, "Bad Gateway\n"),
        PoolError::NoWorker(_)
        | PoolError::QueueFull(_)
        | PoolError::ShuttingDown
        | PoolError::Boot(_) => {
            tracing::warn!(request = %id, error = %zeno_protocol::report(pool), "no worker for request");
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        _ => {
            tracing::error!(request = %id, error = %zeno_protocol::report(pool), "request failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
        }
    }
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut response = Response::new(crate::full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn json(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(crate::full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(builder: http::request::Builder) -> Parts {
        builder.body(()).expect("request").into_parts().0
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn limits_refuse_large_headers_and_declared_bodies() {
        let config = HttpConfig {
            max_body: 10,
            max_header_bytes: 40,
            ..HttpConfig::default()
        };
        let ok = parts(Request::builder().header("content-length", "10"));
        assert!(check_limits(&ok, &config).is_ok());
        let body = parts(Request::builder().header("content-length", "11"));
        let refusal = check_limits(&body, &config).expect_err("413");
        assert_eq!(refusal.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!refusal.close, "a refused declared body needs no close");
        let headers = parts(Request::builder().header("x-long", "y".repeat(40)));
        let refusal = check_limits(&headers, &config).expect_err("431");
        assert_eq!(refusal.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn timeouts_and_broken_bodies_close_the_connection() {
        let timeout = Refusal::from(ReadError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(timeout.status, StatusCode::REQUEST_TIMEOUT);
        assert!(timeout.close);
        let response = timeout.into_response();
        assert_eq!(response.headers()["connection"], "close");
        let broken = Refusal::from(ReadError::Read("reset".into()));
        assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn payload_is_raw_bytes_or_a_parsed_form() {
        let config = HttpConfig::default();
        let urlencoded = parts(
            Request::builder()
                .method("POST")
                .header("content-type", "application/x-www-form-urlencoded"),
        );
        let payload = read_payload(
            &urlencoded,
            http_body_util::Full::new(Bytes::from_static(b"a=1&b=2")),
            &config,
            None,
        )
        .await
        .expect("payload");
        assert_eq!(payload.body.body.as_deref(), Some("a=1&b=2"));
        assert!(payload.fields.is_empty() && payload.files.is_empty());

        let form = parts(
            Request::builder()
                .method("POST")
                .header("content-type", "multipart/form-data; boundary=XX"),
        );
        let body = "--XX\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nv\r\n\
--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n--XX--\r\n";
        let payload = read_payload(
            &form,
            http_body_util::Full::new(Bytes::from(body)),
            &config,
            None,
        )
        .await
        .expect("payload");
        assert_eq!(
            payload.body,
            Body::default(),
            "php://input is empty, as under FPM"
        );
        assert_eq!(payload.fields[0].name, "t");
        assert_eq!(payload.uploads[0].size, 4);
        assert_eq!(payload.files.len(), 1);

        // A PUT with a multipart type is not parsed (PHP only fills $_FILES for POST).
        let put = parts(
            Request::builder()
                .method("PUT")
                .header("content-type", "multipart/form-data; boundary=XX"),
        );
        let payload = read_payload(
            &put,
            http_body_util::Full::new(Bytes::from(body)),
            &config,
            None,
        )
        .await
        .expect("payload");
        assert!(payload.uploads.is_empty());
        assert!(payload.body.body.is_some());
    }

    #[test]
    fn the_protocol_request_says_what_php_fpm_would() {
        let request = parts(
            Request::builder()
                .method("PATCH")
                .uri("/a%20b/c?x=1&y=%2F")
                .version(http::Version::HTTP_11),
        );
        let http = build_request(
            &request,
            HeaderMap::new(),
            Body::default(),
            Vec::new(),
            Vec::new(),
            addr("10.0.0.7:5555"),
            addr("127.0.0.1:8080"),
        );
        assert_eq!(http.method, "PATCH");
        assert_eq!(http.uri, "/a%20b/c?x=1&y=%2F");
        assert_eq!(http.path, "/a%20b/c");
        assert_eq!(http.query, "x=1&y=%2F");
        assert_eq!(http.protocol, "HTTP/1.1");
        assert_eq!(http.remote_addr, "10.0.0.7:5555");
        assert_eq!(http.server_addr, "127.0.0.1:8080");
        assert_eq!(http.scheme, "http");
    }

    #[test]
    fn multipart_detection_ignores_case_and_parameters() {
        assert!(is_multipart("multipart/form-data; boundary=x"));
        assert!(is_multipart("Multipart/Form-Data"));
        assert!(!is_multipart("application/x-www-form-urlencoded"));
        assert!(!is_multipart(""));
    }

    #[test]
    fn traceparent_is_read_only_when_well_formed() {
        assert_eq!(
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-<script>-00f067aa0ba902b7-01",
        ] {
            assert_eq!(traceparent(bad), None, "{bad:?}");
        }
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
                stream: false,
            },
            None,
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
                stream: false,
            },
            None,
            "r-1",
        );
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }

    mod property {
        use super::super::*;
        use crate::headers::server_key;
        use crate::headers::tests::header_name;
        use proptest::prelude::*;

        fn config() -> HttpConfig {
            HttpConfig {
                max_body: 4096,
                max_header_bytes: 2048,
                ..HttpConfig::default()
            }
        }

        /// A multipart body that is well formed, with random names, file names and contents.
        fn multipart_body() -> impl Strategy<Value = (String, Vec<u8>)> {
            let part = (
                "[a-zA-Z_\\[\\]-]{0,10}",
                proptest::option::of("[a-zA-Z0-9 ._-]{0,10}"),
                proptest::collection::vec(any::<u8>(), 0..300),
            );
            proptest::collection::vec(part, 0..4).prop_map(|parts| {
                let boundary = "zenoBOUNDARYzeno";
                let mut body = Vec::new();
                for (name, file, content) in parts {
                    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                    let disposition = match file {
                        Some(file) => format!(
                            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\r\n"
                        ),
                        None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
                    };
                    body.extend_from_slice(disposition.as_bytes());
                    body.extend_from_slice(&content);
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
                (format!("multipart/form-data; boundary={boundary}"), body)
            })
        }

        fn body_and_type() -> impl Strategy<Value = (String, Vec<u8>)> {
            prop_oneof![
                multipart_body(),
                (
                    prop_oneof![
                        Just("multipart/form-data; boundary=x".to_owned()),
                        Just("multipart/form-data".to_owned()),
                        Just("application/x-www-form-urlencoded".to_owned()),
                        Just("application/json".to_owned()),
                    ],
                    proptest::collection::vec(any::<u8>(), 0..6000),
                ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Random header names, values and bodies: the mapping never panics, refuses only
            /// with 400/413/431, and no client-set value appears as scope or `X-Zeno-*`.
            #[test]
            fn random_requests_never_forge_scope(
                pairs in proptest::collection::vec((header_name(), proptest::collection::vec(32u8..=255, 0..40)), 0..12),
                (content_type, body) in body_and_type(),
                post in any::<bool>(),
                underscores in any::<bool>(),
            ) {
                let mut builder = Request::builder()
                    .method(if post { "POST" } else { "PUT" })
                    .uri("/submit?x=1");
                for (name, value) in &pairs {
                    if let Ok(value) = HeaderValue::from_bytes(value) {
                        builder = builder.header(name.as_str(), value);
                    }
                }
                let request = builder
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(http_body_util::Full::new(Bytes::from(body)))
                    .expect("request");
                let mut scope = serde_json::Map::new();
                scope.insert("request_id".into(), Value::from("r-7"));
                scope.insert("user_id".into(), Value::from(42));
                let config = HttpConfig { underscores_in_headers: underscores, ..config() };
                let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let mapped = runtime.block_on(map_request(request, &config, &scope, None, addr, addr));
                match mapped {
                    Ok((http, files)) => {
                        let zeno: Vec<_> = http
                            .headers
                            .iter()
                            .filter(|(name, _)| server_key(name).starts_with("HTTP_X_ZENO_"))
                            .map(|(n, v)| (n.as_str(), v.clone()))
                            .collect();
                        prop_assert_eq!(zeno, vec![
                            ("x-zeno-request-id", vec!["r-7".to_owned()]),
                            ("x-zeno-user-id", vec!["42".to_owned()]),
                        ]);
                        prop_assert_eq!(files.len(), http.uploads.len());
                        for (upload, file) in http.uploads.iter().zip(&files) {
                            let on_disk = std::fs::metadata(file).expect("upload on disk").len();
                            prop_assert_eq!(on_disk, upload.size);
                        }
                    }
                    Err(refusal) => {
                        let status = refusal.status.as_u16();
                        prop_assert!([400, 413, 431].contains(&status), "status {}", status);
                    }
                }
            }
        }
    }
}
