//! Child processes: started with their output in log files, killed when dropped, stopped
//! politely (SIGTERM, then SIGKILL after a grace period) at the end of a run; and a watcher
//! for the lines a child prints on stdout (a relay's address, a room id).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use super::{Context, Result, err};

/// A running child whose stdout lines are kept (and copied to a log file).
pub(crate) struct Proc {
    /// What it is, for messages.
    pub(crate) name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    notify: Arc<Notify>,
    /// Where its stderr (and a copy of its stdout) go.
    pub(crate) log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout watched and copied to `log`, stderr to `log` with `.err`
    /// appended, and stdin a pipe we hold (`piped_stdin`) or nothing. The child is killed if
    /// this is dropped.
    pub(crate) fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        piped_stdin: bool,
    ) -> Result<Proc> {
        let err_log = PathBuf::from(format!("{}.err", log.display()));
        let stderr =
            std::fs::File::create(&err_log).context(|| format!("create {}", err_log.display()))?;
        cmd.stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
        let mut child = cmd.spawn().context(|| format!("start {name}"))?;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let notify = Arc::new(Notify::new());
        if let Some(stdout) = child.stdout.take() {
            let (lines, notify, log) = (lines.clone(), notify.clone(), log.to_owned());
            tokio::spawn(async move {
                let mut file = tokio::fs::File::create(&log).await.ok();
                let mut reader = BufReader::new(stdout).lines();
                // Ends when the child closes stdout.
                while let Ok(Some(line)) = reader.next_line().await {
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                    }
                    if let Ok(mut l) = lines.lock()
                        && l.len() < 100_000
                    {
                        l.push(line);
                    }
                    notify.notify_waiters();
                }
                notify.notify_waiters();
            });
        }
        Ok(Proc {
            name: name.to_owned(),
            child,
            lines,
            notify,
            log: err_log,
        })
    }

    /// The first stdout line (already printed or to come within `within`) for which `pick`
    /// returns something.
    pub(crate) async fn wait_line<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + within;
        let mut seen = 0;
        // Bounded by the deadline; each round waits for new output or 100 ms.
        for _ in 0..100_000 {
            let notified = self.notify.notified();
            let new: Vec<String> = match self.lines.lock() {
                Ok(l) => l[seen..].to_vec(),
                Err(_) => Vec::new(),
            };
            seen += new.len();
            if let Some(found) = new.iter().find_map(|l| pick(l)) {
                return Ok(found);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return err(format!(
                    "{} exited ({status}) before printing what was expected; see {}",
                    self.name,
                    self.log.display()
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_millis(100)), notified)
                    .await;
        }
        err(format!(
            "{} did not print what was expected within {within:?}; see {}",
            self.name,
            self.log.display()
        ))
    }

    /// Whether it has exited.
    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Closes its stdin (children that watch stdin take it as "stop").
    pub(crate) fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub(crate) async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            signal(pid, "TERM").await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// Waits up to `grace` for it to exit by itself, then stops it.
    pub(crate) async fn wait_or_stop(mut self, grace: Duration) {
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            return;
        }
        self.stop(Duration::from_secs(2)).await;
    }
}

/// An mpv started by a child of ours (Syncplay, `lockstep-mpv`): it outlives its parent if
/// the parent is killed, so this kills it by its pid when dropped, after checking that the
/// pid still is an mpv. Normally mpv has quit over IPC by then and this does nothing.
pub(crate) struct MpvGuard(pub(crate) Option<u32>);

impl Drop for MpvGuard {
    fn drop(&mut self) {
        let Some(pid) = self.0 else {
            return;
        };
        let is_mpv = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|&b| b == 0)
                    .next()
                    .is_some_and(|a| a.ends_with(b"mpv"))
            })
            .unwrap_or(false);
        if is_mpv {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Sends a signal to one process we started (directly or through a child we started), by pid.
pub(crate) async fn signal(pid: u32, sig: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status(),
    )
    .await;
}

/// Runs a command to completion within `within`; its output if it succeeded.
pub(crate) async fn output(program: &str, args: &[&str], within: Duration) -> Result<String> {
    let run = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(within, run).await {
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(Ok(out)) => err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Err(e).context(|| format!("run {program}")),
        Err(_) => err(format!("{program} {} took over {within:?}", args.join(" "))),
    }
}

/// Whether `program` is on the PATH (or is a path that exists).
pub(crate) fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
