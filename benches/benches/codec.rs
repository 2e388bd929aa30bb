//! Encode and decode cost of the hot messages (clock ping, state update) in both encodings,
//! and of the stream framing.
//!
//! Run: `cargo bench -p lockstep-benches --bench codec`.

// Fixtures are ours, not input from outside: a failure to encode them is a bug to stop on.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_proto::{Encoding, FrameDecoder, decode, encode_frame, encode_into, limits};
use std::hint::black_box;

fn codec(c: &mut Criterion) {
    for message in lockstep_benches::hot_messages() {
        let name = message.kind().name();
        for (enc, enc_name) in [(Encoding::MessagePack, "msgpack"), (Encoding::Json, "json")] {
            let mut buf = Vec::with_capacity(256);
            encode_into(&message, enc, &mut buf).expect("fixture encodes");
            let mut group = c.benchmark_group(format!("{name}/{enc_name}"));
            group.throughput(Throughput::Elements(1));
            group.bench_function("encode", |b| {
                b.iter(|| {
                    buf.clear();
                    encode_into(black_box(&message), enc, &mut buf).expect("fixture encodes");
                    buf.len()
                })
            });
            let bytes = buf.clone();
            group.bench_function("decode", |b| {
                b.iter(|| decode(black_box(&bytes), enc, limits::MAX_RELAY_FRAME))
            });
            group.finish();
        }
    }

    let mut stream = Vec::new();
    let payload = vec![0x80_u8; 64];
    for _ in 0..100 {
        encode_frame(&payload, limits::MAX_CLIENT_FRAME, &mut stream).expect("fits");
    }
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Elements(100));
    group.bench_function("decode_100_frames_of_64_bytes", |b| {
        b.iter(|| {
            let mut d = FrameDecoder::new(limits::MAX_CLIENT_FRAME);
            let mut input = black_box(stream.as_slice());
            let mut n = 0;
            while let Ok(Some(_)) = d.decode(&mut input) {
                n += 1;
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
