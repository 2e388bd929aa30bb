//! Required-JWT mode end to end, and the real `lockstep` binary started as a process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use lockstep_proto::ErrorCode;
use lockstep_proto::message::Message;
use lockstep_relay::auth::{Claims, mint_hs256};
use lockstep_relay::clock::ServerClock;
use support::{Client, relay};

const SECRET: &str = "a-test-secret-of-decent-length";

fn token(f: impl FnOnce(&mut Claims)) -> String {
    let mut claims = Claims::new("user-42", ServerClock::unix_seconds() + 600);
    claims.name = Some("Ada from Jellyfin".into());
    claims.perms = vec!["create_rooms".into()];
    f(&mut claims);
    mint_hs256(&claims, SECRET.as_bytes()).unwrap()
}

fn b64(json: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

#[tokio::test]
async fn required_tokens_are_checked_at_hello() {
    let relay = relay(|c| {
        c.auth.required = true;
        c.auth.secret = Some(SECRET.into());
    })
    .await;
    let now = ServerClock::unix_seconds();
    let forged = {
        let mut claims = Claims::new("user-42", now + 600);
        claims.perms = vec!["moderate".into()];
        mint_hs256(&claims, b"somebody-elses-secret").unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"sub":"user-42","aud":"lockstep","exp":{}}}"#,
            now + 600
        ))
    );
    let cases: Vec<(&str, Option<String>, ErrorCode)> = vec![
        ("no token", None, ErrorCode::AuthRequired),
        (
            "expired",
            Some(token(|c| c.exp = now - 3_600)),
            ErrorCode::AuthFailed,
        ),
        (
            "not yet valid",
            Some(token(|c| c.nbf = Some(now + 3_600))),
            ErrorCode::AuthFailed,
        ),
        (
            "wrong audience",
            Some(token(|c| c.aud = Some("someone-else".into()))),
            ErrorCode::AuthFailed,
        ),
        ("forged", Some(forged), ErrorCode::AuthFailed),
        ("alg none", Some(alg_none), ErrorCode::AuthFailed),
    ];
    for (what, token, code) in cases {
        let mut c = Client::websocket(&relay, false).await;
        let err = c.hello_with("x", token, None).await.expect_err(what);
        assert_eq!(err.code, code, "{what}");
        assert!(err.fatal, "{what}");
        c.expect_closed().await;
    }
    // A valid token: welcomed under the token's name, over either transport.
    let mut c = Client::webtransport(&relay).await;
    let w = c
        .hello_with("ignored", Some(token(|_| {})), None)
        .await
        .unwrap();
    assert_eq!(w.name, "Ada from Jellyfin");
    // And may create a room, as its `create_rooms` permission says.
    c.send(lockstep_proto::message::CreateRoom {
        req: Some(1),
        name: "Jellyfin night".into(),
        password: None,
        media: None,
        mode: lockstep_proto::message::PolicyMode::Host,
        options: None,
    })
    .await;
    c.expect(|m| matches!(m, Message::RoomState(_))).await;
    let metrics = relay.metrics().render();
    assert!(
        metrics.contains("lockstep_auth_failures_total 6"),
        "{metrics}"
    );
    relay.shutdown().await;
}

/// The real binary: starts on free ports, serves a client, and exits 0 on SIGTERM after
/// telling the client to come back.
#[tokio::test]
async fn the_lockstep_binary_serves_and_shuts_down_gracefully() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--webtransport",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first, line) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = first.send(line);
        }
        // Keep draining, as a supervisor would.
        for _ in lines {}
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .unwrap()
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (status, body) = support::http_get(addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    let mut c = Client::websocket_at(addr, true).await;
    c.hello("Ada").await;

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let seen = c.expect_closed().await;
    assert!(
        seen.iter().any(|m| matches!(m, Message::GoingAway(_))),
        "{seen:?}"
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn lockstep_token_mints_what_the_relay_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "token",
            "--secret",
            SECRET,
            "--sub",
            "jelly-7",
            "--name",
            "Linus",
            "--perm",
            "create_rooms,moderate",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let config = lockstep_relay::auth::AuthConfig {
        required: true,
        key: Some(lockstep_relay::auth::VerifyKey::Hs256 {
            secret: SECRET.as_bytes().to_vec(),
        }),
        ..lockstep_relay::auth::AuthConfig::default()
    };
    let identity = lockstep_relay::auth::authenticate(
        Some(token.trim()),
        &config,
        ServerClock::unix_seconds(),
    )
    .unwrap();
    assert_eq!(identity.user_id.as_deref(), Some("jelly-7"));
    assert_eq!(identity.name.as_deref(), Some("Linus"));
    assert!(identity.may_create_rooms && identity.moderator);
    // Without a secret it says how to give one.
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["token", "--sub", "x"])
        .env_remove("LOCKSTEP_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--secret"));
}

/// With a configured certificate the relay serves HTTPS and WSS too.
#[tokio::test]
async fn https_and_wss_with_a_configured_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wtransport::tls::rustls;

    let dir = std::env::temp_dir().join(format!("lockstep-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = lockstep_relay::certs::self_signed(
        &["localhost".into(), "127.0.0.1".into()],
        lockstep_relay::certs::DEFAULT_SELF_SIGNED_VALIDITY,
        std::time::SystemTime::now(),
    )
    .unwrap();
    std::fs::write(dir.join("cert.pem"), &bundle.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), bundle.key_pem.as_ref().unwrap()).unwrap();
    let relay = relay(|c| {
        c.https = true;
        c.cert = Some(dir.join("cert.pem"));
        c.key = Some(dir.join("key.pem"));
    })
    .await;
    assert!(relay.page_url().starts_with("https://"));

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut bundle.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(relay.http_addr())
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };
    // HTTPS.
    let mut stream = connect().await;
    let addr = relay.http_addr();
    stream
        .write_all(
            format!("GET /api/config HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(&format!("wss://{addr}/ws")), "{response}");
    // WSS: a whole hello/welcome over TLS.
    let stream = connect().await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}/ws"), stream)
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"hello","version":1,"client":"tls-test/1","features":[]}"#.into(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        reply.to_text().unwrap().contains("\"type\":\"welcome\""),
        "{reply:?}"
    );
    relay.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
