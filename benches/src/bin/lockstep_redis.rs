//! `lockstep-redis`: what Redis costs the relays that share rooms through it (issue 8 §5).
//!
//! Two backplanes of the relay (`lockstep_relay::backplane::RedisBackplane`, each its own
//! connection, as two relays have) on one `redis-server` the tool starts on loopback (or the
//! one at `--redis`):
//! - **hop**: one publishes a message carrying its send instant, paced at `--rate` per second,
//!   the other receives it; one clock in one process, so the one-way latency is exact. This is
//!   what a room's message pays to reach another relay;
//! - **throughput**: the publisher sends as fast as `--in-flight` concurrent publishes allow;
//!   messages received per second;
//! - **store**: compare-and-set of a room-sized record (`--record-bytes`), one after another:
//!   what storing a room after a change costs.
//!
//! ```sh
//! cargo build --release -p lockstep-benches --bin lockstep-redis
//! target/release/lockstep-redis --duration 10
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use lockstep_relay::backplane::{Backplane, CasOutcome, Envelope, RedisBackplane};
use lockstep_relay::testing::RedisServer;
use serde_json::json;
use tokio::sync::mpsc;

/// What Redis costs the relays.
#[derive(Parser)]
#[command(name = "lockstep-redis", version)]
struct Cli {
    /// Use this Redis instead of starting one (`redis://host:port/`).
    #[arg(long)]
    redis: Option<String>,
    /// Seconds of each measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Hop messages per second.
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Bytes per message (a `state_update` is ~90).
    #[arg(long, default_value_t = 128)]
    message_bytes: usize,
    /// Concurrent publishes in the throughput run.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Bytes of the stored record (a room of 10 members is ~2 KB).
    #[arg(long, default_value_t = 2_048)]
    record_bytes: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const CHANNEL: &str = "lockstep:bench:hop";

/// Microseconds from 1 µs to a minute, three significant digits.
fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1_000.0
}

/// A payload stamped with its send instant (µs since `origin`), padded to `size`.
fn stamped(origin: Instant, size: usize) -> Bytes {
    let mut v = (origin.elapsed().as_micros() as u64).to_be_bytes().to_vec();
    v.resize(size.max(8), 0);
    Bytes::from(v)
}

fn sent_at(payload: &[u8]) -> Option<u64> {
    payload.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let cli = Cli::parse();
    let _server;
    let url = match &cli.redis {
        Some(url) => url.clone(),
        None => {
            _server = RedisServer::start();
            _server.url()
        }
    };
    let (tx, _) = mpsc::channel(16);
    let publisher = RedisBackplane::connect(&url, tx).map_err(|e| e.to_string())?;
    let (tx, mut inbox) = mpsc::channel::<Envelope>(lockstep_relay::backplane::INBOX_CAPACITY);
    let subscriber = RedisBackplane::connect(&url, tx).map_err(|e| e.to_string())?;
    subscriber
        .subscribe(CHANNEL)
        .await
        .map_err(|e| e.to_string())?;
    let duration = Duration::from_secs(cli.duration);
    let origin = Instant::now();

    // Hop: paced publishes, one-way latency at the receiver.
    eprintln!(
        "hop: {} messages/s of {} bytes for {:?}",
        cli.rate, cli.message_bytes, duration
    );
    let mut h = histogram()?;
    let received = tokio::spawn(async move {
        let mut count = 0u64;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), inbox.recv()).await {
            if &m.payload[..] == b"end" {
                break;
            }
            if let Some(t) = sent_at(&m.payload) {
                let now = origin.elapsed().as_micros() as u64;
                let _ = h.record(now.saturating_sub(t).max(1));
                count += 1;
            }
        }
        (h, count, inbox)
    });
    let mut every =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(cli.rate.max(1))));
    let end = Instant::now() + duration;
    let mut sent = 0u64;
    while Instant::now() < end {
        every.tick().await;
        publisher
            .publish(CHANNEL, stamped(origin, cli.message_bytes))
            .await
            .map_err(|e| e.to_string())?;
        sent += 1;
    }
    publisher
        .publish(CHANNEL, Bytes::from_static(b"end"))
        .await
        .map_err(|e| e.to_string())?;
    let (hop, hop_count, mut inbox) = received.await.map_err(|e| e.to_string())?;

    // Throughput: as many publishes as `in_flight` concurrent ones allow.
    eprintln!(
        "throughput: {} publishes in flight for {:?}",
        cli.in_flight, duration
    );
    let publisher = Arc::new(publisher);
    let published = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..cli.in_flight.max(1) {
        let (p, n) = (publisher.clone(), published.clone());
        let size = cli.message_bytes;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if p.publish(CHANNEL, stamped(origin, size)).await.is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let counting = tokio::spawn(async move {
        let start = Instant::now();
        let mut n = 0u64;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), inbox.recv()).await {
            n += 1;
        }
        (n, start.elapsed().saturating_sub(Duration::from_secs(2)))
    });
    for t in tasks {
        let _ = t.await;
    }
    let (through, window) = counting.await.map_err(|e| e.to_string())?;
    let through_per_s = through as f64 / window.as_secs_f64().max(1e-9);

    // Store: compare-and-set of a room-sized record, one after another.
    eprintln!(
        "store: compare-and-set of {} bytes for {:?}",
        cli.record_bytes, duration
    );
    let mut store = histogram()?;
    let record = Bytes::from(vec![7u8; cli.record_bytes]);
    let mut version = 0;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let t = Instant::now();
        match publisher
            .compare_and_set("lockstep:bench:room", version, record.clone())
            .await
            .map_err(|e| e.to_string())?
        {
            CasOutcome::Written(v) => version = v,
            CasOutcome::Conflict(v) => version = v,
        }
        let _ = store.record((t.elapsed().as_micros() as u64).max(1));
    }

    println!("| measurement | count | p50 ms | p99 ms | p99.9 ms | rate |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| hop (publish → other connection receives), {} B | {hop_count} of {sent} | {:.3} | {:.3} | {:.3} | {} /s |",
        cli.message_bytes,
        ms(&hop, 0.5),
        ms(&hop, 0.99),
        ms(&hop, 0.999),
        cli.rate
    );
    println!(
        "| throughput, {} in flight | {through} | | | | {:.0} received /s ({} published) |",
        cli.in_flight,
        through_per_s,
        published.load(Ordering::Relaxed)
    );
    println!(
        "| store (compare-and-set of {} B) | {} | {:.3} | {:.3} | {:.3} | {:.0} /s |",
        cli.record_bytes,
        store.len(),
        ms(&store, 0.5),
        ms(&store, 0.99),
        ms(&store, 0.999),
        store.len() as f64 / duration.as_secs_f64()
    );
    if let Some(path) = cli.json {
        let out = json!({
            "hop": {"sent": sent, "received": hop_count, "bytes": cli.message_bytes, "rate": cli.rate,
                    "p50_ms": ms(&hop, 0.5), "p99_ms": ms(&hop, 0.99), "p999_ms": ms(&hop, 0.999)},
            "throughput": {"in_flight": cli.in_flight, "received": through, "received_per_s": through_per_s,
                           "published": published.load(Ordering::Relaxed)},
            "store": {"bytes": cli.record_bytes, "count": store.len(),
                      "p50_ms": ms(&store, 0.5), "p99_ms": ms(&store, 0.99), "p999_ms": ms(&store, 0.999)},
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&out).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
