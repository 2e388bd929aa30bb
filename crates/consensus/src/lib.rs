//! Who controls a lockstep room's playback.
//!
//! A room's consensus *mode* decides who may play, pause, seek, change the rate, switch media,
//! kick or hand over: in **host** mode the host and co-hosts control (and may pass the remote
//! to everyone); in **democratic** mode members propose and the room votes, with a configurable
//! quorum. The mode can switch while the room plays. The relay's room core consults a
//! [`RoomControl`] for every action; the policies behind it are pluggable through the
//! [`Policy`] trait.
//!
//! Everything here is a sans-IO state machine: no sockets, no tasks, no clock reads. Inputs
//! are method calls carrying the current [`ServerTime`](lockstep_proto::ServerTime); outputs
//! are drained with [`RoomControl::poll_output`]; timers are [`RoomControl::poll_timeout`] and
//! [`RoomControl::handle_timeout`]. The same inputs always give the same outputs. The rules
//! and their defaults are written down in `docs/CONSENSUS.md`.
//!
//! ```
//! use lockstep_consensus::{Cause, Output, RoomControl, Verdict};
//! use lockstep_proto::ServerTime;
//! use lockstep_proto::message::{Action, PolicyMode, RoomOptions};
//!
//! let now = ServerTime::from_micros(1_000_000);
//! // Member 1 creates a democratic room; 2 and 3 join and have their players ready.
//! let mut room = RoomControl::new(1, false, PolicyMode::Democratic, RoomOptions::default());
//! for id in [1, 2, 3] {
//!     room.join(id, false, now);
//!     room.set_ready(id, true, true, now);
//! }
//!
//! // Member 2 proposes a seek; it needs 2 of 3 votes and has its own.
//! let Verdict::Propose(id) = room.request(2, Action::Seek { position: 600.0 }, now) else {
//!     panic!("a democratic room votes");
//! };
//! room.vote(3, id, true, now)?;
//!
//! // The room core applies what passed.
//! let applied: Vec<_> = std::iter::from_fn(|| room.poll_output())
//!     .filter_map(|o| match o {
//!         Output::Apply { action, cause, .. } => Some((action, cause)),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(applied, [(Action::Seek { position: 600.0 }, Cause::Proposal(id))]);
//! # Ok::<(), lockstep_consensus::Rejection>(())
//! ```

pub mod control;
pub mod democratic;
pub mod host;
pub mod policy;
pub mod quorum;
pub mod roster;
pub mod snapshot;

pub use control::{Cause, Output, RoomControl};
pub use democratic::{ActionKind, DemocraticPolicy};
pub use host::HostPolicy;
pub use policy::{Policy, PolicyEvent, Rejection, RoomView, Verdict, is_playback};
pub use quorum::{Quorum, Standing};
pub use roster::{MemberState, Roster};
pub use snapshot::{ControlSnapshot, SnapshotError};
