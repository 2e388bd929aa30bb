//! lockstep under the same script: the relay (`lockstep`) and one `lockstep-mpv` per player,
//! WebTransport through the UDP link emulator and WebSocket through the TCP one.
//!
//! The relay listens on `127.0.0.1:0` (HTTP and WebSocket) and `127.0.0.1:0/udp`
//! (WebTransport) and prints its address; `GET /api/config` gives the WebTransport and
//! WebSocket URLs. Players fetch `/api/config` directly (for the certificate hashes) but are
//! told to use the proxies' addresses for both transports (`--webtransport`, `--websocket`).
//! Player 1 creates the room (`--create`, it prints `room: <id> invite: <code>`), the others
//! `--join` it. `lockstep-mpv` starts mpv itself, headless, with the IPC socket the bench
//! also connects to.
//!
//! After the script the relay's `/metrics` give the transport each player used and the
//! clock-offset error bound the players reported (half the best ping round trip): the true
//! offset error cannot be measured from outside, since neither side publishes its clock's
//! origin. `lockstep-mpv`'s own log lines `correction: seek` / `correction: rate` are counted
//! as a cross-check of the seeks and rate changes mpv announced.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use super::link::{TcpProxy, UdpProxy, Upstream};
use super::mpv::Mpv;
use super::process::{MpvGuard, Proc};
use super::report::RunResult;
use super::sampler::PositionSource;
use super::scenario::{self, FAST_CLOCK_ARG};
use super::syncplay::wait_loaded;
use super::{Context, Result, err};
use crate::RunContext;

/// `GET path` from `addr`; the body if the status is 200.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    match lockstep_benches::http::get(addr, path, Duration::from_secs(5)).await {
        Ok(body) => Ok(body),
        Err(e) => err(e.to_string()),
    }
}

/// The `host:port` of a URL such as `https://127.0.0.1:4433/lockstep`.
fn url_addr(url: &str) -> Result<SocketAddr> {
    lockstep_benches::http::authority(url)
        .parse()
        .or_else(|_| err(format!("not an IP address and port: {url}")))
}

/// The relay and its addresses.
struct Relay {
    proc: Proc,
    http: SocketAddr,
    webtransport: SocketAddr,
    websocket: SocketAddr,
}

impl Relay {
    async fn start(bin: &Path, dir: &Path) -> Result<Relay> {
        let mut cmd = Command::new(bin);
        cmd.args(["--http", "127.0.0.1:0", "--webtransport", "127.0.0.1:0"])
            .env("NO_COLOR", "1");
        let mut proc = Proc::spawn("lockstep relay", cmd, &dir.join("relay.log"), false)?;
        let http = proc
            .wait_line(Duration::from_secs(20), |l| {
                l.strip_prefix("lockstep relay ready: open ")
                    .and_then(|u| url_addr(u.trim()).ok())
            })
            .await?;
        let config: Value = serde_json::from_str(&http_get(http, "/api/config").await?)
            .or_else(|e| err(format!("/api/config is not JSON: {e}")))?;
        let text = |p: &str| config.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let (Some(wt), Some(ws)) = (text("/webtransport/url"), text("/websocket/url")) else {
            return err(format!("/api/config lacks the transport URLs: {config}"));
        };
        if text("/webtransport/certificate_hashes/0/value").is_none() {
            return err("/api/config publishes no certificate hash");
        }
        Ok(Relay {
            proc,
            http,
            webtransport: url_addr(&wt)?,
            websocket: url_addr(&ws)?,
        })
    }
}

/// Metrics the relay keeps about its clients, from `/metrics` (Prometheus text).
fn relay_details(metrics: &str) -> Value {
    let value = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    // Upper bounds of the bucket holding the p50 and p95 of a histogram.
    let quantiles = |name: &str| -> Value {
        let count = value(&format!("{name}_count")).unwrap_or(0.0);
        let sum = value(&format!("{name}_sum")).unwrap_or(0.0);
        let buckets: Vec<(String, f64)> = metrics
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&format!("{name}_bucket{{le=\""))?;
                let (le, n) = rest.split_once("\"} ")?;
                Some((le.to_owned(), n.trim().parse().ok()?))
            })
            .collect();
        let bound = |q: f64| {
            buckets
                .iter()
                .find(|(_, n)| *n >= q * count)
                .map(|(le, _)| le.clone())
        };
        json!({
            "reports": count,
            "mean_ms": (count > 0.0).then(|| sum / count * 1e3),
            "p50_at_most_s": (count > 0.0).then(|| bound(0.5)).flatten(),
            "p95_at_most_s": (count > 0.0).then(|| bound(0.95)).flatten(),
        })
    };
    json!({
        "connections": {
            "webtransport": value("lockstep_connections_total{transport=\"webtransport\"}"),
            "websocket": value("lockstep_connections_total{transport=\"websocket\"}"),
        },
        "clock_offset_error_bound": quantiles("lockstep_clock_offset_error_seconds"),
        "rtt": quantiles("lockstep_rtt_seconds"),
        "reported_drift": quantiles("lockstep_drift_seconds"),
        "room_seeks": value("lockstep_seeks_total"),
        "room_rate_changes": value("lockstep_rate_changes_total"),
    })
}

/// Counts `lockstep-mpv`'s correction lines in its log.
fn corrections(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let count = |p: &str| text.lines().filter(|l| l.contains(p)).count();
    (count("correction: seek"), count("correction: rate"))
}

/// Runs the script with lockstep under `ctx`'s condition.
pub(crate) async fn run(ctx: &RunContext, result: &mut RunResult) -> Result<()> {
    let Some(bins) = &ctx.lockstep else {
        return err("lockstep binaries not found");
    };
    let dir = ctx.dir.join(format!("lockstep-{}", ctx.condition.name));
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
    let lifetime = ctx.lifetime();
    let relay = Relay::start(&bins.relay, &dir).await?;
    let udp = UdpProxy::start(relay.webtransport, ctx.condition.link, ctx.seed, lifetime)
        .context(|| "start the UDP proxy".into())?;
    let tcp = TcpProxy::start(
        Upstream::Tcp(relay.websocket),
        ctx.condition.link,
        ctx.seed ^ 1,
        lifetime,
    )
    .context(|| "start the TCP proxy".into())?;
    let mut procs: Vec<Proc> = Vec::new();
    let mut guards: Vec<MpvGuard> = Vec::new();
    let mut players: Vec<Arc<Mpv>> = Vec::new();
    let outcome = async {
        let mut room = String::new();
        for i in 0..ctx.players {
            let name = format!("P{}", i + 1);
            let ipc = dir.join(format!("{name}.sock"));
            let mut cmd = Command::new(&bins.mpv);
            cmd.arg("--relay")
                .arg(format!("http://{}", relay.http))
                .arg("--webtransport")
                .arg(format!("https://{}/lockstep", udp.addr()))
                .arg("--websocket")
                .arg(format!("ws://{}/ws", tcp.addr()))
                .args(["--name", &name])
                .arg("--ipc-socket")
                .arg(&ipc);
            if let Some(t) = &ctx.lockstep_transport {
                cmd.args(["--transport", t]);
            }
            if i == 0 {
                cmd.args(["--create", "bench"]);
            } else {
                cmd.args(["--join", &room]);
            }
            if ctx.condition.fast_player && i + 1 == ctx.players {
                cmd.arg(format!("--mpv-arg={FAST_CLOCK_ARG}"));
            }
            cmd.arg(&ctx.clip).env("NO_COLOR", "1");
            let mut proc = Proc::spawn(
                &format!("lockstep-mpv {name}"),
                cmd,
                &dir.join(format!("{name}.log")),
                false,
            )?;
            let id = proc
                .wait_line(Duration::from_secs(30), |l| {
                    let rest = l.strip_prefix("room: ")?;
                    Some(rest.split_whitespace().next()?.to_owned())
                })
                .await?;
            if i == 0 {
                room = id;
            }
            procs.push(proc);
            let mpv = Mpv::connect(&ipc, Duration::from_secs(30)).await?;
            guards.push(MpvGuard(mpv.get_f64("pid").await?.map(|pid| pid as u32)));
            players.push(Arc::new(mpv));
        }
        wait_loaded(&players).await?;
        // The clock estimate's join burst and the follower's catch-up.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let source = PositionSource::detect(&players[0]).await?;
        result.position_source = Some(source.property().into());
        println!(
            "{} all {} players in room {room}; script starts",
            ctx.label,
            players.len()
        );
        let holds = scenario::drive(&ctx.label, &players, &ctx.steps, source).await?;
        result.set_holds(&holds);
        Ok::<(), super::Error>(())
    }
    .await;
    result.link.insert("udp".into(), udp.stats());
    result.link.insert("tcp".into(), tcp.stats());
    let mut details = match http_get(relay.http, "/metrics").await {
        Ok(m) => relay_details(&m),
        Err(e) => json!({ "metrics_error": e.to_string() }),
    };
    for p in &players {
        let _ = p.request(json!(["quit"])).await;
    }
    let logs: Vec<_> = procs.iter().map(|p| p.log.clone()).collect();
    for p in procs {
        p.wait_or_stop(Duration::from_secs(3)).await;
    }
    drop(guards);
    let counted: Vec<(usize, usize)> = logs.iter().map(|l| corrections(l)).collect();
    if let Some(d) = details.as_object_mut() {
        d.insert(
            "logged_corrections".into(),
            json!({
                "seeks": counted.iter().map(|c| c.0).sum::<usize>(),
                "rates": counted.iter().map(|c| c.1).sum::<usize>(),
                "per_player": counted,
            }),
        );
    }
    result.details = details;
    relay.proc.stop(Duration::from_secs(3)).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_chunks_and_metrics_parse() {
        assert_eq!(
            url_addr("https://127.0.0.1:4433/lockstep").unwrap(),
            "127.0.0.1:4433".parse().unwrap()
        );
        assert_eq!(url_addr("http://127.0.0.1:80/").unwrap().port(), 80);
        assert!(url_addr("https://example.org/x").is_err());
        let m = "lockstep_connections_total{transport=\"webtransport\"} 2\n\
                 lockstep_clock_offset_error_seconds_bucket{le=\"0.0001\"} 1\n\
                 lockstep_clock_offset_error_seconds_bucket{le=\"0.00025\"} 10\n\
                 lockstep_clock_offset_error_seconds_bucket{le=\"+Inf\"} 10\n\
                 lockstep_clock_offset_error_seconds_sum 0.0015\n\
                 lockstep_clock_offset_error_seconds_count 10\n";
        let d = relay_details(m);
        assert_eq!(d["connections"]["webtransport"], 2.0);
        assert_eq!(d["clock_offset_error_bound"]["p50_at_most_s"], "0.00025");
        assert!((d["clock_offset_error_bound"]["mean_ms"].as_f64().unwrap() - 0.15).abs() < 1e-9);
    }
}
