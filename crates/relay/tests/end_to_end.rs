//! The relay end to end, with real clients over loopback: a `wtransport` client and
//! `tokio-tungstenite` clients (MessagePack and JSON) in the same rooms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use lockstep_proto::message::*;
use lockstep_proto::{ErrorCode, Message, ServerTime};
use support::{Client, Received, relay};

fn create(name: &str, mode: PolicyMode) -> CreateRoom {
    CreateRoom {
        req: Some(1),
        name: name.into(),
        password: None,
        media: None,
        mode,
        options: None,
    }
}

fn is_error(code: ErrorCode) -> impl Fn(&Message) -> bool {
    move |m| matches!(m, Message::Error(e) if e.code == code)
}

async fn room_of(client: &mut Client) -> RoomState {
    match client.expect(|m| matches!(m, Message::RoomState(_))).await {
        Message::RoomState(s) => s,
        _ => unreachable!(),
    }
}

async fn ready(client: &Client) {
    client
        .send(Ready {
            req: None,
            ready: true,
            wait_for_me: true,
        })
        .await;
}

async fn timeline(
    client: &mut Client,
    reason: TimelineReason,
) -> (StateUpdate, bool, std::time::Instant) {
    let (m, datagram) = client
        .expect_full(|m| matches!(m, Message::StateUpdate(u) if u.reason == reason))
        .await;
    let Message::StateUpdate(u) = m else {
        unreachable!()
    };
    (u, datagram, std::time::Instant::now())
}

/// Server time now, as a client estimates it from a ping (loopback: error well under 1 ms).
async fn server_now(client: &mut Client, seq: u32) -> (ServerTime, std::time::Instant) {
    let (rtt, t2, _) = client.ping(seq).await;
    (
        t2.add_micros(i64::try_from(rtt.as_micros() / 2).unwrap()),
        std::time::Instant::now(),
    )
}

/// A WebTransport host and a WebSocket member in one room, both ready.
async fn two_transports() -> (lockstep_relay::Relay, Client, Client, RoomState) {
    let relay = relay(|_| {}).await;
    let mut host = Client::webtransport(&relay).await;
    host.hello("Ada").await;
    let mut guest = Client::websocket(&relay, false).await;
    guest.hello("Grace").await;
    host.send(create("Movie night", PolicyMode::Host)).await;
    let state = room_of(&mut host).await;
    guest
        .send(JoinRoom {
            req: Some(2),
            room: state.room.id.as_str().into(),
            password: None,
        })
        .await;
    let joined = room_of(&mut guest).await;
    assert_eq!(joined.members.len(), 2);
    ready(&host).await;
    ready(&guest).await;
    (relay, host, guest, state)
}

#[tokio::test]
async fn both_transports_share_a_room_and_commands_arrive_before_they_take_effect() {
    let (relay, mut host, mut guest, _) = two_transports().await;
    // Server time on the host's side, for checking effect times on arrival.
    let (host_server, host_local) = server_now(&mut host, 1).await;
    let (guest_server, guest_local) = server_now(&mut guest, 1).await;
    let estimate = |base: ServerTime, local: std::time::Instant, at: std::time::Instant| {
        base.add_micros(i64::try_from(at.duration_since(local).as_micros()).unwrap())
    };

    let commands: Vec<(Message, TimelineReason)> = vec![
        (Play { req: Some(10) }.into(), TimelineReason::Play),
        (
            Seek {
                req: Some(11),
                position: 120.5,
            }
            .into(),
            TimelineReason::Seek,
        ),
        (
            SetRate {
                req: Some(12),
                rate: 1.25,
            }
            .into(),
            TimelineReason::Rate,
        ),
        (Pause { req: Some(13) }.into(), TimelineReason::Pause),
    ];
    for (i, (command, reason)) in commands.into_iter().enumerate() {
        // Alternate the sender: the host, then (after passing the remote) the guest.
        host.send(command).await;
        host.expect(|m| matches!(m, Message::Ack(_))).await;
        let (h, h_datagram, h_at) = timeline(&mut host, reason).await;
        let (g, _, g_at) = timeline(&mut guest, reason).await;
        assert_eq!(h.timeline, g.timeline, "command {i}: both see one timeline");
        assert!(h_datagram, "WebTransport receives timelines as datagrams");
        assert!(
            estimate(host_server, host_local, h_at) < h.timeline.at,
            "command {i} reached the host late"
        );
        assert!(
            estimate(guest_server, guest_local, g_at) < g.timeline.at,
            "command {i} reached the guest late"
        );
    }
    // The final timeline: paused at 120.5 s plus what played at 1.25x before the pause.
    let state = {
        guest.send(LeaveRoom { req: None }).await;
        guest.expect(|m| matches!(m, Message::MemberLeft(_))).await;
        host.expect(|m| matches!(m, Message::MemberLeft(_))).await;
        relay.metrics()
    };
    let text = state.render();
    assert!(text.contains("lockstep_seeks_total 1"), "{text}");
    assert!(text.contains("lockstep_rate_changes_total 1"));
    relay.shutdown().await;
}

#[tokio::test]
async fn clock_pings_are_answered_over_datagrams() {
    let relay = relay(|_| {}).await;
    let mut wt = Client::webtransport(&relay).await;
    wt.hello("Ada").await;
    let mut best = Duration::MAX;
    for seq in 0..20 {
        let (rtt, _, datagram) = wt.ping(seq).await;
        assert!(datagram, "pong {seq} came on the stream");
        best = best.min(rtt);
    }
    assert!(
        best < Duration::from_millis(20),
        "loopback round trip {best:?}"
    );
    // The same over WebSocket, in JSON.
    let mut ws = Client::websocket(&relay, true).await;
    ws.hello("Grace").await;
    ws.ping(1).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn democratic_mode_votes_and_the_host_switches_live() {
    let (relay, mut host, mut guest, _) = two_transports().await;
    let mut third = Client::websocket(&relay, true).await;
    third.hello("Linus").await;
    let room = host.expect(|m| matches!(m, Message::Participants(_))).await;
    let Message::Participants(p) = room else {
        unreachable!()
    };
    third
        .send(JoinRoom {
            req: Some(3),
            room: p.room.as_str().into(),
            password: None,
        })
        .await;
    room_of(&mut third).await;

    // Host mode: the guest may not seek.
    guest
        .send(Seek {
            req: Some(5),
            position: 10.0,
        })
        .await;
    guest.expect(is_error(ErrorCode::Forbidden)).await;

    // The host switches to democratic at once; everyone hears it.
    host.send(SetMode {
        req: Some(6),
        mode: PolicyMode::Democratic,
    })
    .await;
    for c in [&mut host, &mut guest, &mut third] {
        c.expect(|m| matches!(m, Message::ModeChanged(mc) if mc.mode == PolicyMode::Democratic))
            .await;
    }
    // Now the guest proposes, the third member votes, it passes everywhere.
    guest
        .send(Seek {
            req: Some(7),
            position: 300.0,
        })
        .await;
    let ack = guest
        .expect(|m| matches!(m, Message::Ack(a) if a.req == 7))
        .await;
    let Message::Ack(Ack {
        proposal: Some(id), ..
    }) = ack
    else {
        panic!("no proposal id: {ack:?}")
    };
    third
        .expect(|m| matches!(m, Message::Proposal(p) if p.proposal.id == id))
        .await;
    third
        .send(Vote {
            req: Some(8),
            proposal: id,
            yes: true,
        })
        .await;
    for c in [&mut host, &mut guest, &mut third] {
        c.expect_each(&[
            &|m| matches!(m, Message::Decision(d) if d.proposal == id && d.outcome == Outcome::Passed),
            &|m| matches!(m, Message::StateUpdate(u) if u.timeline.position == 300.0),
        ])
        .await;
    }
    // A vote on a closed proposal: an error, nothing else.
    host.send(Vote {
        req: Some(9),
        proposal: id,
        yes: true,
    })
    .await;
    host.expect(is_error(ErrorCode::ProposalClosed)).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn the_host_leaving_hands_control_on() {
    let (relay, host, mut guest, state) = two_transports().await;
    host.send(LeaveRoom { req: None }).await;
    let changed = guest.expect(|m| matches!(m, Message::HostChanged(_))).await;
    let Message::HostChanged(h) = changed else {
        unreachable!()
    };
    assert_eq!(h.previous, Some(state.you));
    assert_eq!(h.host, guest.welcome.as_ref().map(|w| w.you));
    assert_eq!(h.reason, HostChangeReason::HostLeft);
    // The new host controls.
    guest.send(Play { req: Some(1) }).await;
    guest.expect(|m| matches!(m, Message::Ack(_))).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_disconnected_host_is_replaced_after_the_grace_period() {
    let relay = relay(|_| {}).await;
    let mut host = Client::webtransport(&relay).await;
    let hw = host.hello("Ada").await;
    let mut m = create("Film", PolicyMode::Host);
    m.options = Some(RoomOptions {
        host_grace_ms: 700,
        ..RoomOptions::default()
    });
    host.send(m).await;
    let state = room_of(&mut host).await;
    let mut guest = Client::websocket(&relay, false).await;
    let gw = guest.hello("Grace").await;
    guest
        .send(JoinRoom {
            req: Some(2),
            room: state.room.id.as_str().into(),
            password: None,
        })
        .await;
    room_of(&mut guest).await;
    let dropped = std::time::Instant::now();
    host.close().await;
    let changed = guest.expect(|m| matches!(m, Message::HostChanged(_))).await;
    let waited = dropped.elapsed();
    let Message::HostChanged(h) = changed else {
        unreachable!()
    };
    assert_eq!((h.previous, h.host), (Some(hw.you), Some(gw.you)));
    assert!(
        waited >= Duration::from_millis(600),
        "replaced after {waited:?}, before the grace"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn resume_within_the_window_and_after_it() {
    let relay = relay(|c| c.limits.resume_window_secs = 1).await;
    let mut a = Client::websocket(&relay, false).await;
    let w = a.hello("Ada").await;
    a.send(create("Film", PolicyMode::Host)).await;
    let room = room_of(&mut a).await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Back inside the window: same member, same room, still the host.
    let mut b = Client::webtransport(&relay).await;
    let again = b
        .hello_with("Ada", None, Some(w.resume_token.clone()))
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!(again.you, w.you);
    let state = room_of(&mut b).await;
    assert_eq!(state.room.id, room.room.id);
    assert_eq!(state.room.host, Some(w.you));
    drop(b);
    // After the window: a new member.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let mut c = Client::websocket(&relay, false).await;
    let fresh = c
        .hello_with("Ada", None, Some(again.resume_token))
        .await
        .unwrap();
    assert!(!fresh.resumed);
    assert_ne!(fresh.you, w.you);
    relay.shutdown().await;
}

#[tokio::test]
async fn room_passwords() {
    let relay = relay(|_| {}).await;
    let mut a = Client::websocket(&relay, false).await;
    a.hello("Ada").await;
    let mut m = create("Secret", PolicyMode::Host);
    m.password = Some("popcorn".into());
    a.send(m).await;
    let state = room_of(&mut a).await;
    assert!(state.room.has_password);
    let mut b = Client::websocket(&relay, true).await;
    b.hello("Grace").await;
    let join = |password: Option<&str>| JoinRoom {
        req: Some(4),
        room: state.room.id.as_str().into(),
        password: password.map(Into::into),
    };
    b.send(join(None)).await;
    b.expect(is_error(ErrorCode::WrongPassword)).await;
    b.send(join(Some("butter"))).await;
    b.expect(is_error(ErrorCode::WrongPassword)).await;
    b.send(join(Some("popcorn"))).await;
    room_of(&mut b).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_and_others_carry_on() {
    let (relay, mut host, mut guest, _) = two_transports().await;
    let mut ws = Client::websocket(&relay, true).await;
    ws.hello("Mallory").await;
    let nan_seek = {
        // {"type":"seek","position":NaN} in MessagePack.
        let mut b = vec![0x82, 0xa4];
        b.extend_from_slice(b"type");
        b.push(0xa4);
        b.extend_from_slice(b"seek");
        b.push(0xa8);
        b.extend_from_slice(b"position");
        b.push(0xcb);
        b.extend_from_slice(&f64::NAN.to_be_bytes());
        b
    };
    let cases: Vec<(&str, ErrorCode)> = vec![
        ("{not json", ErrorCode::Malformed),
        (r#"{"type":"teleport","req":3}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"seek","req":4,"position":-5}"#,
            ErrorCode::InvalidField,
        ),
        (r#"{"type":"seek","req":5}"#, ErrorCode::InvalidField),
        (r#"{"type":"play","req":6}"#, ErrorCode::NotInRoom),
        (
            r#"{"type":"vote","req":7,"proposal":99,"yes":true}"#,
            ErrorCode::NotInRoom,
        ),
        (r#"{"type":"welcome"}"#, ErrorCode::UnknownType),
    ];
    // Bigger than the relay's 1 KiB WebSocket read buffer: read whole, unknown field ignored.
    let long = format!(
        r#"{{"type":"play","req":8,"note":"{}"}}"#,
        "x".repeat(5_000)
    );
    let cases = cases
        .into_iter()
        .chain([(long.as_str(), ErrorCode::NotInRoom)]);
    for (text, code) in cases {
        ws.send_text(text).await;
        let e = ws.expect(|m| matches!(m, Message::Error(_))).await;
        let Message::Error(e) = e else { unreachable!() };
        assert_eq!(e.code, code, "{text}");
        assert!(!e.fatal, "{text}");
    }
    // MessagePack NaN over the WebTransport control stream; then an oversized frame.
    host.send_raw(nan_seek).await;
    host.expect(is_error(ErrorCode::InvalidField)).await;
    host.send_raw(vec![0x80; 20_000]).await;
    host.expect(is_error(ErrorCode::TooLarge)).await;
    // Both connections still work, and the other member saw none of it.
    ws.send(ListRooms { req: Some(9) }).await;
    ws.expect(|m| matches!(m, Message::RoomList(_))).await;
    host.send(Play { req: Some(10) }).await;
    host.expect(|m| matches!(m, Message::Ack(a) if a.req == 10))
        .await;
    guest
        .expect(|m| matches!(m, Message::StateUpdate(u) if u.reason == TimelineReason::Play))
        .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn the_first_message_must_be_hello_and_versions_must_match() {
    let relay = relay(|_| {}).await;
    let mut c = Client::websocket(&relay, false).await;
    c.send(Play { req: Some(1) }).await;
    c.expect(|m| matches!(m, Message::Error(e) if e.code == ErrorCode::HelloRequired && e.fatal))
        .await;
    c.expect_closed().await;
    let mut c = Client::webtransport(&relay).await;
    c.send(Hello {
        version: 99,
        client: "future/9".into(),
        features: vec![],
        token: None,
        name: None,
        resume: None,
    })
    .await;
    c.expect(
        |m| matches!(m, Message::Error(e) if e.code == ErrorCode::UnsupportedVersion && e.fatal),
    )
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn limits_are_enforced_with_errors_not_crashes() {
    let relay = relay(|c| {
        c.limits.rooms_per_user = 1;
        c.limits.connections_per_ip = 3;
        c.limits.control_per_sec = 5.0;
        c.limits.control_burst = 10.0;
    })
    .await;
    let mut a = Client::websocket(&relay, false).await;
    a.hello("Ada").await;
    a.send(create("One", PolicyMode::Host)).await;
    room_of(&mut a).await;
    a.send(LeaveRoom { req: Some(2) }).await;
    a.expect(|m| matches!(m, Message::Ack(_))).await;
    a.send(create("Two", PolicyMode::Host)).await;
    a.expect(is_error(ErrorCode::TooManyRooms)).await;
    // Control messages past the bucket: rate_limited, and the connection lives.
    for i in 0..30 {
        a.send(ListRooms { req: Some(100 + i) }).await;
    }
    a.expect(is_error(ErrorCode::RateLimited)).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    while a
        .next()
        .await
        .is_some_and(|r| !matches!(r, Received::Closed(_)))
    {
        if a.inbox_is_quiet() {
            break;
        }
    }
    a.send(ListRooms { req: Some(7) }).await;
    a.expect(|m| matches!(m, Message::RoomList(l) if l.req == Some(7)))
        .await;
    // Connections per address: the fourth is refused.
    let _b = Client::websocket(&relay, false).await;
    let _c = Client::websocket(&relay, false).await;
    let url = format!("ws://{}/ws", relay.http_addr());
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "a fourth connection was admitted"
    );
    let text = relay.metrics().render();
    assert!(text.contains("lockstep_rate_limited_total{class=\"control\"}"));
    relay.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_others_carry_on() {
    let relay = relay(|c| {
        c.limits.chat_per_sec = 100_000.0;
        c.limits.chat_burst = 100_000.0;
        c.limits.control_per_sec = 100_000.0;
        c.limits.control_burst = 100_000.0;
    })
    .await;
    let mut host = Client::websocket(&relay, false).await;
    host.hello("Ada").await;
    host.send(create("Chatty", PolicyMode::Host)).await;
    let state = room_of(&mut host).await;
    // A raw WebSocket that joins and then never reads again.
    let url = format!("ws://{}/ws", relay.http_addr());
    let (mut slow, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    {
        use futures_util::SinkExt;
        let hello = lockstep_proto::encode(
            &Hello {
                version: 1,
                client: "slow/1".into(),
                features: vec![],
                token: None,
                name: Some("Slow".into()),
                resume: None,
            }
            .into(),
            lockstep_proto::Encoding::MessagePack,
        )
        .unwrap();
        let join = lockstep_proto::encode(
            &JoinRoom {
                req: None,
                room: state.room.id.as_str().into(),
                password: None,
            }
            .into(),
            lockstep_proto::Encoding::MessagePack,
        )
        .unwrap();
        slow.send(tokio_tungstenite::tungstenite::Message::Binary(
            hello.into(),
        ))
        .await
        .unwrap();
        slow.send(tokio_tungstenite::tungstenite::Message::Binary(join.into()))
            .await
            .unwrap();
    }
    host.expect(|m| matches!(m, Message::Participants(_))).await;
    let text = "x".repeat(490);
    // Enough to fill the socket buffers and the bounded queue many times over.
    for i in 0..40_000u32 {
        host.send(Chat {
            req: None,
            text: format!("{i} {text}"),
        })
        .await;
        if i % 1_000 == 999 {
            host.drain_quietly();
            if relay
                .metrics()
                .render()
                .contains("lockstep_slow_consumer_disconnects_total 1")
            {
                break;
            }
        }
    }
    let metrics = relay.metrics().render();
    assert!(
        metrics.contains("lockstep_slow_consumer_disconnects_total 1"),
        "the slow client was never cut off"
    );
    // The host still gets its own room's messages promptly.
    host.send(Play { req: Some(77) }).await;
    host.expect(|m| matches!(m, Message::Ack(a) if a.req == 77))
        .await;
    drop(slow);
    relay.shutdown().await;
}

#[tokio::test]
async fn metrics_expose_the_named_series() {
    let (relay, host, _guest, _) = two_transports().await;
    host.send(Chat {
        req: None,
        text: "hi".into(),
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = support::http_get(relay.http_addr(), "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "lockstep_connections{transport=\"webtransport\"} 1",
        "lockstep_connections{transport=\"websocket\"} 1",
        "lockstep_rooms 1",
        "lockstep_members 2",
        "lockstep_messages_in_total{type=\"chat\"} 1",
        "lockstep_messages_out_total{type=\"chat_message\"} 2",
        "lockstep_dropped_total",
        "lockstep_coalesced_total",
        "lockstep_rtt_seconds_bucket",
        "lockstep_clock_offset_error_seconds_bucket",
        "lockstep_drift_seconds_bucket",
        "lockstep_seeks_total",
        "lockstep_rate_changes_total",
        "lockstep_proposals_total",
        "lockstep_votes_total",
        "lockstep_auth_failures_total",
        "lockstep_rate_limited_total",
    ] {
        assert!(body.contains(series), "missing `{series}`");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn http_endpoints() {
    let relay = relay(|_| {}).await;
    let (status, body) = support::http_get(relay.http_addr(), "/health").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""));
    let (status, body) = support::http_get(relay.http_addr(), "/api/config").await;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    let url = config["webtransport"]["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("https://{}/lockstep", relay.webtransport_addr())
    );
    let hash = &config["webtransport"]["certificate_hashes"][0];
    assert_eq!(hash["algorithm"], "sha-256");
    assert_eq!(
        hash["value"].as_str().unwrap().len(),
        44,
        "base64 of 32 bytes"
    );
    assert_eq!(
        config["websocket"]["url"],
        format!("ws://{}/ws", relay.http_addr())
    );
    // A public room is listed; a private one is not.
    let mut a = Client::websocket(&relay, false).await;
    a.hello("Ada").await;
    let mut m = create("Open house", PolicyMode::Host);
    m.options = Some(RoomOptions {
        public: true,
        ..RoomOptions::default()
    });
    a.send(m).await;
    let state = room_of(&mut a).await;
    let (_, body) = support::http_get(relay.http_addr(), "/api/rooms").await;
    assert!(body.contains("Open house"), "{body}");
    let (status, _) = support::http_get(
        relay.http_addr(),
        &format!("/api/rooms/{}", state.room.id.as_str()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = support::http_get(relay.http_addr(), "/api/rooms/nope").await;
    assert_eq!(status, 404);
    let (status, body) = support::http_get(relay.http_addr(), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("lockstep"));
    // A WebTransport session on the wrong path is refused.
    let hashes = vec![];
    assert!(
        Client::webtransport_at(relay.webtransport_addr(), hashes, "/lockstep")
            .await
            .is_err(),
        "unpinned certificate accepted"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_to_come_back() {
    let relay = relay(|_| {}).await;
    let mut ws = Client::websocket(&relay, false).await;
    ws.hello("Ada").await;
    let mut wt = Client::webtransport(&relay).await;
    wt.hello("Grace").await;
    relay.shutdown().await;
    for c in [&mut ws, &mut wt] {
        let seen = c.expect_closed().await;
        assert!(
            seen.iter()
                .any(|m| matches!(m, Message::GoingAway(g) if g.reconnect_after_ms > 0)),
            "{}: no going_away in {seen:?}",
            c.name
        );
    }
}

#[tokio::test]
async fn certificates_rotate_without_dropping_live_sessions() {
    let relay = relay(|_| {}).await;
    let old = relay.certificate_hashes();
    let mut live = Client::webtransport(&relay).await;
    live.hello("Ada").await;
    live.send(create("Long film", PolicyMode::Host)).await;
    room_of(&mut live).await;

    relay.rotate_certificate().await.unwrap();
    let now = relay.certificate_hashes();
    assert_ne!(now[0], old[0], "a new certificate is served");
    assert!(
        now.contains(&old[0]),
        "the previous hash stays published while valid"
    );

    // The live session carries on over its connection.
    live.send(Play { req: Some(3) }).await;
    live.expect(|m| matches!(m, Message::Ack(a) if a.req == 3))
        .await;
    live.ping(1).await;
    // A new client pinning only the new hash connects; one pinning only the old one cannot.
    let digest = |h: &lockstep_relay::certs::CertHash| {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&h.value)
            .unwrap();
        wtransport::tls::Sha256Digest::new(bytes.try_into().unwrap())
    };
    let mut fresh = Client::webtransport_at(
        relay.webtransport_addr(),
        vec![digest(&now[0])],
        "/lockstep",
    )
    .await
    .unwrap();
    fresh.hello("Grace").await;
    assert!(
        Client::webtransport_at(
            relay.webtransport_addr(),
            vec![digest(&old[0])],
            "/lockstep"
        )
        .await
        .is_err(),
        "the old certificate is no longer served"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn datagram_floods_are_rate_limited_and_the_session_survives() {
    let relay = relay(|c| {
        c.limits.datagrams_per_sec = 10.0;
        c.limits.datagram_burst = 10.0;
    })
    .await;
    let mut c = Client::webtransport(&relay).await;
    c.hello("Ada").await;
    for seq in 0..200 {
        c.send_datagram(lockstep_proto::message::Ping { seq, t0: 1 })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = relay.metrics().render();
    let limited: f64 = metrics
        .lines()
        .find(|l| l.starts_with("lockstep_rate_limited_total{class=\"datagram\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let pongs: f64 = metrics
        .lines()
        .find(|l| l.starts_with("lockstep_messages_out_total{type=\"pong\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    // Datagrams may be lost on the way (QUIC drops bursts), so count what arrived: at most the
    // burst plus the refill was answered, everything else was limited.
    assert!(limited >= 20.0, "only {limited} datagrams were limited");
    assert!(pongs <= 14.0, "{pongs} pongs: the limit did not hold");
    c.drain_quietly();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    c.ping(1_000).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn browser_origins_are_checked() {
    let relay = relay(|c| c.allowed_origins = vec!["http://127.0.0.1:8080".into()]).await;
    let request = |origin: &str| {
        let mut r = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("ws://{}/ws", relay.http_addr()),
        )
        .unwrap();
        r.headers_mut().insert("origin", origin.parse().unwrap());
        r
    };
    assert!(
        tokio_tungstenite::connect_async(request("http://evil.example"))
            .await
            .is_err()
    );
    assert!(
        tokio_tungstenite::connect_async(request("http://127.0.0.1:8080"))
            .await
            .is_ok()
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn rooms_can_be_created_over_http_and_the_first_to_join_hosts() {
    let relay = relay(|c| c.limits.rooms_per_user = 2).await;
    let (status, body) = support::http_post(
        relay.http_addr(),
        "/api/rooms",
        r#"{"name":"Made by Jellyfin","mode":"democratic","options":{"public":true}}"#,
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let invite = created["invite"].as_str().unwrap().to_string();
    let (_, list) = support::http_get(relay.http_addr(), "/api/rooms").await;
    assert!(list.contains("Made by Jellyfin"), "{list}");
    let mut c = Client::websocket(&relay, false).await;
    let w = c.hello("Ada").await;
    c.send(JoinRoom {
        req: Some(1),
        room: invite,
        password: None,
    })
    .await;
    let state = room_of(&mut c).await;
    assert_eq!(state.room.host, Some(w.you), "the first to join hosts it");
    assert_eq!(state.room.mode, PolicyMode::Democratic);
    // Bad bodies and limits answer with a code.
    let (status, body) =
        support::http_post(relay.http_addr(), "/api/rooms", r#"{"nme":"x"}"#, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_field"));
    let (status, _) =
        support::http_post(relay.http_addr(), "/api/rooms", r#"{"name":"   "}"#, None).await;
    assert_eq!(status, 400);
    let (status, _) =
        support::http_post(relay.http_addr(), "/api/rooms", r#"{"name":"Two"}"#, None).await;
    assert_eq!(status, 201);
    let (status, body) =
        support::http_post(relay.http_addr(), "/api/rooms", r#"{"name":"Three"}"#, None).await;
    assert_eq!(status, 429, "{body}");
    relay.shutdown().await;

    // With tokens required, creating needs one.
    let relay = support::relay(|c| {
        c.auth.required = true;
        c.auth.secret = Some("s3cret-s3cret".into());
    })
    .await;
    let (status, body) =
        support::http_post(relay.http_addr(), "/api/rooms", r#"{"name":"x"}"#, None).await;
    assert_eq!(status, 401);
    assert!(body.contains("auth_required"));
    let mut claims = lockstep_relay::auth::Claims::new(
        "u1",
        lockstep_relay::clock::ServerClock::unix_seconds() + 60,
    );
    claims.perms = vec!["create_rooms".into()];
    let token = lockstep_relay::auth::mint_hs256(&claims, b"s3cret-s3cret").unwrap();
    let (status, _) = support::http_post(
        relay.http_addr(),
        "/api/rooms",
        r#"{"name":"x"}"#,
        Some(&token),
    )
    .await;
    assert_eq!(status, 201);
    relay.shutdown().await;
}
