//! Reading a request body: bounded in size (`max_body`) and in the time between two chunks
//! (`body_timeout`), as a stream so that multipart uploads go to disk as they arrive.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::BodyExt;

/// Why a request body could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ReadError {
    /// The body passed `max_body`.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// No chunk arrived within `body_timeout`.
    #[error("no part of the request body arrived within {0:?}")]
    Timeout(Duration),
    /// The connection failed while the body was read.
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// The body's data chunks, failing once more than `limit` bytes arrived or a chunk took
/// longer than `chunk_timeout`. Trailers are ignored.
pub(crate) fn chunks<B>(
    body: B,
    limit: usize,
    chunk_timeout: Duration,
) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + Unpin
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    Box::pin(futures_util::stream::unfold(
        Some((body, 0usize)),
        move |state| async move {
            let (mut body, mut total) = state?;
            loop {
                let frame = match tokio::time::timeout(chunk_timeout, body.frame()).await {
                    Err(_) => return Some((Err(ReadError::Timeout(chunk_timeout)), None)),
                    Ok(None) => return None,
                    Ok(Some(Err(err))) => {
                        return Some((Err(ReadError::Read(err.to_string())), None))
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                total = total.saturating_add(data.len());
                if total > limit {
                    return Some((Err(ReadError::TooLarge(limit)), None));
                }
                return Some((Ok(data), Some((body, total))));
            }
        },
    ))
}

/// The whole body in memory (it is bounded by `limit`).
pub(crate) async fn collect<B>(
    body: B,
    limit: usize,
    chunk_timeout: Duration,
) -> Result<Vec<u8>, ReadError>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    use futures_util::StreamExt as _;
    // Most requests (GET, HEAD) have no body: no stream, no timer.
    if body.is_end_stream() {
        return Ok(Vec::new());
    }
    let mut stream = chunks(body, limit, chunk_timeout);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn collects_within_the_limit_and_refuses_past_it() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(
            collect(body, 5, Duration::from_secs(1)).await.expect("ok"),
            b"hello"
        );
        let body = Full::new(Bytes::from_static(b"hello!"));
        assert!(matches!(
            collect(body, 5, Duration::from_secs(1)).await,
            Err(ReadError::TooLarge(5))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, String>>(1);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"part"))))
            .await
            .expect("send");
        let body = StreamBody::new(tokio_stream_from(rx));
        let started = tokio::time::Instant::now();
        let result = collect(body, 1024, Duration::from_secs(3)).await;
        assert!(matches!(result, Err(ReadError::Timeout(_))), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(tx);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl Stream<Item = T> + Send + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
