//! The relay under test: the configuration file that lets the load through, starting and
//! stopping the release binary, and reading its addresses, certificate hashes and `/metrics`.
//!
//! Started relays listen on `127.0.0.1:0` (HTTP and WebSocket) and `127.0.0.1:0/udp`
//! (WebTransport); their stdout and stderr go to one log file, from which the "ready" line
//! gives the HTTP address; `GET /api/config` gives the rest. A relay given with `--relay` is
//! only discovered, never started or stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tokio::process::{Child, Command};

use super::http;
use super::{Context, Error, Result};

/// What the relay prints when it listens, followed by its page URL.
const READY: &str = "lockstep relay ready: open ";
/// How long a relay may take to print [`READY`].
const START_WITHIN: Duration = Duration::from_secs(30);
/// How long a relay may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The relay's settings for a load run: per-client rate limits, connections per address, room
/// capacity and chat far above what the load sends, so it measures the relay, not its limits.
/// Every key is a `LimitSettings` field of `crates/relay/src/config.rs`.
pub(crate) fn config_toml() -> String {
    "# Written by lockstep-load: limits raised so the load is not throttled.\n\
     http = \"127.0.0.1:0\"\n\
     webtransport = \"127.0.0.1:0\"\n\
     \n\
     [limits]\n\
     control_per_sec = 1000000.0\n\
     control_burst = 1000000.0\n\
     datagrams_per_sec = 1000000.0\n\
     datagram_burst = 1000000.0\n\
     connections_per_ip = 1000000\n\
     rooms_per_user = 1000000\n\
     room_capacity = 100000\n\
     chat_per_sec = 1000000.0\n\
     chat_burst = 1000000.0\n"
        .to_owned()
}

/// How to reach a relay.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Its HTTP port (page, API, `/metrics`).
    pub(crate) http: SocketAddr,
    /// WebSocket URL (`ws://host:port/ws`).
    pub(crate) ws_url: String,
    /// The WebSocket URL's address.
    pub(crate) ws_addr: SocketAddr,
    /// WebTransport URL (`https://host:port/lockstep`).
    pub(crate) wt_url: String,
    /// SHA-256 hashes of the certificates to pin.
    pub(crate) hashes: Vec<[u8; 32]>,
}

/// Reads `/api/config` from the relay's HTTP port.
pub(crate) async fn discover(addr: SocketAddr) -> Result<Target> {
    let body = http::get(addr, "/api/config", Duration::from_secs(10)).await?;
    let config: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Relay(format!("/api/config is not JSON: {e}")))?;
    let text = |p: &str| config.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let (Some(wt_url), Some(ws_url)) = (text("/webtransport/url"), text("/websocket/url")) else {
        return Err(Error::Relay(format!(
            "/api/config lacks the transport URLs: {config}"
        )));
    };
    let hashes = config
        .pointer("/webtransport/certificate_hashes")
        .and_then(Value::as_array)
        .map(|hashes| {
            hashes
                .iter()
                .filter_map(|h| {
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(h.get("value")?.as_str()?)
                        .ok()?;
                    <[u8; 32]>::try_from(b).ok()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Target {
        http: addr,
        ws_addr: http::resolve(&ws_url).await?,
        ws_url,
        wt_url,
        hashes,
    })
}

/// The relay's counters and gauges (`/metrics`, without histogram buckets).
pub(crate) async fn metrics(addr: SocketAddr) -> Result<Vec<(String, f64)>> {
    let text = http::get(addr, "/metrics", Duration::from_secs(10)).await?;
    Ok(http::prometheus_values(&text))
}

/// The relay binary: given, or next to this binary, or in target/release.
pub(crate) fn find_bin(given: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(Error::Relay(format!("{} is not a file", p.display())))
        };
    }
    let here = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned));
    [here, Some(PathBuf::from("target/release"))]
        .into_iter()
        .flatten()
        .map(|d| d.join("lockstep"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Relay(
                "the relay binary was not found next to lockstep-load or in target/release: \
                 build it with `cargo build --release -p lockstep-relay`, or pass --relay-bin"
                    .into(),
            )
        })
}

/// A relay this tool started; killed when dropped, stopped politely by [`RelayProcess::stop`].
#[derive(Debug)]
pub(crate) struct RelayProcess {
    child: Child,
    pid: u32,
    /// Its stdout and stderr.
    pub(crate) log: PathBuf,
    /// Its configuration file.
    pub(crate) config: PathBuf,
}

impl RelayProcess {
    /// Writes the configuration into `dir`, starts `bin` with it (logging at `log_level`), and
    /// waits for its "ready" line; the relay and its HTTP address.
    pub(crate) async fn start(
        bin: &Path,
        dir: &Path,
        log_level: &str,
    ) -> Result<(RelayProcess, SocketAddr)> {
        let config = dir.join("relay.toml");
        std::fs::write(&config, config_toml()).context(|| format!("write {}", config.display()))?;
        let log = dir.join("relay.log");
        let out = std::fs::File::create(&log).context(|| format!("create {}", log.display()))?;
        let err = out
            .try_clone()
            .context(|| format!("reopen {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&config)
            .env("RUST_LOG", log_level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd.spawn().context(|| format!("start {}", bin.display()))?;
        let Some(pid) = child.id() else {
            return Err(Error::Relay("the relay exited at once".into()));
        };
        let mut relay = RelayProcess {
            child,
            pid,
            log,
            config,
        };
        let addr = relay.wait_ready().await?;
        Ok((relay, addr))
    }

    async fn wait_ready(&mut self) -> Result<SocketAddr> {
        let deadline = Instant::now() + START_WITHIN;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(url) = text.lines().find_map(|l| l.strip_prefix(READY)) {
                return url
                    .trim()
                    .trim_end_matches('/')
                    .split_once("://")
                    .map_or(url, |(_, r)| r)
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| Error::Relay(format!("cannot read the address in {url:?}")));
            }
            if let Some(status) = self.exited() {
                return Err(Error::Relay(format!(
                    "the relay exited ({status}) before it was ready; see {}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Relay(format!(
            "the relay was not ready within {START_WITHIN:?}; see {}",
            self.log.display()
        )))
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How it exited, if it has.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// SIGTERM (through `kill`, by its pid), up to [`STOP_GRACE`] to exit, then SIGKILL.
    pub(crate) async fn stop(mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            Command::new("kill")
                .arg("-TERM")
                .arg(self.pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status(),
        )
        .await;
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_ok()
        {
            return;
        }
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_is_one_the_relay_accepts() {
        let dir = std::env::temp_dir().join(format!("lockstep-load-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("relay.toml");
        std::fs::write(&path, config_toml()).unwrap();
        let c = lockstep_relay::config::Config::from_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.http.port(), 0);
        assert_eq!(c.webtransport.port(), 0);
        assert!(c.http.ip().is_loopback());
        assert_eq!(c.limits.room_capacity, 100_000);
        assert!(c.limits.connections_per_ip >= 1_000_000);
        assert!(c.limits.control_per_sec >= 1e6 && c.limits.chat_per_sec >= 1e6);
        assert!(c.limits.datagrams_per_sec >= 1e6);
    }
}
