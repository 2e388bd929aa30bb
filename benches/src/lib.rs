//! Benchmarks of lockstep. The criterion benchmarks live under `benches/`; this library holds
//! fixtures they share.
//!
//! ```
//! let ping = lockstep_benches::hot_messages()[0].clone();
//! assert_eq!(ping.kind().name(), "ping");
//! ```

pub mod date;
pub mod http;
pub mod load;
pub mod number;

use lockstep_proto::message::{Ping, RoomId, StateUpdate, TimelineReason};
use lockstep_proto::{Message, ServerTime, Timeline};

/// The messages on the hot path, as the relay sends or receives them many times a second:
/// a clock ping and a timeline update.
pub fn hot_messages() -> Vec<Message> {
    vec![
        Message::Ping(Ping {
            seq: 1_234,
            t0: 86_400_000_000,
        }),
        Message::StateUpdate(StateUpdate {
            room: RoomId::new("movie-night"),
            timeline: Timeline {
                position: 1_234.567_891,
                rate: 1.0,
                paused: false,
                at: ServerTime::from_micros(1_700_000_000_123_456),
                seq: 42,
            },
            reason: TimelineReason::Seek,
            by: Some(7),
        }),
    ]
}
