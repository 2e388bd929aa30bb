//! The web client the relay serves: the demo page at `/`, the bundles built from `web/` (committed
//! in `web/dist/`, embedded here so a relay built without Node serves a working page), and a
//! built-in test clip so a room can be tried without any media of one's own.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The demo page: a shell the bundle fills in.
pub const INDEX_HTML: &str = include_str!("index.html");
/// The demo page's script (the web client, its overlay and the lobby).
pub const DEMO_JS: &str = include_str!("../../../web/dist/lockstep-demo.js");
/// The overlay injected into jellyfin-web (also served by the Jellyfin plugin).
pub const JELLYFIN_JS: &str = include_str!("../../../web/dist/lockstep-jellyfin.js");
/// The web client as an ES module, for pages that embed lockstep themselves.
pub const LIBRARY_JS: &str = include_str!("../../../web/dist/lockstep.mjs");
/// 90 s of VP9/Opus test pattern with a burnt-in clock (`web/media/make-test-clip.sh`).
pub const TEST_CLIP: &[u8] = include_bytes!("../../../web/media/test-clip.webm");
/// Where the test clip is served.
pub const TEST_CLIP_PATH: &str = "/media/test-clip.webm";

/// A script response. Revalidated on every load (`no-cache`), so a relay upgrade never runs an
/// old client against a new relay; the ETag keeps that cheap.
pub fn script(body: &'static str, headers: &HeaderMap) -> Response {
    let etag = etag(body.as_bytes());
    if not_modified(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "text/javascript; charset=utf-8".to_string(),
            ),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, etag),
            // The Jellyfin overlay and embedding pages load these from other origins.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_string()),
        ],
        body,
    )
        .into_response()
}

/// The test clip, with byte ranges: browsers seek in media by range requests and refuse to
/// seek at all in a resource served without `Accept-Ranges`.
pub fn test_clip(headers: &HeaderMap) -> Response {
    byte_ranges(TEST_CLIP, "video/webm", headers)
}

fn byte_ranges(data: &'static [u8], content_type: &'static str, headers: &HeaderMap) -> Response {
    let total = data.len();
    let common = |status: StatusCode| {
        let mut r = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            r = r.header(header::CONTENT_RANGE, format!("bytes */{total}"));
        }
        r
    };
    let Some(range) = headers.get(header::RANGE) else {
        return common(StatusCode::OK)
            .body(Body::from(data))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    match parse_range(range, total) {
        Some((start, end)) => common(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            )
            .body(Body::from(&data[start..=end]))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        None => common(StatusCode::RANGE_NOT_SATISFIABLE)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

/// One `bytes=` range (the only form browsers send for media), inclusive, within `total`.
/// Several ranges, other units and unsatisfiable ranges give `None`.
fn parse_range(value: &HeaderValue, total: usize) -> Option<(usize, usize)> {
    let spec = value.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last N bytes.
        let n: usize = last.parse().ok()?;
        if n == 0 {
            return None;
        }
        return Some((total.saturating_sub(n), total - 1));
    }
    let start: usize = first.parse().ok()?;
    if start >= total {
        return None;
    }
    let end = if last.is_empty() {
        total - 1
    } else {
        let end: usize = last.parse().ok()?;
        if end < start {
            return None;
        }
        end.min(total - 1)
    };
    Some((start, end))
}

/// A strong validator: FNV-1a over the bytes (the bundles are fixed at build time).
fn etag(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str, total: usize) -> Option<(usize, usize)> {
        parse_range(&HeaderValue::from_str(s).unwrap(), total)
    }

    #[test]
    fn ranges_as_browsers_send_them() {
        assert_eq!(range("bytes=0-", 100), Some((0, 99)));
        assert_eq!(range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(range("bytes=-200", 100), Some((0, 99)));
    }

    #[test]
    fn unsatisfiable_or_unsupported_ranges() {
        assert_eq!(range("bytes=100-", 100), None);
        assert_eq!(range("bytes=20-10", 100), None);
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
        assert_eq!(range("bytes=-0", 100), None);
        assert_eq!(range("bytes=x-1", 100), None);
    }

    #[test]
    fn the_embedded_client_is_a_real_bundle() {
        assert!(DEMO_JS.len() > 10_000, "the demo bundle looks empty");
        assert!(
            JELLYFIN_JS.len() > 10_000,
            "the Jellyfin bundle looks empty"
        );
        assert!(INDEX_HTML.contains("/assets/lockstep-demo.js"));
        // A WebM file starts with the EBML magic.
        assert_eq!(&TEST_CLIP[..4], &[0x1a, 0x45, 0xdf, 0xa3]);
    }
}
