//! Relay processes (the real binary) for tests of several relays on one Redis.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A relay process on free loopback ports, killed (SIGKILL) when dropped.
pub struct RelayProcess {
    child: Child,
    /// Its HTTP address (page, WebSocket, API).
    pub http: SocketAddr,
}

impl RelayProcess {
    /// Starts `lockstep serve` on `redis`; waits until it says where it listens.
    pub fn start(redis: &str) -> RelayProcess {
        Self::start_skewed(redis, 0)
    }

    /// Like `start`, on a host whose clock is `skew_us` off.
    pub fn start_skewed(redis: &str, skew_us: i64) -> RelayProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args([
                "--http",
                "127.0.0.1:0",
                "--webtransport",
                "127.0.0.1:0",
                "--redis",
                redis,
                // The test reconnects from one address many times.
                "--connections-per-ip",
                "1000",
            ])
            .env(
                "RUST_LOG",
                std::env::var("LOCKSTEP_TEST_RELAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("LOCKSTEP_TEST_CLOCK_SKEW_US", skew_us.to_string())
            .stdout(Stdio::piped())
            // The relays' own logs, when asked for (LOCKSTEP_TEST_RELAY_LOG=debug).
            .stderr(if std::env::var_os("LOCKSTEP_TEST_RELAY_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the relay binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("open http://").nth(1) {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the relay says where it listens");
        RelayProcess {
            child,
            http: addr.parse().expect("host:port"),
        }
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the relay at `addr` lists `peers` other relays, each with a clock estimate.
pub async fn wait_for_peers(addr: SocketAddr, peers: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = super::http_get(addr, "/health").await;
        let h: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let measured = h["peers"].as_array().map_or(0, |p| {
            p.iter().filter(|p| p["offset_us"].is_number()).count()
        });
        if measured >= peers {
            return;
        }
        assert!(Instant::now() < deadline, "the relays never met: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
