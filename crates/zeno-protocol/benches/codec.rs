//! The wire codec on the hot path: a request encoded for a worker, a response decoded from
//! it, and a 256 KiB streamed chunk. `cargo bench -p zeno-protocol`; `-- --quick` in CI.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Map;
use tokio_util::codec::{Decoder, Encoder};
use zeno_protocol::{HeaderMap, HostMessage, HttpRequest, NdjsonCodec, Request, RequestKind};

fn request() -> HostMessage {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=abcdef0123456789; theme=dark"),
        ("x-zeno-request-id", "r-12345"),
    ] {
        headers.insert(name.into(), vec![value.into()]);
    }
    let mut scope = Map::new();
    scope.insert("request_id".into(), "r-12345".into());
    HostMessage::Request(Request {
        id: "r-12345".into(),
        kind: RequestKind::Http,
        http: Some(HttpRequest {
            method: "GET".into(),
            uri: "/?name=world".into(),
            path: "/".into(),
            query: "name=world".into(),
            protocol: "HTTP/1.1".into(),
            scheme: "http".into(),
            remote_addr: "127.0.0.1:50000".into(),
            server_addr: "127.0.0.1:8080".into(),
            headers,
            ..HttpRequest::default()
        }),
        task: None,
        scope,
    })
}

fn codec(c: &mut Criterion) {
    let message = request();
    c.bench_function("encode request (GET, 7 headers)", |b| {
        let mut codec = NdjsonCodec::default();
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.clear();
            codec.encode(&message, &mut buf).expect("encode");
        });
    });

    let line = br#"{"type":"response","id":"r-12345","status":200,"headers":{"content-type":["text/html; charset=UTF-8"]},"body":"Hello, world"}
"#;
    c.bench_function("decode response (hello)", |b| {
        let mut codec = NdjsonCodec::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&line[..]);
            codec.decode(&mut buf).expect("decode").expect("frame")
        });
    });

    let mut chunk = br#"{"type":"chunk","id":"r-1","len":262144}"#.to_vec();
    chunk.push(b'\n');
    chunk.extend(vec![b'z'; 262_144]);
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(262_144));
    group.bench_function("decode 256 KiB chunk", |b| {
        let mut codec = NdjsonCodec::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&chunk[..]);
            codec.decode(&mut buf).expect("decode").expect("frame")
        });
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
