//! This relay's place among relays: its id, the backplane it shares with the others, and an
//! echo through that backplane.
//!
//! The echo is a message the relay publishes once a second on its own channel and receives
//! back: it proves the whole pub/sub path works (not only that Redis answers a ping), that
//! the subscription came back after a reconnect, and measures the round trip `/health`
//! reports. Messages from other relays will arrive through the same inbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backplane::{AnyBackplane, Backplane, BackplaneHealth, Envelope};

/// How often the echo is sent.
const ECHO_EVERY: Duration = Duration::from_secs(1);
/// The prefix of every key and channel lockstep uses in Redis.
pub const NAMESPACE: &str = "lockstep";

/// This relay among relays.
#[derive(Debug)]
pub struct Cluster {
    relay_id: String,
    backplane: Arc<AnyBackplane>,
    started: Instant,
    echo: Mutex<Option<Echo>>,
}

#[derive(Debug, Clone, Copy)]
struct Echo {
    received: Instant,
    round_trip: Duration,
}

/// The cluster part of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterHealth {
    /// This relay's id among relays.
    pub relay_id: String,
    /// Whether the backplane can be used.
    pub backplane: BackplaneHealth,
    /// The last echo's round trip through the backplane, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_ms: Option<f64>,
    /// Seconds since the last echo came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_age_secs: Option<u64>,
}

impl Cluster {
    /// This relay, known to the others as `relay_id`, on `backplane`.
    pub fn new(relay_id: String, backplane: Arc<AnyBackplane>) -> Self {
        Cluster {
            relay_id,
            backplane,
            started: Instant::now(),
            echo: Mutex::new(None),
        }
    }

    /// This relay's id.
    pub fn relay_id(&self) -> &str {
        &self.relay_id
    }

    /// The channel other relays reach this one on.
    pub fn channel(&self) -> String {
        format!("{NAMESPACE}:relay:{}", self.relay_id)
    }

    /// What `/health` says about the cluster.
    pub fn health(&self) -> ClusterHealth {
        let echo = self.echo.lock().ok().and_then(|e| *e);
        ClusterHealth {
            relay_id: self.relay_id.clone(),
            backplane: self.backplane.health(),
            echo_ms: echo.map(|e| e.round_trip.as_secs_f64() * 1e3),
            echo_age_secs: echo.map(|e| e.received.elapsed().as_secs()),
        }
    }

    /// Whether the backplane works end to end now: reachable, and an echo came back lately.
    pub fn healthy(&self) -> bool {
        let h = self.health();
        h.backplane.connected && h.echo_age_secs.is_some_and(|age| age <= 3)
    }

    fn stamp(&self) -> Bytes {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Bytes::copy_from_slice(&micros.to_be_bytes())
    }

    fn on_echo(&self, payload: &[u8]) {
        let Ok(stamp) = <[u8; 8]>::try_from(payload) else {
            return;
        };
        let sent = self.started + Duration::from_micros(u64::from_be_bytes(stamp));
        let now = Instant::now();
        if let Ok(mut echo) = self.echo.lock() {
            *echo = Some(Echo {
                received: now,
                round_trip: now.saturating_duration_since(sent),
            });
        }
    }
}

/// Subscribes to this relay's channel (again and again until the backplane takes it), sends
/// the echo each second, and handles what arrives in the inbox.
pub async fn run(cluster: Arc<Cluster>, mut inbox: mpsc::Receiver<Envelope>) {
    let channel = cluster.channel();
    let mut subscribed = false;
    let mut every = tokio::time::interval(ECHO_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if !subscribed {
                    subscribed = cluster.backplane.subscribe(&channel).await.is_ok();
                }
                if subscribed
                    && let Err(e) = cluster.backplane.publish(&channel, cluster.stamp()).await
                {
                    tracing::debug!(error = %e, "backplane echo not sent");
                }
            }
            envelope = inbox.recv() => {
                let Some(envelope) = envelope else { return };
                if envelope.channel == channel {
                    cluster.on_echo(&envelope.payload);
                } else {
                    tracing::debug!(channel = %envelope.channel, "backplane message on an unknown channel");
                }
            }
        }
    }
}
