//! The little HTTP the benchmarks need from a relay they drive: `GET /api/config` and
//! `GET /metrics` on its plain-HTTP port, and the addresses inside the URLs it publishes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response read (the relay's `/metrics` is a few tens of KiB).
const MAX_RESPONSE: u64 = 16 << 20;

/// Why a `GET` failed, explained for a benchmark's report.
#[derive(Debug, thiserror::Error)]
#[error("GET {path} from {addr}: {reason}")]
pub struct HttpError {
    /// The path asked for.
    pub path: String,
    /// The server asked.
    pub addr: SocketAddr,
    /// What went wrong.
    pub reason: String,
}

/// `GET path` from `addr` over HTTP/1.1 within `within`; the body if the status is 200.
pub async fn get(addr: SocketAddr, path: &str, within: Duration) -> Result<String, HttpError> {
    let fail = |reason: String| HttpError {
        path: path.to_owned(),
        addr,
        reason,
    };
    let fetch = async {
        let mut s = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        s.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(within, fetch)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(fail("no HTTP header".into()));
    };
    if !head.starts_with("HTTP/1.1 200") {
        return Err(fail(head.lines().next().unwrap_or("").to_owned()));
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
fn dechunk(mut body: &str) -> String {
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
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
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
}
