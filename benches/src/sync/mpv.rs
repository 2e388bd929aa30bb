//! A client of mpv's JSON IPC (`--input-ipc-server`): requests with ids, the time each reply
//! arrived (for the [`sampler`](super::sampler)), and what mpv announces to every client: its
//! `seek` events and changes of the observed `speed` and `pause` properties.
//!
//! mpv accepts several clients on one socket, so this runs beside the system under test
//! (Syncplay or `lockstep-mpv`), which holds its own connection. Events go to every client,
//! so seeks and speed changes are counted the same way for both systems, whoever caused them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Context, Result, err};

/// Observed property ids.
const SPEED_ID: u64 = 1;
const PAUSE_ID: u64 = 2;
/// Longest line accepted from mpv (property dumps are far shorter).
const MAX_LINE: usize = 1 << 20;

/// A reply to one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// `"success"` or mpv's error (e.g. `"property unavailable"`).
    pub(crate) error: String,
    /// The value, for `get_property`.
    pub(crate) data: Value,
    /// When the reply was read, on the bench's monotonic clock.
    pub(crate) received: Instant,
}

impl Reply {
    /// Whether mpv did it.
    pub(crate) fn ok(&self) -> bool {
        self.error == "success"
    }
}

/// What mpv announced to this client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    /// The current `speed` (1.0 until told).
    pub(crate) speed: f64,
    /// The current `pause`.
    pub(crate) paused: bool,
    /// When each `seek` event arrived.
    pub(crate) seeks: Vec<Instant>,
    /// When `speed` changed, and to what.
    pub(crate) speed_changes: Vec<(Instant, f64)>,
    /// Whether the first value of `speed` has been seen (the first is not a change).
    speed_known: bool,
    /// Whether mpv closed the connection.
    pub(crate) closed: bool,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// One IPC connection to one mpv.
pub(crate) struct Mpv {
    path: PathBuf,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    observed: Arc<Mutex<Observed>>,
    reader: JoinHandle<()>,
}

impl Drop for Mpv {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Mpv {
    /// Connects to the socket at `path`, retrying until it exists or `within` passes, and
    /// starts observing `speed` and `pause`.
    pub(crate) async fn connect(path: &Path, within: Duration) -> Result<Mpv> {
        let deadline = Instant::now() + within;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).context(|| format!("connect to mpv at {}", path.display()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (read, write) = stream.into_split();
        let pending: Pending = Arc::default();
        let observed = Arc::new(Mutex::new(Observed {
            speed: 1.0,
            ..Observed::default()
        }));
        let reader = tokio::spawn(read_loop(read, pending.clone(), observed.clone()));
        let mpv = Mpv {
            path: path.to_owned(),
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: AtomicU64::new(100),
            observed,
            reader,
        };
        mpv.command(json!(["observe_property", SPEED_ID, "speed"]))
            .await?;
        mpv.command(json!(["observe_property", PAUSE_ID, "pause"]))
            .await?;
        Ok(mpv)
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Sends a request; returns when it was written and where its reply will arrive.
    pub(crate) async fn send(&self, args: Value) -> Result<(Instant, oneshot::Receiver<Reply>)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let mut line = json!({ "command": args, "request_id": id }).to_string();
        line.push('\n');
        let mut w = self.writer.lock().await;
        let sent = Instant::now();
        w.write_all(line.as_bytes())
            .await
            .context(|| format!("write to mpv at {}", self.path.display()))?;
        Ok((sent, rx))
    }

    /// Sends a request and waits (at most 2 s) for its reply, whatever mpv answered.
    pub(crate) async fn request(&self, args: Value) -> Result<Reply> {
        let (_, rx) = self.send(args.clone()).await?;
        match tokio::time::timeout(Duration::from_secs(2), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => err(format!("mpv at {} closed", self.path.display())),
            Err(_) => err(format!(
                "mpv at {} did not answer {args}",
                self.path.display()
            )),
        }
    }

    /// Sends a request that must succeed.
    pub(crate) async fn command(&self, args: Value) -> Result<Value> {
        let reply = self.request(args.clone()).await?;
        if reply.ok() {
            Ok(reply.data)
        } else {
            err(format!(
                "mpv {}: {args} -> {}",
                self.path.display(),
                reply.error
            ))
        }
    }

    /// `get_property` as a number, or `None` if mpv has no value now.
    pub(crate) async fn get_f64(&self, property: &str) -> Result<Option<f64>> {
        let reply = self.request(json!(["get_property", property])).await?;
        Ok(if reply.ok() {
            reply.data.as_f64()
        } else {
            None
        })
    }

    /// `set_property`.
    pub(crate) async fn set(&self, property: &str, value: Value) -> Result<()> {
        self.command(json!(["set_property", property, value]))
            .await
            .map(|_| ())
    }

    /// A copy of what mpv announced so far.
    pub(crate) fn observed(&self) -> Observed {
        self.observed.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// Reads replies and events until mpv closes the connection (or the client is dropped).
async fn read_loop(
    read: tokio::net::unix::OwnedReadHalf,
    pending: Pending,
    observed: Arc<Mutex<Observed>>,
) {
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if line.len() > MAX_LINE => break,
            Ok(_) => {}
        }
        let received = Instant::now();
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(id) = msg.get("request_id").and_then(Value::as_u64) {
            let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
            if let Some(tx) = tx {
                let _ = tx.send(Reply {
                    error: msg
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    data: msg.get("data").cloned().unwrap_or(Value::Null),
                    received,
                });
            }
            continue;
        }
        let Ok(mut o) = observed.lock() else {
            break;
        };
        match msg.get("event").and_then(Value::as_str) {
            Some("seek") => o.seeks.push(received),
            Some("property-change") => match msg.get("id").and_then(Value::as_u64) {
                Some(SPEED_ID) => {
                    if let Some(speed) = msg.get("data").and_then(Value::as_f64) {
                        if o.speed_known && speed != o.speed {
                            o.speed_changes.push((received, speed));
                        }
                        o.speed = speed;
                        o.speed_known = true;
                    }
                }
                Some(PAUSE_ID) => {
                    if let Some(paused) = msg.get("data").and_then(Value::as_bool) {
                        o.paused = paused;
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    if let Ok(mut o) = observed.lock() {
        o.closed = true;
    }
    // Whoever still waits learns that mpv is gone.
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}
