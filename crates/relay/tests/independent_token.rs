//! The token contract of `docs/AUTH.md`, pinned with an independent issuer: Python's PyJWT
//! (`tests/independent/mint_token.py`) mints tokens with the Jellyfin plugin's claim set (`sub`
//! as 32 hex digits, `name`, `perms`, `aud`, `iss`, `iat`, `exp`) and real clients present them
//! in `hello.token` to a relay started in-process, as a Jellyfin user's browser would. Also:
//! PyJWT reproduces the example token of `docs/AUTH.md` byte for byte.
//!
//! Uses `$LOCKSTEP_PYTHON` (set by `./scripts/test.sh` to `target/py/bin/python`, a virtualenv
//! with PyJWT), else `python3`. A missing interpreter or module fails the test with the command
//! that installs it: it is a dependency of the test suite, not a reason to skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lockstep_proto::ErrorCode;
use lockstep_proto::message::{CreateRoom, Message, PolicyMode};
use lockstep_relay::auth::authenticate;
use lockstep_relay::clock::ServerClock;
use lockstep_relay::config::Config;
use support::Client;

/// Catches a hung interpreter.
const TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL: &str = "run ./scripts/test.sh (it creates the virtualenv target/py with msgpack, \
                       aioquic and PyJWT and sets LOCKSTEP_PYTHON), or: python3 -m venv target/py \
                       && target/py/bin/pip install PyJWT && \
                       export LOCKSTEP_PYTHON=$PWD/target/py/bin/python";

/// What the plugin's "generate" button makes: 32 random bytes, base64url. The relay and the
/// plugin both use the string's UTF-8 bytes as the HMAC key.
const SECRET: &str = "q3Jx0v9mR2b8Yt1LwP5sZc7Hn4Kd6Ue0Aa2Bb3Cc4Dd";

/// A Jellyfin user id as Jellyfin's API shows it (a `Guid`, "D" format).
const USER_ID: &str = "5f0c2b7e-9a1d-4c3b-8e6f-2a1d0c9b8a7f";

/// docs/AUTH.md's example, secret `example-secret`.
const EXAMPLE_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI1ZjBjMmI3ZTlhMWQ0YzNiOGU2ZjJhMWQwYzliOGE3ZiIsIm5hbWUiOiJBZGEiLCJwZXJtcyI6WyJjcmVhdGVfcm9vbXMiXSwiYXVkIjoibG9ja3N0ZXAiLCJpc3MiOiJqZWxseWZpbiIsImV4cCI6MTcwMDAwMDYwMCwiaWF0IjoxNzAwMDAwMDAwfQ.o0Cak9ZDR5lgUI62RcV73CtvSrzlH3XPpIvqRol5zoc";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/mint_token.py")
}

/// Runs `python args...` to completion (killed after `TIMEOUT`): (success, stdout, stderr).
fn run_python(args: &[String]) -> (bool, String, String) {
    let o = support::python::run(&support::python::interpreter(), args, TIMEOUT, INSTALL);
    (o.success, o.stdout, o.stderr)
}

/// Fails with the install command when PyJWT cannot be imported.
fn require_pyjwt() {
    let (ok, _, stderr) = run_python(&["-c".into(), "import jwt".into()]);
    assert!(
        ok,
        "`{}` cannot import PyJWT: {INSTALL}\n{}",
        support::python::interpreter(),
        stderr.trim()
    );
}

/// What to mint; the defaults are what the plugin issues for a user allowed to create rooms.
struct Mint {
    secret: &'static str,
    user_id: &'static str,
    name: &'static str,
    perms: &'static [&'static str],
    audience: &'static str,
    issuer: &'static str,
    iat: Option<u64>,
    lifetime: u64,
    sorted_header: bool,
}

impl Default for Mint {
    fn default() -> Self {
        Mint {
            secret: SECRET,
            user_id: USER_ID,
            name: "Ada Lovelace",
            perms: &["create_rooms"],
            audience: "lockstep",
            issuer: "jellyfin",
            iat: None,
            lifetime: 600,
            sorted_header: false,
        }
    }
}

/// A token minted by PyJWT, and its payload as PyJWT verified it.
struct Minted {
    token: String,
    payload: serde_json::Value,
}

fn mint(m: &Mint) -> Minted {
    let mut args = vec![
        script().display().to_string(),
        "--secret".into(),
        m.secret.into(),
        "--user-id".into(),
        m.user_id.into(),
        "--name".into(),
        m.name.into(),
        "--audience".into(),
        m.audience.into(),
        "--issuer".into(),
        m.issuer.into(),
        "--lifetime".into(),
        m.lifetime.to_string(),
    ];
    for p in m.perms {
        args.extend(["--perm".into(), (*p).into()]);
    }
    if let Some(iat) = m.iat {
        args.extend(["--iat".into(), iat.to_string()]);
    }
    if m.sorted_header {
        args.push("--sorted-header".into());
    }
    let (ok, stdout, stderr) = run_python(&args);
    assert!(
        ok,
        "mint_token.py failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let mut lines = stdout.lines();
    let token = lines.next().expect("a token line").to_owned();
    let payload = serde_json::from_str(lines.next().expect("a payload line")).unwrap();
    Minted { token, payload }
}

/// The payload segment of a compact JWS, as JSON text (the bytes actually signed).
fn payload_json(token: &str) -> String {
    let segment = token.split('.').nth(1).expect("three segments");
    String::from_utf8(URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// The header segment, as JSON text.
fn header_json(token: &str) -> String {
    let segment = token.split('.').next().unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// The relay the Jellyfin plugin talks to: tokens required, HS256, audience `lockstep`, issuer
/// `jellyfin`, and no room creation without the `create_rooms` permission.
fn relay_config(c: &mut Config) {
    c.auth.required = true;
    c.auth.algorithm = "HS256".into();
    c.auth.secret = Some(SECRET.into());
    c.auth.audience = Some("lockstep".into());
    c.auth.issuer = Some("jellyfin".into());
    c.auth.anonymous_may_create_rooms = false;
}

fn create_room(req: u32) -> CreateRoom {
    CreateRoom {
        req: Some(req),
        name: "Jellyfin night".into(),
        password: None,
        media: None,
        mode: PolicyMode::Host,
        options: None,
    }
}

#[tokio::test]
async fn pyjwt_tokens_with_the_plugins_claims_are_accepted_and_refused_as_documented() {
    require_pyjwt();
    let now = ServerClock::unix_seconds();
    // Every token first (Python is blocking), then the relay.
    let tokens = tokio::task::spawn_blocking(move || {
        let valid = mint(&Mint::default());
        let no_create = mint(&Mint {
            name: "Bob",
            perms: &[],
            ..Mint::default()
        });
        // Issued an hour ago for 10 minutes: expired 50 minutes ago, far past the leeway.
        let expired = mint(&Mint {
            iat: Some(now - 3_600),
            ..Mint::default()
        });
        let wrong_secret = mint(&Mint {
            secret: "another-jellyfin-servers-secret-0123456789",
            ..Mint::default()
        });
        let wrong_audience = mint(&Mint {
            audience: "someone-else",
            ..Mint::default()
        });
        let wrong_issuer = mint(&Mint {
            issuer: "emby",
            ..Mint::default()
        });
        (
            valid,
            no_create,
            expired,
            wrong_secret,
            wrong_audience,
            wrong_issuer,
        )
    })
    .await
    .expect("the PyJWT runner");
    let (valid, no_create, expired, wrong_secret, wrong_audience, wrong_issuer) = tokens;

    // The claim set is exactly the plugin's: sub as 32 lowercase hex digits (Guid "N"), name,
    // perms, aud, iss, iat, exp = iat + lifetime; and the header is the documented one.
    let claims: serde_json::Value = serde_json::from_str(&payload_json(&valid.token)).unwrap();
    assert_eq!(claims, valid.payload, "PyJWT decodes what it signed");
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "name", "perms", "sub"]);
    assert_eq!(claims["sub"], "5f0c2b7e9a1d4c3b8e6f2a1d0c9b8a7f");
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["perms"], serde_json::json!(["create_rooms"]));
    assert_eq!(claims["aud"], "lockstep");
    assert_eq!(claims["iss"], "jellyfin");
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat.abs_diff(now) <= 5, "iat {iat} is now ({now})");
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 600);
    assert_eq!(header_json(&valid.token), r#"{"typ":"JWT","alg":"HS256"}"#);

    let relay = support::relay(relay_config).await;

    // The valid token, over WebSocket (JSON, as a browser overlay may speak) and WebTransport:
    // welcomed under the token's name, not hello's, and allowed to create a room.
    for mut c in [
        Client::websocket(&relay, true).await,
        Client::webtransport(&relay).await,
    ] {
        let transport = c.name;
        let w = c
            .hello_with("hello-name-is-ignored", Some(valid.token.clone()), None)
            .await
            .unwrap_or_else(|e| panic!("{transport}: refused: {e:?}"));
        assert_eq!(w.name, "Ada Lovelace", "{transport}");
        c.send(create_room(1)).await;
        match c
            .expect(|m| matches!(m, Message::RoomState(_) | Message::Error(_)))
            .await
        {
            Message::RoomState(s) => assert_eq!(s.req, Some(1), "{transport}"),
            other => panic!("{transport}: create_room refused: {other:?}"),
        }
        c.close().await;
    }

    // A valid token without `create_rooms`: welcomed, but `create_room` is forbidden (not
    // fatal), on a relay where users without the permission may not create rooms.
    let mut c = Client::websocket(&relay, false).await;
    let w = c
        .hello_with("x", Some(no_create.token.clone()), None)
        .await
        .unwrap();
    assert_eq!(w.name, "Bob");
    c.send(create_room(2)).await;
    let Message::Error(e) = c
        .expect(|m| matches!(m, Message::RoomState(_) | Message::Error(_)))
        .await
    else {
        panic!("a token without create_rooms created a room");
    };
    assert_eq!(
        (e.code, e.req, e.fatal),
        (ErrorCode::Forbidden, Some(2), false)
    );
    c.close().await;

    // Refused at hello with a fatal auth_failed, and the connection closes.
    for (what, token) in [
        ("expired", expired.token),
        ("wrong secret", wrong_secret.token),
        ("wrong audience", wrong_audience.token),
        ("wrong issuer", wrong_issuer.token),
    ] {
        let mut c = Client::websocket(&relay, false).await;
        let err = c.hello_with("x", Some(token), None).await.expect_err(what);
        assert_eq!(err.code, ErrorCode::AuthFailed, "{what}");
        assert!(err.fatal, "{what}");
        c.expect_closed().await;
    }
    relay.shutdown().await;
}

#[test]
fn pyjwt_mints_the_documented_example_token() {
    require_pyjwt();
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/AUTH.md"))
            .unwrap();
    assert!(
        docs.lines().any(|l| l.trim() == EXAMPLE_TOKEN),
        "docs/AUTH.md no longer shows the example token this test pins"
    );
    let example = |sorted_header| Mint {
        secret: "example-secret",
        name: "Ada",
        iat: Some(1_700_000_000),
        sorted_header,
        ..Mint::default()
    };

    // With the documented header key order (the plugin's), byte for byte.
    let minted = mint(&example(false));
    assert_eq!(minted.token, EXAMPLE_TOKEN);
    assert_eq!(
        payload_json(&minted.token),
        r#"{"sub":"5f0c2b7e9a1d4c3b8e6f2a1d0c9b8a7f","name":"Ada","perms":["create_rooms"],"aud":"lockstep","iss":"jellyfin","exp":1700000600,"iat":1700000000}"#
    );

    // PyJWT's default sorts the header's keys: other bytes, another signature, same contract.
    let sorted = mint(&example(true));
    assert_eq!(header_json(&sorted.token), r#"{"alg":"HS256","typ":"JWT"}"#);
    assert_ne!(sorted.token, EXAMPLE_TOKEN);
    let mut config = Config::default();
    config.auth.required = true;
    config.auth.secret = Some("example-secret".into());
    config.auth.issuer = Some("jellyfin".into());
    let auth = config.auth_config().unwrap();
    for token in [&minted.token, &sorted.token] {
        // Inside the example's validity window, by the relay's own verification.
        let identity = authenticate(Some(token), &auth, 1_700_000_100).unwrap();
        assert_eq!(
            identity.user_id.as_deref(),
            Some("5f0c2b7e9a1d4c3b8e6f2a1d0c9b8a7f")
        );
        assert_eq!(identity.name.as_deref(), Some("Ada"));
        assert!(identity.may_create_rooms && !identity.moderator);
        // And expired ten minutes (plus the leeway) after it was issued.
        assert!(authenticate(Some(token), &auth, 1_700_000_600 + 31).is_err());
    }
}
