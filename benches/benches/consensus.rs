//! Cost of democratic decisions as rooms grow: 10, 1,000 and 10,000 members present.
//!
//! - `vote/N`: one vote that changes a tally without deciding (a member flips yes/no on an open
//!   proposal): the per-vote cost, which must not grow with N.
//! - `decision/N`: a whole decision: a proposal opens and `needed - 1` members vote yes until
//!   it passes and is applied. Throughput is reported in votes, so the per-vote figure can be
//!   compared across sizes; decisions per second = 1 / time.
//! - `room_of_one`: a proposal in a room of one, decided at once.
//!
//! Run: `cargo bench -p lockstep-benches --bench consensus`.

// Fixtures are ours: a refused vote in a fixture is a bug to stop on.
#![allow(clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lockstep_consensus::{RoomControl, Verdict};
use lockstep_proto::ServerTime;
use lockstep_proto::message::{Action, MemberId, PolicyMode, RoomOptions};
use std::hint::black_box;

const SIZES: [u32; 3] = [10, 1_000, 10_000];

fn room(members: u32) -> RoomControl {
    let now = ServerTime::from_micros(1_000_000);
    let mut room = RoomControl::new(1, false, PolicyMode::Democratic, RoomOptions::default());
    for id in 1..=members {
        room.join(id, false, now);
    }
    while room.poll_output().is_some() {}
    room
}

fn open_seek(room: &mut RoomControl) -> u32 {
    let now = ServerTime::from_micros(2_000_000);
    match room.request(1, Action::Seek { position: 60.0 }, now) {
        Verdict::Propose(id) => id,
        other => panic!("expected a proposal, got {other:?}"),
    }
}

fn consensus(c: &mut Criterion) {
    let now = ServerTime::from_micros(3_000_000);

    let mut group = c.benchmark_group("vote");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut r = room(n);
        let id = open_seek(&mut r);
        let voter: MemberId = 2;
        let mut yes = false;
        group.bench_function(n.to_string(), |b| {
            b.iter(|| {
                yes = !yes;
                r.vote(black_box(voter), id, yes, now)
                    .expect("open proposal");
                while r.poll_output().is_some() {}
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decision");
    group.sample_size(10);
    for n in SIZES {
        let needed = n / 2 + 1;
        group.throughput(Throughput::Elements(u64::from(needed - 1)));
        group.bench_function(n.to_string(), |b| {
            b.iter_batched_ref(
                || room(n),
                |r| {
                    let id = open_seek(r);
                    for voter in 2..=needed {
                        r.vote(voter, id, true, now).expect("open proposal");
                    }
                    let mut applied = 0;
                    while let Some(o) = r.poll_output() {
                        applied +=
                            usize::from(matches!(o, lockstep_consensus::Output::Apply { .. }));
                    }
                    assert_eq!(applied, 1, "the seek passed and was applied once");
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    c.bench_function("room_of_one", |b| {
        b.iter_batched_ref(
            || room(1),
            |r| {
                open_seek(r);
                while r.poll_output().is_some() {}
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, consensus);
criterion_main!(benches);
