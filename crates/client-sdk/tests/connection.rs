//! The SDK's connection against a real relay: WebTransport by default, WebSocket when forced
//! or when WebTransport fails, and reconnection after the relay goes away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use lockstep_client::connection::{ConnectOptions, Connection, ConnectionEvent, TransportChoice};
use lockstep_proto::Message;
use lockstep_proto::message::{ListRooms, Transport};
use lockstep_relay::config::Config;

async fn relay_at(http: &str, wt: &str) -> lockstep_relay::Relay {
    lockstep_relay::start(Config {
        http: http.parse().unwrap(),
        webtransport: wt.parse().unwrap(),
        ..Config::default()
    })
    .await
    .unwrap()
}

fn options(relay: &lockstep_relay::Relay, transport: TransportChoice) -> ConnectOptions {
    ConnectOptions {
        relay: Some(format!("http://{}", relay.http_addr())),
        transport,
        name: Some("Ada".into()),
        client: "sdk-test/1".into(),
        ..ConnectOptions::default()
    }
}

async fn connected(conn: &mut Connection) -> Transport {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), conn.next())
            .await
            .expect("connects in time")
            .expect("connection alive");
        if let ConnectionEvent::Connected { transport, .. } = event {
            return transport;
        }
    }
}

/// The connection carries requests and answers.
async fn round_trip(conn: &mut Connection) {
    conn.send(ListRooms { req: Some(5) }).await;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), conn.next())
            .await
            .unwrap()
            .unwrap()
        {
            ConnectionEvent::Message(Message::RoomList(l)) if l.req == Some(5) => return,
            ConnectionEvent::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn webtransport_by_default_and_websocket_when_forced() {
    let relay = relay_at("127.0.0.1:0", "127.0.0.1:0").await;
    let mut auto = Connection::start(options(&relay, TransportChoice::Auto));
    assert_eq!(connected(&mut auto).await, Transport::Webtransport);
    round_trip(&mut auto).await;
    let mut ws = Connection::start(options(&relay, TransportChoice::Websocket));
    assert_eq!(connected(&mut ws).await, Transport::Websocket);
    round_trip(&mut ws).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn falls_back_to_websocket_when_webtransport_fails() {
    let relay = relay_at("127.0.0.1:0", "127.0.0.1:0").await;
    // A WebTransport URL where nothing listens: the fallback must kick in.
    let mut opts = options(&relay, TransportChoice::Auto);
    opts.webtransport_url = Some("https://127.0.0.1:9/lockstep".into());
    let mut conn = Connection::start(opts);
    assert_eq!(connected(&mut conn).await, Transport::Websocket);
    round_trip(&mut conn).await;
    // Forced WebTransport to nowhere never falls back.
    let mut opts = options(&relay, TransportChoice::Webtransport);
    opts.webtransport_url = Some("https://127.0.0.1:9/lockstep".into());
    let mut conn = Connection::start(opts);
    match tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .unwrap()
        .unwrap()
    {
        ConnectionEvent::Disconnected { reason } => {
            assert!(reason.contains("WebTransport"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_the_relay_comes_back() {
    // Fixed free ports, so the relay can come back where it was.
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let relay = relay_at(&http.to_string(), &udp.to_string()).await;
    let mut conn = Connection::start(options(&relay, TransportChoice::Auto));
    assert_eq!(connected(&mut conn).await, Transport::Webtransport);
    relay.shutdown().await;
    // Told to go away, the connection drops and keeps trying.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.next())
            .await
            .unwrap()
            .unwrap()
        {
            ConnectionEvent::Disconnected { .. } => break,
            ConnectionEvent::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The old endpoint lets go of its UDP port once its connections have closed.
    let mut tries = 0;
    let relay = loop {
        let config = Config {
            http,
            webtransport: udp,
            ..Config::default()
        };
        match lockstep_relay::start(config).await {
            Ok(r) => break r,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("relay did not come back: {e}"),
        }
    };
    // The new relay publishes a new certificate: the client fetches /api/config again.
    connected(&mut conn).await;
    round_trip(&mut conn).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_is_a_refusal_not_a_retry_loop() {
    let relay = lockstep_relay::start(Config {
        http: "127.0.0.1:0".parse().unwrap(),
        webtransport: "127.0.0.1:0".parse().unwrap(),
        auth: lockstep_relay::config::AuthSettings {
            required: true,
            secret: Some("s3cret".into()),
            ..Default::default()
        },
        ..Config::default()
    })
    .await
    .unwrap();
    let mut opts = options(&relay, TransportChoice::Auto);
    opts.token = Some("not.a.token".into());
    let mut conn = Connection::start(opts);
    match tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .unwrap()
        .unwrap()
    {
        ConnectionEvent::Refused { reason } => {
            assert!(reason.starts_with("auth_failed"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    relay.shutdown().await;
}

/// Two relays on one Redis: the SDK learns of the second from the first's `/api/config`,
/// and when the first goes away it resumes on the second, which has taken the room over.
#[tokio::test]
async fn moves_to_another_relay_of_the_room_when_its_relay_goes() {
    use lockstep_proto::message::{CreateRoom, Play, PolicyMode, Ready};
    let redis = lockstep_relay::testing::RedisServer::start();
    let with_redis = || Config {
        http: "127.0.0.1:0".parse().unwrap(),
        webtransport: "127.0.0.1:0".parse().unwrap(),
        redis: Some(redis.url()),
        ..Config::default()
    };
    let first = lockstep_relay::start(with_redis()).await.unwrap();
    let second = lockstep_relay::start(with_redis()).await.unwrap();
    // The first lists the second before the client connects.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let config = http_get_json(first.http_addr(), "/api/config").await;
        if config["relays"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the relays never met");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut conn = Connection::start(options(&first, TransportChoice::Websocket));
    let you = loop {
        if let ConnectionEvent::Connected { welcome, .. } = next_event(&mut conn, 10).await {
            break welcome.you;
        }
    };
    conn.send(CreateRoom {
        req: Some(1),
        name: "Moving".into(),
        password: None,
        media: None,
        mode: PolicyMode::Host,
        options: None,
    })
    .await;
    conn.send(Ready {
        req: None,
        ready: true,
        wait_for_me: true,
    })
    .await;
    conn.send(Play { req: Some(2) }).await;
    let (room, playing) = loop {
        match next_event(&mut conn, 5).await {
            ConnectionEvent::Message(Message::StateUpdate(u)) if !u.timeline.paused => {
                break (u.room, u.timeline);
            }
            _ => {}
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    first.shutdown().await;
    // Back on the second relay: the same member, in the same room, still playing.
    let resumed = loop {
        if let ConnectionEvent::Connected { welcome, .. } = next_event(&mut conn, 15).await {
            break welcome;
        }
    };
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.you, you);
    let state = loop {
        if let ConnectionEvent::Message(Message::RoomState(s)) = next_event(&mut conn, 5).await {
            break s;
        }
    };
    assert_eq!(state.room.id, room);
    assert_eq!(state.room.host, Some(you));
    assert!(!state.timeline.paused);
    assert_eq!(state.timeline.seq, playing.seq);
    second.shutdown().await;
}

/// The connection's next event within `secs`.
async fn next_event(conn: &mut Connection, secs: u64) -> ConnectionEvent {
    tokio::time::timeout(Duration::from_secs(secs), conn.next())
        .await
        .expect("an event in time")
        .expect("connection alive")
}

async fn http_get_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(json).unwrap_or_default()
}

/// A relay cut off from Redis cannot place a resuming session (it may be on another relay): it
/// turns the client away, and the SDK goes to the other relays it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoins_through_another_relay_when_its_relay_is_cut_off() {
    use lockstep_proto::message::{CreateRoom, JoinRoom, PolicyMode};
    let redis = lockstep_relay::testing::RedisServer::start();
    let line = lockstep_relay::testing::CuttableLink::start(redis.addr()).await;
    let config = |url: String| Config {
        http: "127.0.0.1:0".parse().unwrap(),
        webtransport: "127.0.0.1:0".parse().unwrap(),
        redis: Some(url),
        ..Config::default()
    };
    let home = lockstep_relay::start(config(redis.url())).await.unwrap();
    let cut_off = lockstep_relay::start(config(line.redis_url()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a = http_get_json(home.http_addr(), "/api/config").await;
        let b = http_get_json(cut_off.http_addr(), "/api/config").await;
        let listed = |c: &serde_json::Value| c["relays"].as_array().is_some_and(|r| !r.is_empty());
        if listed(&a) && listed(&b) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the relays never met");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The room is on `home`; this client joins it through `cut_off`.
    let mut host = Connection::start(options(&home, TransportChoice::Websocket));
    while !matches!(
        next_event(&mut host, 10).await,
        ConnectionEvent::Connected { .. }
    ) {}
    host.send(CreateRoom {
        req: Some(1),
        name: "Far".into(),
        password: None,
        media: None,
        mode: PolicyMode::Host,
        options: None,
    })
    .await;
    let room = loop {
        if let ConnectionEvent::Message(Message::RoomState(s)) = next_event(&mut host, 5).await {
            break s.room.id;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = Connection::start(options(&cut_off, TransportChoice::Websocket));
    let you = loop {
        if let ConnectionEvent::Connected { welcome, .. } = next_event(&mut conn, 10).await {
            break welcome.you;
        }
    };
    conn.send(JoinRoom {
        req: Some(1),
        room: room.as_str().into(),
        password: None,
    })
    .await;
    loop {
        if let ConnectionEvent::Message(Message::RoomState(s)) = next_event(&mut conn, 5).await {
            assert_eq!(s.room.id, room);
            break;
        }
    }

    line.cut();
    // Told to come back, turned away by its own relay, back in the room through the other one.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never back through the other relay"
        );
        if let ConnectionEvent::Connected { welcome, .. } = next_event(&mut conn, 20).await {
            break welcome;
        }
    };
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.you, you);
    let state = loop {
        if let ConnectionEvent::Message(Message::RoomState(s)) = next_event(&mut conn, 5).await {
            break s;
        }
    };
    assert_eq!(state.room.id, room);
    assert!(state.members.iter().any(|m| m.id == you));
    drop(line);
    cut_off.shutdown().await;
    home.shutdown().await;
}
