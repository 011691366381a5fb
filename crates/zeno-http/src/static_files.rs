//! Files under a Laravel app's `public/` served by the host, as nginx serves them in front
//! of PHP-FPM: no worker is touched for CSS, images or robots.txt.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, IF_MODIFIED_SINCE, LAST_MODIFIED};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

/// Largest file served from memory; anything bigger goes to PHP (which may stream it).
const MAX_STATIC_FILE: u64 = 64 * 1024 * 1024;

/// The response for a request that names an existing file under `root`, or `None` to let PHP
/// answer. PHP files, dotfiles, directories and anything outside `root` (`..`, symlinks out)
/// always go to PHP, which routes them like any other path.
pub(crate) async fn lookup<B>(root: &Path, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let relative = decode(req.uri().path())?;
    let relative = Path::new(&relative);
    let mut clean = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => {
                let part_str = part.to_str()?;
                if part_str.starts_with('.') {
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
    let full = tokio::fs::canonicalize(root.join(&clean)).await.ok()?;
    if !full.starts_with(root) {
        return None;
    }
    let meta = tokio::fs::metadata(&full).await.ok()?;
    if !meta.is_file() || meta.len() > MAX_STATIC_FILE {
        return None;
    }
    let modified = meta.modified().ok();
    let mut builder = Response::builder()
        .header(CONTENT_TYPE, content_type(&full))
        .header("x-content-type-options", "nosniff");
    if let Some(modified) = modified {
        builder = builder.header(LAST_MODIFIED, httpdate::fmt_http_date(modified));
        if not_modified_since(req, modified) {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Full::new(Bytes::new()))
                .ok();
        }
    }
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(tokio::fs::read(&full).await.ok()?)
    };
    builder
        .header(CONTENT_LENGTH, meta.len())
        .status(StatusCode::OK)
        .body(Full::new(body))
        .ok()
}

fn not_modified_since<B>(req: &Request<B>, modified: SystemTime) -> bool {
    let Some(since) = req
        .headers()
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    // HTTP dates have whole seconds.
    modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .zip(since.duration_since(SystemTime::UNIX_EPOCH).ok())
        .is_some_and(|(m, s)| m.as_secs() <= s.as_secs())
}

/// Percent-decodes a path; `None` for bad escapes, NUL or non-UTF-8.
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

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" | "map" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).expect("request")
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
        let root = std::fs::canonicalize(&root).expect("canonical");

        let response = lookup(&root, &get("/css/app.css")).await.expect("served");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        let response = lookup(&root, &get("/css/%61pp.css"))
            .await
            .expect("decoded");
        assert_eq!(response.status(), StatusCode::OK);

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
                lookup(&root, &get(path)).await.is_none(),
                "{path} went to PHP"
            );
        }
        let post = Request::builder()
            .method(Method::POST)
            .uri("/css/app.css")
            .body(())
            .expect("request");
        assert!(lookup(&root, &post).await.is_none());
    }

    #[tokio::test]
    async fn answers_304_when_not_modified() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.txt"), "hi").expect("write");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        let first = lookup(&root, &get("/a.txt")).await.expect("served");
        let stamp = first.headers()[LAST_MODIFIED].clone();
        let again = Request::builder()
            .uri("/a.txt")
            .header(IF_MODIFIED_SINCE, stamp)
            .body(())
            .expect("request");
        let response = lookup(&root, &again).await.expect("served");
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }
}
