//! A room outlives its relay: two relay processes on a real `redis-server`, the room's home is
//! killed with SIGKILL, and its members resume on the survivor with their resume tokens:
//! same member ids, same roles, the timeline where it was, and commands work again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lockstep_proto::Message;
use lockstep_proto::message::{JoinRoom, Pause, Play, Ready, Role, SetRole};
use lockstep_relay::testing::RedisServer;
use support::Client;
use support::process::RelayProcess;

async fn health(addr: SocketAddr) -> serde_json::Value {
    let (_, body) = support::http_get(addr, "/health").await;
    serde_json::from_str(&body).unwrap_or_default()
}

fn room_state(m: &Message) -> Option<&lockstep_proto::message::RoomState> {
    match m {
        Message::RoomState(s) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn a_room_survives_the_sigkill_of_its_relay() {
    let redis = RedisServer::start();
    let mut home = RelayProcess::start(&redis.url());
    let survivor = RelayProcess::start(&redis.url());
    // The survivor knows the home and its clock before the home dies.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(survivor.http).await;
        if h["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["offset_us"].is_number()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the relays never met: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // On the home: Ada hosts, Grace is a co-host, the film plays.
    let mut ada = Client::websocket_at(home.http, false).await;
    let ada_welcome = ada.hello("Ada").await;
    let room = ada.create_room("Survivors").await.room;
    let mut grace = Client::websocket_at(home.http, false).await;
    let grace_welcome = grace.hello("Grace").await;
    grace
        .send(JoinRoom {
            req: Some(1),
            room: room.id.as_str().into(),
            password: None,
        })
        .await;
    grace.expect(|m| room_state(m).is_some()).await;
    for c in [&ada, &grace] {
        c.send(Ready {
            req: None,
            ready: true,
            wait_for_me: true,
        })
        .await;
    }
    ada.send(SetRole {
        req: None,
        member: grace_welcome.you,
        role: Role::Cohost,
    })
    .await;
    ada.send(Play { req: Some(2) }).await;
    let Message::StateUpdate(playing) = grace
        .expect(|m| matches!(m, Message::StateUpdate(u) if !u.timeline.paused))
        .await
    else {
        unreachable!()
    };
    // Bob watches through the survivor: his messages reach the room through Redis.
    let mut bob = Client::websocket_at(survivor.http, false).await;
    let bob_welcome = bob.hello("Bob").await;
    bob.send(JoinRoom {
        req: Some(1),
        room: room.id.as_str().into(),
        password: None,
    })
    .await;
    let s = bob.expect(|m| room_state(m).is_some()).await;
    assert!(!room_state(&s).unwrap().timeline.paused);
    // Stored by now (each change is written within a Redis round trip); give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    home.kill();
    let killed = Instant::now();
    drop((ada, grace));

    // Bob's relay takes the room over as soon as the dead relay's listing lapses, and keeps
    // his connection: no reconnect, the room afresh on the same connection, still playing.
    let s = bob.expect(|m| room_state(m).is_some()).await;
    eprintln!(
        "Bob's relay took the room {:?} after the SIGKILL",
        killed.elapsed()
    );
    let s = room_state(&s).unwrap();
    assert_eq!(s.you, bob_welcome.you);
    assert!(!s.timeline.paused, "still playing");
    assert_eq!(s.timeline.seq, playing.timeline.seq);
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "within 2 s or so"
    );

    // Ada comes back through the survivor with her token. Until the dead relay's listing
    // lapses (1.5 s) the survivor will not take its rooms: she gets a fresh session and tries
    // again, as a client with backoff would.
    let (ada, state) = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "never taken over"
        );
        let mut c = Client::websocket_at(survivor.http, false).await;
        let w = c
            .hello_with("Ada", None, Some(ada_welcome.resume_token.clone()))
            .await
            .expect("welcome");
        if w.resumed {
            assert_eq!(w.you, ada_welcome.you, "the same member");
            let s = c.expect(|m| room_state(m).is_some()).await;
            break (c, room_state(&s).unwrap().clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "room taken over and Ada resumed {:?} after the SIGKILL",
        killed.elapsed()
    );
    assert_eq!(state.room.id, room.id);
    assert_eq!(state.room.host, Some(ada_welcome.you), "still the host");
    assert!(!state.timeline.paused, "still playing");
    assert_eq!(
        state.timeline.seq, playing.timeline.seq,
        "the same timeline"
    );
    assert_eq!(state.timeline.position, playing.timeline.position);
    // Both relays read this host's clock: the shift is their anchoring difference, tiny.
    let shift = state
        .timeline
        .at
        .as_micros()
        .abs_diff(playing.timeline.at.as_micros());
    assert!(shift < 20_000, "timeline moved by {shift} µs");

    // Grace, too: still a co-host.
    let mut grace = Client::websocket_at(survivor.http, false).await;
    let w = grace
        .hello_with("Grace", None, Some(grace_welcome.resume_token.clone()))
        .await
        .expect("welcome");
    assert!(w.resumed && w.you == grace_welcome.you);
    let s = grace.expect(|m| room_state(m).is_some()).await;
    let me = room_state(&s)
        .unwrap()
        .members
        .iter()
        .find(|m| m.id == grace_welcome.you)
        .cloned()
        .unwrap();
    assert_eq!(me.role, Role::Cohost);

    // The room works on its new relay: Ada pauses, Grace and Bob (never reconnected) follow.
    ada.send(Pause { req: Some(3) }).await;
    for c in [&mut grace, &mut bob] {
        c.expect(|m| matches!(m, Message::StateUpdate(u) if u.timeline.paused && u.timeline.seq > playing.timeline.seq))
            .await;
    }
}
