//! Fan-out of the relay's room core (`lockstep_relay::core::RelayCore`, sans IO) in rooms of
//! 10, 1,000 and 10,000 members.
//!
//! - `seek/N`: the host's `seek` goes into the core and every output it causes is drained
//!   (`poll_output` until `None`): the `state_update` to each of the N members and the host's
//!   `ack`. Throughput is counted in deliveries (N), so criterion prints the cost per delivered
//!   message beside the cost per command.
//! - `seek_encoded/N`: the same, and each output's bytes are fetched as a WebSocket writer
//!   would (`Outgoing::bytes(MessagePack)`): the broadcast is encoded by the first recipient
//!   and shared by the others.
//! - `chat/N`: a member's chat line fanned out to the room (`chat_message` to N members and
//!   the sender's `ack`).
//!
//! Rooms are built (hello, create, joins, the coalesced announcements flushed) before the timed
//! loop; each iteration advances the core's clock by 1 ms and the chat rate limit is set out of
//! the way, so every iteration does the full fan-out. Room timers (timeline repeats, heartbeat)
//! are not fired: they are a separate cost.
//!
//! Run: `cargo bench -p lockstep-benches --bench fanout`.

// Fixtures are ours: a room that cannot be built is a bug to stop on.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_proto::limits::PROTOCOL_VERSION;
use lockstep_proto::message::{Chat, CreateRoom, Hello, JoinRoom, PolicyMode, Seek, Transport};
use lockstep_proto::{Encoding, Message, ServerTime};
use lockstep_relay::core::{ConnId, CoreConfig, Output, RelayCore, SessionIdentity};
use lockstep_relay::metrics::Metrics;

const SIZES: [u64; 3] = [10, 1_000, 10_000];

/// The host's connection; members are connections `2..=N`.
const HOST: ConnId = 1;
/// The member who chats.
const TALKER: ConnId = 2;

/// A core holding one room of `members` connected members (the host included).
struct Room {
    core: RelayCore,
    now: ServerTime,
}

impl Room {
    fn new(members: u64) -> Room {
        let config = CoreConfig {
            room_capacity: u32::try_from(members).expect("small") + 1,
            // Out of the way: every iteration's chat line must be delivered.
            chat_rate: (1e12, 1e12),
            ..CoreConfig::default()
        };
        let mut core = RelayCore::new(config, [7; 32], Arc::new(Metrics::default()));
        let mut now = ServerTime::from_micros(10_000_000_000);
        let identity = SessionIdentity {
            may_create_rooms: true,
            ..SessionIdentity::default()
        };
        for conn in 1..=members {
            core.open(conn, Transport::Websocket);
            let hello = Hello {
                version: PROTOCOL_VERSION,
                client: "bench/1".into(),
                features: vec![],
                token: None,
                name: Some(format!("member {conn}")),
                resume: None,
            };
            core.hello(conn, hello, Ok(identity.clone()), now);
            drain(&mut core);
        }
        let create = CreateRoom {
            req: Some(1),
            name: "bench".into(),
            password: None,
            media: None,
            mode: PolicyMode::Host,
            options: None,
        };
        core.message(HOST, create.into(), now);
        let room = std::iter::from_fn(|| core.poll_output())
            .find_map(|o| match o {
                Output::Send { message, .. } => match message.message() {
                    Message::RoomState(s) => Some(s.room.id.clone()),
                    _ => None,
                },
                Output::Close { .. } => None,
            })
            .expect("the room is created");
        drain(&mut core);
        for conn in 2..=members {
            let join = JoinRoom {
                req: Some(2),
                room: room.as_str().into(),
                password: None,
            };
            core.message(conn, join.into(), now);
            // Each joiner's room state lists everyone: drop it now, not 10,000 of them at once.
            drain(&mut core);
        }
        assert_eq!(core.member_count(), members as usize);
        // Let the coalesced `participants` announcements (and anything else due) go out.
        now = now.add_micros(2_000_000);
        core.handle_timeout(now);
        drain(&mut core);
        Room { core, now }
    }

    /// One host seek; returns the outputs it caused, drained.
    fn seek(&mut self, position: f64, encode: bool) -> usize {
        self.now = self.now.add_micros(1_000);
        let seek = Seek {
            req: Some(3),
            position,
        };
        self.core.message(HOST, seek.into(), self.now);
        if encode {
            drain_encoded(&mut self.core)
        } else {
            drain(&mut self.core)
        }
    }

    /// One chat line from a member; returns the outputs it caused, drained.
    fn chat(&mut self) -> usize {
        self.now = self.now.add_micros(1_000);
        let chat = Chat {
            req: Some(4),
            text: "did you see that?".into(),
        };
        self.core.message(TALKER, chat.into(), self.now);
        drain(&mut self.core)
    }
}

/// Takes every output; returns how many there were.
fn drain(core: &mut RelayCore) -> usize {
    let mut n = 0;
    while let Some(output) = core.poll_output() {
        black_box(&output);
        n += 1;
    }
    n
}

/// Takes every output and fetches its MessagePack bytes, as the shell's writers do.
fn drain_encoded(core: &mut RelayCore) -> usize {
    let mut n = 0;
    while let Some(output) = core.poll_output() {
        if let Output::Send { message, .. } = &output {
            black_box(message.bytes(Encoding::MessagePack).map(<[u8]>::len));
        }
        n += 1;
    }
    n
}

/// Seek positions: distinct, inside the protocol's 0..=10,000,000 s.
fn next_position(p: &mut f64) -> f64 {
    *p = if *p >= 9_999_000.0 { 1.0 } else { *p + 1.0 };
    *p
}

fn fanout(c: &mut Criterion) {
    for (name, encode) in [("seek", false), ("seek_encoded", true)] {
        let mut group = c.benchmark_group(name);
        for n in SIZES {
            let mut room = Room::new(n);
            let mut position = 0.0;
            // Every member gets the update, and the host its ack.
            let outputs = room.seek(next_position(&mut position), encode);
            assert_eq!(outputs, n as usize + 1, "seek outputs in a room of {n}");
            group.throughput(Throughput::Elements(n));
            group.bench_function(n.to_string(), |b| {
                b.iter(|| room.seek(next_position(&mut position), encode))
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("chat");
    for n in SIZES {
        let mut room = Room::new(n);
        let outputs = room.chat();
        assert_eq!(outputs, n as usize + 1, "chat outputs in a room of {n}");
        group.throughput(Throughput::Elements(n));
        group.bench_function(n.to_string(), |b| b.iter(|| room.chat()));
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
