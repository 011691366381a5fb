//! One PHP worker process: spawn it, wait for its handshake, run requests through it while
//! relaying its host calls, and stop it.
//!
//! A [`Worker`] owns its process and the process's whole group. Dropping a worker kills the
//! group, and the kernel kills the process if the host dies (`PR_SET_PDEATHSIG`), so no PHP
//! process outlives the host. Supervision (how many workers, when to replace one) is the
//! pool's job, not this crate's.

mod process;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::codec::{FramedRead, FramedWrite};
use zeno_protocol::{
    CodecError, Frame, HostCall, HostMessage, HostResult, Log, NdjsonCodec, Ready, Request,
    Response, StreamAck, WorkerMessage, PROTOCOL_VERSION,
};

/// How to start a worker. The environment is given whole: the worker sees nothing of the
/// host's own environment that is not listed here.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The PHP binary (`php-cgi` by default, so `header()` works; `php` works too).
    pub php_binary: PathBuf,
    /// `-d name=value` settings passed to PHP.
    pub ini: Vec<(String, String)>,
    /// The PHP file PHP runs: the runtime's `bin/zeno-worker.php`.
    pub script: PathBuf,
    /// The complete environment of the worker.
    pub env: Vec<(String, String)>,
    /// Working directory of the worker.
    pub cwd: Option<PathBuf>,
    /// How long a worker may take to boot and say `ready`.
    pub boot_timeout: Duration,
    /// Longest line accepted from the worker, in bytes.
    pub max_line: usize,
    /// Largest `host_call` line accepted, in bytes; larger calls get an error result.
    pub max_host_call: usize,
    /// The user and group the worker runs as; `None` runs it as the host's own.
    pub credentials: Option<Credentials>,
    /// Run the worker under Linux's `SCHED_BATCH` policy: same share of the CPU, but waking
    /// it (a request written to its pipe) does not preempt the host mid-request, so the host
    /// finishes what it was doing and both sides switch less (docs/benchmarks.md).
    pub batch_scheduling: bool,
}

/// A user and group to run workers as (PHP-FPM's pool `user` and `group`). The host must run
/// as root to switch to them; supplementary groups are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The numeric user id.
    pub uid: u32,
    /// The numeric group id.
    pub gid: u32,
}

/// Where a host call comes from: which worker, and the request it was serving (whose scope a
/// host function may need, say to hand it on to tasks the request starts).
#[derive(Debug, Clone, Copy)]
pub struct CallOrigin<'a> {
    /// The calling worker's process id.
    pub pid: u32,
    /// The request in flight, or `None` for a call made while the worker booted.
    pub request: Option<&'a Request>,
}

/// Runs the host functions a worker calls. The pool and host implement it; the worker only
/// relays.
pub trait HostCalls: Send + Sync {
    /// Runs one host call and returns its result. Never fails: errors are results.
    fn call<'a>(
        &'a self,
        call: HostCall,
        origin: CallOrigin<'a>,
    ) -> Pin<Box<dyn Future<Output = HostResult> + Send + 'a>>;

    /// The request is over, however it ended (answered, failed, timed out, worker died):
    /// release what its host calls held, such as an open transaction.
    fn request_ended<'a>(
        &'a self,
        _request: &'a str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async {})
    }
}

/// Why a worker could not start or could not finish a request. Every variant means the
/// worker is unusable and must be replaced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The PHP binary could not be started.
    #[error("could not start {binary}")]
    Spawn {
        /// The binary that failed to start.
        binary: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The worker did not say `ready` in time.
    #[error("worker did not become ready within {0:?}")]
    BootTimeout(Duration),
    /// The worker process ended (during boot or during a request).
    #[error("worker exited ({status}) {during}")]
    Exited {
        /// How it ended.
        status: String,
        /// What the host was waiting for.
        during: &'static str,
    },
    /// The worker speaks a protocol version the host does not.
    #[error("worker speaks protocol {0}, this host speaks {PROTOCOL_VERSION}")]
    UnsupportedProtocol(u32),
    /// The worker wrote something on stdout that is not a protocol message.
    #[error("worker wrote non-protocol output on stdout: {0:?}")]
    StrayOutput(String),
    /// The worker broke the protocol in another way (oversized line, wrong response id).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The worker's output could not be framed (a line over `max_line`), or a message to it
    /// could not be encoded.
    #[error("the worker's stream broke")]
    Codec(#[source] CodecError),
    /// Writing to the worker failed.
    #[error("could not write to worker")]
    Io(#[from] std::io::Error),
}

/// The rest of a streamed response's body, chunk by chunk as PHP produces it; ends when PHP
/// ends the body (or dies). Dropping it tells PHP the client went away.
pub type BodyStream = tokio::sync::mpsc::Receiver<bytes::Bytes>;

/// Chunks of a streamed body held between PHP and the client: enough to keep both busy, few
/// enough that a slow client slows PHP down instead of growing the host's memory.
const STREAM_WINDOW: usize = 4;

/// A running PHP worker that has completed its handshake.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    pid: u32,
    stdin: FramedWrite<ChildStdin, NdjsonCodec>,
    stdout: FramedRead<ChildStdout, NdjsonCodec>,
    ready: Ready,
    max_host_call: usize,
    requests: u64,
    exiting: bool,
}

impl Worker {
    /// Starts a worker and waits for its `ready`. Host calls made while booting are relayed
    /// through `calls`.
    pub async fn spawn(
        config: &WorkerConfig,
        calls: &dyn HostCalls,
    ) -> Result<Worker, WorkerError> {
        let process::Spawned {
            child,
            pid,
            stdin,
            stdout,
            stderr_logger,
        } = process::spawn(config)?;
        let mut worker = Worker {
            child,
            pid,
            stdin: FramedWrite::new(stdin, NdjsonCodec::new(config.max_line)),
            stdout: FramedRead::new(stdout, NdjsonCodec::new(config.max_line)),
            ready: Ready {
                protocol: 0,
                pid,
                php: String::new(),
                app: String::new(),
            },
            max_host_call: config.max_host_call,
            requests: 0,
            exiting: false,
        };
        match tokio::time::timeout(config.boot_timeout, worker.handshake(calls)).await {
            Ok(Ok(ready)) => {
                tracing::debug!(pid, php = %ready.php, app = %ready.app, "worker ready");
                worker.ready = ready;
                Ok(worker)
            }
            Ok(Err(err)) => {
                worker.kill().await;
                log_rest_of_stderr(stderr_logger).await;
                Err(err)
            }
            Err(_) => {
                worker.kill().await;
                log_rest_of_stderr(stderr_logger).await;
                Err(WorkerError::BootTimeout(config.boot_timeout))
            }
        }
    }

    async fn handshake(&mut self, calls: &dyn HostCalls) -> Result<Ready, WorkerError> {
        loop {
            match self.next_frame("booting").await? {
                Frame::Message {
                    message: WorkerMessage::Ready(ready),
                    ..
                } => {
                    if ready.protocol != PROTOCOL_VERSION {
                        return Err(WorkerError::UnsupportedProtocol(ready.protocol));
                    }
                    return Ok(ready);
                }
                Frame::Message {
                    message: WorkerMessage::HostCall(call),
                    len,
                } => self.relay(call, len, calls, None).await?,
                Frame::Message {
                    message: WorkerMessage::Log(log),
                    ..
                } => self.emit_log(&log),
                Frame::Message { message, .. } => {
                    return Err(WorkerError::Protocol(format!(
                        "expected ready, got {message:?}"
                    )))
                }
                Frame::Chunk { .. } => {
                    return Err(WorkerError::Protocol("expected ready, got a chunk".into()))
                }
                // PHP's own startup errors can reach stdout before the runtime runs; they are
                // worth seeing but do not make the worker unusable.
                Frame::Junk(line) => {
                    tracing::warn!(pid = self.pid, output = %line, "worker printed to stdout while booting")
                }
            }
        }
    }

    /// Runs one request. The worker's response is handed to `on_response` as soon as it
    /// arrives — for a streamed response with the [`BodyStream`] its chunks go to, each
    /// acknowledged to PHP only once the stream has room; when the response (or the stream's
    /// end) says `terminating`, the worker goes on with after-response work (host calls still
    /// relayed) and this returns once it sends `done`. Host calls made by PHP are relayed
    /// through `calls`. An error means the worker must be discarded.
    pub async fn handle<F>(
        &mut self,
        request: Request,
        calls: &dyn HostCalls,
        on_response: F,
    ) -> Result<(), WorkerError>
    where
        F: FnOnce(Response, Option<BodyStream>) + Send,
    {
        let id = request.id.clone();
        self.requests += 1;
        // Kept, not consumed, so host calls made for the request can see it.
        let message = HostMessage::Request(request);
        self.stdin.send(&message).await.map_err(codec_to_worker)?;
        let request = match &message {
            HostMessage::Request(request) => Some(request),
            _ => None,
        };
        let mut on_response = Some(on_response);
        // While a streamed body is open: where its chunks go (`None` once the client left).
        let mut stream: Option<Option<tokio::sync::mpsc::Sender<bytes::Bytes>>> = None;
        loop {
            match self.next_frame("handling a request").await? {
                Frame::Message {
                    message: WorkerMessage::Response(mut response),
                    ..
                } => {
                    if response.id != id || on_response.is_none() {
                        return Err(WorkerError::Protocol(format!(
                            "unexpected response for {:?} while {id:?} was in flight",
                            response.id
                        )));
                    }
                    if response.stream && !response.exiting {
                        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_WINDOW);
                        let first = std::mem::take(&mut response.body)
                            .into_bytes()
                            .map_err(|err| WorkerError::Protocol(err.to_string()))?;
                        if !first.is_empty() {
                            // Room for it: the channel is new.
                            let _ = tx.try_send(bytes::Bytes::from(first));
                        }
                        if let Some(send) = on_response.take() {
                            send(response, Some(rx));
                        }
                        stream = Some(Some(tx));
                        continue;
                    }
                    self.exiting = response.exiting;
                    let terminating = response.terminating && !response.exiting;
                    if let Some(send) = on_response.take() {
                        send(response, None);
                    }
                    if !terminating {
                        return Ok(());
                    }
                }
                Frame::Chunk { id: chunk_id, data } => {
                    let Some(sink) = stream.as_mut().filter(|_| chunk_id == id) else {
                        return Err(WorkerError::Protocol(format!(
                            "chunk for {chunk_id:?} while no stream of {id:?} was open"
                        )));
                    };
                    let taken = match sink {
                        Some(tx) => tx.send(data).await.is_ok(),
                        None => false,
                    };
                    let answer = StreamAck { id: id.clone() };
                    let answer = if taken {
                        HostMessage::Ack(answer)
                    } else {
                        if sink.take().is_some() {
                            tracing::debug!(pid = self.pid, request = %id, "client went away mid-stream; telling PHP");
                        }
                        HostMessage::Abort(answer)
                    };
                    self.stdin.send(&answer).await.map_err(codec_to_worker)?;
                }
                Frame::Message {
                    message: WorkerMessage::End(end),
                    ..
                } => {
                    if end.id != id || stream.take().is_none() {
                        return Err(WorkerError::Protocol(format!(
                            "unexpected end for {:?} while {id:?} was in flight",
                            end.id
                        )));
                    }
                    self.exiting = end.exiting;
                    if !end.terminating || end.exiting {
                        return Ok(());
                    }
                }
                Frame::Message {
                    message: WorkerMessage::Done(done),
                    ..
                } => {
                    if done.id != id || on_response.is_some() || stream.is_some() {
                        return Err(WorkerError::Protocol(format!(
                            "unexpected done for {:?} while {id:?} was in flight",
                            done.id
                        )));
                    }
                    self.exiting = done.exiting;
                    return Ok(());
                }
                Frame::Message {
                    message: WorkerMessage::HostCall(call),
                    len,
                } => self.relay(call, len, calls, request).await?,
                Frame::Message {
                    message: WorkerMessage::Log(log),
                    ..
                } => self.emit_log(&log),
                Frame::Message {
                    message: WorkerMessage::Ready(_),
                    ..
                } => {
                    return Err(WorkerError::Protocol(
                        "ready sent while a request was in flight".into(),
                    ))
                }
                Frame::Message {
                    message: WorkerMessage::Chunk(_),
                    ..
                } => {
                    // The codec turns every chunk header into a Frame::Chunk.
                    return Err(WorkerError::Protocol("a chunk header out of place".into()));
                }
                Frame::Junk(line) => {
                    tracing::error!(pid = self.pid, request = %id, output = %line, "worker wrote non-protocol output on stdout");
                    return Err(WorkerError::StrayOutput(line));
                }
            }
        }
    }

    /// Watches an idle worker: returns only when it must be replaced (it exited, or wrote
    /// something other than a log record while it had no request). Cancel-safe, so a pool can
    /// race it against waiting for the next request.
    pub async fn watch_idle(&mut self) -> WorkerError {
        loop {
            match self.next_frame("idle").await {
                Ok(Frame::Message {
                    message: WorkerMessage::Log(log),
                    ..
                }) => self.emit_log(&log),
                Ok(Frame::Junk(line)) => {
                    tracing::error!(pid = self.pid, output = %line, "idle worker wrote non-protocol output on stdout");
                    return WorkerError::StrayOutput(line);
                }
                Ok(Frame::Message { message, .. }) => {
                    return WorkerError::Protocol(format!(
                        "unexpected message from an idle worker: {message:?}"
                    ))
                }
                Ok(Frame::Chunk { .. }) => {
                    return WorkerError::Protocol("a chunk from an idle worker".into())
                }
                Err(err) => return err,
            }
        }
    }

    /// Whether the worker announced it will exit after its last response.
    pub fn is_exiting(&self) -> bool {
        self.exiting
    }

    async fn relay(
        &mut self,
        call: HostCall,
        len: usize,
        calls: &dyn HostCalls,
        request: Option<&Request>,
    ) -> Result<(), WorkerError> {
        let result = if len > self.max_host_call {
            tracing::warn!(pid = self.pid, function = %call.function, len, limit = self.max_host_call, "host_call over the size limit");
            HostResult::err(
                call.id,
                "too_large",
                format!(
                    "host_call of {len} bytes is over the limit of {} bytes",
                    self.max_host_call
                ),
            )
        } else {
            let origin = CallOrigin {
                pid: self.pid,
                request,
            };
            calls.call(call, origin).await
        };
        self.stdin
            .send(&HostMessage::HostResult(result))
            .await
            .map_err(codec_to_worker)
    }

    fn emit_log(&self, log: &Log) {
        let pid = self.pid;
        let request = log.request.as_deref().unwrap_or("");
        let context = if log.context.is_null() {
            String::new()
        } else {
            log.context.to_string()
        };
        let message = &log.message;
        match log.level.as_str() {
            "debug" => tracing::debug!(target: "php", pid, request, %context, "{message}"),
            "info" | "notice" => tracing::info!(target: "php", pid, request, %context, "{message}"),
            "warning" => tracing::warn!(target: "php", pid, request, %context, "{message}"),
            _ => {
                tracing::error!(target: "php", pid, request, level = %log.level, %context, "{message}")
            }
        }
    }

    async fn next_frame(&mut self, during: &'static str) -> Result<Frame, WorkerError> {
        match self.stdout.next().await {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(err)) => Err(codec_to_worker(err)),
            None => {
                let status = self.child.wait().await;
                Err(WorkerError::Exited {
                    status: describe(status),
                    during,
                })
            }
        }
    }

    /// The operating system's process id of the worker.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the worker said in its handshake.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// How many requests this worker has been given.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Resident memory of the worker process, from `/proc`.
    pub fn rss_bytes(&self) -> Option<u64> {
        process::rss_bytes(self.pid)
    }

    /// Asks the worker to exit after its current request and waits up to `grace`; then
    /// sends SIGTERM to its process group and waits up to `grace` again; then SIGKILLs it.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stdin.send(&HostMessage::Stop).await;
        let _ = self.stdin.close().await;
        if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
            tracing::debug!(pid = self.pid, status = %describe(status), "worker stopped");
            process::kill_group(self.pid);
            return;
        }
        tracing::warn!(
            pid = self.pid,
            ?grace,
            "worker did not stop in time; sending SIGTERM"
        );
        process::signal_group(self.pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            process::kill_group(self.pid);
            return;
        }
        tracing::warn!(pid = self.pid, "worker ignored SIGTERM; killing it");
        self.kill().await;
    }

    /// Kills the worker's whole process group at once and reaps the worker.
    pub async fn kill(&mut self) {
        process::kill_group(self.pid);
        let _ = self.child.wait().await;
    }
}

/// Waits (briefly) until everything a worker that failed to boot wrote on stderr is logged:
/// PHP's own message — a syntax error, a missing extension — is why it failed, and the host
/// may exit right after reporting the failure.
async fn log_rest_of_stderr(logger: tokio::task::JoinHandle<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), logger).await;
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker dropped without stop() (a cancelled request, a panic) must not leave PHP
        // running; tokio reaps the child in the background (kill_on_drop).
        if matches!(self.child.try_wait(), Ok(None)) {
            process::kill_group(self.pid);
        }
    }
}

/// Resident memory of any process, from `/proc` (for status reports about workers).
pub fn rss_of(pid: u32) -> Option<u64> {
    process::rss_bytes(pid)
}

fn codec_to_worker(err: CodecError) -> WorkerError {
    match err {
        CodecError::Io(io) => WorkerError::Io(io),
        other => WorkerError::Codec(other),
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(err) => format!("unknown status: {err}"),
    }
}
