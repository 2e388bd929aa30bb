//! The little HTTP this tool needs: `GET /api/config` and `GET /metrics` from the relay's
//! plain-HTTP port, and the addresses inside URLs.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Context, Error, Result};

/// Largest body read (the relay's `/metrics` is a few tens of KiB).
const MAX_BODY: u64 = 16 << 20;

/// `GET path` from `addr` over HTTP/1.1; the body if the status is 200.
pub(crate) async fn get(addr: SocketAddr, path: &str, within: Duration) -> Result<String> {
    let fetch = async {
        let mut s = TcpStream::connect(addr)
            .await
            .context(|| format!("connect to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes())
            .await
            .context(|| format!("send to {addr}"))?;
        let mut raw = Vec::new();
        s.take(MAX_BODY)
            .read_to_end(&mut raw)
            .await
            .context(|| format!("read from {addr}"))?;
        Ok::<_, Error>(raw)
    };
    let raw = tokio::time::timeout(within, fetch)
        .await
        .map_err(|_| Error::Relay(format!("GET {path} from {addr} timed out")))??;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(Error::Relay(format!("GET {path}: no HTTP header")));
    };
    if !head.starts_with("HTTP/1.1 200") {
        return Err(Error::Relay(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

/// Decodes a chunked HTTP body.
pub(crate) fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    // At most one round per chunk, and every round consumes input.
    for _ in 0..body.len() {
        let Some((size, rest)) = body.split_once("\r\n") else {
            break;
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The `host:port` of a URL such as `https://127.0.0.1:4433/lockstep`.
pub(crate) fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The socket address of a URL's authority, resolving a host name if needed.
pub(crate) async fn resolve(url: &str) -> Result<SocketAddr> {
    let authority = authority(url);
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
    fn urls_give_their_authority() {
        assert_eq!(
            authority("https://127.0.0.1:4433/lockstep"),
            "127.0.0.1:4433"
        );
        assert_eq!(authority("ws://[::1]:80/ws"), "[::1]:80");
        assert_eq!(authority("127.0.0.1:8080"), "127.0.0.1:8080");
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("zz\r\n"), "");
    }

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
