//! Send instants shared between a room's senders and receivers, and how a received message is
//! matched to what caused it.
//!
//! Senders and receivers live in one process, so one `Instant` dates both ends: latency is
//! receipt minus send, exactly, with no clock estimate. Per room:
//!
//! - **Commands** (host mode) are keyed by the timeline `seq` they will produce. The host sends
//!   one command at a time, only after it has seen the timeline of the previous one, so it
//!   knows the current `seq` and that its command will be `seq + 1` (every accepted command
//!   changes the timeline exactly once, and nothing else changes it in these rooms). A seek's
//!   position also names the command ([`position_of`]), which the receivers check; a pause or
//!   play is checked by the timeline's reason.
//! - **Proposals** (democratic) are keyed by the command id in the proposed seek position:
//!   `proposal` and `decision` both carry the action.
//! - **Chat lines** carry their number in the text ([`chat_text`]).
//!
//! A receiver counts only the first copy of each timeline ([`FirstCopy`]): repeats carry the
//! same `seq` and say nothing about latency. Each table is a ring of [`RING`] entries: an entry
//! is overwritten only after that many newer ones, long after every member received it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockstep_proto::message::TimelineReason;

/// Entries per ring: at 10 commands a second, 25 seconds of history.
pub(crate) const RING: usize = 256;

/// Distinct command ids a seek position can carry (positions stay below 10,000,000 s).
const POSITION_IDS: u64 = 39_000_000;

/// The playback command a host sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandKind {
    /// `seek` to [`position_of`] its id.
    Seek,
    /// `pause`.
    Pause,
    /// `play`.
    Play,
}

impl CommandKind {
    /// The timeline reason its `state_update` carries.
    pub(crate) fn reason(self) -> TimelineReason {
        match self {
            CommandKind::Seek => TimelineReason::Seek,
            CommandKind::Pause => TimelineReason::Pause,
            CommandKind::Play => TimelineReason::Play,
        }
    }
}

/// A command as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sent {
    /// When it left the sender.
    pub(crate) at: Instant,
    /// What it was.
    pub(crate) kind: CommandKind,
    /// Its id within the room.
    pub(crate) id: u64,
}

/// A fixed ring of values keyed by an increasing number.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    slots: Box<[Option<(u64, T)>]>,
}

impl<T: Copy> Ring<T> {
    /// An empty ring of `size` slots.
    pub(crate) fn new(size: usize) -> Ring<T> {
        Ring {
            slots: vec![None; size.max(1)].into_boxed_slice(),
        }
    }

    fn slot(&self, key: u64) -> usize {
        (key % self.slots.len() as u64) as usize
    }

    /// Stores `value` under `key`, replacing whatever was `slots` keys ago.
    pub(crate) fn insert(&mut self, key: u64, value: T) {
        let i = self.slot(key);
        self.slots[i] = Some((key, value));
    }

    /// The value under `key`, if it is still there.
    pub(crate) fn get(&self, key: u64) -> Option<T> {
        match self.slots[self.slot(key)] {
            Some((k, v)) if k == key => Some(v),
            _ => None,
        }
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: u64) {
        let i = self.slot(key);
        if matches!(self.slots[i], Some((k, _)) if k == key) {
            self.slots[i] = None;
        }
    }
}

/// The seek position that names command `id`: a multiple of 1/4 s, exact in a float and in
/// both encodings, within the protocol's position range.
pub(crate) fn position_of(id: u64) -> f64 {
    (id % POSITION_IDS) as f64 / 4.0 + 1.0
}

/// The command id a position names, if it names one.
pub(crate) fn id_of(position: f64) -> Option<u64> {
    let x = (position - 1.0) * 4.0;
    (x >= 0.0 && x < POSITION_IDS as f64 && x.fract() == 0.0).then_some(x as u64)
}

/// The text of chat line `n` of room `room`, padded with `x` to `len` bytes when shorter
/// (long lines load the relay's queues and sockets more, as a busy chat does).
pub(crate) fn chat_text(room: usize, n: u64, len: usize) -> String {
    let mut text = format!("load r{room} n{n} ");
    let pad = len
        .min(lockstep_proto::limits::MAX_CHAT_CHARS)
        .saturating_sub(text.len());
    text.extend(std::iter::repeat_n('x', pad));
    text
}

/// The room and number of a chat line written by [`chat_text`].
pub(crate) fn parse_chat(text: &str) -> Option<(usize, u64)> {
    let mut words = text.strip_prefix("load r")?.split(' ');
    let room = words.next()?.parse().ok()?;
    let n = words.next()?.strip_prefix('n')?.parse().ok()?;
    Some((room, n))
}

/// A member's view of one room's timeline: only the first copy of each `seq` counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FirstCopy {
    last: u64,
}

impl FirstCopy {
    /// Starts at the timeline `room_state` gave.
    pub(crate) fn new(seq: u64) -> FirstCopy {
        FirstCopy { last: seq }
    }

    /// Whether `seq` is newer than any seen so far (and remembers it).
    pub(crate) fn is_new(&mut self, seq: u64) -> bool {
        if seq > self.last {
            self.last = seq;
            true
        } else {
            false
        }
    }

    /// The newest `seq` seen.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }
}

/// What a received timeline says about the commands sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum UpdateMatch {
    /// The first copy of the timeline a command produced.
    Command(Sent),
    /// A first copy whose content is not what the command registered for its `seq` would
    /// produce (a bug in this tool or the relay, or a command lost).
    Mismatch,
    /// A first copy no command was registered for (sent before the ring's memory, or not by a
    /// tracked host).
    Unknown,
    /// A copy of a timeline already seen (a repeat, or a heartbeat).
    Repeat,
}

/// One room's shared tables.
#[derive(Debug)]
pub(crate) struct RoomTracker {
    next_id: AtomicU64,
    commands: Mutex<Ring<Sent>>,
    proposals: Mutex<Ring<Instant>>,
    chats: Mutex<Ring<Instant>>,
    open_proposal: Mutex<Option<(u64, Instant)>>,
}

impl Default for RoomTracker {
    fn default() -> Self {
        RoomTracker {
            next_id: AtomicU64::new(1),
            commands: Mutex::new(Ring::new(RING)),
            proposals: Mutex::new(Ring::new(RING)),
            chats: Mutex::new(Ring::new(RING)),
            open_proposal: Mutex::new(None),
        }
    }
}

impl RoomTracker {
    /// A fresh command id for this room.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a command expected to produce timeline `seq`.
    pub(crate) fn command_sent(&self, seq: u64, sent: Sent) {
        if let Ok(mut ring) = self.commands.lock() {
            ring.insert(seq, sent);
        }
    }

    /// Forgets a command that was refused.
    pub(crate) fn command_refused(&self, seq: u64) {
        if let Ok(mut ring) = self.commands.lock() {
            ring.remove(seq);
        }
    }

    /// Matches a received timeline against the registered commands; `first` is the
    /// receiver's view of the room.
    pub(crate) fn match_update(
        &self,
        first: &mut FirstCopy,
        seq: u64,
        position: f64,
        reason: TimelineReason,
    ) -> UpdateMatch {
        if !first.is_new(seq) {
            return UpdateMatch::Repeat;
        }
        let Some(sent) = self.commands.lock().ok().and_then(|r| r.get(seq)) else {
            return UpdateMatch::Unknown;
        };
        // A first copy may be a repeat when the immediate datagram was lost.
        let reason_ok = reason == sent.kind.reason() || reason == TimelineReason::Repeat;
        let position_ok = sent.kind != CommandKind::Seek || position == position_of(sent.id);
        if reason_ok && position_ok {
            UpdateMatch::Command(sent)
        } else {
            UpdateMatch::Mismatch
        }
    }

    /// Registers chat line `n`.
    pub(crate) fn chat_sent(&self, n: u64, at: Instant) {
        if let Ok(mut ring) = self.chats.lock() {
            ring.insert(n, at);
        }
    }

    /// When chat line `n` was sent.
    pub(crate) fn chat(&self, n: u64) -> Option<Instant> {
        self.chats.lock().ok().and_then(|r| r.get(n))
    }

    /// Opens proposal `id` unless another is open and younger than `stale_after` (one at a
    /// time, so a decision is never a supersession by the next proposal). Registers its send
    /// instant when it opens.
    pub(crate) fn try_open_proposal(&self, id: u64, at: Instant, stale_after: Duration) -> bool {
        let Ok(mut open) = self.open_proposal.lock() else {
            return false;
        };
        if let Some((_, since)) = *open
            && at.saturating_duration_since(since) < stale_after
        {
            return false;
        }
        *open = Some((id, at));
        drop(open);
        if let Ok(mut ring) = self.proposals.lock() {
            ring.insert(id, at);
        }
        true
    }

    /// When proposal `id` was sent.
    pub(crate) fn proposal(&self, id: u64) -> Option<Instant> {
        self.proposals.lock().ok().and_then(|r| r.get(id))
    }

    /// Proposal `id` was decided (or refused): the next one may open.
    pub(crate) fn proposal_closed(&self, id: u64) {
        if let Ok(mut open) = self.open_proposal.lock()
            && matches!(*open, Some((k, _)) if k == id)
        {
            *open = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_name_commands_exactly() {
        for id in [0, 1, 2, 3, 7, 1_000, 123_456, POSITION_IDS - 1] {
            let p = position_of(id);
            assert!((0.0..=10_000_000.0).contains(&p), "{p}");
            assert_eq!(id_of(p), Some(id));
            // Survives both encodings.
            let m = lockstep_proto::Message::Seek(lockstep_proto::message::Seek {
                req: None,
                position: p,
            });
            for enc in [
                lockstep_proto::Encoding::MessagePack,
                lockstep_proto::Encoding::Json,
            ] {
                let bytes = lockstep_proto::encode(&m, enc).unwrap();
                assert_eq!(lockstep_proto::decode(&bytes, enc, 1000).unwrap(), m);
            }
        }
        assert_eq!(id_of(0.5), None);
        assert_eq!(id_of(1.1), None);
        assert_eq!(id_of(12.0), Some(44));
    }

    #[test]
    fn chat_lines_carry_room_and_number() {
        assert_eq!(parse_chat(&chat_text(42, 7, 0)), Some((42, 7)));
        let long = chat_text(3, 12_345, 400);
        assert_eq!(long.len(), 400);
        assert_eq!(parse_chat(&long), Some((3, 12_345)));
        assert_eq!(chat_text(1, 1, 10_000).chars().count(), 500);
        let m = lockstep_proto::Message::Chat(lockstep_proto::message::Chat {
            req: None,
            text: chat_text(1, 1, 10_000),
        });
        assert!(lockstep_proto::encode(&m, lockstep_proto::Encoding::MessagePack).is_ok());
        assert_eq!(parse_chat("hello"), None);
        assert_eq!(parse_chat("load rx n1"), None);
    }

    #[test]
    fn rings_forget_only_what_is_overwritten() {
        let mut r = Ring::new(4);
        for k in 0..6u64 {
            r.insert(k, k * 10);
        }
        assert_eq!(r.get(1), None);
        assert_eq!(r.get(2), Some(20));
        assert_eq!(r.get(5), Some(50));
        r.remove(4);
        r.remove(1);
        assert_eq!(r.get(4), None);
        assert_eq!(r.get(5), Some(50));
    }

    #[test]
    fn first_copies_match_their_command_and_repeats_do_not_count() {
        let t = RoomTracker::default();
        let now = Instant::now();
        let seek = Sent {
            at: now,
            kind: CommandKind::Seek,
            id: t.next_id(),
        };
        let pause = Sent {
            at: now,
            kind: CommandKind::Pause,
            id: t.next_id(),
        };
        t.command_sent(4, seek);
        t.command_sent(5, pause);
        let mut member = FirstCopy::new(3);
        let p = position_of(seek.id);
        assert_eq!(
            t.match_update(&mut member, 4, p, TimelineReason::Seek),
            UpdateMatch::Command(seek)
        );
        assert_eq!(
            t.match_update(&mut member, 4, p, TimelineReason::Repeat),
            UpdateMatch::Repeat
        );
        // Another member lost the immediate copy: its first copy is the repeat, still a match.
        let mut late = FirstCopy::new(3);
        assert_eq!(
            t.match_update(&mut late, 4, p, TimelineReason::Repeat),
            UpdateMatch::Command(seek)
        );
        assert_eq!(
            t.match_update(&mut member, 5, 99.0, TimelineReason::Pause),
            UpdateMatch::Command(pause)
        );
        assert_eq!(member.last(), 5);
        // A seek landing elsewhere, a wrong reason, an unregistered seq.
        t.command_sent(6, seek);
        assert_eq!(
            t.match_update(&mut member, 6, p + 1.0, TimelineReason::Seek),
            UpdateMatch::Mismatch
        );
        t.command_sent(7, pause);
        assert_eq!(
            t.match_update(&mut member, 7, 1.0, TimelineReason::Play),
            UpdateMatch::Mismatch
        );
        assert_eq!(
            t.match_update(&mut member, 9, 1.0, TimelineReason::Play),
            UpdateMatch::Unknown
        );
        t.command_sent(10, seek);
        t.command_refused(10);
        assert_eq!(
            t.match_update(&mut member, 10, p, TimelineReason::Seek),
            UpdateMatch::Unknown
        );
    }

    #[test]
    fn one_proposal_at_a_time_until_decided_or_stale() {
        let t = RoomTracker::default();
        let t0 = Instant::now();
        let stale = Duration::from_secs(10);
        assert!(t.try_open_proposal(1, t0, stale));
        assert!(!t.try_open_proposal(2, t0 + Duration::from_secs(1), stale));
        assert_eq!(t.proposal(1), Some(t0));
        assert_eq!(t.proposal(2), None);
        t.proposal_closed(2);
        assert!(!t.try_open_proposal(2, t0 + Duration::from_secs(2), stale));
        t.proposal_closed(1);
        assert!(t.try_open_proposal(3, t0 + Duration::from_secs(3), stale));
        assert!(t.try_open_proposal(4, t0 + Duration::from_secs(14), stale));
    }
}
