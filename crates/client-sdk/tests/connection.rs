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
