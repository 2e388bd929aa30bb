//! The backplane against a real `redis-server` started by each test on a free loopback port:
//! compare-and-set and leases under Lua, pub/sub between relays, a Redis restart in the middle
//! (reconnect and resubscribe), and a relay that keeps serving while Redis is away and says so
//! in `/health`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use lockstep_proto::Message;
use lockstep_relay::backplane::{Backplane, CasOutcome, Envelope, RedisBackplane};
use lockstep_relay::testing::RedisServer;
use support::Client;
use tokio::sync::mpsc;

/// Polls `check` every 50 ms until it holds; panics after `within`, naming `what`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn backplane(redis: &RedisServer) -> (RedisBackplane, mpsc::Receiver<Envelope>) {
    let (tx, rx) = mpsc::channel(64);
    (RedisBackplane::connect(&redis.url(), tx).unwrap(), rx)
}

/// Twenty writes of the room's version 2 by `who`: how many went through.
async fn writes_won(backplane: &RedisBackplane, who: &str) -> usize {
    let mut won = 0;
    for i in 0..20 {
        let bytes = Bytes::from(format!("{who}{i}"));
        if let CasOutcome::Written(_) = backplane
            .compare_and_set("lockstep:test:room", 2, bytes)
            .await
            .unwrap()
        {
            won += 1;
        }
    }
    won
}

async fn health(relay: &lockstep_relay::Relay) -> serde_json::Value {
    let (status, body) = support::http_get(relay.http_addr(), "/health").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn records_and_leases_follow_the_rules_in_redis() {
    let redis = RedisServer::start();
    let (a, _) = backplane(&redis);
    let (b, _) = backplane(&redis);
    let v = |s: &'static str| Bytes::from_static(s.as_bytes());

    assert_eq!(a.load("lockstep:test:room").await.unwrap(), None);
    assert_eq!(
        a.compare_and_set("lockstep:test:room", 0, v("one"))
            .await
            .unwrap(),
        CasOutcome::Written(1)
    );
    assert_eq!(
        b.compare_and_set("lockstep:test:room", 0, v("two"))
            .await
            .unwrap(),
        CasOutcome::Conflict(1),
        "a writer that read nothing cannot overwrite"
    );
    assert_eq!(
        b.compare_and_set("lockstep:test:room", 1, v("two"))
            .await
            .unwrap(),
        CasOutcome::Written(2)
    );
    let record = a.load("lockstep:test:room").await.unwrap().unwrap();
    assert_eq!((record.version, &record.value[..]), (2, &b"two"[..]));

    // Many writers race from the same version: exactly one wins.
    let (won_a, won_b) = tokio::join!(writes_won(&a, "a"), writes_won(&b, "b"));
    assert_eq!(won_a + won_b, 1, "one write per version");

    // Leases: one holder, renewed by it, free once lapsed or released.
    let ttl = Duration::from_millis(300);
    assert!(
        a.acquire_lease("lockstep:test:home", "relay-a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !b.acquire_lease("lockstep:test:home", "relay-b", ttl)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        a.acquire_lease("lockstep:test:home", "relay-a", ttl)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !b.acquire_lease("lockstep:test:home", "relay-b", ttl)
            .await
            .unwrap(),
        "renewed, so still held 400 ms after it was first taken"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        b.acquire_lease("lockstep:test:home", "relay-b", ttl)
            .await
            .unwrap()
    );
    assert!(
        !a.release_lease("lockstep:test:home", "relay-a")
            .await
            .unwrap()
    );
    assert!(
        b.release_lease("lockstep:test:home", "relay-b")
            .await
            .unwrap()
    );
    assert!(
        a.acquire_lease("lockstep:test:home", "relay-a", ttl)
            .await
            .unwrap()
    );

    // The directory: listed while renewed, by Redis's clock.
    let names = |v: Vec<(String, Bytes)>| v.into_iter().map(|(m, _)| m).collect::<Vec<_>>();
    let dir = "lockstep:test:relays";
    assert_eq!(
        names(a.register(dir, "relay-a", ttl, v("A")).await.unwrap()),
        ["relay-a"]
    );
    let listed = b.register(dir, "relay-b", ttl, v("B")).await.unwrap();
    assert_eq!(
        listed,
        [
            ("relay-a".to_string(), v("A")),
            ("relay-b".to_string(), v("B"))
        ]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.register(dir, "relay-b", ttl, v("B")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        names(b.register(dir, "relay-b", ttl, v("B")).await.unwrap()),
        ["relay-b"],
        "relay-a lapsed"
    );
}

#[tokio::test]
async fn pubsub_reaches_other_relays_and_survives_a_redis_restart() {
    let mut redis = RedisServer::start();
    let (a, mut inbox) = backplane(&redis);
    let (b, _) = backplane(&redis);
    a.subscribe("lockstep:test:room").await.unwrap();
    b.publish("lockstep:test:room", Bytes::from_static(b"one"))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), inbox.recv())
        .await
        .expect("delivered within 2 s")
        .unwrap();
    assert_eq!(
        (got.channel.as_str(), &got.payload[..]),
        ("lockstep:test:room", &b"one"[..])
    );
    eventually("connected", Duration::from_secs(3), || async {
        a.health().connected
    })
    .await;

    redis.stop();
    eventually("Redis noticed gone", Duration::from_secs(3), || async {
        let h = a.health();
        !h.connected && h.error.is_some()
    })
    .await;
    assert!(b.publish("lockstep:test:room", Bytes::new()).await.is_err());

    redis.restart();
    eventually("reconnected", Duration::from_secs(10), || async {
        a.health().connected
    })
    .await;
    // The subscription came back by itself: what is published now arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    'resubscribed: loop {
        assert!(Instant::now() < deadline, "not resubscribed within 10 s");
        let _ = b
            .publish("lockstep:test:room", Bytes::from_static(b"two"))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(m) = inbox.try_recv() {
            if &m.payload[..] == b"two" {
                break 'resubscribed;
            }
        }
    }
}

#[tokio::test]
async fn a_relay_keeps_serving_without_redis_and_says_so() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let relay = support::relay(|c| c.redis = Some(url)).await;
    eventually("healthy with Redis", Duration::from_secs(5), || async {
        let h = health(&relay).await;
        h["status"] == "ok"
            && h["backplane"]["kind"] == "redis"
            && h["backplane"]["connected"] == true
            && h["echo_ms"].as_f64().is_some()
    })
    .await;

    redis.stop();
    eventually("degraded without Redis", Duration::from_secs(3), || async {
        let h = health(&relay).await;
        h["status"] == "degraded" && h["backplane"]["connected"] == false
    })
    .await;
    // Still serving: a client says hello and opens a room.
    let mut client = Client::websocket(&relay, false).await;
    client.hello("Ada").await;
    client.create_room("Without Redis").await;

    redis.restart();
    // Back, and the echo flows again (the relay's subscription came back).
    let since = Instant::now();
    eventually("healthy again", Duration::from_secs(10), || async {
        let h = health(&relay).await;
        h["status"] == "ok"
            && h["echo_age_secs"]
                .as_u64()
                .is_some_and(|age| Duration::from_secs(age) < since.elapsed())
    })
    .await;
}

#[tokio::test]
async fn one_relay_alone_uses_memory_and_a_bad_url_is_refused() {
    let relay = support::relay(|_| {}).await;
    eventually("memory backplane echo", Duration::from_secs(3), || async {
        let h = health(&relay).await;
        h["status"] == "ok" && h["backplane"]["kind"] == "memory" && h["echo_ms"].is_number()
    })
    .await;

    let mut config = lockstep_relay::config::Config {
        http: "127.0.0.1:0".parse().unwrap(),
        webtransport: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    config.redis = Some("http://not-redis.example".into());
    let error = lockstep_relay::start(config).await.unwrap_err().to_string();
    assert!(error.contains("backplane configuration"), "{error}");
}

#[tokio::test]
async fn relays_on_one_redis_list_each_other_and_estimate_their_clocks() {
    let redis = RedisServer::start();
    let (url_a, url_b) = (redis.url(), redis.url());
    let a = support::relay(|c| c.redis = Some(url_a)).await;
    let b = support::relay(|c| c.redis = Some(url_b)).await;
    let id_of = |h: &serde_json::Value| h["relay_id"].as_str().unwrap().to_string();
    let id_b = id_of(&health(&b).await);
    // Each learns of the other and of its clock: both read the same host clock, so the
    // offset is what their start-up anchoring differs by, well inside a few ms, and the
    // estimate's own error bound (half a backplane round trip) is small on loopback.
    eventually("a knows b's clock", Duration::from_secs(8), || async {
        let h = health(&a).await;
        h["peers"].as_array().is_some_and(|peers| {
            peers.iter().any(|p| {
                p["relay_id"] == id_b.as_str()
                    && p["offset_us"].as_i64().is_some_and(|o| o.abs() < 5_000)
                    && p["offset_error_us"]
                        .as_i64()
                        .is_some_and(|e| (0..5_000).contains(&e))
            })
        })
    })
    .await;
    // Clients of a learn where b is.
    let (status, body) = support::http_get(a.http_addr(), "/api/config").await;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    let relays = config["relays"].as_array().unwrap();
    assert_eq!(relays.len(), 1, "{body}");
    assert_eq!(relays[0]["id"], id_b.as_str());
    assert_eq!(
        relays[0]["websocket"]["url"],
        format!("ws://{}/ws", b.http_addr())
    );
    assert_eq!(
        relays[0]["webtransport"]["certificate_hashes"][0]["value"],
        b.certificate_hashes()[0].value.as_str()
    );
    // b goes away: a stops listing it once its listing lapses.
    b.shutdown().await;
    eventually(
        "b dropped from the list",
        Duration::from_secs(6),
        || async {
            let h = health(&a).await;
            h["peers"].as_array().is_some_and(|p| p.is_empty())
        },
    )
    .await;
}

#[tokio::test]
async fn rooms_are_stored_in_redis_as_they_change() {
    let redis = RedisServer::start();
    let (relay, ada, welcome, room) = relay_with_a_room(&redis).await;
    let relay_id = health(&relay).await["relay_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (reader, _) = backplane(&redis);
    let key = lockstep_relay::persist::room_key(&room);
    let stored = || async {
        reader.load(&key).await.unwrap().and_then(|r| {
            lockstep_relay::persist::StoredRoom::decode(&r.value).map(|s| (r.version, s))
        })
    };
    eventually("the new room stored", Duration::from_secs(3), || async {
        stored().await.is_some_and(|(_, s)| {
            s.home == relay_id
                && s.snapshot.members.iter().any(|m| m.id == welcome.you)
                && s.snapshot.timeline.paused
        })
    })
    .await;
    let (version, _) = stored().await.unwrap();
    // A change that matters is stored again, with a newer version.
    ada.send(lockstep_proto::message::Ready {
        req: None,
        ready: true,
        wait_for_me: true,
    })
    .await;
    ada.send(lockstep_proto::message::Play { req: None }).await;
    eventually("playing, stored", Duration::from_secs(3), || async {
        stored()
            .await
            .is_some_and(|(v, s)| v > version && !s.snapshot.timeline.paused)
    })
    .await;
}

/// A relay with Redis and Ada in a fresh room there; her welcome and the room.
async fn relay_with_a_room(
    redis: &RedisServer,
) -> (
    lockstep_relay::Relay,
    Client,
    lockstep_proto::message::Welcome,
    lockstep_proto::message::RoomId,
) {
    let url = redis.url();
    let relay = support::relay(|c| c.redis = Some(url)).await;
    let mut ada = Client::websocket(&relay, false).await;
    let welcome = ada.hello("Ada").await;
    let state = ada.create_room("Kept").await;
    (relay, ada, welcome, state.room.id)
}

#[tokio::test]
async fn rooms_are_stored_again_when_redis_comes_back_without_its_data() {
    let mut redis = RedisServer::start();
    let (_relay, _ada, welcome, room) = relay_with_a_room(&redis).await;
    let key = lockstep_relay::persist::room_key(&room);
    let (reader, _) = backplane(&redis);
    eventually("stored and indexed", Duration::from_secs(3), || async {
        stored_and_indexed(&reader, &key, &welcome.resume_token).await
    })
    .await;
    // Redis restarts empty (this one keeps nothing on disk).
    redis.restart();
    let (reader, _) = backplane(&redis);
    eventually("stored again", Duration::from_secs(10), || async {
        stored_and_indexed(&reader, &key, &welcome.resume_token).await
    })
    .await;
}

/// Whether the room is stored at `key` and `token` finds it in the resume index.
async fn stored_and_indexed(reader: &RedisBackplane, key: &str, token: &str) -> bool {
    let index = lockstep_relay::persist::resume_index();
    reader.load(key).await.ok().flatten().is_some()
        && reader
            .index_get(&index, token)
            .await
            .ok()
            .flatten()
            .is_some()
}

#[tokio::test]
async fn a_relay_whose_room_was_taken_sends_its_members_there() {
    let redis = RedisServer::start();
    let (_relay, mut ada, _, room) = relay_with_a_room(&redis).await;
    let key = lockstep_relay::persist::room_key(&room);
    let (other, _) = backplane(&redis);
    eventually("stored", Duration::from_secs(3), || async {
        other.load(&key).await.ok().flatten().is_some()
    })
    .await;
    // Another relay claims the room (as it would after this one was cut off from Redis).
    let record = other.load(&key).await.unwrap().unwrap();
    let mut stored = lockstep_relay::persist::StoredRoom::decode(&record.value).unwrap();
    stored.home = "another-relay".into();
    assert_eq!(
        other
            .compare_and_set(&key, record.version, Bytes::from(stored.encode()))
            .await
            .unwrap(),
        CasOutcome::Written(record.version + 1)
    );
    // The next change here finds the room taken: Ada is told to go and resume elsewhere.
    ada.send(lockstep_proto::message::Ready {
        req: None,
        ready: true,
        wait_for_me: true,
    })
    .await;
    let gone = ada.expect(|m| matches!(m, Message::GoingAway(_))).await;
    let Message::GoingAway(g) = gone else {
        unreachable!()
    };
    assert_eq!(g.room, Some(room.clone()));
    assert_eq!(g.reconnect_after_ms, 0);
    ada.expect_closed().await;
    // The record is the other relay's still: nothing was removed or overwritten.
    let after = other.load(&key).await.unwrap().unwrap();
    assert_eq!(after.version, record.version + 1);
    let after = lockstep_relay::persist::StoredRoom::decode(&after.value).unwrap();
    assert_eq!(after.home, "another-relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_means_the_change_is_stored() {
    let redis = RedisServer::start();
    let line = lockstep_relay::testing::CuttableLink::start(redis.addr()).await;
    let url = line.redis_url();
    let relay = support::relay(|c| c.redis = Some(url)).await;
    let mut ada = Client::websocket(&relay, false).await;
    ada.hello("Ada").await;
    let state = ada.create_room("Durable").await;
    let key = lockstep_relay::persist::room_key(&state.room.id);
    let (reader, _) = backplane(&redis);
    eventually("stored", Duration::from_secs(3), || async {
        reader.load(&key).await.ok().flatten().is_some()
    })
    .await;
    let stored_paused = || async {
        let record = reader.load(&key).await.unwrap().unwrap();
        let stored = lockstep_relay::persist::StoredRoom::decode(&record.value).unwrap();
        stored.snapshot.timeline.paused
    };
    assert!(stored_paused().await);
    ada.send(lockstep_proto::message::Ready {
        req: None,
        ready: true,
        wait_for_me: true,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Redis is slow to answer: the play is applied and announced at once, but not confirmed…
    line.stall();
    ada.send(lockstep_proto::message::Play { req: Some(2) })
        .await;
    ada.expect(|m| matches!(m, Message::StateUpdate(u) if !u.timeline.paused))
        .await;
    ada.expect_none(
        Duration::from_millis(500),
        |m| matches!(m, Message::Ack(a) if a.req == 2),
    )
    .await;
    assert!(
        stored_paused().await,
        "not stored yet: Redis holds the write"
    );
    // … until it is stored: then the ack comes, and Redis has the change.
    line.unstall();
    ada.expect(|m| matches!(m, Message::Ack(a) if a.req == 2))
        .await;
    assert!(!stored_paused().await, "acknowledged, so stored");
}
