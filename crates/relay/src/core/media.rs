//! The media allowlist: which hosts a room's media URL may point at.
//!
//! Like Syncplay's trusted domains: a relay admin decides where members' players may be sent,
//! so a room cannot make everyone's browser fetch from an arbitrary server.

/// Hosts media URLs may use. Empty: any host.
#[derive(Debug, Clone, Default)]
pub struct MediaAllowlist {
    hosts: Vec<String>,
}

impl MediaAllowlist {
    /// An allowlist of host names: `example.org` matches that host only, `*.example.org`
    /// matches its subdomains (and itself).
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        MediaAllowlist {
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether any host is allowed.
    pub fn is_open(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Whether `url` is an http(s) URL whose host is allowed.
    pub fn allows(&self, url: &str) -> bool {
        let Some(host) = host_of(url) else {
            return false;
        };
        if self.hosts.is_empty() {
            return true;
        }
        self.hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => host == domain || host.ends_with(&format!(".{domain}")),
                None => host == *allowed,
            })
    }
}

/// The lower-cased host of an http or https URL.
fn host_of(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    // Drop credentials: `user:pass@host` must not pass as `user`.
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        host_port.split(':').next()?.to_string()
    };
    if host.is_empty() { None } else { Some(host) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_hosts_and_subdomains() {
        let list = MediaAllowlist::new(["jellyfin.example.org".into(), "*.cdn.example".into()]);
        assert!(list.allows("https://jellyfin.example.org/Videos/1/stream"));
        assert!(list.allows("https://JELLYFIN.example.org:8096/x"));
        assert!(list.allows("https://a.b.cdn.example/v.mp4"));
        assert!(list.allows("https://cdn.example/v.mp4"));
        assert!(!list.allows("https://evil.example.org/x"));
        assert!(!list.allows("https://jellyfin.example.org.evil.net/x"));
        assert!(!list.allows("https://jellyfin.example.org@evil.net/x"));
        assert!(!list.allows("ftp://jellyfin.example.org/x"));
        assert!(!list.allows("javascript:alert(1)"));
    }

    #[test]
    fn an_empty_list_allows_any_http_url() {
        let list = MediaAllowlist::default();
        assert!(list.allows("http://127.0.0.1:8080/clip.mp4"));
        assert!(list.allows("https://[::1]:8080/clip.mp4"));
        assert!(!list.allows("file:///etc/passwd"));
    }
}
