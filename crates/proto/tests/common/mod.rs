//! Shared by the proto integration tests: one realistic example of every message type (the
//! golden vectors are made from these) and a proptest strategy for every message type.
//!
//! Both are exhaustive `match`es over `MessageType`, so adding a message type without an
//! example and a strategy does not compile.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use lockstep_proto::message::*;
use lockstep_proto::{ErrorCode, Message, MessageType, ServerTime, Timeline};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000_000_000;

fn room() -> RoomId {
    RoomId::new("movie-night")
}

fn media() -> Media {
    Media {
        url: Some("https://jellyfin.example.org/Videos/3f2a/stream.mp4".into()),
        title: "Big Buck Bunny".into(),
        duration: Some(596.458),
        item_id: Some("3f2a9c".into()),
    }
}

fn member(id: MemberId, name: &str, role: Role, transport: Transport) -> Member {
    Member {
        id,
        name: name.into(),
        role,
        transport,
        ready: true,
        buffering: false,
        waited_for: true,
    }
}

fn room_info() -> RoomInfo {
    RoomInfo {
        id: room(),
        name: "Friday movie night".into(),
        invite: Some("k7Qm2xZp9A".into()),
        mode: PolicyMode::Host,
        host: Some(7),
        has_password: true,
        capacity: 1000,
        media: Some(media()),
        options: RoomOptions::default(),
    }
}

fn timeline() -> Timeline {
    Timeline {
        position: 754.25,
        rate: 1.0,
        paused: false,
        at: ServerTime(NOW + 150_000),
        seq: 42,
    }
}

fn proposal() -> Proposal {
    Proposal {
        id: 3,
        proposer: 9,
        action: Action::Seek { position: 1_200.0 },
        deadline: ServerTime(NOW + 30_000_000),
        yes: 2,
        no: 1,
        needed: 3,
    }
}

/// A realistic example of each message type.
pub(crate) fn example(kind: MessageType) -> Message {
    use MessageType as T;
    match kind {
        T::Hello => Hello {
            version: 1,
            client: "lockstep-web/0.1.0".into(),
            features: vec![],
            token: None,
            name: Some("Ada".into()),
            resume: None,
        }
        .into(),
        T::Welcome => Welcome {
            version: 1,
            you: 7,
            name: "Ada".into(),
            resume_token: "r_8f3b9e2c41d7a6f0".into(),
            resumed: false,
            server_time: ServerTime(NOW),
            features: vec![],
            limits: SessionLimits {
                max_frame: 16_384,
                max_datagram: 1_100,
                ping_interval_ms: 2_000,
            },
        }
        .into(),
        T::Error => Message::Error(ErrorMessage {
            req: Some(12),
            code: ErrorCode::WrongPassword,
            message: "the room password is wrong".into(),
            fatal: false,
        }),
        T::Ack => Ack {
            req: 13,
            proposal: Some(3),
        }
        .into(),
        T::GoingAway => GoingAway {
            reason: "relay restarting".into(),
            reconnect_after_ms: 2_000,
            room: Some(room()),
        }
        .into(),
        T::CreateRoom => CreateRoom {
            req: Some(1),
            name: "Friday movie night".into(),
            password: Some("popcorn".into()),
            media: Some(media()),
            mode: PolicyMode::Host,
            options: None,
        }
        .into(),
        T::JoinRoom => JoinRoom {
            req: Some(2),
            room: "k7Qm2xZp9A".into(),
            password: Some("popcorn".into()),
        }
        .into(),
        T::LeaveRoom => LeaveRoom { req: Some(3) }.into(),
        T::ListRooms => ListRooms { req: Some(4) }.into(),
        T::RoomList => RoomList {
            req: Some(4),
            rooms: vec![RoomSummary {
                id: room(),
                name: "Friday movie night".into(),
                members: 3,
                capacity: 1000,
                mode: PolicyMode::Democratic,
                has_password: false,
                media_title: Some("Big Buck Bunny".into()),
            }],
        }
        .into(),
        T::RoomState => RoomState {
            req: Some(2),
            room: room_info(),
            you: 9,
            members: vec![
                member(7, "Ada", Role::Host, Transport::Webtransport),
                member(9, "Grace", Role::Member, Transport::Websocket),
            ],
            timeline: timeline(),
            proposals: vec![],
            member_count: None,
        }
        .into(),
        T::RoomUpdated => RoomUpdated { room: room_info() }.into(),
        T::SetMedia => SetMedia {
            req: Some(5),
            media: media(),
        }
        .into(),
        T::SetRoomOptions => SetRoomOptions {
            req: Some(6),
            options: RoomOptions {
                locked: true,
                ..RoomOptions::default()
            },
        }
        .into(),
        T::SetPassword => SetPassword {
            req: Some(7),
            password: Some("new popcorn".into()),
        }
        .into(),
        T::Participants => Participants {
            room: room(),
            members: vec![member(11, "Linus", Role::Member, Transport::Webtransport)],
            member_count: None,
        }
        .into(),
        T::MemberLeft => MemberLeft {
            room: room(),
            member: 11,
            reason: LeaveReason::Kicked,
            message: Some("spoilers in chat".into()),
        }
        .into(),
        T::RoomClosed => RoomClosed {
            room: room(),
            reason: CloseReason::Expired,
        }
        .into(),
        T::Kick => Kick {
            req: Some(8),
            member: 11,
            reason: Some("spoilers in chat".into()),
        }
        .into(),
        T::Play => Play { req: Some(20) }.into(),
        T::Pause => Pause { req: Some(21) }.into(),
        T::Seek => Seek {
            req: Some(22),
            position: 1_200.5,
        }
        .into(),
        T::SetRate => SetRate {
            req: Some(23),
            rate: 1.25,
        }
        .into(),
        T::Resync => Resync { req: Some(24) }.into(),
        T::StateUpdate => StateUpdate {
            room: room(),
            timeline: timeline(),
            reason: TimelineReason::Seek,
            by: Some(7),
        }
        .into(),
        T::Ready => Ready {
            req: None,
            ready: true,
            wait_for_me: true,
        }
        .into(),
        T::BufferingStart => BufferingStart {
            req: None,
            position: 754.5,
        }
        .into(),
        T::BufferingEnd => BufferingEnd {
            req: None,
            position: 754.5,
        }
        .into(),
        T::SetMode => SetMode {
            req: Some(30),
            mode: PolicyMode::Democratic,
        }
        .into(),
        T::ModeChanged => ModeChanged {
            room: room(),
            mode: PolicyMode::Democratic,
            by: Some(7),
        }
        .into(),
        T::TransferHost => TransferHost {
            req: Some(31),
            to: 9,
        }
        .into(),
        T::SetRole => SetRole {
            req: Some(32),
            member: 9,
            role: Role::Cohost,
        }
        .into(),
        T::HostChanged => HostChanged {
            room: room(),
            host: Some(9),
            previous: Some(7),
            reason: HostChangeReason::HostLeft,
        }
        .into(),
        T::Proposal => Message::Proposal(ProposalUpdate {
            room: room(),
            proposal: proposal(),
        }),
        T::Vote => Vote {
            req: Some(33),
            proposal: 3,
            yes: true,
        }
        .into(),
        T::Decision => Decision {
            room: room(),
            proposal: 3,
            outcome: Outcome::Passed,
            action: Action::Seek { position: 1_200.0 },
        }
        .into(),
        T::Chat => Chat {
            req: None,
            text: "who brought the popcorn?".into(),
        }
        .into(),
        T::ChatMessage => ChatMessage {
            room: room(),
            from: 9,
            name: "Grace".into(),
            text: "who brought the popcorn?".into(),
            at: ServerTime(NOW + 2_000_000),
        }
        .into(),
        T::React => React {
            req: None,
            reaction: "🍿".into(),
        }
        .into(),
        T::Reaction => Reaction {
            room: room(),
            from: 9,
            reaction: "🍿".into(),
            at: ServerTime(NOW + 2_500_000),
        }
        .into(),
        T::Ping => Ping {
            seq: 17,
            t0: 5_000_123,
        }
        .into(),
        T::Pong => Pong {
            seq: 17,
            t0: 5_000_123,
            t1: ServerTime(NOW + 400),
            t2: ServerTime(NOW + 415),
        }
        .into(),
        T::Stats => Stats {
            rtt_us: 820,
            offset_us: 1_699_999_995_000_000,
            offset_error_us: 410,
            drift_us: -1_250,
            position: Some(754.31),
            at: Some(ServerTime(NOW + 210_000)),
        }
        .into(),
        T::MemberStats => MemberStats {
            room: room(),
            members: vec![
                MemberStat {
                    member: 7,
                    rtt_us: 820,
                    offset_us: 1_699_999_995_000_000,
                    offset_error_us: 410,
                    drift_us: -1_250,
                },
                MemberStat {
                    member: 9,
                    rtt_us: 48_300,
                    offset_us: -12_000,
                    offset_error_us: 24_150,
                    drift_us: 3_900,
                },
            ],
        }
        .into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies: arbitrary *valid* values of every message type.

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][\\PC]{0,30}".prop_filter("within 64 chars", |s| {
        s.chars().count() <= 64 && !s.contains(['\n', '\t'])
    })
}

fn text(max: usize) -> impl Strategy<Value = String> {
    "[a-z][\\PC\n]{0,60}".prop_filter("within limit", move |s| s.chars().count() <= max)
}

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn token() -> impl Strategy<Value = String> {
    "[!-~]{1,64}"
}

fn room_id() -> impl Strategy<Value = RoomId> {
    ident().prop_map(RoomId)
}

fn req() -> impl Strategy<Value = Option<RequestId>> {
    proptest::option::of(any::<u32>())
}

fn safe_u64() -> impl Strategy<Value = u64> {
    0..=MAX_SAFE_INTEGER
}

fn safe_i64() -> impl Strategy<Value = i64> {
    -(MAX_SAFE_INTEGER as i64)..=(MAX_SAFE_INTEGER as i64)
}

fn server_time() -> impl Strategy<Value = ServerTime> {
    safe_u64().prop_map(ServerTime)
}

fn position() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.0..=10_000_000.0f64]
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), 0.25..=4.0f64]
}

fn mode() -> impl Strategy<Value = PolicyMode> {
    prop_oneof![Just(PolicyMode::Host), Just(PolicyMode::Democratic)]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Host), Just(Role::Cohost), Just(Role::Member)]
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![Just(Transport::Webtransport), Just(Transport::Websocket)]
}

fn arb_media() -> impl Strategy<Value = Media> {
    (
        proptest::option::of("https://[a-z]{1,20}\\.example/[!-~]{0,40}"),
        name(),
        proptest::option::of(0.001..=10_000_000.0f64),
        proptest::option::of(token()),
    )
        .prop_map(|(url, title, duration, item_id)| Media {
            url,
            title,
            duration,
            item_id,
        })
}

fn arb_member() -> impl Strategy<Value = Member> {
    (
        any::<u32>(),
        name(),
        role(),
        transport(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, name, role, transport, ready, buffering, waited_for)| Member {
                id,
                name,
                role,
                transport,
                ready,
                buffering,
                waited_for,
            },
        )
}

fn arb_options() -> impl Strategy<Value = RoomOptions> {
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (0..=99u8, 1..=5000u32, 1_000..=600_000u32, 0..=120_000u32),
        (
            any::<bool>(),
            prop_oneof![Just(ResyncTarget::Median), Just(ResyncTarget::Slowest)],
            0..=600_000u32,
        ),
    )
        .prop_map(
            |(
                (public, locked, everyone_controls, pause_without_vote),
                (quorum_percent, min_voters, proposal_timeout_ms, ready_timeout_ms),
                (buffering_pauses_room, resync_target, host_grace_ms),
            )| RoomOptions {
                public,
                locked,
                everyone_controls,
                pause_without_vote,
                quorum_percent,
                min_voters,
                proposal_timeout_ms,
                ready_timeout_ms,
                buffering_pauses_room,
                resync_target,
                host_grace_ms,
            },
        )
}

fn arb_room_info() -> impl Strategy<Value = RoomInfo> {
    (
        room_id(),
        name(),
        proptest::option::of(ident()),
        mode(),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        any::<u32>(),
        proptest::option::of(arb_media()),
        arb_options(),
    )
        .prop_map(
            |(id, name, invite, mode, host, has_password, capacity, media, options)| RoomInfo {
                id,
                name,
                invite,
                mode,
                host,
                has_password,
                capacity,
                media,
                options,
            },
        )
}

fn arb_timeline() -> impl Strategy<Value = Timeline> {
    (position(), rate(), any::<bool>(), server_time(), safe_u64()).prop_map(
        |(position, rate, paused, at, seq)| Timeline {
            position,
            rate,
            paused,
            at,
            seq,
        },
    )
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Play),
        Just(Action::Pause),
        position().prop_map(|position| Action::Seek { position }),
        rate().prop_map(|rate| Action::SetRate { rate }),
        Just(Action::Resync),
        mode().prop_map(|mode| Action::SetMode { mode }),
        any::<u32>().prop_map(|member| Action::Kick { member }),
        any::<u32>().prop_map(|to| Action::TransferHost { to }),
        arb_media().prop_map(|media| Action::SetMedia { media }),
    ]
}

fn arb_proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u32>(),
        any::<u32>(),
        arb_action(),
        server_time(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(id, proposer, action, deadline, yes, no, needed)| Proposal {
                id,
                proposer,
                action,
                deadline,
                yes,
                no,
                needed,
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL)
}

fn member_left_message() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text(256))
}

fn features() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(token(), 0..=32)
}

/// Arbitrary valid messages of one type.
pub(crate) fn arb_message(kind: MessageType) -> BoxedStrategy<Message> {
    use MessageType as T;
    match kind {
        T::Hello => (
            any::<u16>(),
            token(),
            features(),
            proptest::option::of("[!-~]{1,2000}"),
            proptest::option::of(name()),
            proptest::option::of(token()),
        )
            .prop_map(|(version, client, features, token, name, resume)| {
                Hello {
                    version,
                    client,
                    features,
                    token,
                    name,
                    resume,
                }
                .into()
            })
            .boxed(),
        T::Welcome => (
            (any::<u16>(), any::<u32>(), name(), token(), any::<bool>()),
            (server_time(), features()),
            (any::<u32>(), any::<u32>(), any::<u32>()),
        )
            .prop_map(
                |(
                    (version, you, name, resume_token, resumed),
                    (server_time, features),
                    (max_frame, max_datagram, ping_interval_ms),
                )| {
                    Welcome {
                        version,
                        you,
                        name,
                        resume_token,
                        resumed,
                        server_time,
                        features,
                        limits: SessionLimits {
                            max_frame,
                            max_datagram,
                            ping_interval_ms,
                        },
                    }
                    .into()
                },
            )
            .boxed(),
        T::Error => (req(), error_code(), text(256), any::<bool>())
            .prop_map(|(req, code, message, fatal)| {
                Message::Error(ErrorMessage {
                    req,
                    code,
                    message,
                    fatal,
                })
            })
            .boxed(),
        T::Ack => (any::<u32>(), proptest::option::of(any::<u32>()))
            .prop_map(|(req, proposal)| Ack { req, proposal }.into())
            .boxed(),
        T::GoingAway => (text(256), any::<u32>(), proptest::option::of(room_id()))
            .prop_map(|(reason, reconnect_after_ms, room)| {
                GoingAway {
                    reason,
                    reconnect_after_ms,
                    room,
                }
                .into()
            })
            .boxed(),
        T::CreateRoom => (
            req(),
            name(),
            proptest::option::of("\\PC{1,32}"),
            proptest::option::of(arb_media()),
            mode(),
            proptest::option::of(arb_options()),
        )
            .prop_map(|(req, name, password, media, mode, options)| {
                CreateRoom {
                    req,
                    name,
                    password,
                    media,
                    mode,
                    options,
                }
                .into()
            })
            .boxed(),
        T::JoinRoom => (req(), ident(), proptest::option::of("\\PC{1,32}"))
            .prop_map(|(req, room, password)| {
                JoinRoom {
                    req,
                    room,
                    password,
                }
                .into()
            })
            .boxed(),
        T::LeaveRoom => req().prop_map(|req| LeaveRoom { req }.into()).boxed(),
        T::ListRooms => req().prop_map(|req| ListRooms { req }.into()).boxed(),
        T::RoomList => {
            let summary = (
                room_id(),
                name(),
                any::<u32>(),
                any::<u32>(),
                mode(),
                any::<bool>(),
                proptest::option::of(name()),
            )
                .prop_map(
                    |(id, name, members, capacity, mode, has_password, media_title)| RoomSummary {
                        id,
                        name,
                        members,
                        capacity,
                        mode,
                        has_password,
                        media_title,
                    },
                );
            (req(), proptest::collection::vec(summary, 0..5))
                .prop_map(|(req, rooms)| RoomList { req, rooms }.into())
                .boxed()
        }
        T::RoomState => (
            req(),
            arb_room_info(),
            any::<u32>(),
            proptest::collection::vec(arb_member(), 0..5),
            arb_timeline(),
            proptest::collection::vec(arb_proposal(), 0..3),
            proptest::option::of(0u32..100),
        )
            .prop_map(|(req, room, you, members, timeline, proposals, extra)| {
                let member_count = extra.map(|e| members.len() as u32 + e);
                RoomState {
                    req,
                    room,
                    you,
                    members,
                    timeline,
                    proposals,
                    member_count,
                }
                .into()
            })
            .boxed(),
        T::RoomUpdated => arb_room_info()
            .prop_map(|room| RoomUpdated { room }.into())
            .boxed(),
        T::SetMedia => (req(), arb_media())
            .prop_map(|(req, media)| SetMedia { req, media }.into())
            .boxed(),
        T::SetRoomOptions => (req(), arb_options())
            .prop_map(|(req, options)| SetRoomOptions { req, options }.into())
            .boxed(),
        T::SetPassword => (req(), proptest::option::of("\\PC{1,32}"))
            .prop_map(|(req, password)| SetPassword { req, password }.into())
            .boxed(),
        T::Participants => (
            room_id(),
            proptest::collection::vec(arb_member(), 0..5),
            proptest::option::of(0u32..100),
        )
            .prop_map(|(room, members, extra)| {
                let member_count = extra.map(|e| members.len() as u32 + e);
                Participants {
                    room,
                    members,
                    member_count,
                }
                .into()
            })
            .boxed(),
        T::MemberLeft => (
            room_id(),
            any::<u32>(),
            prop_oneof![
                Just(LeaveReason::Left),
                Just(LeaveReason::Disconnected),
                Just(LeaveReason::Kicked)
            ],
        )
            .prop_map(|(room, member, reason)| {
                MemberLeft {
                    room,
                    member,
                    reason,
                    message: None,
                }
                .into()
            })
            .boxed(),
        T::RoomClosed => (
            room_id(),
            prop_oneof![
                Just(CloseReason::Closed),
                Just(CloseReason::Expired),
                Just(CloseReason::Shutdown)
            ],
        )
            .prop_map(|(room, reason)| RoomClosed { room, reason }.into())
            .boxed(),
        T::Kick => (req(), any::<u32>(), proptest::option::of(text(256)))
            .prop_map(|(req, member, reason)| {
                Kick {
                    req,
                    member,
                    reason,
                }
                .into()
            })
            .boxed(),
        T::Play => req().prop_map(|req| Play { req }.into()).boxed(),
        T::Pause => req().prop_map(|req| Pause { req }.into()).boxed(),
        T::Seek => (req(), position())
            .prop_map(|(req, position)| Seek { req, position }.into())
            .boxed(),
        T::SetRate => (req(), rate())
            .prop_map(|(req, rate)| SetRate { req, rate }.into())
            .boxed(),
        T::Resync => req().prop_map(|req| Resync { req }.into()).boxed(),
        T::StateUpdate => (
            room_id(),
            arb_timeline(),
            proptest::sample::select(vec![
                TimelineReason::Play,
                TimelineReason::Pause,
                TimelineReason::Seek,
                TimelineReason::Rate,
                TimelineReason::Resync,
                TimelineReason::Ready,
                TimelineReason::Buffering,
                TimelineReason::Media,
                TimelineReason::Repeat,
            ]),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(|(room, timeline, reason, by)| {
                StateUpdate {
                    room,
                    timeline,
                    reason,
                    by,
                }
                .into()
            })
            .boxed(),
        T::Ready => (req(), any::<bool>(), any::<bool>())
            .prop_map(|(req, ready, wait_for_me)| {
                Ready {
                    req,
                    ready,
                    wait_for_me,
                }
                .into()
            })
            .boxed(),
        T::BufferingStart => (req(), position())
            .prop_map(|(req, position)| BufferingStart { req, position }.into())
            .boxed(),
        T::BufferingEnd => (req(), position())
            .prop_map(|(req, position)| BufferingEnd { req, position }.into())
            .boxed(),
        T::SetMode => (req(), mode())
            .prop_map(|(req, mode)| SetMode { req, mode }.into())
            .boxed(),
        T::ModeChanged => (room_id(), mode(), proptest::option::of(any::<u32>()))
            .prop_map(|(room, mode, by)| ModeChanged { room, mode, by }.into())
            .boxed(),
        T::TransferHost => (req(), any::<u32>())
            .prop_map(|(req, to)| TransferHost { req, to }.into())
            .boxed(),
        T::SetRole => (
            req(),
            any::<u32>(),
            prop_oneof![Just(Role::Cohost), Just(Role::Member)],
        )
            .prop_map(|(req, member, role)| SetRole { req, member, role }.into())
            .boxed(),
        T::HostChanged => (
            room_id(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            prop_oneof![
                Just(HostChangeReason::Transferred),
                Just(HostChangeReason::HostLeft)
            ],
        )
            .prop_map(|(room, host, previous, reason)| {
                HostChanged {
                    room,
                    host,
                    previous,
                    reason,
                }
                .into()
            })
            .boxed(),
        T::Proposal => (room_id(), arb_proposal())
            .prop_map(|(room, proposal)| Message::Proposal(ProposalUpdate { room, proposal }))
            .boxed(),
        T::Vote => (req(), any::<u32>(), any::<bool>())
            .prop_map(|(req, proposal, yes)| Vote { req, proposal, yes }.into())
            .boxed(),
        T::Decision => (
            room_id(),
            any::<u32>(),
            proptest::sample::select(vec![
                Outcome::Passed,
                Outcome::Rejected,
                Outcome::Expired,
                Outcome::Superseded,
                Outcome::Withdrawn,
            ]),
            arb_action(),
        )
            .prop_map(|(room, proposal, outcome, action)| {
                Decision {
                    room,
                    proposal,
                    outcome,
                    action,
                }
                .into()
            })
            .boxed(),
        T::Chat => (req(), text(500))
            .prop_map(|(req, text)| Chat { req, text }.into())
            .boxed(),
        T::ChatMessage => (room_id(), any::<u32>(), name(), text(500), server_time())
            .prop_map(|(room, from, name, text, at)| {
                ChatMessage {
                    room,
                    from,
                    name,
                    text,
                    at,
                }
                .into()
            })
            .boxed(),
        T::React => (req(), "[a-z🍿🎉]{1,16}")
            .prop_map(|(req, reaction)| React { req, reaction }.into())
            .boxed(),
        T::Reaction => (room_id(), any::<u32>(), "[a-z🍿🎉]{1,16}", server_time())
            .prop_map(|(room, from, reaction, at)| {
                Reaction {
                    room,
                    from,
                    reaction,
                    at,
                }
                .into()
            })
            .boxed(),
        T::Ping => (any::<u32>(), safe_u64())
            .prop_map(|(seq, t0)| Ping { seq, t0 }.into())
            .boxed(),
        T::Pong => (any::<u32>(), safe_u64(), server_time(), server_time())
            .prop_map(|(seq, t0, t1, t2)| Pong { seq, t0, t1, t2 }.into())
            .boxed(),
        T::Stats => (
            any::<u32>(),
            safe_i64(),
            any::<u32>(),
            safe_i64(),
            proptest::option::of((position(), server_time())),
        )
            .prop_map(|(rtt_us, offset_us, offset_error_us, drift_us, measured)| {
                Stats {
                    rtt_us,
                    offset_us,
                    offset_error_us,
                    drift_us,
                    position: measured.map(|m| m.0),
                    at: measured.map(|m| m.1),
                }
                .into()
            })
            .boxed(),
        T::MemberStats => {
            let stat = (
                any::<u32>(),
                any::<u32>(),
                safe_i64(),
                any::<u32>(),
                safe_i64(),
            )
                .prop_map(
                    |(member, rtt_us, offset_us, offset_error_us, drift_us)| MemberStat {
                        member,
                        rtt_us,
                        offset_us,
                        offset_error_us,
                        drift_us,
                    },
                );
            (room_id(), proptest::collection::vec(stat, 0..8))
                .prop_map(|(room, members)| MemberStats { room, members }.into())
                .boxed()
        }
    }
}
