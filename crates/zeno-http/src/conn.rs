//! Per-connection bookkeeping: the header and keep-alive timeouts.
//!
//! [`IdleIo`] wraps a connection's byte stream and fails it with `TimedOut` when, with no
//! request in flight, the client has taken longer than `header` to send a request's headers
//! (counted from when the connection opened or the previous response ended — so bytes that
//! trickle in slowly do not help), or has sent nothing for `idle`. A request counts as in
//! flight from the moment its headers are read until its response body has been sent, so a
//! PHP request that runs for a minute, or a long download, is never cut.
//!
//! hyper has a header timeout of its own, but it arms a fresh timer for every request, which
//! cost about 4 µs of host CPU per request on the hello benchmark; this one re-arms a single
//! timer per connection only when it fires.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Counts the requests of one connection that are in flight, and remembers when the last
/// one ended.
#[derive(Debug, Clone)]
pub(crate) struct InFlight(Arc<State>);

#[derive(Debug)]
struct State {
    count: AtomicUsize,
    opened: Instant,
    /// Microseconds after `opened` at which the count last fell to zero.
    idle_since: AtomicU64,
}

/// Held while a request is in flight; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<State>);

impl InFlight {
    pub(crate) fn new() -> Self {
        InFlight(Arc::new(State {
            count: AtomicUsize::new(0),
            opened: Instant::now(),
            idle_since: AtomicU64::new(0),
        }))
    }

    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    /// Since when the connection has been waiting for a request; `None` while one is in flight.
    fn waiting_since(&self) -> Option<Instant> {
        if self.0.count.load(Ordering::Acquire) > 0 {
            return None;
        }
        let micros = self.0.idle_since.load(Ordering::Acquire);
        Some(self.0.opened + Duration::from_micros(micros))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let micros = u64::try_from(self.0.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.0.idle_since.store(micros, Ordering::Release);
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The limits an [`IdleIo`] enforces; `None` is no limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// From the start of waiting for a request to its complete headers.
    pub(crate) header: Option<Duration>,
    /// No bytes either way while no request is in flight.
    pub(crate) idle: Option<Duration>,
}

impl Limits {
    fn shortest(&self) -> Duration {
        match (self.header, self.idle) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => FAR,
        }
    }
}

const FAR: Duration = Duration::from_secs(86400 * 365);

/// A connection's byte stream that fails with `TimedOut` past its [`Limits`].
pub(crate) struct IdleIo<T> {
    inner: T,
    limits: Limits,
    in_flight: InFlight,
    last_activity: Instant,
    /// Fires at the earliest deadline or later; re-armed only when it fires, so traffic
    /// costs a clock read, not a timer update.
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    pub(crate) fn new(inner: T, limits: Limits, in_flight: InFlight) -> Self {
        let now = Instant::now();
        IdleIo {
            inner,
            limits,
            in_flight,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + limits.shortest())),
        }
    }

    /// Called when the inner stream has nothing: `Ready(Err)` past a limit, else `Pending`
    /// with the timer registered.
    fn poll_limits(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.limits.header.is_none() && self.limits.idle.is_none() {
            return Poll::Pending;
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let Some(since) = self.in_flight.waiting_since() else {
                self.last_activity = now;
                self.timer.as_mut().reset(now + self.limits.shortest());
                continue;
            };
            let mut due = now + FAR;
            if let Some(header) = self.limits.header {
                let deadline = since + header;
                if deadline <= now {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not send a request's headers in time",
                    ));
                }
                due = due.min(deadline);
            }
            if let Some(idle) = self.limits.idle {
                let deadline = self.last_activity.max(since) + idle;
                if deadline <= now {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "keep-alive connection idle for too long",
                    ));
                }
                due = due.min(deadline);
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
            Poll::Pending => this.poll_limits(cx).map(Err),
        }
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

    fn limits(header: u64, idle: u64) -> Limits {
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        Limits {
            header: secs(header),
            idle: secs(idle),
        }
    }

    async fn timed_out_after(io: &mut IdleIo<tokio::io::DuplexStream>) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 8];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("closed by the client"),
                Ok(_) => {}
                Err(err) => {
                    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
                    return started.elapsed();
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, limits(30, 5), InFlight::new());
        assert_eq!(timed_out_after(&mut io).await, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_pushes_the_idle_deadline_back() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, limits(0, 5), InFlight::new());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"a").await.expect("write");
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        assert_eq!(timed_out_after(&mut io).await, Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn headers_that_trickle_in_still_time_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, limits(10, 5), InFlight::new());
        tokio::spawn(async move {
            // One byte every 3 s: never idle for 5 s, never a whole header.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if client.write_all(b"G").await.is_err() {
                    return;
                }
            }
        });
        assert_eq!(timed_out_after(&mut io).await, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_cut_and_waiting_starts_when_it_ends() {
        let (_client, server) = tokio::io::duplex(64);
        let in_flight = InFlight::new();
        let mut io = IdleIo::new(server, limits(10, 5), in_flight.clone());
        let guard = in_flight.enter();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(guard);
        });
        let elapsed = timed_out_after(&mut io).await;
        // Idle for 5 s after the request ended at 60 s; the timer is checked lazily, so up to
        // one period later.
        assert!(
            elapsed >= Duration::from_secs(65) && elapsed <= Duration::from_secs(70),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_means_none() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = IdleIo::new(server, limits(0, 0), InFlight::new());
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting after an hour");
    }
}
