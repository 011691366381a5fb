//! Starting and killing the PHP process: its own process group, death with the host, an
//! environment built from scratch, stderr logged line by line.

use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::{WorkerConfig, WorkerError};

/// Longest stderr line logged as one event; longer output is logged in pieces.
const MAX_STDERR_LINE: u64 = 16 * 1024;

/// The started process, its pipes, and the task logging its stderr.
pub(crate) struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr_logger: tokio::task::JoinHandle<()>,
}

pub(crate) fn spawn(config: &WorkerConfig) -> Result<Spawned, WorkerError> {
    let mut cmd = Command::new(&config.php_binary);
    // -q: php-cgi must not print CGI headers on stdout. php (cli) ignores it.
    cmd.arg("-q");
    for (name, value) in &config.ini {
        cmd.arg("-d").arg(format!("{name}={value}"));
    }
    cmd.arg(&config.script)
        .env_clear()
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &config.cwd {
        cmd.current_dir(dir);
    }
    if let Some(credentials) = config.credentials {
        // The standard library clears the supplementary groups when it switches the user,
        // and runs `pre_exec` after the switch — which matters, because changing credentials
        // clears PR_SET_PDEATHSIG.
        cmd.gid(credentials.gid).uid(credentials.uid);
    }
    prepare_child(&mut cmd, config.batch_scheduling);

    let mut child = cmd.spawn().map_err(|source| WorkerError::Spawn {
        binary: config.php_binary.display().to_string(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
        kill_group(pid);
        return Err(WorkerError::Protocol(
            "worker pipes were not created".into(),
        ));
    };
    let stderr_logger = tokio::spawn(log_stderr(pid, stderr));
    Ok(Spawned {
        child,
        pid,
        stdin,
        stdout,
        stderr_logger,
    })
}

/// Makes the kernel SIGKILL the worker when the host dies, even by `kill -9`, and with
/// `batch` puts it under `SCHED_BATCH`.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked exits. Workers are spawned from
/// tokio's runtime threads, which live as long as the runtime; never spawn them from
/// `spawn_blocking`, whose threads exit when idle.
#[allow(unsafe_code)]
fn prepare_child(cmd: &mut Command, batch: bool) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec. It only makes system calls
    // (prctl, getppid, sched_setscheduler), which are async-signal-safe, and allocates
    // nothing: errors are built from a raw errno.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The host may have died between fork and prctl: then nobody will signal us.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            if batch {
                // SCHED_BATCH takes priority 0. Refused only under unusual seccomp or LSM
                // rules; the worker then runs under the normal policy, which is correct,
                // only slower.
                let param = nix::libc::sched_param { sched_priority: 0 };
                nix::libc::sched_setscheduler(0, nix::libc::SCHED_BATCH, &param);
            }
            Ok(())
        });
    }
}

/// SIGKILLs the worker's process group: the worker and anything it started.
pub(crate) fn kill_group(pid: u32) {
    signal_group(pid, Signal::SIGKILL);
}

/// Sends a signal to the worker's process group.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    if pid == 0 {
        return;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    // ESRCH (already gone) is the common, harmless case.
    let _ = killpg(Pid::from_raw(raw), signal);
}

pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096);
    Some(pages * page_size)
}

async fn log_stderr(pid: u32, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_STDERR_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                if !text.is_empty() {
                    tracing::warn!(target: "php", pid, "{text}");
                }
            }
        }
    }
}
