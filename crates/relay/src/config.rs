//! The relay's settings: defaults, an optional TOML file, environment variables and flags (in
//! rising precedence; the CLI merges the last two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::auth::{AuthConfig, VerifyKey};

/// Why the configuration is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's description.
        message: String,
    },
    /// A setting's value is unusable.
    #[error("invalid setting `{setting}`: {message}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// Why.
        message: String,
    },
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// All settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP address for the page, WebSocket and HTTP API (port 0: any free port).
    pub http: SocketAddr,
    /// UDP address for WebTransport (port 0: any free port).
    pub webtransport: SocketAddr,
    /// Host name or address clients use in URLs (default: the bound address).
    pub public_host: Option<String>,
    /// PEM certificate chain for WebTransport (default: a generated self-signed one).
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// Where generated certificates are written (nothing is written when absent).
    pub certs_dir: Option<PathBuf>,
    /// Serve the page, API and WebSocket over TLS (HTTPS/WSS) with `cert` and `key`.
    pub https: bool,
    /// Origins browser pages may connect from (empty: any).
    pub allowed_origins: Vec<String>,
    /// Hosts media URLs may point at (empty: any); `*.example.org` covers subdomains.
    pub media_hosts: Vec<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Tokens.
    pub auth: AuthSettings,
    /// Limits.
    pub limits: LimitSettings,
    /// Redis shared by several relays (`redis://host:port/db`); none: one relay, everything
    /// in memory (a restart loses its rooms).
    pub redis: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            webtransport: SocketAddr::from(([127, 0, 0, 1], 4433)),
            public_host: None,
            cert: None,
            key: None,
            certs_dir: None,
            https: false,
            allowed_origins: Vec::new(),
            media_hosts: Vec::new(),
            log_format: LogFormat::Pretty,
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            redis: None,
        }
    }
}

/// Token settings (see docs/AUTH.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Refuse clients without a valid token.
    pub required: bool,
    /// `HS256`, `EdDSA` or `RS256`: pinned here, never taken from a token.
    pub algorithm: String,
    /// HS256 shared secret.
    pub secret: Option<String>,
    /// PEM public key file for EdDSA or RS256.
    pub public_key: Option<PathBuf>,
    /// Required `aud` (none: not checked).
    pub audience: Option<String>,
    /// Required `iss` (none: not checked).
    pub issuer: Option<String>,
    /// Whether anonymous clients may create rooms.
    pub anonymous_may_create_rooms: bool,
    /// Clock leeway for `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            required: false,
            algorithm: "HS256".into(),
            secret: None,
            public_key: None,
            audience: Some(crate::auth::DEFAULT_AUDIENCE.into()),
            issuer: None,
            anonymous_may_create_rooms: true,
            leeway_secs: crate::auth::DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Control messages per second per client.
    pub control_per_sec: f64,
    /// Control message burst.
    pub control_burst: f64,
    /// Datagram-class messages per second per client.
    pub datagrams_per_sec: f64,
    /// Datagram burst.
    pub datagram_burst: f64,
    /// Connections one IP address may hold.
    pub connections_per_ip: u32,
    /// Rooms one user may own.
    pub rooms_per_user: u32,
    /// Members per room.
    pub room_capacity: u32,
    /// How long a dropped member may resume, seconds.
    pub resume_window_secs: u64,
    /// How long an empty room lives, seconds.
    pub room_idle_secs: u64,
    /// Chat lines and reactions per second per member.
    pub chat_per_sec: f64,
    /// Chat burst.
    pub chat_burst: f64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            control_per_sec: 20.0,
            control_burst: 40.0,
            datagrams_per_sec: 60.0,
            datagram_burst: 120.0,
            connections_per_ip: 32,
            rooms_per_user: 5,
            room_capacity: lockstep_proto::limits::DEFAULT_ROOM_CAPACITY,
            resume_window_secs: 90,
            room_idle_secs: 600,
            chat_per_sec: 0.5,
            chat_burst: 5.0,
        }
    }
}

impl Config {
    /// Reads a TOML file; settings it does not name keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The token verification these settings describe; checks the key now, not at the first
    /// hello.
    pub fn auth_config(&self) -> Result<AuthConfig, ConfigError> {
        let a = &self.auth;
        let key = match a.algorithm.to_ascii_uppercase().as_str() {
            "HS256" => a.secret.as_ref().map(|s| VerifyKey::Hs256 {
                secret: s.as_bytes().to_vec(),
            }),
            alg @ ("EDDSA" | "RS256") => {
                let public_pem = match &a.public_key {
                    Some(path) => {
                        Some(std::fs::read(path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?)
                    }
                    None => None,
                };
                public_pem.map(|public_pem| {
                    if alg == "RS256" {
                        VerifyKey::Rs256 { public_pem }
                    } else {
                        VerifyKey::EdDsa { public_pem }
                    }
                })
            }
            other => {
                return Err(ConfigError::Invalid {
                    setting: "auth.algorithm",
                    message: format!("`{other}` is not HS256, EdDSA or RS256"),
                });
            }
        };
        if let Some(key) = &key {
            key.check().map_err(|e| ConfigError::Invalid {
                setting: "auth key",
                message: e.to_string(),
            })?;
        }
        if a.required && key.is_none() {
            return Err(ConfigError::Invalid {
                setting: "auth.required",
                message:
                    "tokens are required but no key is configured (auth.secret or auth.public_key)"
                        .into(),
            });
        }
        Ok(AuthConfig {
            required: a.required,
            key,
            audience: a.audience.clone(),
            issuer: a.issuer.clone(),
            leeway_secs: a.leeway_secs,
            anonymous_may_create_rooms: a.anonymous_may_create_rooms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let dir = std::env::temp_dir().join(format!("lockstep-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("relay.toml");
        std::fs::write(
            &path,
            "http = \"127.0.0.1:0\"\nmedia_hosts = [\"jellyfin.example.org\"]\n[limits]\nroom_capacity = 50\n",
        )
        .unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.http.port(), 0);
        assert_eq!(c.webtransport.port(), 4433);
        assert_eq!(c.limits.room_capacity, 50);
        assert_eq!(c.limits.rooms_per_user, 5);
        std::fs::write(&path, "htp = 1\n").unwrap();
        assert!(matches!(
            Config::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn required_auth_needs_a_key() {
        let mut c = Config::default();
        c.auth.required = true;
        assert!(c.auth_config().is_err());
        c.auth.secret = Some("s3cret".into());
        assert!(c.auth_config().unwrap().required);
        c.auth.algorithm = "none".into();
        assert!(c.auth_config().is_err());
    }
}
