//! The sampler's own floor: several IPC clients sampling the *same* mpv, as if each were a
//! player. A perfect sampler would see 0 ms between them; what it sees is the measurement's
//! resolution (IPC round trips, the midpoint assumption, extrapolation at `speed`). Half the
//! time at 1x, half at 1.25x.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::process::Command;

use super::mpv::Mpv;
use super::process::Proc;
use super::report::{MAX_RTT_MS, Percentiles, percentiles};
use super::sampler::{self, PositionSource};
use super::scenario::SAMPLE_EVERY;
use super::syncplay::wait_loaded;
use super::{Context, Result};

/// Samples one mpv through `clients` connections for `length`; the spread's percentiles.
pub(crate) async fn measure(
    dir: &std::path::Path,
    clip: &std::path::Path,
    clients: usize,
    length: Duration,
) -> Result<Option<Percentiles>> {
    let dir = dir.join("floor");
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
    let socket = dir.join("mpv.sock");
    let mut cmd = Command::new("mpv");
    cmd.args([
        "--no-config",
        "--vo=null",
        "--ao=null",
        "--keep-open=yes",
        "--pause",
    ])
    .arg(format!("--input-ipc-server={}", socket.display()))
    .arg(clip);
    let proc = Proc::spawn("mpv (sampler floor)", cmd, &dir.join("mpv.log"), false)?;
    let outcome = async {
        let mut players = Vec::new();
        for _ in 0..clients.max(2) {
            players.push(Arc::new(
                Mpv::connect(&socket, Duration::from_secs(20)).await?,
            ));
        }
        wait_loaded(&players).await?;
        let source = PositionSource::detect(&players[0]).await?;
        players[0].set("pause", json!(false)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rounds = (length.as_millis() / SAMPLE_EVERY.as_millis()) as usize;
        let mut spreads = Vec::with_capacity(rounds);
        for i in 0..rounds {
            if i == rounds / 2 {
                players[0].set("speed", json!(1.25)).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if let Some(s) = sampler::sample(&players, source).await?
                && s.max_rtt.as_secs_f64() * 1e3 <= MAX_RTT_MS
            {
                spreads.push(s.spread_ms());
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        let _ = players[0].request(json!(["quit"])).await;
        Ok(percentiles(&spreads))
    }
    .await;
    proc.wait_or_stop(Duration::from_secs(3)).await;
    outcome
}
