//! exec probe — the Nagios plugin API: run an argv (never through a shell) in its own
//! process group with a minimal environment; exit 0/1/2/3 = up/degraded/down/unknown; the
//! first line is the message and perfdata follows `|`. On timeout, and after the plugin
//! exits, the whole group is killed, so no child it left behind keeps running.

use std::process::Stdio;
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

/// Reads at most `cap` bytes, then discards the rest so the writer never blocks.
async fn read_capped<R: AsyncRead + Unpin>(mut reader: R, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = (&mut reader).take(cap as u64).read_to_end(&mut buf).await;
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    buf
}

fn kill_group(pid: u32) {
    // The plugin leads its own group (process_group(0)), so its id is the group id.
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
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
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| ProbeError::new(FailureReason::Spawn, format!("cannot run {}: {e}", spec.command[0])))?;
    let pid = child.id().unwrap_or_default();
    let cap = spec.max_output_bytes;
    let stdout = child.stdout.take().map(|s| tokio::spawn(read_capped(s, cap)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(read_capped(s, cap)));

    // Finish just inside the check's deadline, so the kill below always runs.
    let budget = timeout.saturating_sub(Duration::from_millis(50));
    let status = tokio::time::timeout(budget, child.wait()).await;
    kill_group(pid);
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
    let collect = |h: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match h {
            Some(h) => tokio::time::timeout(PIPE_GRACE, h).await.ok().and_then(Result::ok).unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let out = collect(stdout).await;
    let err = collect(stderr).await;
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
