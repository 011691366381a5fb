//! What the pool needs of a worker, as traits: the PHP worker of `zeno-worker` implements
//! them, and the pool's unit tests implement them with a scripted fake, so supervision is
//! tested deterministically under paused time. The pool is generic over them (static
//! dispatch): the request path allocates nothing for it.

use std::future::Future;
use std::time::Duration;

use zeno_protocol::{Request, Response};
use zeno_worker::{BodyStream, HostCalls, Worker, WorkerConfig, WorkerError};

/// One running worker, as the pool drives it.
pub trait WorkerProcess: Send + 'static {
    /// Its process id.
    fn pid(&self) -> u32;
    /// Requests it has been given.
    fn requests(&self) -> u64;
    /// Its resident memory, if it can be read.
    fn rss_bytes(&self) -> Option<u64>;
    /// Whether it said it exits after its last response.
    fn is_exiting(&self) -> bool;
    /// Runs one request: the response goes to `on_response` as soon as it arrives (with the
    /// rest of its body when PHP streams it); this resolves when the worker is done with the
    /// request (streamed body and after-response work included). An error means the worker
    /// is unusable.
    fn handle<F: FnOnce(Response, Option<BodyStream>) + Send>(
        &mut self,
        request: Request,
        calls: &dyn HostCalls,
        on_response: F,
    ) -> impl Future<Output = Result<(), WorkerError>> + Send;
    /// Resolves only when an idle worker must be replaced (it died, or printed junk).
    /// Cancel-safe.
    fn watch_idle(&mut self) -> impl Future<Output = WorkerError> + Send;
    /// Asks it to finish and exit, escalating to SIGTERM and SIGKILL after `grace` each.
    fn stop(self, grace: Duration) -> impl Future<Output = ()> + Send + 'static;
    /// Kills it at once.
    fn kill(&mut self) -> impl Future<Output = ()> + Send;
}

/// Starts workers.
pub trait Spawn: Send + Sync + 'static {
    /// The workers it starts.
    type Worker: WorkerProcess;
    /// Starts one worker and waits until it is ready; host calls it makes while booting go
    /// through `calls`.
    fn spawn(
        &self,
        calls: &dyn HostCalls,
    ) -> impl Future<Output = Result<Self::Worker, WorkerError>> + Send;
}

/// Spawns PHP workers with a [`WorkerConfig`].
#[derive(Debug, Clone)]
pub struct PhpSpawner(pub WorkerConfig);

impl Spawn for PhpSpawner {
    type Worker = Worker;

    fn spawn(
        &self,
        calls: &dyn HostCalls,
    ) -> impl Future<Output = Result<Worker, WorkerError>> + Send {
        Worker::spawn(&self.0, calls)
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

    fn handle<F: FnOnce(Response, Option<BodyStream>) + Send>(
        &mut self,
        request: Request,
        calls: &dyn HostCalls,
        on_response: F,
    ) -> impl Future<Output = Result<(), WorkerError>> + Send {
        Worker::handle(self, request, calls, on_response)
    }

    fn watch_idle(&mut self) -> impl Future<Output = WorkerError> + Send {
        Worker::watch_idle(self)
    }

    fn stop(self, grace: Duration) -> impl Future<Output = ()> + Send + 'static {
        Worker::stop(self, grace)
    }

    fn kill(&mut self) -> impl Future<Output = ()> + Send {
        Worker::kill(self)
    }
}
