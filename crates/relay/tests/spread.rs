//! One room, members on three relay processes sharing a real `redis-server`: the room lives on
//! one relay (its home), the others carry their members' messages through Redis.
//!
//! Checked: members everywhere get the room and every change; a command stamped in the home's
//! clock reaches every member before its effect time, restamped in the clock of the relay the
//! member talks to, so that the effect happens at the same instant for all (within a bound
//! far below the 5 ms sync goal); commands from members on other relays work; a member
//! resumes on its own relay or on another one with its id and role.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lockstep_proto::Message;
use lockstep_proto::message::{
    Chat, JoinRoom, Pause, Play, Ready, Role, RoomState, SetRole, StateUpdate,
};
use lockstep_relay::testing::RedisServer;
use support::Client;
use support::process::{RelayProcess, wait_for_peers};

/// How a client maps its relay's clock onto its own: from the ping with the shortest round
/// trip, the relay time at the pong's midpoint.
struct ClockMap {
    anchor: Instant,
    relay_us: i64,
    rtt: Duration,
}

impl ClockMap {
    async fn measure(client: &mut Client) -> ClockMap {
        let mut best: Option<ClockMap> = None;
        for seq in 1..=20 {
            let sent = Instant::now();
            let (rtt, t2, _) = client.ping(seq).await;
            // The pong left at t2; it arrived at sent + rtt: t2 is about rtt/2 before that.
            let anchor = sent + rtt / 2;
            if best.as_ref().is_none_or(|b| rtt < b.rtt) {
                best = Some(ClockMap {
                    anchor,
                    relay_us: t2.as_micros() as i64,
                    rtt,
                });
            }
        }
        best.unwrap()
    }

    /// The local instant of relay time `t`.
    fn instant(&self, t: lockstep_proto::ServerTime) -> Instant {
        let d = t.as_micros() as i64 - self.relay_us;
        if d >= 0 {
            self.anchor + Duration::from_micros(d as u64)
        } else {
            self.anchor - Duration::from_micros(d.unsigned_abs())
        }
    }
}

fn room_state(m: &Message) -> Option<&RoomState> {
    match m {
        Message::RoomState(s) => Some(s),
        _ => None,
    }
}

async fn join(
    at: SocketAddr,
    name: &str,
    room: &str,
) -> (Client, lockstep_proto::message::Welcome) {
    let mut c = Client::websocket_at(at, false).await;
    let w = c.hello(name).await;
    c.send(JoinRoom {
        req: Some(1),
        room: room.into(),
        password: None,
    })
    .await;
    let s = c.expect(|m| room_state(m).is_some()).await;
    assert_eq!(
        room_state(&s).unwrap().you,
        w.you,
        "{name} joined as itself"
    );
    (c, w)
}

/// Waits for the state update with `seq`, noting when it arrived.
async fn update(c: &mut Client, seq: u64) -> (StateUpdate, Instant) {
    let m = c
        .expect(|m| matches!(m, Message::StateUpdate(u) if u.timeline.seq == seq))
        .await;
    let arrived = Instant::now();
    let Message::StateUpdate(u) = m else {
        unreachable!()
    };
    (u, arrived)
}

/// One command as every member saw it: each got it before its effect time, and the effect
/// instants agree.
fn check_one_instant(what: &str, seen: &[(&str, &ClockMap, StateUpdate, Instant)]) {
    let effects: Vec<Instant> = seen
        .iter()
        .map(|(_, c, u, _)| c.instant(u.timeline.at))
        .collect();
    for ((who, clock, u, arrived), effect) in seen.iter().zip(&effects) {
        assert!(
            *arrived < *effect,
            "{what}: {who} got it {:?} after its effect time",
            arrived.duration_since(*effect)
        );
        eprintln!(
            "{what}: {who} (clock rtt {:?}) got it {:?} before the effect; timeline.at {}",
            clock.rtt,
            effect.duration_since(*arrived),
            u.timeline.at.as_micros()
        );
    }
    let first = effects.iter().min().unwrap();
    let last = effects.iter().max().unwrap();
    let spread = last.duration_since(*first);
    eprintln!("{what}: effect instants within {spread:?}");
    // Loopback: relay-to-relay offsets are known to ~0.1 ms and each client's to half its
    // round trip; 2 ms leaves room for a loaded CI machine and is still well inside 5 ms.
    assert!(
        spread < Duration::from_millis(2),
        "{what}: effects {spread:?} apart"
    );
}

#[tokio::test]
async fn members_on_three_relays_share_one_room() {
    let redis = RedisServer::start();
    // Three hosts whose clocks disagree by a quarter of a second and more: times must be
    // restamped between relays, or the effects would be that far apart.
    let home = RelayProcess::start(&redis.url());
    let second = RelayProcess::start_skewed(&redis.url(), 250_000);
    let third = RelayProcess::start_skewed(&redis.url(), -130_000);
    for r in [&home, &second, &third] {
        wait_for_peers(r.http, 2).await;
    }

    // Ada creates the room on its home.
    let mut ada = Client::websocket_at(home.http, false).await;
    let ada_welcome = ada.hello("Ada").await;
    let created = ada.create_room("Spread").await;
    let room = created.room.id.clone();
    let invite = created.room.invite.clone().unwrap();
    // Stored (with its home) within a Redis round trip or so.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Bob and Carol join through the other two relays: Bob by the room's id, Carol by its
    // invite code (as an invite link opened on another relay's page).
    let (mut bob, bob_welcome) = join(second.http, "Bob", room.as_str()).await;
    let (mut carol, carol_welcome) = join(third.http, "Carol", &invite).await;
    // Ada, on the home, hears of both (participants are coalesced: one message or two).
    let mut seen = std::collections::BTreeSet::new();
    while !(seen.contains(&bob_welcome.you) && seen.contains(&carol_welcome.you)) {
        if let Message::Participants(p) =
            ada.expect(|m| matches!(m, Message::Participants(_))).await
        {
            seen.extend(p.members.iter().map(|m| m.id));
        }
    }

    // /health counts them on both sides.
    assert_eq!(health(home.http).await["tunnelled_in"], 2);
    assert_eq!(health(second.http).await["tunnelled_out"], 1);
    assert_eq!(health(third.http).await["tunnelled_out"], 1);

    for c in [&ada, &bob, &carol] {
        c.send(Ready {
            req: None,
            ready: true,
            wait_for_me: true,
        })
        .await;
    }
    let clocks = [
        ClockMap::measure(&mut ada).await,
        ClockMap::measure(&mut bob).await,
        ClockMap::measure(&mut carol).await,
    ];

    // Ada (on the home) plays.
    ada.send(Play { req: Some(2) }).await;
    let (a, at_a) = update(&mut ada, 1).await;
    let (b, at_b) = update(&mut bob, 1).await;
    let (c, at_c) = update(&mut carol, 1).await;
    assert!(!a.timeline.paused && !b.timeline.paused && !c.timeline.paused);
    assert_eq!(b.by, Some(ada_welcome.you));
    check_one_instant(
        "play from the home",
        &[
            ("Ada", &clocks[0], a, at_a),
            ("Bob", &clocks[1], b, at_b),
            ("Carol", &clocks[2], c, at_c),
        ],
    );

    // Bob, on another relay, becomes a co-host and pauses: his command reaches the home.
    ada.send(SetRole {
        req: None,
        member: bob_welcome.you,
        role: Role::Cohost,
    })
    .await;
    bob.expect(|m| matches!(m, Message::Participants(p) if p.members.iter().any(|m| m.id == bob_welcome.you && m.role == Role::Cohost)))
        .await;
    bob.send(Pause { req: Some(3) }).await;
    let (a, at_a) = update(&mut ada, 2).await;
    let (b, at_b) = update(&mut bob, 2).await;
    let (c, at_c) = update(&mut carol, 2).await;
    assert!(a.timeline.paused && b.timeline.paused && c.timeline.paused);
    assert_eq!(a.by, Some(bob_welcome.you), "Ada sees who paused");
    assert_eq!(c.by, Some(bob_welcome.you), "Carol sees who paused");
    check_one_instant(
        "pause from another relay",
        &[
            ("Ada", &clocks[0], a, at_a),
            ("Bob", &clocks[1], b, at_b),
            ("Carol", &clocks[2], c, at_c),
        ],
    );

    // Chat from the third relay reaches everyone, once.
    carol
        .send(Chat {
            req: None,
            text: "hello from the third relay".into(),
        })
        .await;
    for c in [&mut ada, &mut bob] {
        c.expect(
            |m| matches!(m, Message::ChatMessage(m) if m.text == "hello from the third relay"),
        )
        .await;
    }

    // Bob drops and resumes on his own relay: same member, still a co-host, paused.
    drop(bob);
    let mut bob = Client::websocket_at(second.http, false).await;
    let w = bob
        .hello_with("Bob", None, Some(bob_welcome.resume_token.clone()))
        .await
        .expect("welcome");
    assert!(w.resumed, "resumed through his relay");
    assert_eq!(w.you, bob_welcome.you);
    let s = bob.expect(|m| room_state(m).is_some()).await;
    let s = room_state(&s).unwrap();
    assert!(s.timeline.paused);
    assert_eq!(
        s.members.iter().find(|m| m.id == w.you).map(|m| m.role),
        Some(Role::Cohost)
    );

    // … and then on the third relay: the session follows him there.
    drop(bob);
    let mut bob = Client::websocket_at(third.http, false).await;
    let w = bob
        .hello_with("Bob", None, Some(bob_welcome.resume_token.clone()))
        .await
        .expect("welcome");
    assert!(
        w.resumed && w.you == bob_welcome.you,
        "resumed on another relay"
    );
    bob.expect(|m| room_state(m).is_some()).await;
    bob.send(Play { req: Some(4) }).await;
    let (a, _) = update(&mut ada, 3).await;
    let (c, _) = update(&mut carol, 3).await;
    assert!(!a.timeline.paused && !c.timeline.paused);
    assert_eq!(c.by, Some(bob_welcome.you));
}

async fn health(addr: SocketAddr) -> serde_json::Value {
    let (_, body) = support::http_get(addr, "/health").await;
    serde_json::from_str(&body).unwrap_or_default()
}

/// The next message matching `pred` within `within` (longer than `expect`'s wait).
async fn within(c: &mut Client, within: Duration, pred: impl Fn(&Message) -> bool) -> Message {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "not within {within:?}");
        if let Some(support::Received::Message { message, .. }) = c.next().await
            && pred(&message)
        {
            return message;
        }
    }
}

/// Resumes `token` on the relay at `at`, retrying while the relay cannot place the session
/// yet (a fresh session instead), as a client with backoff would.
async fn resume(at: SocketAddr, name: &str, token: &str, you: u32) -> (Client, RoomState) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "{name} never resumed");
        let mut c = Client::websocket_at(at, false).await;
        let w = c
            .hello_with(name, None, Some(token.to_string()))
            .await
            .expect("welcome");
        if w.resumed {
            assert_eq!(w.you, you, "{name} is the same member");
            let s = c.expect(|m| room_state(m).is_some()).await;
            return (c, room_state(&s).unwrap().clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cut_off_from_redis_loses_its_room_cleanly_and_its_members_follow_it() {
    let redis = RedisServer::start();
    let line = lockstep_relay::testing::CuttableLink::start(redis.addr()).await;
    let other = RelayProcess::start(&redis.url());
    let cut_off = RelayProcess::start(&line.redis_url());
    wait_for_peers(other.http, 1).await;
    wait_for_peers(cut_off.http, 1).await;

    // Ada hosts a room on the relay about to be cut off; Bob joins it through the other.
    let mut ada = Client::websocket_at(cut_off.http, false).await;
    let ada_welcome = ada.hello("Ada").await;
    let room = ada.create_room("Cut").await.room.id;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut bob, bob_welcome) = join(other.http, "Bob", room.as_str()).await;
    ada.send(SetRole {
        req: None,
        member: bob_welcome.you,
        role: Role::Cohost,
    })
    .await;
    for c in [&ada, &bob] {
        c.send(Ready {
            req: None,
            ready: true,
            wait_for_me: true,
        })
        .await;
    }
    ada.send(Play { req: Some(2) }).await;
    let (playing, _) = update(&mut bob, 1).await;
    // And Dan hosts a second room on the other relay, which Carol joins through the relay
    // about to be cut off.
    let mut dan = Client::websocket_at(other.http, false).await;
    dan.hello("Dan").await;
    let elsewhere = dan.create_room("Elsewhere").await.room.id;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut carol, carol_welcome) = join(cut_off.http, "Carol", elsewhere.as_str()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The line to Redis is cut: the relay keeps serving Ada's room and says why in /health.
    line.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(cut_off.http).await;
        if h["backplane"]["connected"] == false {
            assert_eq!(h["status"], "degraded", "{h}");
            break;
        }
        assert!(Instant::now() < deadline, "never noticed the cut: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Carol's relay can no longer carry her to her room: she is told to come back at once; the
    // cut-off relay will not give her a fresh session in place of the one it cannot find…
    let Message::GoingAway(g) = within(&mut carol, Duration::from_secs(10), |m| {
        matches!(m, Message::GoingAway(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(g.room.as_ref(), Some(&elsewhere));
    drop(carol);
    let mut again = Client::websocket_at(cut_off.http, false).await;
    let refused = again
        .hello_with("Carol", None, Some(carol_welcome.resume_token.clone()))
        .await
        .expect_err("no fresh session in place of hers");
    assert!(refused.fatal, "{refused:?}");
    // … so she rejoins through another relay: her room and session are where they were.
    let (_carol, state) = resume(
        other.http,
        "Carol",
        &carol_welcome.resume_token,
        carol_welcome.you,
    )
    .await;
    assert_eq!(state.room.id, elsewhere);

    // Bob's relay no longer sees the room's relay listed: it takes the room over from Redis and
    // keeps Bob's connection (no going away, no reconnect): host, role and timeline kept.
    let s = within(&mut bob, Duration::from_secs(10), |m| {
        assert!(
            !matches!(m, Message::GoingAway(_)),
            "Bob was sent away: {m:?}"
        );
        room_state(m).is_some()
    })
    .await;
    let state = room_state(&s).unwrap();
    assert_eq!(state.you, bob_welcome.you);
    assert_eq!(state.room.host, Some(ada_welcome.you));
    assert_eq!(state.timeline.seq, playing.timeline.seq);
    assert!(!state.timeline.paused);
    bob.send(Pause { req: Some(3) }).await;

    // The line comes back: the cut-off relay finds its room taken and sends Ada after it.
    line.restore();
    let Message::GoingAway(g) = within(&mut ada, Duration::from_secs(20), |m| {
        matches!(m, Message::GoingAway(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(g.room.as_ref(), Some(&room));
    drop(ada);
    // Ada resumes on her own relay, which carries her to the room's new home.
    let (_ada, state) = resume(
        cut_off.http,
        "Ada",
        &ada_welcome.resume_token,
        ada_welcome.you,
    )
    .await;
    assert_eq!(state.room.id, room);
    assert!(
        state.timeline.paused,
        "Bob's pause, made while she was cut off"
    );
    assert_eq!(state.room.host, Some(ada_welcome.you), "still the host");
}

#[tokio::test]
async fn joining_a_room_whose_relay_died_takes_it_over() {
    let redis = RedisServer::start();
    let mut home = RelayProcess::start(&redis.url());
    let other = RelayProcess::start(&redis.url());
    wait_for_peers(other.http, 1).await;
    let mut ada = Client::websocket_at(home.http, false).await;
    let ada_welcome = ada.hello("Ada").await;
    let room = ada.create_room("Orphan").await.room.id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    home.kill();
    let killed = Instant::now();
    // Bob joins through the other relay at once: it waits for the dead relay's listing to
    // lapse, takes the room over and lets him in — Ada still its host, away for now.
    let (_bob, _) = join(other.http, "Bob", room.as_str()).await;
    eprintln!("joined {:?} after the kill", killed.elapsed());
    let (_ada, state) = resume(
        other.http,
        "Ada",
        &ada_welcome.resume_token,
        ada_welcome.you,
    )
    .await;
    assert_eq!(state.room.host, Some(ada_welcome.you));
    assert_eq!(state.members.len(), 2);
}
