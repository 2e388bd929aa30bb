//! The little HTTP this tool needs: `GET /api/config` and `GET /metrics` from the relay's
//! plain-HTTP port, and the addresses inside URLs.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Context, Error, Result};

/// `GET path` from `addr`; the body if the status is 200.
pub(crate) async fn get(addr: SocketAddr, path: &str, within: Duration) -> Result<String> {
    crate::http::get(addr, path, within)
        .await
        .map_err(|e| Error::Relay(e.to_string()))
}

/// The socket address of a URL's authority, resolving a host name if needed.
pub(crate) async fn resolve(url: &str) -> Result<SocketAddr> {
    let authority = crate::http::authority(url);
    if let Ok(addr) = authority.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(authority)
        .await
        .context(|| format!("resolve {authority}"))?
        .next()
        .ok_or_else(|| Error::Relay(format!("{authority} resolves to no address")))
}

/// `name{labels} value` lines of a Prometheus text page, without comments and histogram
/// buckets.
pub(crate) fn prometheus_values(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            if name.contains("_bucket{") {
                return None;
            }
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_lines_parse() {
        let text = "# HELP x y\n# TYPE x counter\nlockstep_rooms 12\n\
            lockstep_messages_out_total{type=\"pong\"} 3456\n\
            lockstep_rtt_seconds_bucket{le=\"0.001\"} 9\nlockstep_rtt_seconds_sum 0.5\n";
        assert_eq!(
            prometheus_values(text),
            vec![
                ("lockstep_rooms".to_owned(), 12.0),
                (
                    "lockstep_messages_out_total{type=\"pong\"}".to_owned(),
                    3456.0
                ),
                ("lockstep_rtt_seconds_sum".to_owned(), 0.5),
            ]
        );
    }
}
