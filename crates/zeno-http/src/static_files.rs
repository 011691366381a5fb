//! Files under a Laravel app's `public/` served by the host, as nginx serves them in front
//! of PHP-FPM: no worker is touched for CSS, images, robots.txt or a 2 GB video. Files are
//! streamed from disk in 64 KiB chunks at the pace the client reads, so memory stays flat
//! at any size; `Range`/`If-Range` (206, 416), `ETag`/`Last-Modified` with
//! `If-None-Match`/`If-Modified-Since` (304) and `HEAD` behave as nginx's.

use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use futures_util::TryStreamExt as _;
use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use crate::ResponseBody;

/// Size of the chunks a file is read and sent in.
const CHUNK: usize = 256 * 1024;

/// The response for a request that names an existing file under `root`, or `None` to let PHP
/// answer. PHP files, dotfiles, directories and anything outside `root` (`..`, symlinks out)
/// always go to PHP, which routes them like any other path.
pub(crate) async fn lookup(
    root: &Path,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<ResponseBody>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let full = resolve(root, path).await?;
    serve_file(&full, method, headers).await
}

/// A file from disk as a response to a GET or HEAD with these request headers: `Range` and
/// `If-Range` (206, 416), `ETag`/`Last-Modified` with their conditionals (304), streamed at
/// the pace the client reads. `None` when it is not a readable regular file.
pub(crate) async fn serve_file(
    full: &Path,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<ResponseBody>> {
    // Metadata of the handle that will be read, so a file swapped in between cannot be served
    // with another file's length.
    let mut file = tokio::fs::File::open(&full).await.ok()?;
    let meta = file.metadata().await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let modified = meta.modified().ok();
    let validators = Validators::new(len, modified);

    let mut builder = Response::builder()
        .header(CONTENT_TYPE, content_type(full))
        .header(ACCEPT_RANGES, "bytes")
        .header(ETAG, &validators.etag)
        .header("x-content-type-options", "nosniff");
    if let Some(date) = &validators.last_modified {
        builder = builder.header(LAST_MODIFIED, date);
    }
    if validators.not_modified(headers) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(crate::empty())
            .ok();
    }
    let (status, start, count) = match requested_range(headers, &validators, len) {
        Some(Ok((start, end))) => {
            builder = builder.header(CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Some(Err(())) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(CONTENT_RANGE, format!("bytes */{len}"))
                .body(crate::empty())
                .ok();
        }
        None => (StatusCode::OK, 0, len),
    };
    let builder = builder.status(status).header(CONTENT_LENGTH, count);
    if method == Method::HEAD {
        return builder.body(crate::empty()).ok();
    }
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.ok()?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), CHUNK)
        .map_ok(http_body::Frame::data);
    builder.body(StreamBody::new(stream).boxed_unsync()).ok()
}

/// The file a URL path names under `root`, or `None` when it must go to PHP.
async fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = decode(path)?;
    let mut clean = PathBuf::new();
    for component in Path::new(&relative).components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => {
                if part.to_str()?.starts_with('.') {
                    return None;
                }
                clean.push(part);
            }
            _ => return None,
        }
    }
    if clean.as_os_str().is_empty()
        || clean
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("php"))
    {
        return None;
    }
    let candidate = root.join(&clean);
    // Most requests of an app name routes, not files. Asking the kernel directly whether the
    // name exists costs one lstat on cached directory entries, where tokio's file functions
    // hand every call to a thread of their own and back — on a Laravel route, that hand-off
    // was a third of the host's CPU per request. Only names that exist take the async path.
    if std::fs::symlink_metadata(&candidate).is_err() {
        return None;
    }
    // Symlinks are followed, but the file they reach must be under `root` too.
    let full = tokio::fs::canonicalize(candidate).await.ok()?;
    full.starts_with(root).then_some(full)
}

/// A file's `ETag` (nginx's form: mtime and size in hex) and `Last-Modified`.
struct Validators {
    etag: String,
    last_modified: Option<String>,
    modified_secs: Option<u64>,
}

impl Validators {
    fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let modified_secs = modified
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        Validators {
            etag: format!("\"{:x}-{:x}\"", modified_secs.unwrap_or(0), len),
            last_modified: modified.map(httpdate::fmt_http_date),
            modified_secs,
        }
    }

    /// `If-None-Match` (weak comparison, `*`), else `If-Modified-Since`.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(tags) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
            return tags.split(',').map(str::trim).any(|tag| {
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag.as_str()
            });
        }
        let since = headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|s| s.duration_since(SystemTime::UNIX_EPOCH).ok());
        // HTTP dates have whole seconds.
        matches!((self.modified_secs, since), (Some(m), Some(s)) if m <= s.as_secs())
    }

    /// `If-Range` holds: a strong match of the ETag, or exactly the Last-Modified date.
    fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
            return true;
        };
        let value = value.trim();
        if value.starts_with('"') {
            return value == self.etag;
        }
        self.last_modified.as_deref() == Some(value)
    }
}

/// The byte range to send: `None` for the whole file (no `Range`, one this server ignores —
/// several ranges, another unit, a malformed one — or a failed `If-Range`), `Some(Err)` for
/// one that is not satisfiable (416), else the inclusive first and last byte.
fn requested_range(
    headers: &HeaderMap,
    validators: &Validators,
    len: u64,
) -> Option<Result<(u64, u64), ()>> {
    let spec = headers.get(RANGE)?.to_str().ok()?.trim();
    if !validators.if_range_holds(headers) {
        return None;
    }
    let spec = spec.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // The last N bytes.
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            let end: u64 = last.parse().ok()?;
            if end < start {
                return None;
            }
            end.min(len.saturating_sub(1))
        };
        if start >= len {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(range))
}

/// Percent-decodes a path; `None` for bad escapes, NUL, backslashes or non-UTF-8.
fn decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    (!decoded.contains('\0') && !decoded.contains('\\')).then_some(decoded)
}

/// The `Content-Type` for a file, from mime_guess's table of extensions; text types say
/// UTF-8, as nginx's `charset utf-8` would.
fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON;
    if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// A request with a body no one reads, for the tests.
#[cfg(test)]
pub(crate) fn get(path: &str) -> http::Request<()> {
    http::Request::builder()
        .uri(path)
        .body(())
        .expect("request")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    async fn lookup_req<B>(root: &Path, req: &Request<B>) -> Option<Response<ResponseBody>> {
        lookup(root, req.method(), req.uri().path(), req.headers()).await
    }
    use http::HeaderValue;

    fn with(path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = get(path);
        for (name, value) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        req
    }

    async fn body(response: Response<ResponseBody>) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    fn root_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        (dir, root)
    }

    #[tokio::test]
    async fn serves_files_and_never_php_dotfiles_or_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("public");
        std::fs::create_dir_all(root.join("css")).expect("mkdir");
        std::fs::write(root.join("css/app.css"), "body{}").expect("write");
        std::fs::write(root.join("index.php"), "<?php secret").expect("write");
        std::fs::write(root.join(".env"), "SECRET=1").expect("write");
        std::fs::write(dir.path().join("outside.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(root.join("css/app.css"), root.join("inside.css"))
            .expect("symlink");
        let root = std::fs::canonicalize(&root).expect("canonical");

        let response = lookup_req(&root, &get("/css/app.css"))
            .await
            .expect("served");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(body(response).await, b"body{}");
        let response = lookup_req(&root, &get("/css/%61pp.css"))
            .await
            .expect("decoded");
        assert_eq!(response.status(), StatusCode::OK);
        let response = lookup_req(&root, &get("/inside.css"))
            .await
            .expect("a symlink within public/ is served");
        assert_eq!(body(response).await, b"body{}");

        for path in [
            "/",
            "/index.php",
            "/INDEX.PHP",
            "/.env",
            "/../outside.txt",
            "/css/../../outside.txt",
            "/%2e%2e/outside.txt",
            "/link.txt",
            "/css",
            "/missing.css",
            "/a%00b",
            "/%zz",
        ] {
            assert!(
                lookup_req(&root, &get(path)).await.is_none(),
                "{path} went to PHP"
            );
        }
        let post = Request::builder()
            .method(Method::POST)
            .uri("/css/app.css")
            .body(())
            .expect("request");
        assert!(lookup_req(&root, &post).await.is_none());
    }

    #[tokio::test]
    async fn answers_304_for_a_matching_etag_or_date() {
        let (_dir, root) = root_with(&[("a.txt", b"hi")]);
        let first = lookup_req(&root, &get("/a.txt")).await.expect("served");
        let stamp = first.headers()[LAST_MODIFIED]
            .to_str()
            .expect("date")
            .to_owned();
        let etag = first.headers()[ETAG].to_str().expect("etag").to_owned();
        assert_eq!(first.headers()[ACCEPT_RANGES], "bytes");

        for headers in [
            vec![("if-modified-since", stamp.as_str())],
            vec![("if-none-match", etag.as_str())],
            vec![("if-none-match", "\"other\", W/".to_owned().leak())],
            vec![("if-none-match", "*")],
        ] {
            let response = lookup_req(&root, &with("/a.txt", &headers))
                .await
                .expect("served");
            let expected = if headers[0].1.contains("other") {
                StatusCode::OK
            } else {
                StatusCode::NOT_MODIFIED
            };
            assert_eq!(response.status(), expected, "{headers:?}");
        }
        let weak = format!("W/{etag}");
        let response = lookup_req(&root, &with("/a.txt", &[("if-none-match", &weak)]))
            .await
            .expect("served");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        // If-None-Match wins over the date.
        let response = lookup_req(
            &root,
            &with(
                "/a.txt",
                &[("if-none-match", "\"nope\""), ("if-modified-since", &stamp)],
            ),
        )
        .await
        .expect("served");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn ranges_give_206_or_416() {
        let (_dir, root) = root_with(&[("d.bin", b"0123456789")]);
        let etag = lookup_req(&root, &get("/d.bin"))
            .await
            .expect("served")
            .headers()[ETAG]
            .to_str()
            .expect("etag")
            .to_owned();
        for (range, content, content_range) in [
            ("bytes=2-4", &b"234"[..], "bytes 2-4/10"),
            ("bytes=7-", b"789", "bytes 7-9/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=8-100", b"89", "bytes 8-9/10"),
            ("bytes=-100", b"0123456789", "bytes 0-9/10"),
        ] {
            let response = lookup_req(&root, &with("/d.bin", &[("range", range)]))
                .await
                .expect("served");
            assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(response.headers()[CONTENT_RANGE], content_range);
            assert_eq!(
                response.headers()[CONTENT_LENGTH],
                content.len().to_string()
            );
            assert_eq!(body(response).await, content, "{range}");
        }
        for range in ["bytes=10-", "bytes=-0"] {
            let response = lookup_req(&root, &with("/d.bin", &[("range", range)]))
                .await
                .expect("served");
            assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
            assert_eq!(response.headers()[CONTENT_RANGE], "bytes */10");
        }
        for range in ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-y"] {
            let response = lookup_req(&root, &with("/d.bin", &[("range", range)]))
                .await
                .expect("served");
            assert_eq!(response.status(), StatusCode::OK, "{range} is ignored");
            assert_eq!(body(response).await, b"0123456789");
        }
        let response = lookup_req(
            &root,
            &with("/d.bin", &[("range", "bytes=0-0"), ("if-range", &etag)]),
        )
        .await
        .expect("served");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        let response = lookup_req(
            &root,
            &with(
                "/d.bin",
                &[("range", "bytes=0-0"), ("if-range", "\"stale\"")],
            ),
        )
        .await
        .expect("served");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a stale If-Range gets it all"
        );
    }

    #[tokio::test]
    async fn head_has_the_headers_and_no_body() {
        let (_dir, root) = root_with(&[("v.mp4", b"not really a video")]);
        let head = Request::builder()
            .method(Method::HEAD)
            .uri("/v.mp4")
            .body(())
            .expect("request");
        let response = lookup_req(&root, &head).await.expect("served");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "video/mp4");
        assert_eq!(response.headers()[CONTENT_LENGTH], "18");
        assert!(body(response).await.is_empty());
    }

    #[test]
    fn content_types_come_from_the_table() {
        for (file, expected) in [
            ("a.css", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.json", "application/json; charset=utf-8"),
            ("a.svg", "image/svg+xml"),
            ("a.woff2", "font/woff2"),
            ("a.wasm", "application/wasm"),
            ("a.unknown-ext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(file)), expected, "{file}");
        }
    }
}
