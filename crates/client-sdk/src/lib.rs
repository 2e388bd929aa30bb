//! The lockstep client SDK for custom players.
//!
//! A player joins a room through a relay and is held on the room's timeline: [`clock`]
//! estimates the relay's clock (offset and skew) from pings, [`drift`] decides rate nudges and
//! seeks from the measured player position, [`follower`] keeps the room's timeline and turns
//! samples into player commands, and [`connection`] talks to the relay over WebTransport or,
//! failing that, WebSocket, reconnecting with the resume token. A [`player::Player`] adapts
//! any player; [`mpv`] adapts mpv.
//!
//! The decisions are sans-IO and testable faster than real time:
//!
//! ```
//! use lockstep_client::clock::{ClockConfig, ClockSync};
//! use lockstep_client::drift::DriftConfig;
//! use lockstep_client::follower::{Follower, PlayerCommand};
//! use lockstep_client::player::Sample;
//! use lockstep_proto::message::Pong;
//! use lockstep_proto::{ServerTime, Timeline};
//!
//! // The relay's clock reads 1_000_000_000 µs more than ours; one exchange estimates it.
//! let mut clock = ClockSync::new(ClockConfig::default());
//! let ping = clock.poll_ping(0).expect("a ping is due at once");
//! let pong = Pong { seq: ping.seq, t0: ping.t0, t1: ServerTime::from_micros(1_000_000_100), t2: ServerTime::from_micros(1_000_000_110) };
//! clock.on_pong(&pong, 210);
//!
//! // The room plays from 60 s; our player is paused at 0: it is told to play and catch up.
//! let mut follower = Follower::new(DriftConfig::default());
//! let mut timeline = Timeline::new(ServerTime::from_micros(1_000_000_000));
//! timeline.paused = false;
//! timeline.position = 60.0;
//! follower.on_timeline(timeline, true);
//! let commands = follower.step(&clock, Sample { position: 0.0, at_local: 500_000, paused: true, rate: 1.0 });
//! assert!(commands.contains(&PlayerCommand::SetPaused(false)));
//! assert!(commands.iter().any(|c| matches!(c, PlayerCommand::Seek(p) if *p > 60.0)));
//! ```

pub use lockstep_proto as proto;

pub mod clock;
pub mod connection;
pub mod drift;
pub mod follower;
pub mod mpv;
pub mod player;
