//! Golden vectors and the spec, checked against the code.
//!
//! For every message type, `tests/vectors/<type>.msgpack` must be exactly what the encoder
//! writes for the example in `common`, `<type>.json` must hold the same value, and both must
//! decode back to the example. `docs/PROTOCOL.md` must have a section for every type, a row for
//! every error code and limit, and an examples section equal to the vectors.
//!
//! `UPDATE_VECTORS=1 cargo test -p lockstep-proto --test vectors` rewrites the vector files and
//! the spec's generated examples after an intended change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use lockstep_proto::Direction;
use lockstep_proto::{Encoding, ErrorCode, MessageType, TransportClass, decode, encode, limits};

const BEGIN: &str = "<!-- BEGIN GENERATED EXAMPLES -->";
const END: &str = "<!-- END GENERATED EXAMPLES -->";

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PROTOCOL.md")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1")
}

fn pretty_json(kind: MessageType) -> String {
    // Straight from the message, not through `Value`, so the file keeps the wire's field order.
    serde_json::to_string_pretty(&common::example(kind)).unwrap() + "\n"
}

fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(32)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn golden_vectors_match_the_codec() {
    let dir = vectors_dir();
    for &kind in MessageType::ALL {
        let example = common::example(kind);
        assert_eq!(
            example.kind(),
            kind,
            "example for {} has the wrong type",
            kind.name()
        );
        let msgpack = encode(&example, Encoding::MessagePack).unwrap();
        let json = pretty_json(kind);
        let mp_path = dir.join(format!("{}.msgpack", kind.name()));
        let json_path = dir.join(format!("{}.json", kind.name()));
        if updating() {
            fs::write(&mp_path, &msgpack).unwrap();
            fs::write(&json_path, &json).unwrap();
        }
        let hint = "(if the change is intended: UPDATE_VECTORS=1 cargo test -p lockstep-proto --test vectors)";
        let file_mp = fs::read(&mp_path)
            .unwrap_or_else(|e| panic!("{}: no golden vector: {e} {hint}", mp_path.display()));
        assert_eq!(
            file_mp,
            msgpack,
            "{} differs from the encoder {hint}",
            mp_path.display()
        );
        let file_json = fs::read(&json_path)
            .unwrap_or_else(|e| panic!("{}: no golden vector: {e} {hint}", json_path.display()));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&file_json).unwrap(),
            serde_json::to_value(&example).unwrap(),
            "{} differs from the example {hint}",
            json_path.display()
        );
        assert_eq!(
            decode(&file_mp, Encoding::MessagePack, limits::MAX_RELAY_FRAME).unwrap(),
            example
        );
        assert_eq!(
            decode(&file_json, Encoding::Json, limits::MAX_RELAY_FRAME).unwrap(),
            example
        );
        if kind.class() == TransportClass::Datagram {
            assert!(
                msgpack.len() <= limits::MAX_DATAGRAM_PAYLOAD,
                "{} example does not fit a datagram",
                kind.name()
            );
        }
    }
}

#[test]
fn no_stray_vector_files() {
    let known: BTreeSet<String> = MessageType::ALL
        .iter()
        .flat_map(|k| {
            [
                format!("{}.msgpack", k.name()),
                format!("{}.json", k.name()),
            ]
        })
        .collect();
    for entry in fs::read_dir(vectors_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".msgpack") || name.ends_with(".json") {
            assert!(
                known.contains(&name),
                "{name} is a vector of no message type"
            );
        }
    }
}

fn generated_examples() -> String {
    let mut out = String::new();
    for &kind in MessageType::ALL {
        let example = common::example(kind);
        let json = String::from_utf8(encode(&example, Encoding::Json).unwrap()).unwrap();
        let msgpack = encode(&example, Encoding::MessagePack).unwrap();
        let direction = match kind.direction() {
            Direction::ClientToRelay => "client → relay",
            Direction::RelayToClient => "relay → client",
        };
        let class = match kind.class() {
            TransportClass::Control => "control",
            TransportClass::Datagram => "datagram",
        };
        write!(
            out,
            "\n**`{name}`** ({direction}, {class}; {len} bytes as MessagePack)\n\n\
             ```json\n{json}\n```\n\n```text\n{hex}\n```\n",
            name = kind.name(),
            len = msgpack.len(),
            hex = hex_lines(&msgpack),
        )
        .unwrap();
    }
    out
}

#[test]
fn spec_examples_are_the_golden_vectors() {
    let path = spec_path();
    let spec = fs::read_to_string(&path).unwrap();
    let (head, rest) = spec
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("{} has no `{BEGIN}` marker", path.display()));
    let (current, tail) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("{} has no `{END}` marker", path.display()));
    let wanted = generated_examples();
    if updating() && current != wanted {
        fs::write(&path, format!("{head}{BEGIN}{wanted}{END}{tail}")).unwrap();
        return;
    }
    assert!(
        current == wanted,
        "the examples in docs/PROTOCOL.md differ from the golden vectors \
         (UPDATE_VECTORS=1 cargo test -p lockstep-proto --test vectors)"
    );
}

#[test]
fn spec_has_a_section_for_every_message_type() {
    let spec = fs::read_to_string(spec_path()).unwrap();
    let missing: Vec<_> = MessageType::ALL
        .iter()
        .filter(|k| !spec.contains(&format!("#### `{}`", k.name())))
        .map(|k| k.name())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md has no section for {missing:?}"
    );
}

#[test]
fn spec_lists_every_error_code() {
    let spec = fs::read_to_string(spec_path()).unwrap();
    let missing: Vec<_> = ErrorCode::ALL
        .iter()
        .filter(|c| !spec.contains(&format!("| `{}` |", c.name())))
        .map(|c| c.name())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md's error table lacks {missing:?}"
    );
}

#[test]
fn spec_limits_match_the_code() {
    let spec = fs::read_to_string(spec_path()).unwrap();
    let expected: &[(&str, f64)] = &[
        ("PROTOCOL_VERSION", f64::from(limits::PROTOCOL_VERSION)),
        ("MAX_DATAGRAM_PAYLOAD", limits::MAX_DATAGRAM_PAYLOAD as f64),
        ("MAX_CLIENT_FRAME", limits::MAX_CLIENT_FRAME as f64),
        ("MAX_RELAY_FRAME", limits::MAX_RELAY_FRAME as f64),
        ("MAX_POSITION_SECONDS", limits::MAX_POSITION_SECONDS),
        ("MIN_RATE", limits::MIN_RATE),
        ("MAX_RATE", limits::MAX_RATE),
        ("MAX_NAME_CHARS", limits::MAX_NAME_CHARS as f64),
        ("MAX_CHAT_CHARS", limits::MAX_CHAT_CHARS as f64),
        ("MAX_REACTION_CHARS", limits::MAX_REACTION_CHARS as f64),
        ("MAX_PASSWORD_BYTES", limits::MAX_PASSWORD_BYTES as f64),
        ("MAX_TOKEN_BYTES", limits::MAX_TOKEN_BYTES as f64),
        ("MAX_ID_BYTES", limits::MAX_ID_BYTES as f64),
        ("MAX_URL_BYTES", limits::MAX_URL_BYTES as f64),
        ("MAX_TEXT_CHARS", limits::MAX_TEXT_CHARS as f64),
        ("MAX_FEATURES", limits::MAX_FEATURES as f64),
        (
            "DEFAULT_ROOM_CAPACITY",
            f64::from(limits::DEFAULT_ROOM_CAPACITY),
        ),
        ("ROOM_STATE_MEMBERS", limits::ROOM_STATE_MEMBERS as f64),
    ];
    for (name, value) in expected {
        let row = spec
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no limits row for `{name}`"));
        let cell = row.split('|').nth(2).unwrap().trim();
        let documented: f64 = cell
            .parse()
            .unwrap_or_else(|_| panic!("limits row for `{name}`: `{cell}` is not a number"));
        assert_eq!(
            documented, *value,
            "docs/PROTOCOL.md gives `{name}` as {cell}"
        );
    }
}
