//! The plan of a run: who is in which room, with which role and transport, and at which rates.
//!
//! Decided up front from the options and the seed, so member tasks only follow it and two runs
//! with the same options load the relay the same way. Rooms are contiguous ranges of client
//! indices and the first client of a room creates it (its host), so a fleet that grows in index
//! order (the `steps` scenario) always connects a room's host before its members.

use lockstep_proto::message::{PolicyMode, Transport};

use super::cli::{Args, ScenarioKind, TransportMix};
use super::prng::Prng;

/// Smallest and largest room of `small-rooms` when `--rooms` is not given.
pub(crate) const SMALL_ROOM: (u64, u64) = (5, 10);

/// One room.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoomPlan {
    /// Index of its first client (the host, who creates it).
    pub(crate) first: usize,
    /// Clients in it.
    pub(crate) len: usize,
    /// Host or democratic.
    pub(crate) mode: PolicyMode,
}

/// One client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClientPlan {
    /// Index of its room in [`Plan::rooms`].
    pub(crate) room: usize,
    /// WebSocket or WebTransport.
    pub(crate) transport: Transport,
    /// Creates the room; in host mode, sends the playback commands.
    pub(crate) host: bool,
    /// Sends the room's chat lines.
    pub(crate) chatter: bool,
    /// Democratic rooms: its turn among the proposers, if it is one.
    pub(crate) proposer: Option<usize>,
    /// Democratic rooms: votes yes on the proposals of others.
    pub(crate) voter: bool,
    /// Stops reading its socket during the run (slow-consumer).
    pub(crate) slow: bool,
}

/// What each room and client sends, per second.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rates {
    /// Playback commands per room (host mode), from its host.
    pub(crate) commands_per_sec: f64,
    /// Chat lines per room, from its chatter.
    pub(crate) chat_per_sec: f64,
    /// Length of a chat line, bytes.
    pub(crate) chat_len: usize,
    /// Seek proposals per democratic room, shared by its proposers.
    pub(crate) proposals_per_sec: f64,
    /// Proposers per democratic room.
    pub(crate) proposers: usize,
    /// Whether members send `stats` (all but the idle loads).
    pub(crate) stats: bool,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Rooms, in client order.
    pub(crate) rooms: Vec<RoomPlan>,
    /// Clients, by index.
    pub(crate) clients: Vec<ClientPlan>,
    /// Rates.
    pub(crate) rates: Rates,
}

impl Plan {
    /// Clients of each transport: (WebSocket, WebTransport).
    pub(crate) fn transports(&self) -> (usize, usize) {
        let wt = self
            .clients
            .iter()
            .filter(|c| c.transport == Transport::Webtransport)
            .count();
        (self.clients.len() - wt, wt)
    }

    /// Rooms whose host has an index below `clients` (those a fleet of that size uses).
    pub(crate) fn rooms_within(&self, clients: usize) -> usize {
        self.rooms.iter().filter(|r| r.first < clients).count()
    }
}

/// Splits `n` clients into `rooms` rooms as evenly as possible.
fn even(n: usize, rooms: usize) -> Vec<usize> {
    let rooms = rooms.clamp(1, n.max(1));
    (0..rooms)
        .map(|i| n / rooms + usize::from(i < n % rooms))
        .collect()
}

/// Room sizes for `n` clients under these options.
pub(crate) fn room_sizes(args: &Args, n: usize, rng: &mut Prng) -> Vec<usize> {
    if let Some(m) = args.rooms {
        return even(n, m);
    }
    match args.scenario {
        ScenarioKind::SmallRooms => {
            let mut sizes = Vec::new();
            let mut left = n;
            while left > 0 {
                let size = (rng.range(SMALL_ROOM.0, SMALL_ROOM.1) as usize).min(left);
                sizes.push(size);
                left -= size;
            }
            sizes
        }
        ScenarioKind::BigRoom | ScenarioKind::BigRoomDemocratic => vec![n],
        ScenarioKind::SlowConsumer | ScenarioKind::Idle | ScenarioKind::Steps => {
            let size = args.room_size.max(1);
            let mut sizes = vec![size; n / size];
            if !n.is_multiple_of(size) {
                sizes.push(n % size);
            }
            sizes
        }
    }
}

/// The plan for the largest client count of the run.
pub(crate) fn plan(args: &Args) -> Plan {
    let n = args.max_clients();
    let mut rng = Prng::new(args.seed, u64::MAX);
    let sizes = room_sizes(args, n, &mut rng);
    let mode = if args.scenario == ScenarioKind::BigRoomDemocratic {
        PolicyMode::Democratic
    } else {
        PolicyMode::Host
    };
    let rates = Rates {
        commands_per_sec: if mode == PolicyMode::Host {
            args.commands_rate()
        } else {
            0.0
        },
        chat_per_sec: args.chat_rate(),
        chat_len: args.chat_len(),
        proposals_per_sec: if mode == PolicyMode::Democratic {
            args.proposals_per_sec
        } else {
            0.0
        },
        proposers: args.proposers.max(1),
        stats: !matches!(
            (args.scenario, args.step_load),
            (ScenarioKind::Idle, _) | (ScenarioKind::Steps, super::cli::StepLoad::Idle)
        ),
    };
    let mut rooms = Vec::with_capacity(sizes.len());
    let mut clients = Vec::with_capacity(n);
    for (room, &len) in sizes.iter().enumerate() {
        let first = clients.len();
        rooms.push(RoomPlan { first, len, mode });
        for k in 0..len {
            let index = first + k;
            let mut r = Prng::new(args.seed, index as u64);
            let transport = match args.transport {
                TransportMix::Ws => Transport::Websocket,
                TransportMix::Wt => Transport::Webtransport,
                TransportMix::Mix if index % 2 == 1 => Transport::Webtransport,
                TransportMix::Mix => Transport::Websocket,
            };
            let host = k == 0;
            // The second member chats (the host in a room of one), so hosts' own traffic
            // stays commands only.
            let chatter = rates.chat_per_sec > 0.0 && k == usize::from(len > 1);
            let democratic = mode == PolicyMode::Democratic;
            let proposer =
                (democratic && rates.proposals_per_sec > 0.0 && k < rates.proposers).then_some(k);
            let voter = democratic && r.unit() < args.vote_fraction;
            let slow = args.scenario == ScenarioKind::SlowConsumer
                && !host
                && !chatter
                && r.unit() < args.slow_fraction;
            clients.push(ClientPlan {
                room,
                transport,
                host,
                chatter,
                proposer,
                voter,
                slow,
            });
        }
    }
    Plan {
        rooms,
        clients,
        rates,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["lockstep-load"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    }

    #[test]
    fn small_rooms_hold_five_to_ten_and_everyone() {
        let p = plan(&args(&["--clients", "1003"]));
        assert_eq!(p.clients.len(), 1003);
        let total: usize = p.rooms.iter().map(|r| r.len).sum();
        assert_eq!(total, 1003);
        let last = p.rooms.len() - 1;
        for (i, r) in p.rooms.iter().enumerate() {
            if i < last {
                assert!((5..=10).contains(&r.len), "room {i} has {}", r.len);
            }
            assert!(p.clients[r.first].host);
            assert_eq!(p.clients[r.first].room, i);
            let chatters = (r.first..r.first + r.len)
                .filter(|&c| p.clients[c].chatter)
                .count();
            assert_eq!(chatters, 1);
        }
    }

    #[test]
    fn given_rooms_split_evenly() {
        let p = plan(&args(&["--clients", "1000", "--rooms", "100"]));
        assert_eq!(p.rooms.len(), 100);
        assert!(p.rooms.iter().all(|r| r.len == 10));
        assert_eq!(even(7, 3), vec![3, 2, 2]);
        assert_eq!(even(2, 5), vec![1, 1]);
    }

    #[test]
    fn big_rooms_and_democracy() {
        let p = plan(&args(&[
            "--scenario",
            "big-room-democratic",
            "--clients",
            "500",
            "--proposers",
            "3",
        ]));
        assert_eq!(p.rooms.len(), 1);
        assert_eq!(p.rooms[0].mode, PolicyMode::Democratic);
        assert_eq!(p.rates.commands_per_sec, 0.0);
        let proposers: Vec<_> = p.clients.iter().filter_map(|c| c.proposer).collect();
        assert_eq!(proposers, vec![0, 1, 2]);
        let voters = p.clients.iter().filter(|c| c.voter).count();
        assert!((250..350).contains(&voters), "{voters} voters");
    }

    #[test]
    fn slow_consumers_are_never_senders() {
        let p = plan(&args(&[
            "--scenario",
            "slow-consumer",
            "--clients",
            "2000",
            "--slow-fraction",
            "0.5",
        ]));
        let slow = p.clients.iter().filter(|c| c.slow).count();
        assert!((700..1000).contains(&slow), "{slow} slow");
        assert!(p.clients.iter().all(|c| !(c.slow && (c.host || c.chatter))));
        assert!(p.rates.stats);
    }

    #[test]
    fn mix_alternates_and_steps_use_the_largest_count() {
        let p = plan(&args(&[
            "--scenario",
            "steps",
            "--steps",
            "10,25",
            "--transport",
            "mix",
        ]));
        assert_eq!(p.clients.len(), 25);
        assert_eq!(p.transports(), (13, 12));
        assert_eq!(p.rooms.len(), 3);
        assert_eq!(p.rooms_within(10), 1);
        assert_eq!(p.rooms_within(11), 2);
        assert!(!p.rates.stats);
        assert_eq!(p.rates.commands_per_sec, 0.0);
    }
}
