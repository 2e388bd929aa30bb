//! `lockstep-mpv`: watch together in mpv.
//!
//! Starts mpv (or attaches to a running one), creates or joins a room on a lockstep relay,
//! turns the viewer's pause, seek and speed changes into room commands, and holds mpv on the
//! room's timeline with clock sync and drift control. Prints `room: <id> invite: <code>` on
//! stdout once in a room; logs (and every correction) go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lockstep_client::clock::{ClockConfig, ClockSync};
use lockstep_client::connection::{ConnectOptions, Connection, ConnectionEvent, TransportChoice};
use lockstep_client::drift::DriftConfig;
use lockstep_client::follower::{Follower, PlayerCommand};
use lockstep_client::mpv::{LocalClock, MpvOptions, MpvPlayer};
use lockstep_client::player::{Player, PlayerEvent};
use lockstep_proto::Message;
use lockstep_proto::message::{
    BufferingEnd, BufferingStart, CreateRoom, JoinRoom, Pause, Play, PolicyMode, Ready, RoomId,
    Seek, SetRate, Stats,
};

#[derive(Parser)]
#[command(
    name = "lockstep-mpv",
    version,
    about = "Watch together in mpv, in sync, through a lockstep relay"
)]
struct Cli {
    /// The relay's HTTP address (its /api/config gives the transports), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "LOCKSTEP_RELAY", default_value = "http://127.0.0.1:8080")]
    relay: String,
    /// WebTransport URL (overrides the relay's).
    #[arg(long)]
    webtransport: Option<String>,
    /// WebSocket URL (overrides the relay's).
    #[arg(long)]
    websocket: Option<String>,
    /// Transport.
    #[arg(long, value_enum, default_value_t = TransportChoice::Auto)]
    transport: TransportChoice,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// JWT for relays that require one.
    #[arg(long, env = "LOCKSTEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Create a room with this name.
    #[arg(long, conflicts_with = "join")]
    create: Option<String>,
    /// Join a room by id or invite code.
    #[arg(long)]
    join: Option<String>,
    /// Policy mode for a created room.
    #[arg(long, value_parser = ["host", "democratic"], default_value = "host")]
    mode: String,
    /// Let every member control (host mode).
    #[arg(long)]
    everyone_controls: bool,
    /// mpv's IPC socket path.
    #[arg(long)]
    ipc_socket: Option<PathBuf>,
    /// Attach to an mpv already running with --input-ipc-server=IPC_SOCKET instead of starting one.
    #[arg(long, requires = "ipc_socket")]
    attach: bool,
    /// The mpv executable.
    #[arg(long, default_value = "mpv")]
    mpv: PathBuf,
    /// An extra argument for mpv (repeat).
    #[arg(long = "mpv-arg", allow_hyphen_values = true)]
    mpv_args: Vec<String>,
    /// Show video and play sound (default: headless).
    #[arg(long)]
    windowed: bool,
    /// Keep mpv's audio pitch correction during rate nudges.
    #[arg(long)]
    pitch_correction: bool,
    /// The media file or URL.
    media: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lockstep-mpv: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockstep-mpv: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if cli.create.is_none() && cli.join.is_none() {
        return Err("say --create NAME or --join ROOM".into());
    }
    let clock = LocalClock::start();
    let socket = cli.ipc_socket.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("lockstep-mpv-{}.sock", std::process::id()))
    });
    let mut player = if cli.attach {
        MpvPlayer::attach(&socket).await
    } else {
        let media = cli.media.as_deref().ok_or("give a media file or URL")?;
        MpvPlayer::spawn(
            media,
            &MpvOptions {
                mpv: cli.mpv.clone(),
                ipc_socket: socket.clone(),
                extra_args: cli.mpv_args.clone(),
                headless: !cli.windowed,
                pitch_correction: cli.pitch_correction,
            },
        )
        .await
    }
    .map_err(|e| e.to_string())?
    .with_clock(clock);
    let mut events = player.take_events().ok_or("no mpv events")?;

    let mut conn = Connection::start(ConnectOptions {
        relay: Some(cli.relay.clone()),
        webtransport_url: cli.webtransport.clone(),
        websocket_url: cli.websocket.clone(),
        certificate_hashes: vec![],
        transport: cli.transport,
        name: cli.name.clone(),
        token: cli.token.clone(),
        client: format!("lockstep-mpv/{}", env!("CARGO_PKG_VERSION")),
    });
    // A longer burst: on a jittery path the offset is only as good as the most symmetric of
    // the first samples, and the first command comes soon after joining.
    let mut sync = ClockSync::new(ClockConfig {
        burst_pings: 30,
        ..ClockConfig::default()
    });
    // mpv's audio-pts is precise to ~0.01 ms and IPC adds ~0.1 ms: hold each player within
    // about a millisecond of the room, so two players stay within about two.
    let mut follower = Follower::new(DriftConfig {
        dead_zone_us: 400,
        engage_us: 1_000,
        ..DriftConfig::default()
    });
    let mut room: Option<RoomId> = None;
    let mut req = 0u32;
    let mut last: Option<lockstep_client::player::Sample> = None;
    let mut control = tokio::time::interval(Duration::from_millis(100));
    control.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stats = tokio::time::interval(Duration::from_secs(1));
    // Stopped by a signal, return normally so the mpv we started is stopped with us.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;

    loop {
        let wake = [sync.poll_timeout(), follower.next_change_local(&sync)]
            .into_iter()
            .flatten()
            .min()
            .map(|local| clock.instant(local))
            .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(1));
        tokio::select! {
            event = conn.next() => match event {
                Some(ConnectionEvent::Connected { transport, welcome }) => {
                    tracing::info!(?transport, resumed = welcome.resumed, you = welcome.you, "connected");
                    sync.set_interval_us(u64::from(welcome.limits.ping_interval_ms) * 1_000);
                    if !welcome.resumed {
                        req += 1;
                        // First time, or the session expired: (re)enter the room.
                        if let Some(id) = room.clone() {
                            conn.send(JoinRoom { req: Some(req), room: id.as_str().into(), password: None }).await;
                        } else if let Some(name) = &cli.create {
                            let mode = if cli.mode == "democratic" { PolicyMode::Democratic } else { PolicyMode::Host };
                            let options = cli.everyone_controls.then(|| lockstep_proto::message::RoomOptions {
                                everyone_controls: true,
                                ..Default::default()
                            });
                            conn.send(CreateRoom { req: Some(req), name: name.clone(), password: None, media: None, mode, options }).await;
                        } else if let Some(id) = &cli.join {
                            conn.send(JoinRoom { req: Some(req), room: id.clone(), password: None }).await;
                        }
                    }
                }
                Some(ConnectionEvent::Message(m)) => match m {
                    Message::Pong(p) => {
                        sync.on_pong(&p, clock.now());
                    }
                    Message::RoomState(s) => {
                        if room.as_ref() != Some(&s.room.id) {
                            let invite = s.room.invite.clone().unwrap_or_default();
                            println!("room: {} invite: {}", s.room.id.as_str(), invite);
                        }
                        room = Some(s.room.id.clone());
                        follower.on_timeline(s.timeline, true);
                        conn.send(Ready { req: None, ready: true, wait_for_me: true }).await;
                    }
                    Message::StateUpdate(u) if room.as_ref() == Some(&u.room) => {
                        follower.on_timeline(u.timeline, false);
                    }
                    Message::Error(e) => tracing::warn!(code = e.code.name(), message = %e.message, "relay error"),
                    Message::RoomClosed(_) => {
                        room = None;
                        follower.clear();
                    }
                    _ => {}
                },
                Some(ConnectionEvent::Disconnected { reason }) => tracing::warn!(%reason, "disconnected"),
                Some(ConnectionEvent::Refused { reason }) => return Err(format!("the relay refused: {reason}")),
                None => return Ok(()),
            },
            event = events.next() => match event {
                Some(PlayerEvent::UserPaused(true)) => { req += 1; conn.send(Pause { req: Some(req) }).await; }
                Some(PlayerEvent::UserPaused(false)) => { req += 1; conn.send(Play { req: Some(req) }).await; }
                Some(PlayerEvent::UserSeeked(position)) => { req += 1; conn.send(Seek { req: Some(req), position: position.max(0.0) }).await; }
                Some(PlayerEvent::UserRate(rate)) => {
                    req += 1;
                    let rate = ((rate * 100.0).round() / 100.0).clamp(0.25, 4.0);
                    conn.send(SetRate { req: Some(req), rate }).await;
                }
                Some(PlayerEvent::Buffering(true)) => conn.send(BufferingStart { req: None, position: last.map_or(0.0, |s| s.position.max(0.0)) }).await,
                Some(PlayerEvent::Buffering(false)) => conn.send(BufferingEnd { req: None, position: last.map_or(0.0, |s| s.position.max(0.0)) }).await,
                Some(PlayerEvent::SeekLanded) => follower.seek_landed(&sync, clock.now()),
                Some(PlayerEvent::Closed) | None => {
                    tracing::info!("mpv closed");
                    return Ok(());
                }
            },
            _ = control.tick() => {
                step(&mut player, &mut follower, &sync, &mut last).await?;
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if let Some(ping) = sync.poll_ping(clock.now()) {
                    conn.send(ping).await;
                }
                step(&mut player, &mut follower, &sync, &mut last).await?;
            }
            _ = terminate.recv() => {
                tracing::info!("terminated");
                return Ok(());
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted");
                return Ok(());
            }
            _ = stats.tick() => {
                if let (Some(e), Some(_)) = (sync.estimate(), room.as_ref()) {
                    // The position with the server time it was measured at.
                    let measured = last.and_then(|s| Some((s.position.max(0.0), sync.server_time(s.at_local)?)));
                    let offset_us = e.offset_us.round().clamp(-9.0e15, 9.0e15) as i64;
                    conn.send(Stats {
                        rtt_us: u32::try_from(e.best_rtt_us).unwrap_or(u32::MAX),
                        offset_us,
                        offset_error_us: u32::try_from(e.error_bound_us).unwrap_or(u32::MAX),
                        drift_us: follower.drift_us(),
                        position: measured.map(|m| m.0),
                        at: measured.map(|m| m.1),
                    }).await;
                }
            }
        }
    }
}

async fn step(
    player: &mut MpvPlayer,
    follower: &mut Follower,
    sync: &ClockSync,
    last: &mut Option<lockstep_client::player::Sample>,
) -> Result<(), String> {
    let sample = match player.sample().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "no position");
            return Ok(());
        }
    };
    *last = Some(sample);
    for command in follower.step(sync, sample) {
        let result = match command {
            PlayerCommand::SetPaused(p) => player.set_paused(p).await,
            PlayerCommand::Seek(position) => {
                eprintln!("correction: seek {position:.3}");
                player.seek(position).await
            }
            PlayerCommand::SetRate(rate) => {
                eprintln!("correction: rate {rate:.5}");
                player.set_rate(rate).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, ?command, "player command failed");
        }
    }
    Ok(())
}
