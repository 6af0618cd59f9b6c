//! exec probe — the Nagios plugin API: run an argv (never through a shell) in its own
//! process group with a minimal environment, in `/`, without the daemon's ambient
//! capabilities; exit 0/1/2/3 = up/degraded/down/unknown; the first line is the message and
//! perfdata follows `|`. On every way out — exit, timeout, the run abandoned by the check's
//! deadline — the whole group is killed, and the pipes are closed after a short grace even
//! if a grandchild that left the group still holds them.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::perfdata::{Perfdata, parse_output};
use super::{FailureReason, Health, Observations, ProbeError, Verdict};
use crate::config::ExecSpec;

/// The environment every plugin gets, besides the check's own `env`.
const BASE_ENV: [(&str, &str); 3] = [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("LANG", "C"), ("LC_ALL", "C")];
/// Time the output pipes get to close after the plugin exits.
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// What the plugin said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecResult {
    /// None when the plugin was killed by a signal.
    pub exit_code: Option<i32>,
    pub message: String,
    pub perfdata: Vec<Perfdata>,
}

/// Reads at most `cap` bytes into `buf` as they come, then discards the rest so the
/// writer never blocks. What was read stays in `buf` if the task is aborted.
async fn read_capped<R: AsyncRead + Unpin>(mut reader: R, cap: usize, buf: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
                let room = cap.saturating_sub(b.len());
                b.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// A pipe being read, and what it gave so far.
struct Reader {
    task: tokio::task::JoinHandle<()>,
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Reader {
    fn start<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>, cap: usize) -> Option<Reader> {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(read_capped(pipe?, cap, buf.clone()));
        Some(Reader { task, buf })
    }

    /// What was read once the pipe closed, or after the grace: then the reader is stopped and
    /// the pipe closed (a grandchild that left the group may keep its end open for ever).
    async fn finish(reader: Option<Reader>) -> Vec<u8> {
        let Some(mut r) = reader else {
            return Vec::new();
        };
        if tokio::time::timeout(PIPE_GRACE, &mut r.task).await.is_err() {
            r.task.abort();
            let _ = (&mut r.task).await;
        }
        std::mem::take(&mut *r.buf.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Dropped on every way out (timeout, an abandoned run): the pipe closes with the task.
impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Kills the plugin's process group when dropped: on exit, on timeout, and when the run is
/// abandoned (the check's deadline drops this future mid-way).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // The plugin leads its own group (process_group(0)), so its id is the group id. No
        // id, no signal: killpg(0) would hit Vigil's own group.
        if let Some(group) = self.0.filter(|p| p.as_raw() > 0) {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

pub(super) async fn observe(spec: &ExecSpec, timeout: Duration) -> Result<Observations, ProbeError> {
    let mut obs = Observations::default();
    let started = std::time::Instant::now();
    let mut command = Command::new(&spec.command[0]);
    command
        .args(&spec.command[1..])
        .env_clear()
        .envs(BASE_ENV)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; prctl is a
    // plain system call. It drops the ambient capabilities (CAP_NET_RAW for ICMP) the unit
    // grants Vigil, so a plugin runs with none of them.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 {
                let e = std::io::Error::last_os_error();
                // Kernels without ambient capabilities have none to clear.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| ProbeError::new(FailureReason::Spawn, format!("cannot run {}: {e}", spec.command[0])))?;
    let group = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));
    let cap = spec.max_output_bytes;
    let stdout = Reader::start(child.stdout.take(), cap);
    let stderr = Reader::start(child.stderr.take(), cap);

    // Finish just inside the check's deadline, so the kill below always runs.
    let budget = timeout.saturating_sub(Duration::from_millis(50));
    let status = tokio::time::timeout(budget, child.wait()).await;
    drop(group);
    let status = match status {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProbeError::new(FailureReason::Spawn, format!("waiting for the plugin: {e}"))),
        Err(_) => {
            let _ = child.wait().await;
            return Err(ProbeError::new(
                FailureReason::Timeout,
                format!("plugin still running after {}; killed", humantime::format_duration(budget)),
            ));
        }
    };
    let (out, err) = tokio::join!(Reader::finish(stdout), Reader::finish(stderr));
    let text = String::from_utf8_lossy(&out);
    let parsed = parse_output(&text);
    let exit_code = status.code();
    let health = match exit_code {
        Some(0) => Health::Up,
        Some(1) => Health::Degraded,
        Some(2) => Health::Down,
        _ => Health::Unknown,
    };
    let mut message = parsed.message.clone();
    if message.is_empty() {
        let err_text = String::from_utf8_lossy(&err);
        message = err_text.lines().next().unwrap_or("(no output)").trim().to_string();
    }
    let shown = match exit_code {
        Some(code) => format!("exit {code}: {message}"),
        None => format!("killed by a signal: {message}"),
    };
    obs.response_time = Some(started.elapsed());
    obs.body = Some(Bytes::from(out));
    obs.verdict =
        Some(Verdict { health, reason: (health != Health::Up).then_some(FailureReason::Exit), message: shown });
    obs.exec = Some(ExecResult { exit_code, message, perfdata: parsed.perfdata });
    Ok(obs)
}
