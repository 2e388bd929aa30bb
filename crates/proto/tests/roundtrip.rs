//! Property tests: every message type round-trips through both codecs and the framing, and no
//! byte sequence makes the decoder or the frame decoder panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use lockstep_proto::{
    Encoding, FrameDecoder, Message, MessageType, decode, encode, encode_frame, limits,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const ENCODINGS: [Encoding; 2] = [Encoding::MessagePack, Encoding::Json];

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn every_message_type_round_trips_in_both_encodings() {
    for &kind in MessageType::ALL {
        let mut runner = runner(64);
        runner
            .run(&common::arb_message(kind), |message| {
                prop_assert_eq!(message.kind(), kind);
                for enc in ENCODINGS {
                    let bytes = encode(&message, enc).map_err(|e| {
                        TestCaseError::fail(format!("{} did not encode: {e}", kind.name()))
                    })?;
                    let back = decode(&bytes, enc, limits::MAX_RELAY_FRAME).map_err(|e| {
                        TestCaseError::fail(format!("{} {enc:?} did not decode: {e}", kind.name()))
                    })?;
                    prop_assert_eq!(&back, &message);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
    }
}

#[test]
fn every_message_type_round_trips_through_the_framing() {
    for &kind in MessageType::ALL {
        let mut runner = runner(16);
        runner
            .run(
                &(
                    proptest::collection::vec(common::arb_message(kind), 1..4),
                    1..64usize,
                ),
                |(messages, chunk)| {
                    let mut stream = Vec::new();
                    for m in &messages {
                        let payload = encode(m, Encoding::MessagePack).unwrap();
                        encode_frame(&payload, limits::MAX_RELAY_FRAME, &mut stream).unwrap();
                    }
                    let mut decoder = FrameDecoder::new(limits::MAX_RELAY_FRAME);
                    let mut got = Vec::new();
                    for piece in stream.chunks(chunk) {
                        let mut input = piece;
                        while let Some(frame) = decoder.decode(&mut input).unwrap() {
                            got.push(
                                decode(&frame, Encoding::MessagePack, limits::MAX_RELAY_FRAME)
                                    .unwrap(),
                            );
                        }
                    }
                    prop_assert_eq!(got, messages);
                    Ok(())
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
    }
}

proptest! {
    #![proptest_config(Config { cases: 4096, failure_persistence: None, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for enc in ENCODINGS {
            let _ = decode(&bytes, enc, limits::MAX_RELAY_FRAME);
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_known_type_never_panic(
        kind in proptest::sample::select(MessageType::ALL),
        rest in proptest::collection::vec(any::<u8>(), 0..256),
        fields in 1u8..15,
    ) {
        // A map header and a valid `type`, then garbage: reaches the per-type parsers.
        let mut bytes = vec![0x80 | fields, 0xa4];
        bytes.extend_from_slice(b"type");
        let name = kind.name().as_bytes();
        bytes.push(0xa0 | name.len() as u8);
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&rest);
        let _ = decode(&bytes, Encoding::MessagePack, limits::MAX_RELAY_FRAME);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        kind in proptest::sample::select(MessageType::ALL),
        seed in any::<u64>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in any::<prop::sample::Index>(),
    ) {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let message: Message = common::arb_message(kind)
            .new_tree(&mut rng)
            .map(|t| proptest::strategy::ValueTree::current(&t))
            .unwrap();
        for enc in ENCODINGS {
            let mut bytes = encode(&message, enc).unwrap();
            for (at, byte) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            let _ = decode(&bytes, enc, limits::MAX_RELAY_FRAME);
            let cut = truncate.index(bytes.len() + 1);
            let _ = decode(&bytes[..cut], enc, limits::MAX_RELAY_FRAME);
        }
    }

    #[test]
    fn arbitrary_streams_never_panic_the_frame_decoder(
        stream in proptest::collection::vec(any::<u8>(), 0..2048),
        max in 1usize..256,
        chunk in 1usize..64,
    ) {
        let mut decoder = FrameDecoder::new(max);
        for piece in stream.chunks(chunk) {
            let mut input = piece;
            let mut steps = 0;
            while !input.is_empty() {
                steps += 1;
                prop_assert!(steps <= piece.len() + 1, "decoder made no progress");
                if let Ok(Some(frame)) = decoder.decode(&mut input) {
                    prop_assert!(!frame.is_empty() && frame.len() <= max);
                }
            }
        }
    }
}
