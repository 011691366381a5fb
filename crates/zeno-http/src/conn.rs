//! Per-connection bookkeeping: the keep-alive idle timeout.
//!
//! hyper bounds the wait for a request's headers (`header_timeout`) but has no notion of a
//! connection that sits idle between requests. [`IdleIo`] closes one that has moved no bytes
//! for the idle timeout while no request is in flight; a request counts as in flight from the
//! moment its headers are read until its response body has been sent, so a PHP request that
//! runs for a minute, or a long download, is never cut.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Counts the requests of one connection that are in flight.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

/// Held while a request is in flight; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<AtomicUsize>);

impl InFlight {
    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// A response body that keeps its request in flight until hyper drops it, after the last
/// byte; size and end are the inner body's, so `Content-Length` survives.
pub(crate) struct Guarded<B> {
    inner: B,
    _guard: InFlightGuard,
}

impl<B> Guarded<B> {
    pub(crate) fn new(inner: B, guard: InFlightGuard) -> Self {
        Guarded {
            inner,
            _guard: guard,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's byte stream that fails with `TimedOut` once it has been idle — no bytes
/// either way, no request in flight — for `idle`.
pub(crate) struct IdleIo<T> {
    inner: T,
    idle: Option<Duration>,
    in_flight: InFlight,
    last_activity: Instant,
    /// Fires at `last_activity + idle` or later; re-armed lazily when it fires, so traffic
    /// costs a clock read, not a timer update.
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    /// Wraps `inner`; `idle` of `None` never times out.
    pub(crate) fn new(inner: T, idle: Option<Duration>, in_flight: InFlight) -> Self {
        let now = Instant::now();
        let deadline = now + idle.unwrap_or(Duration::from_secs(86400 * 365));
        IdleIo {
            inner,
            idle,
            in_flight,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// Called when the inner stream has nothing: `Ready(Err)` once the connection is idle
    /// for too long, else `Pending` with the timer registered.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(idle) = self.idle else {
            return Poll::Pending;
        };
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if self.in_flight.busy() {
                self.last_activity = now;
            }
            let due = self.last_activity + idle;
            if due <= now {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "keep-alive connection idle for too long",
                ));
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.last_activity = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if result.is_ready() {
            this.last_activity = Instant::now();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if result.is_ready() {
            this.last_activity = Instant::now();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_connection_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, Some(Duration::from_secs(5)), InFlight::default());
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.expect_err("must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_pushes_the_deadline_back() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, Some(Duration::from_secs(5)), InFlight::default());
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"a").await.expect("write");
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.expect("byte"), 1);
        let err = io.read(&mut buf).await.expect_err("then idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_cut() {
        let (client, server) = tokio::io::duplex(64);
        let in_flight = InFlight::default();
        let mut io = IdleIo::new(server, Some(Duration::from_secs(5)), in_flight.clone());
        let guard = in_flight.enter();
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(guard);
        });
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.expect_err("idle after the request");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let elapsed = started.elapsed();
        // Idle time counts from the last traffic or the last check that found it busy.
        assert!(
            elapsed >= Duration::from_secs(60) && elapsed <= Duration::from_secs(70),
            "{elapsed:?}"
        );
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_means_none() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, None, InFlight::default());
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting after an hour");
    }
}
