//! mpv as a [`Player`], over its JSON IPC socket.
//!
//! Positions come from `audio-pts` (tracks the clock to ~0.01 ms) and fall back to `time-pos`
//! (quantised to frames) when there is no audio. Each reading is stamped with the local time
//! halfway through its IPC round trip. The viewer's own pause, seek and speed changes are told
//! apart from the echoes of our commands by remembering what we asked for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::player::{Player, PlayerError, PlayerEvent, Sample};

/// The local monotonic clock the SDK measures everything on (µs since an origin).
#[derive(Debug, Clone, Copy)]
pub struct LocalClock {
    origin: Instant,
}

impl LocalClock {
    /// A clock starting now.
    pub fn start() -> Self {
        LocalClock {
            origin: Instant::now(),
        }
    }

    /// Microseconds since the origin.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant of a local time.
    pub fn instant(&self, local: u64) -> Instant {
        self.origin + Duration::from_micros(local)
    }

    /// The local time of an instant.
    pub fn of(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.origin).as_micros())
            .unwrap_or(u64::MAX)
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// What we asked mpv for, to recognise its echoes.
#[derive(Debug, Default)]
struct Expected {
    paused: Option<bool>,
    /// Speeds we asked for recently: mpv may report an older one after we asked for a newer.
    speeds: std::collections::VecDeque<f64>,
    seeks_pending: u32,
    in_our_seek: bool,
    in_user_seek: bool,
    saw_speed: bool,
    saw_pause: bool,
    // Last values mpv reported.
    is_paused: bool,
    rate: f64,
}

enum Internal {
    Event(PlayerEvent),
    UserSeekLanded,
}

/// The IPC connection, shared by the player and its event stream.
struct Ipc {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
}

impl Ipc {
    /// Sends one IPC command and waits for its answer.
    async fn request(&self, command: Value) -> Result<Value, PlayerError> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let mut line = json!({"command": command, "request_id": id}).to_string();
        line.push('\n');
        self.writer
            .lock()
            .await
            .write_all(line.as_bytes())
            .await
            .map_err(|e| PlayerError::Gone(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(PlayerError::Command(e)),
            Ok(Err(_)) => Err(PlayerError::Gone("mpv closed".into())),
            Err(_) => Err(PlayerError::Command("mpv did not answer".into())),
        }
    }
}

/// mpv, driven over IPC.
pub struct MpvPlayer {
    ipc: Arc<Ipc>,
    events: Option<MpvEvents>,
    expected: Arc<Mutex<Expected>>,
    clock: LocalClock,
    child: Option<Child>,
}

/// The viewer's actions and mpv's state changes, as a stream of its own (so a caller can wait
/// for events while commanding the player).
pub struct MpvEvents {
    ipc: Arc<Ipc>,
    events: mpsc::Receiver<Internal>,
}

impl MpvEvents {
    /// The next event; `None` when mpv is gone.
    pub async fn next(&mut self) -> Option<PlayerEvent> {
        loop {
            match self.events.recv().await? {
                Internal::Event(e) => return Some(e),
                Internal::UserSeekLanded => {
                    if let Ok(v) = self.ipc.request(json!(["get_property", "time-pos"])).await
                        && let Some(p) = v.as_f64()
                    {
                        return Some(PlayerEvent::UserSeeked(p));
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for MpvPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpvPlayer").finish_non_exhaustive()
    }
}

/// How to start mpv.
#[derive(Debug, Clone)]
pub struct MpvOptions {
    /// The mpv executable.
    pub mpv: PathBuf,
    /// Where its IPC socket goes.
    pub ipc_socket: PathBuf,
    /// Extra mpv arguments.
    pub extra_args: Vec<String>,
    /// Headless (`--vo=null --ao=null`), for tests and benchmarks.
    pub headless: bool,
    /// Keep mpv's audio pitch correction during rate nudges (audible speed changes are then
    /// pitch-neutral, but playback lands a few ms off; we correct against measurement).
    pub pitch_correction: bool,
}

impl MpvPlayer {
    /// Starts mpv on `media`, paused (the room decides when to play), and connects to it.
    pub async fn spawn(media: &str, options: &MpvOptions) -> Result<Self, PlayerError> {
        let _ = std::fs::remove_file(&options.ipc_socket);
        let mut cmd = Command::new(&options.mpv);
        cmd.arg("--no-config")
            .arg("--keep-open=yes")
            .arg("--pause")
            .arg("--idle=no")
            .arg("--hr-seek=yes")
            .arg(format!(
                "--input-ipc-server={}",
                options.ipc_socket.display()
            ))
            .arg(format!(
                "--audio-pitch-correction={}",
                if options.pitch_correction {
                    "yes"
                } else {
                    "no"
                }
            ));
        if options.headless {
            cmd.arg("--vo=null").arg("--ao=null").arg("--really-quiet");
        }
        cmd.args(&options.extra_args)
            .arg("--")
            .arg(media)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            PlayerError::Gone(format!("cannot start {}: {e}", options.mpv.display()))
        })?;
        let mut player = Self::attach(&options.ipc_socket).await?;
        player.child = Some(child);
        Ok(player)
    }

    /// Connects to a running mpv's `--input-ipc-server` socket.
    pub async fn attach(socket: &Path) -> Result<Self, PlayerError> {
        let stream = {
            let mut tries = 0;
            loop {
                match UnixStream::connect(socket).await {
                    Ok(s) => break s,
                    Err(e) if tries >= 100 => {
                        return Err(PlayerError::Gone(format!(
                            "no mpv at {}: {e}",
                            socket.display()
                        )));
                    }
                    Err(_) => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        };
        let (read, writer) = stream.into_split();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let expected = Arc::new(Mutex::new(Expected {
            rate: 1.0,
            is_paused: true,
            ..Expected::default()
        }));
        let (tx, events) = mpsc::channel(256);
        tokio::spawn(read_loop(read, pending.clone(), expected.clone(), tx));
        let ipc = Arc::new(Ipc {
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: std::sync::atomic::AtomicU64::new(100),
        });
        let mut player = MpvPlayer {
            events: Some(MpvEvents {
                ipc: ipc.clone(),
                events,
            }),
            ipc,
            expected,
            clock: LocalClock::start(),
            child: None,
        };
        for (id, name) in [(1, "pause"), (2, "speed"), (3, "paused-for-cache")] {
            player
                .request(json!(["observe_property", id, name]))
                .await?;
        }
        // Wait until the file is loaded (duration known), so seeks and positions work.
        for _ in 0..200 {
            if player
                .request(json!(["get_property", "duration"]))
                .await
                .is_ok_and(|v| v.is_number())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(player)
    }

    /// Uses `clock` for sample times (share the SDK's clock).
    pub fn with_clock(mut self, clock: LocalClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends one IPC command and waits for its answer.
    pub async fn request(&mut self, command: Value) -> Result<Value, PlayerError> {
        self.ipc.request(command).await
    }

    /// Takes the event stream out of the player (then `next_event` returns `None`).
    pub fn take_events(&mut self) -> Option<MpvEvents> {
        self.events.take()
    }

    fn expect(&self, f: impl FnOnce(&mut Expected)) {
        if let Ok(mut e) = self.expected.lock() {
            f(&mut e);
        }
    }
}

impl Player for MpvPlayer {
    async fn sample(&mut self) -> Result<Sample, PlayerError> {
        let (paused, rate) = self
            .expected
            .lock()
            .map(|e| (e.is_paused, e.rate))
            .unwrap_or((true, 1.0));
        // Playing: `audio-pts` follows the audio clock to ~0.01 ms (`time-pos` moves in whole
        // frames). Paused: `audio-pts` lags behind what is shown by the audio buffer, while
        // `time-pos` is the frame on screen. Decided per reading: `audio-pts` appears only
        // once audio has played, and some media have none.
        let mut reading = None;
        for property in if paused {
            ["time-pos", "time-pos"]
        } else {
            ["audio-pts", "time-pos"]
        } {
            let sent = Instant::now();
            let value = self.request(json!(["get_property", property])).await;
            let received = Instant::now();
            if let Some(position) = value.ok().and_then(|v| v.as_f64()) {
                reading = Some((
                    position,
                    sent + received.saturating_duration_since(sent) / 2,
                ));
                break;
            }
        }
        let (position, mid) =
            reading.ok_or_else(|| PlayerError::Command("no position yet".into()))?;
        Ok(Sample {
            position,
            at_local: self.clock.of(mid),
            paused,
            rate,
        })
    }

    async fn set_paused(&mut self, paused: bool) -> Result<(), PlayerError> {
        self.expect(|e| e.paused = Some(paused));
        self.request(json!(["set_property", "pause", paused]))
            .await
            .map(|_| ())
    }

    async fn seek(&mut self, position: f64) -> Result<(), PlayerError> {
        self.expect(|e| e.seeks_pending += 1);
        let result = self
            .request(json!(["seek", position.max(0.0), "absolute+exact"]))
            .await;
        if result.is_err() {
            self.expect(|e| e.seeks_pending = e.seeks_pending.saturating_sub(1));
        }
        result.map(|_| ())
    }

    async fn set_rate(&mut self, rate: f64) -> Result<(), PlayerError> {
        self.expect(|e| {
            if e.speeds.len() >= 8 {
                e.speeds.pop_front();
            }
            e.speeds.push_back(rate);
        });
        self.request(json!(["set_property", "speed", rate]))
            .await
            .map(|_| ())
    }

    async fn next_event(&mut self) -> Option<PlayerEvent> {
        match &mut self.events {
            Some(events) => events.next().await,
            None => None,
        }
    }
}

async fn read_loop(
    read: tokio::net::unix::OwnedReadHalf,
    pending: Pending,
    expected: Arc<Mutex<Expected>>,
    events: mpsc::Sender<Internal>,
) {
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(id) = v.get("request_id").and_then(Value::as_u64) {
            let reply = pending.lock().ok().and_then(|mut p| p.remove(&id));
            if let Some(reply) = reply {
                let result = match v.get("error").and_then(Value::as_str) {
                    Some("success") | None => Ok(v.get("data").cloned().unwrap_or(Value::Null)),
                    Some(e) => Err(e.to_string()),
                };
                let _ = reply.send(result);
            }
            continue;
        }
        let event = v.get("event").and_then(Value::as_str).unwrap_or_default();
        let out = {
            let Ok(mut e) = expected.lock() else { return };
            match event {
                "property-change" => {
                    let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
                    let data = v.get("data");
                    match (name, data) {
                        ("pause", Some(Value::Bool(p))) => {
                            e.is_paused = *p;
                            // The first report is mpv's starting state, not a viewer's action.
                            let seen_before = std::mem::replace(&mut e.saw_pause, true);
                            if e.paused == Some(*p) || !seen_before {
                                e.paused = Some(*p);
                                None
                            } else {
                                e.paused = Some(*p);
                                Some(Internal::Event(PlayerEvent::UserPaused(*p)))
                            }
                        }
                        ("speed", Some(Value::Number(n))) => {
                            let s = n.as_f64().unwrap_or(1.0);
                            e.rate = s;
                            let ours = e.speeds.iter().any(|x| (x - s).abs() < 1e-6);
                            // The first report is mpv's starting speed, not a viewer's action.
                            let seen_before = std::mem::replace(&mut e.saw_speed, true);
                            if ours || !seen_before {
                                None
                            } else {
                                Some(Internal::Event(PlayerEvent::UserRate(s)))
                            }
                        }
                        ("paused-for-cache", Some(Value::Bool(b))) => {
                            Some(Internal::Event(PlayerEvent::Buffering(*b)))
                        }
                        _ => None,
                    }
                }
                "seek" => {
                    if e.seeks_pending > 0 {
                        e.seeks_pending -= 1;
                        e.in_our_seek = true;
                    } else {
                        e.in_user_seek = true;
                    }
                    None
                }
                "playback-restart" => {
                    if e.in_our_seek {
                        e.in_our_seek = false;
                        Some(Internal::Event(PlayerEvent::SeekLanded))
                    } else if e.in_user_seek {
                        e.in_user_seek = false;
                        Some(Internal::UserSeekLanded)
                    } else {
                        None
                    }
                }
                "shutdown" => Some(Internal::Event(PlayerEvent::Closed)),
                _ => None,
            }
        };
        if let Some(out) = out
            && events.send(out).await.is_err()
        {
            return;
        }
    }
    let _ = events.send(Internal::Event(PlayerEvent::Closed)).await;
}
