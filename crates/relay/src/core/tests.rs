//! The core driven without any IO: messages in, outputs checked.

use super::*;
use lockstep_proto::message::{
    BufferingStart, Chat, CreateRoom, JoinRoom, LeaveRoom, ListRooms, Media, Pause, Play,
    PolicyMode, Ready, Seek, SetMode, SetPassword, Stats, Vote,
};

const S: i64 = 1_000_000;

fn t(ms: i64) -> ServerTime {
    ServerTime::from_micros(10_000_000_000).add_micros(ms * 1_000)
}

struct Harness {
    core: RelayCore,
    next_conn: ConnId,
}

impl Harness {
    fn new() -> Self {
        Harness::with(CoreConfig::default())
    }

    fn with(config: CoreConfig) -> Self {
        Harness {
            core: RelayCore::new(config, [7; 32], Arc::new(Metrics::default())),
            next_conn: 1,
        }
    }

    /// A connection that said hello; returns (conn, member id, resume token).
    fn connect(&mut self, name: &str, now: ServerTime) -> (ConnId, MemberId, String) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.core.open(conn, Transport::Websocket);
        self.core.hello(conn, hello(name, None), Ok(anon()), now);
        let out = self.drain();
        match out.as_slice() {
            [(c, Message::Welcome(w))] if *c == conn => (conn, w.you, w.resume_token.clone()),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    fn send(
        &mut self,
        conn: ConnId,
        message: impl Into<Message>,
        now: ServerTime,
    ) -> Vec<(ConnId, Message)> {
        self.core.message(conn, message.into(), now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<(ConnId, Message)> {
        std::iter::from_fn(|| self.core.poll_output())
            .map(|o| match o {
                Output::Send { to, message } => (to, message.message().clone()),
                Output::Close { conn, .. } => (
                    conn,
                    Message::Ack(Ack {
                        req: u32::MAX,
                        proposal: None,
                    }),
                ),
            })
            .collect()
    }

    fn tick(&mut self, now: ServerTime) -> Vec<(ConnId, Message)> {
        self.core.handle_timeout(now);
        self.drain()
    }

    /// Creates a room as `conn`; returns its id.
    fn create(&mut self, conn: ConnId, m: CreateRoom, now: ServerTime) -> RoomId {
        let out = self.send(conn, m, now);
        out.iter()
            .find_map(|(_, m)| match m {
                Message::RoomState(s) => Some(s.room.id.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no room_state in {out:?}"))
    }
}

/// The fake `Close` marker used by the harness.
fn is_close(m: &Message) -> bool {
    matches!(m, Message::Ack(Ack { req: u32::MAX, .. }))
}

fn hello(name: &str, resume: Option<String>) -> Hello {
    Hello {
        version: 1,
        client: "test/1".into(),
        features: vec![],
        token: None,
        name: Some(name.into()),
        resume,
    }
}

fn anon() -> SessionIdentity {
    SessionIdentity {
        may_create_rooms: true,
        ..SessionIdentity::default()
    }
}

fn create(name: &str) -> CreateRoom {
    CreateRoom {
        req: Some(1),
        name: name.into(),
        password: None,
        media: None,
        mode: PolicyMode::Host,
        options: None,
    }
}

fn join(room: &RoomId) -> JoinRoom {
    JoinRoom {
        req: Some(2),
        room: room.as_str().into(),
        password: None,
    }
}

fn errors(out: &[(ConnId, Message)]) -> Vec<(ConnId, ErrorCode, bool)> {
    out.iter()
        .filter_map(|(c, m)| match m {
            Message::Error(e) => Some((*c, e.code, e.fatal)),
            _ => None,
        })
        .collect()
}

fn updates(out: &[(ConnId, Message)]) -> Vec<(ConnId, StateUpdate)> {
    out.iter()
        .filter_map(|(c, m)| match m {
            Message::StateUpdate(u) => Some((*c, u.clone())),
            _ => None,
        })
        .collect()
}

fn ready_all(h: &mut Harness, conns: &[ConnId], now: ServerTime) {
    for c in conns {
        h.send(
            *c,
            Ready {
                req: None,
                ready: true,
                wait_for_me: true,
            },
            now,
        );
    }
}

#[test]
fn the_handshake_and_its_refusals() {
    let mut h = Harness::new();
    h.core.open(1, Transport::Websocket);
    h.core.message(1, Play { req: Some(3) }.into(), t(0));
    let out = h.drain();
    assert_eq!(errors(&out), [(1, ErrorCode::HelloRequired, true)]);
    assert!(is_close(&out[1].1));

    h.core.open(2, Transport::Websocket);
    let mut bad = hello("Ada", None);
    bad.version = 9;
    h.core.hello(2, bad, Ok(anon()), t(0));
    let out = h.drain();
    assert_eq!(errors(&out), [(2, ErrorCode::UnsupportedVersion, true)]);

    h.core.open(3, Transport::Websocket);
    h.core.hello(
        3,
        hello("Ada", None),
        Err((ErrorCode::AuthFailed, "expired".into())),
        t(0),
    );
    assert_eq!(errors(&h.drain()), [(3, ErrorCode::AuthFailed, true)]);

    let (conn, _, _) = h.connect("Ada", t(0));
    h.core.hello(conn, hello("Ada", None), Ok(anon()), t(1));
    assert_eq!(errors(&h.drain()), [(conn, ErrorCode::InvalidState, false)]);
    // A relay-to-client type from a client is an unknown type; the connection lives on.
    let out = h.send(
        conn,
        Message::Pong(lockstep_proto::message::Pong {
            seq: 1,
            t0: 1,
            t1: t(0),
            t2: t(0),
        }),
        t(2),
    );
    assert_eq!(errors(&out), [(conn, ErrorCode::UnknownType, false)]);
}

#[test]
fn commands_take_effect_after_the_lead_and_reach_everyone() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let (b, _, _) = h.connect("Grace", t(0));
    let room = h.create(a, create("Movie"), t(0));
    h.send(b, join(&room), t(1));
    ready_all(&mut h, &[a, b], t(2));
    let out = h.send(a, Play { req: Some(5) }, t(10));
    assert!(out.contains(&(
        a,
        Message::Ack(Ack {
            req: 5,
            proposal: None
        })
    )));
    let ups = updates(&out);
    assert_eq!(ups.len(), 2, "both members get the new timeline: {out:?}");
    for (_, u) in &ups {
        assert!(!u.timeline.paused);
        assert_eq!(u.reason, TimelineReason::Play);
        assert!(
            u.timeline.at >= t(110),
            "at least 100 ms lead, got {:?}",
            u.timeline.at
        );
    }
    // A slow member stretches the lead: 2 x 150 ms + 20 ms.
    h.send(
        b,
        Stats {
            rtt_us: 150_000,
            offset_us: 0,
            offset_error_us: 75_000,
            drift_us: 0,
            position: None,
            at: None,
        },
        t(20),
    );
    let out = h.send(
        a,
        Seek {
            req: None,
            position: 42.0,
        },
        t(30),
    );
    let (_, u) = &updates(&out)[0];
    assert_eq!(u.timeline.at, t(30 + 320));
    assert_eq!(u.timeline.position, 42.0);
    // The change is repeated, then the heartbeat keeps it alive.
    let rep = updates(&h.tick(t(30 + 50)));
    assert_eq!(rep.len(), 2);
    assert!(
        rep.iter()
            .all(|(_, r)| r.reason == TimelineReason::Repeat && r.timeline == u.timeline)
    );
    assert_eq!(updates(&h.tick(t(30 + 250))).len(), 2);
    assert_eq!(updates(&h.tick(t(30 + 1000))).len(), 2);
}

#[test]
fn non_hosts_are_refused_and_nothing_changes() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let (b, _, _) = h.connect("Grace", t(0));
    let room = h.create(a, create("Movie"), t(0));
    h.send(b, join(&room), t(1));
    let out = h.send(b, Pause { req: Some(9) }, t(2));
    assert_eq!(errors(&out), [(b, ErrorCode::Forbidden, false)]);
    assert!(updates(&out).is_empty());
}

#[test]
fn democratic_rooms_vote() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let (b, _, _) = h.connect("Grace", t(0));
    let (c, _, _) = h.connect("Linus", t(0));
    let mut m = create("Vote");
    m.mode = PolicyMode::Democratic;
    let room = h.create(a, m, t(0));
    h.send(b, join(&room), t(1));
    h.send(c, join(&room), t(1));
    let out = h.send(
        b,
        Seek {
            req: Some(4),
            position: 600.0,
        },
        t(2),
    );
    let proposal = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::Ack(Ack {
                req: 4,
                proposal: Some(p),
            }) => Some(*p),
            _ => None,
        })
        .expect("ack with a proposal id");
    assert_eq!(
        out.iter()
            .filter(|(_, m)| matches!(m, Message::Proposal(_)))
            .count(),
        3
    );
    let out = h.send(
        c,
        Vote {
            req: Some(5),
            proposal,
            yes: true,
        },
        t(3),
    );
    assert_eq!(
        out.iter()
            .filter(|(_, m)| matches!(m, Message::Decision(_)))
            .count(),
        3
    );
    assert_eq!(updates(&out).len(), 3);
    // Voting on it again: closed.
    let out = h.send(
        a,
        Vote {
            req: Some(6),
            proposal,
            yes: true,
        },
        t(4),
    );
    assert_eq!(errors(&out), [(a, ErrorCode::ProposalClosed, false)]);
    // Back to host mode needs a vote too.
    let out = h.send(
        a,
        SetMode {
            req: Some(7),
            mode: PolicyMode::Host,
        },
        t(5),
    );
    assert!(out.iter().any(|(_, m)| matches!(
        m,
        Message::Ack(Ack {
            req: 7,
            proposal: Some(_)
        })
    )));
}

#[test]
fn resume_inside_the_window_and_after_it() {
    let mut h = Harness::new();
    let (a, ida, token) = h.connect("Ada", t(0));
    let (b, _, _) = h.connect("Grace", t(0));
    let room = h.create(a, create("Movie"), t(0));
    h.send(b, join(&room), t(1));
    h.core.closed(a, t(10));
    h.drain();
    // Back within 90 s: same member, same room, host still.
    h.core.open(10, Transport::Webtransport);
    h.core
        .hello(10, hello("Ada", Some(token.clone())), Ok(anon()), t(60_000));
    let out = h.drain();
    let welcome = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::Welcome(w) => Some(w.clone()),
            _ => None,
        })
        .unwrap();
    assert!(welcome.resumed);
    assert_eq!(welcome.you, ida);
    let state = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::RoomState(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(state.room.id, room);
    assert_eq!(state.room.host, Some(ida));
    // Gone past the window: removed, and a new hello with the old token starts afresh.
    h.core.closed(10, t(70_000));
    let out = h.tick(t(70_000 + 90_000));
    assert!(out.iter().any(|(c, m)| *c == b && matches!(m, Message::MemberLeft(l) if l.member == ida && l.reason == LeaveReason::Disconnected)));
    h.core.open(11, Transport::Websocket);
    h.core
        .hello(11, hello("Ada", Some(token)), Ok(anon()), t(200_000));
    let out = h.drain();
    let welcome = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::Welcome(w) => Some(w.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!welcome.resumed);
    assert_ne!(welcome.you, ida);
}

#[test]
fn passwords_guard_rooms_and_are_never_kept_in_clear() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let (b, _, _) = h.connect("Grace", t(0));
    let mut m = create("Secret");
    m.password = Some("popcorn".into());
    let room = h.create(a, m, t(0));
    assert!(!format!("{:?}", h.core).contains("popcorn"));
    let out = h.send(b, join(&room), t(1));
    assert_eq!(errors(&out), [(b, ErrorCode::WrongPassword, false)]);
    let mut j = join(&room);
    j.password = Some("popcorm".into());
    assert_eq!(
        errors(&h.send(b, j, t(2))),
        [(b, ErrorCode::WrongPassword, false)]
    );
    let mut j = join(&room);
    j.password = Some("popcorn".into());
    let out = h.send(b, j, t(3));
    assert!(
        out.iter()
            .any(|(c, m)| *c == b && matches!(m, Message::RoomState(_)))
    );
    // The host clears it.
    h.send(b, LeaveRoom { req: None }, t(4));
    h.send(
        a,
        SetPassword {
            req: Some(3),
            password: None,
        },
        t(5),
    );
    let out = h.send(b, join(&room), t(6));
    assert!(errors(&out).is_empty());
}

#[test]
fn joining_by_invite_code_and_listing_public_rooms() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let (b, _, _) = h.connect("Grace", t(0));
    let out = h.send(a, create("Private"), t(0));
    let invite = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::RoomState(s) => s.room.invite.clone(),
            _ => None,
        })
        .unwrap();
    let out = h.send(b, ListRooms { req: Some(1) }, t(1));
    assert!(
        matches!(&out[0].1, Message::RoomList(l) if l.rooms.is_empty()),
        "private rooms are not listed"
    );
    let out = h.send(
        b,
        JoinRoom {
            req: Some(2),
            room: invite,
            password: None,
        },
        t(2),
    );
    let state = out
        .iter()
        .find_map(|(_, m)| match m {
            Message::RoomState(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        state.room.invite, None,
        "members do not see the invite code"
    );
    assert_eq!(state.members.len(), 2);
    let out = h.send(
        b,
        JoinRoom {
            req: Some(3),
            room: "nope".into(),
            password: None,
        },
        t(3),
    );
    assert_eq!(errors(&out), [(b, ErrorCode::AlreadyInRoom, false)]);
}

#[test]
fn tallies_of_a_big_vote_are_coalesced_and_the_decision_is_not() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let mut m = create("Vote");
    m.mode = PolicyMode::Democratic;
    let room = h.create(a, m, t(0));
    let mut conns = Vec::new();
    for i in 0..9 {
        let (c, _, _) = h.connect(&format!("Viewer {i}"), t(1));
        h.send(c, join(&room), t(1));
        conns.push(c);
    }
    h.tick(t(200));
    let proposals_to_host = |out: &[(ConnId, Message)]| -> Vec<(u32, u32)> {
        out.iter()
            .filter_map(|(c, m)| match m {
                Message::Proposal(p) if *c == a => Some((p.proposal.yes, p.proposal.no)),
                _ => None,
            })
            .collect()
    };
    let out = h.send(
        conns[0],
        Seek {
            req: Some(1),
            position: 60.0,
        },
        t(1_000),
    );
    assert_eq!(
        proposals_to_host(&out),
        [(1, 0)],
        "opening is announced at once"
    );
    let Some(id) = out.iter().find_map(|(_, m)| match m {
        Message::Proposal(p) => Some(p.proposal.id),
        _ => None,
    }) else {
        panic!("no proposal in {out:?}");
    };
    let vote = |yes| Vote {
        req: None,
        proposal: id,
        yes,
    };
    // Three votes inside the window opened by the announcement: held back, newest kept.
    for (i, c) in conns[1..4].iter().enumerate() {
        let out = h.send(*c, vote(i != 1), t(1_010 + i as i64));
        assert!(proposals_to_host(&out).is_empty(), "{out:?}");
    }
    assert!(proposals_to_host(&h.tick(t(1_049))).is_empty());
    assert_eq!(
        proposals_to_host(&h.tick(t(1_050))),
        [(3, 1)],
        "one tally for three votes"
    );
    // After a quiet window the next change goes out at once again.
    assert!(proposals_to_host(&h.tick(t(1_100))).is_empty());
    let out = h.send(conns[4], vote(false), t(1_200));
    assert_eq!(proposals_to_host(&out), [(3, 2)]);
    // A held-back tally is dropped when the decision comes first.
    h.send(conns[5], vote(true), t(1_210));
    let out = h.send(conns[6], vote(true), t(1_220));
    assert!(
        proposals_to_host(&out).is_empty(),
        "5 of 10 is no majority yet"
    );
    let out = h.send(conns[7], vote(true), t(1_230));
    assert!(proposals_to_host(&out).is_empty());
    let decided = out
        .iter()
        .filter(|(c, m)| *c == a && matches!(m, Message::Decision(_)))
        .count();
    assert_eq!(decided, 1, "6 of 10 pass at once: {out:?}");
    assert!(
        proposals_to_host(&h.tick(t(1_300))).is_empty(),
        "no stale tally after it"
    );
}

#[test]
fn a_big_room_lists_some_members_and_counts_them_all() {
    let mut h = Harness::new();
    let (a, host, _) = h.connect("Ada", t(0));
    let room = h.create(a, create("Big"), t(0));
    let cap = limits::ROOM_STATE_MEMBERS;
    for i in 0..cap {
        let (c, _, _) = h.connect(&format!("Viewer {i}"), t(1));
        h.send(c, join(&room), t(1));
    }
    h.tick(t(100));
    let (c, me, _) = h.connect("Late", t(200));
    let out = h.send(c, join(&room), t(200));
    let Some(state) = out.iter().find_map(|(_, m)| match m {
        Message::RoomState(s) => Some(s.clone()),
        _ => None,
    }) else {
        panic!("no room_state in {out:?}");
    };
    assert_eq!(state.members.len(), cap);
    assert_eq!(state.member_count, Some(cap as u32 + 2));
    assert_eq!(state.members[0].id, me, "the receiver first");
    assert_eq!(state.members[1].id, host, "then the host");
    let to_host = |out: &[(ConnId, Message)]| {
        out.iter()
            .filter(|(to, m)| *to == a && matches!(m, Message::Participants(_)))
            .count()
    };
    assert_eq!(
        to_host(&h.tick(t(300))),
        0,
        "big rooms coalesce joins for 1 s"
    );
    let counts: Vec<_> = h
        .tick(t(1_200))
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Participants(p) if to == a => Some((p.members.len(), p.member_count)),
            _ => None,
        })
        .collect();
    assert_eq!(
        counts,
        [(0, Some(cap as u32 + 2))],
        "a viewer's join is counted, not listed, in a big room"
    );
    // A room that fits lists everyone and sends no count.
    let (d, _, _) = h.connect("Solo", t(400));
    let small = h.create(d, create("Small"), t(400));
    let (e, _, _) = h.connect("Pal", t(400));
    let out = h.send(e, join(&small), t(401));
    assert!(out.iter().any(|(_, m)| matches!(
        m,
        Message::RoomState(s) if s.members.len() == 2 && s.member_count.is_none()
    )));
}

#[test]
fn joins_are_coalesced_into_one_participants_message() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let room = h.create(a, create("Big"), t(0));
    h.tick(t(100));
    let mut conns = Vec::new();
    for i in 0..20 {
        let (c, _, _) = h.connect(&format!("Viewer {i}"), t(1_000));
        h.send(c, join(&room), t(1_000));
        conns.push(c);
    }
    let out = h.tick(t(1_060));
    let to_host: Vec<_> = out
        .iter()
        .filter(|(c, m)| *c == a && matches!(m, Message::Participants(_)))
        .collect();
    assert_eq!(to_host.len(), 1, "one coalesced message, not one per join");
    assert!(matches!(&to_host[0].1, Message::Participants(p) if p.members.len() == 20));
}

#[test]
fn chat_is_rate_limited_per_member() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    h.create(a, create("Chatty"), t(0));
    let mut limited = 0;
    for i in 0..10 {
        let out = h.send(
            a,
            Chat {
                req: None,
                text: format!("line {i}"),
            },
            t(1),
        );
        limited += errors(&out)
            .iter()
            .filter(|e| e.1 == ErrorCode::RateLimited)
            .count();
    }
    assert_eq!(limited, 5, "a burst of 5 lines, then errors");
}

#[test]
fn member_stats_name_the_most_drifting_members() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Host", t(0));
    let room = h.create(a, create("Stats"), t(0));
    let mut ids = Vec::new();
    for i in 0..20 {
        let (c, id, _) = h.connect(&format!("V{i}"), t(0));
        h.send(c, join(&room), t(0));
        h.send(
            c,
            Stats {
                rtt_us: 1_000,
                offset_us: 0,
                offset_error_us: 500,
                drift_us: i64::from(i) * 1_000,
                position: None,
                at: None,
            },
            t(10),
        );
        ids.push(id);
    }
    let out = h.tick(t(10 + 1_000));
    let stats = out
        .iter()
        .find_map(|(c, m)| match m {
            Message::MemberStats(s) if *c == a => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(stats.members.len(), 12);
    assert_eq!(stats.members[0].drift_us, 19_000);
    let bytes = lockstep_proto::encode(
        &Message::MemberStats(stats),
        lockstep_proto::Encoding::MessagePack,
    )
    .unwrap();
    assert!(bytes.len() <= lockstep_proto::limits::MAX_DATAGRAM_PAYLOAD);
}

#[test]
fn empty_rooms_expire() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    h.create(a, create("Brief"), t(0));
    h.send(a, LeaveRoom { req: None }, t(1));
    assert_eq!(h.core.room_count(), 1);
    h.tick(t(1 + 599_000));
    assert_eq!(h.core.room_count(), 1);
    h.tick(t(1 + 600_000));
    assert_eq!(h.core.room_count(), 0);
}

#[test]
fn media_urls_are_checked_against_the_allowlist() {
    let mut h = Harness::with(CoreConfig {
        media_hosts: MediaAllowlist::new(["jellyfin.example.org".to_string()]),
        ..CoreConfig::default()
    });
    let (a, _, _) = h.connect("Ada", t(0));
    let mut m = create("Film");
    m.media = Some(Media {
        url: Some("https://evil.example.net/x.mp4".into()),
        title: "x".into(),
        duration: None,
        item_id: None,
    });
    assert_eq!(
        errors(&h.send(a, m, t(0))),
        [(a, ErrorCode::MediaNotAllowed, false)]
    );
    let mut m = create("Film");
    m.media = Some(Media {
        url: Some("https://jellyfin.example.org/x.mp4".into()),
        title: "x".into(),
        duration: None,
        item_id: None,
    });
    assert!(errors(&h.send(a, m, t(1))).is_empty());
}

#[test]
fn a_kicked_member_is_told_why() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    let (b, idb, _) = h.connect("Grace", t(0));
    let room = h.create(a, create("Movie"), t(0));
    h.send(b, join(&room), t(1));
    let out = h.send(
        a,
        lockstep_proto::message::Kick {
            req: Some(1),
            member: idb,
            reason: Some("spoilers".into()),
        },
        t(2),
    );
    let told = out.iter().any(|(c, m)| *c == b && matches!(m, Message::MemberLeft(l) if l.reason == LeaveReason::Kicked && l.message.as_deref() == Some("spoilers")));
    assert!(told, "{out:?}");
    // Not in the room any more.
    assert_eq!(
        errors(&h.send(
            b,
            BufferingStart {
                req: Some(2),
                position: 1.0
            },
            t(3)
        )),
        [(b, ErrorCode::NotInRoom, false)]
    );
}

#[test]
fn shutdown_tells_everyone_to_come_back() {
    let mut h = Harness::new();
    let (a, _, _) = h.connect("Ada", t(0));
    h.core.shutdown(2_000);
    let out = h.drain();
    assert!(
        matches!(&out[0], (c, Message::GoingAway(g)) if *c == a && g.reconnect_after_ms == 2_000)
    );
    assert!(is_close(&out[1].1));
    let _ = S;
}

#[test]
fn a_room_moved_to_another_relay_is_found_again_by_its_members() {
    // Relay 1: Ada hosts, Grace is a co-host, playback runs.
    let mut one = Harness::new();
    let (a, ida, token_a) = one.connect("Ada", t(0));
    let (g, idg, token_g) = one.connect("Grace", t(0));
    let room = one.create(a, create("Movie"), t(0));
    one.send(g, join(&room), t(1));
    ready_all(&mut one, &[a, g], t(2));
    one.send(
        a,
        lockstep_proto::message::SetRole {
            req: None,
            member: idg,
            role: lockstep_proto::message::Role::Cohost,
        },
        t(3),
    );
    one.send(a, Play { req: None }, t(10));
    let out = one.tick(t(2_000));
    let before = updates(&out).last().map(|(_, u)| u.timeline);
    let snapshot = one.core.room_snapshot(&room).expect("the room is here");
    // As it is stored: MessagePack.
    let bytes = rmp_serde::to_vec_named(&snapshot).unwrap();
    let stored: RoomSnapshot = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(stored, snapshot);

    // Relay 1 is gone. Relay 2, whose clock is 5 ms behind relay 1's, takes the room over.
    let mut two = Harness::new();
    two.core = RelayCore::new(CoreConfig::default(), [9; 32], Arc::new(Metrics::default()));
    let offset = 5_000;
    let at = |t: ServerTime| t.add_micros(-offset);
    assert_eq!(
        two.core.import_room(stored.clone(), offset, t(2_500)),
        Ok(room.clone())
    );
    assert!(matches!(
        two.core.import_room(stored, offset, t(2_500)),
        Err(ImportError::AlreadyHere(_))
    ));
    // Grace comes back with her token: same member, co-host, the timeline in relay 2's clock.
    two.core.open(50, Transport::Websocket);
    two.core
        .hello(50, hello("Grace", Some(token_g)), Ok(anon()), t(3_000));
    let out = two.drain();
    let welcome = out.iter().find_map(|(_, m)| match m {
        Message::Welcome(w) => Some(w.clone()),
        _ => None,
    });
    assert!(
        welcome.as_ref().is_some_and(|w| w.resumed && w.you == idg),
        "{out:?}"
    );
    let Some(state) = out.iter().find_map(|(_, m)| match m {
        Message::RoomState(s) => Some(s.clone()),
        _ => None,
    }) else {
        panic!("no room_state in {out:?}");
    };
    assert_eq!(state.room.id, room);
    assert_eq!(
        state.room.host,
        Some(ida),
        "the host keeps the role through its grace"
    );
    let grace = state.members.iter().find(|m| m.id == idg).unwrap();
    assert_eq!(grace.role, lockstep_proto::message::Role::Cohost);
    let before = before.expect("a timeline before the move");
    assert!(!state.timeline.paused);
    assert_eq!(state.timeline.seq, before.seq);
    assert_eq!(state.timeline.position, before.position);
    assert_eq!(state.timeline.at, at(before.at));
    // Ada, too; her invite code still works for newcomers.
    two.core.open(51, Transport::Webtransport);
    two.core
        .hello(51, hello("Ada", Some(token_a)), Ok(anon()), t(3_100));
    let out = two.drain();
    assert!(
        out.iter()
            .any(|(_, m)| matches!(m, Message::Welcome(w) if w.resumed && w.you == ida))
    );
    let (n, newcomer, _) = two.connect("Linus", t(3_200));
    assert!(
        newcomer != ida && newcomer != idg,
        "ids after the imported ones"
    );
    let invite = state
        .room
        .invite
        .clone()
        .expect("a co-host sees the invite");
    let out = two.send(
        n,
        JoinRoom {
            req: Some(7),
            room: invite,
            password: None,
        },
        t(3_300),
    );
    assert!(
        out.iter()
            .any(|(c, m)| *c == n && matches!(m, Message::RoomState(s) if s.room.id == room)),
        "{out:?}"
    );
}
