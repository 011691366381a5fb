//! What the pool needs of a worker, as traits: the PHP worker of `zeno-worker` implements
//! them, and the pool's unit tests implement them with a scripted fake, so supervision is
//! tested deterministically under paused time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use zeno_protocol::{Request, Response};
use zeno_worker::{HostCalls, Worker, WorkerConfig, WorkerError};

/// A boxed future, as the traits below return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Called once with the response, as soon as it arrives.
pub type OnResponse<'a> = Box<dyn FnOnce(Response) + Send + 'a>;

/// One running worker, as the pool drives it.
pub trait WorkerProcess: Send {
    /// Its process id.
    fn pid(&self) -> u32;
    /// Requests it has been given.
    fn requests(&self) -> u64;
    /// Its resident memory, if it can be read.
    fn rss_bytes(&self) -> Option<u64>;
    /// Whether it said it exits after its last response.
    fn is_exiting(&self) -> bool;
    /// Runs one request: the response goes to `on_response` as soon as it arrives; this
    /// returns when the worker is done with the request (after-response work included). An
    /// error means the worker is unusable.
    fn handle<'a>(
        &'a mut self,
        request: Request,
        calls: &'a dyn HostCalls,
        on_response: OnResponse<'a>,
    ) -> BoxFuture<'a, Result<(), WorkerError>>;
    /// Resolves only when an idle worker must be replaced (it died, or printed junk).
    /// Cancel-safe.
    fn watch_idle(&mut self) -> BoxFuture<'_, WorkerError>;
    /// Asks it to finish and exit, escalating to SIGTERM and SIGKILL after `grace` each.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()>;
    /// Kills it at once.
    fn kill(&mut self) -> BoxFuture<'_, ()>;
}

/// A worker the pool owns.
pub type BoxWorker = Box<dyn WorkerProcess>;

/// Starts workers.
pub trait Spawn: Send + Sync {
    /// Starts one worker and waits until it is ready; host calls it makes while booting go
    /// through `calls`.
    fn spawn<'a>(
        &'a self,
        calls: &'a dyn HostCalls,
    ) -> BoxFuture<'a, Result<BoxWorker, WorkerError>>;
}

/// Spawns PHP workers with a [`WorkerConfig`].
#[derive(Debug, Clone)]
pub struct PhpSpawner(pub WorkerConfig);

impl Spawn for PhpSpawner {
    fn spawn<'a>(
        &'a self,
        calls: &'a dyn HostCalls,
    ) -> BoxFuture<'a, Result<BoxWorker, WorkerError>> {
        Box::pin(async move {
            let worker = Worker::spawn(&self.0, calls).await?;
            Ok(Box::new(worker) as BoxWorker)
        })
    }
}

impl WorkerProcess for Worker {
    fn pid(&self) -> u32 {
        Worker::pid(self)
    }

    fn requests(&self) -> u64 {
        Worker::requests(self)
    }

    fn rss_bytes(&self) -> Option<u64> {
        Worker::rss_bytes(self)
    }

    fn is_exiting(&self) -> bool {
        Worker::is_exiting(self)
    }

    fn handle<'a>(
        &'a mut self,
        request: Request,
        calls: &'a dyn HostCalls,
        on_response: OnResponse<'a>,
    ) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(Worker::handle(self, request, calls, on_response))
    }

    fn watch_idle(&mut self) -> BoxFuture<'_, WorkerError> {
        Box::pin(Worker::watch_idle(self))
    }

    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()> {
        Box::pin(Worker::stop(*self, grace))
    }

    fn kill(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(Worker::kill(self))
    }
}
