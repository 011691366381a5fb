//! The HTTP mapping on the hot path: a browser-like GET turned into the protocol request, and
//! a worker's response turned into the HTTP response. `cargo bench -p zeno-http`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::Empty;
use zeno_http::HttpConfig;
use zeno_protocol::{Body, HeaderMap, Response};

fn request() -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri("/?name=world&page=2")
        .header("host", "example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-US,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br")
        .header("cookie", "session=abcdef0123456789; theme=dark")
        .header("x-zeno-user-id", "forged")
        .body(Empty::new())
        .expect("request")
}

fn mapping(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let config = HttpConfig::default();
    c.bench_function("map request (GET, 7 headers)", |b| {
        b.iter(|| runtime.block_on(zeno_http::__bench::map_request(request(), &config)))
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type".into(),
        vec!["text/html; charset=UTF-8".into()],
    );
    headers.insert("set-cookie".into(), vec!["a=1".into(), "b=2".into()]);
    let response = Response {
        id: "r-1".into(),
        status: 200,
        headers,
        body: Body::from_bytes(b"Hello, world".to_vec()),
        exiting: false,
        terminating: false,
        stream: false,
    };
    c.bench_function("map response (hello, 3 headers)", |b| {
        b.iter(|| zeno_http::__bench::map_response(response.clone()))
    });
}

criterion_group!(benches, mapping);
criterion_main!(benches);
