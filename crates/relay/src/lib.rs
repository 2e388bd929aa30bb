//! The lockstep relay: rooms, clock sync and playback control over WebTransport and WebSocket.
//!
//! The relay's behaviour lives in a sans-IO core ([`core::RelayCore`]) driven by one task;
//! the transports ([`wt`], [`ws`]) and the HTTP side ([`http`]) are thin shells that move
//! bytes and time in and out of it. [`start`] runs everything on a tokio runtime and returns a
//! handle with the bound addresses:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = lockstep_relay::config::Config::default();
//! config.http = "127.0.0.1:0".parse()?; // any free port
//! config.webtransport = "127.0.0.1:0".parse()?;
//! let relay = lockstep_relay::start(config).await?;
//! println!("open {}", relay.page_url());
//! relay.shutdown().await;
//! # Ok(()) }
//! ```

pub mod assets;
pub mod auth;
pub mod backplane;
pub mod certs;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod core;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod persist;
pub mod queue;
pub mod server;
pub mod session;
pub mod sockets;
pub mod takeover;
pub mod testing;
pub mod tunnel;
pub mod ws;
pub mod wt;

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, ServerConfig};

use crate::certs::{CertBundle, CertStore};
use crate::clock::ServerClock;
use crate::config::{Config, ConfigError};
use crate::core::{CoreConfig, MediaAllowlist, RelayCore};
use crate::metrics::Metrics;
use crate::server::{ConnLimits, CoreEvent, Shared};

/// Why the relay could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The certificate could not be made or loaded.
    #[error("certificate: {0}")]
    Cert(#[from] certs::CertError),
    /// An address could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Something else in the QUIC set-up.
    #[error("webtransport: {0}")]
    WebTransport(String),
    /// The backplane's configuration is unusable (a Redis that is down is not an error).
    #[error(transparent)]
    Backplane(#[from] backplane::BackplaneError),
}

/// A running relay.
pub struct Relay {
    http_addr: SocketAddr,
    webtransport_addr: SocketAddr,
    shared: Arc<Shared>,
    certs: Arc<RwLock<CertStore>>,
    endpoint: Arc<Endpoint<Server>>,
    stop_http: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    http_task: JoinHandle<()>,
    config: Config,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("http_addr", &self.http_addr)
            .field("webtransport_addr", &self.webtransport_addr)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// The HTTP (page, WebSocket, API) address actually bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The WebTransport (UDP) address actually bound.
    pub fn webtransport_addr(&self) -> SocketAddr {
        self.webtransport_addr
    }

    /// The page a person opens.
    pub fn page_url(&self) -> String {
        let scheme = if self.config.https { "https" } else { "http" };
        format!("{scheme}://{}/", http::authority(self.http_addr))
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// The certificate hashes published now.
    pub fn certificate_hashes(&self) -> Vec<certs::CertHash> {
        self.certs
            .read()
            .map(|c| c.published_hashes(SystemTime::now()))
            .unwrap_or_default()
    }

    /// Rotates a self-signed certificate now, without waiting for its time: the next one is
    /// made, published, and served; live sessions stay connected. (A configured certificate is
    /// the operator's to replace.)
    pub async fn rotate_certificate(&self) -> Result<(), StartError> {
        rotate_once(
            &self.endpoint,
            &self.certs,
            &self.config,
            self.webtransport_addr,
            Duration::ZERO,
        )
        .await
    }

    /// Stops gracefully: every client is told `going_away` (come back in 2 s with your resume
    /// token), queues get a moment to drain, then listeners close.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        let told = self
            .shared
            .core
            .send(CoreEvent::Shutdown {
                reconnect_after_ms: 2_000,
                done,
            })
            .await
            .is_ok();
        if told {
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
        // The writers flush the going-away messages and close their connections.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = self.stop_http.send(true);
        // Stop accepting before closing: wtransport's accept panics on a closed endpoint.
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.endpoint
            .close(wtransport::VarInt::from_u32(0x1001), b"relay shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), self.http_task).await;
    }
}

/// QUIC settings: few streams (a session needs its HTTP/3 request and control streams plus
/// ours), small windows (messages are small), keepalive and idle timeout.
/// Where a WebTransport server config binds: a fresh socket at start, the address it already
/// has on a certificate reload (not rebound).
enum UdpBind {
    Socket(std::net::UdpSocket),
    Address(SocketAddr),
}

fn server_config(bind: UdpBind, bundle: &CertBundle) -> Result<ServerConfig, StartError> {
    let mut transport = wtransport::quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(8u32.into())
        .max_concurrent_uni_streams(8u32.into())
        .stream_receive_window(wtransport::quinn::VarInt::from_u32(64 * 1024))
        .receive_window(wtransport::quinn::VarInt::from_u32(256 * 1024))
        .send_window(256 * 1024)
        .datagram_receive_buffer_size(Some(64 * 1024))
        .datagram_send_buffer_size(64 * 1024)
        // A client that vanishes without closing (a killed tab, a lost network) is noticed
        // within 10 s: presence, host succession and the resume window start from then.
        .keep_alive_interval(Some(Duration::from_secs(3)))
        .max_idle_timeout(Some(
            wtransport::quinn::IdleTimeout::try_from(Duration::from_secs(10))
                .map_err(|e| StartError::WebTransport(e.to_string()))?,
        ));
    let builder = match bind {
        UdpBind::Socket(socket) => ServerConfig::builder().with_bind_socket(socket),
        UdpBind::Address(addr) => ServerConfig::builder().with_bind_address(addr),
    };
    Ok(builder
        .with_custom_transport(bundle.identity.clone_identity(), transport)
        .build())
}

fn load_certificate(config: &Config, now: SystemTime) -> Result<CertBundle, StartError> {
    match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })
            };
            Ok(certs::load_pem(&read(cert)?, &read(key)?)?)
        }
        (None, None) => {
            let mut names: Vec<String> = certs::DEFAULT_SUBJECT_ALT_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect();
            if let Some(host) = &config.public_host {
                names.push(host.clone());
            }
            let ip = config.webtransport.ip().to_string();
            if !names.contains(&ip) && !config.webtransport.ip().is_unspecified() {
                names.push(ip);
            }
            let bundle = certs::self_signed(&names, certs::DEFAULT_SELF_SIGNED_VALIDITY, now)?;
            if let Some(dir) = &config.certs_dir {
                write_generated(dir, &bundle);
            }
            Ok(bundle)
        }
        _ => Err(ConfigError::Invalid {
            setting: "cert/key",
            message: "give both a certificate and its key, or neither".into(),
        }
        .into()),
    }
}

/// TLS for the HTTP side, from the configured certificate and key (ring, as WebTransport).
fn https_config(config: &Config) -> Result<axum_server::tls_rustls::RustlsConfig, StartError> {
    use wtransport::tls::rustls;
    let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
        return Err(ConfigError::Invalid {
            setting: "https",
            message: "HTTPS needs --cert and --key".into(),
        }
        .into());
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })
    };
    let invalid = |message: String| {
        StartError::Config(ConfigError::Invalid {
            setting: "cert/key",
            message,
        })
    };
    let chain = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| invalid(e.to_string()))?
        .ok_or_else(|| invalid("no private key in the key file".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(e.to_string()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(server),
    ))
}

fn write_generated(dir: &std::path::Path, bundle: &CertBundle) {
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join("self-signed.pem"), &bundle.cert_pem))
        .and_then(|()| match &bundle.key_pem {
            Some(key) => std::fs::write(dir.join("self-signed.key.pem"), key),
            None => Ok(()),
        });
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), error = %e, "could not write the generated certificate");
    }
}

/// Starts the relay: binds both listeners, spawns the core and the transports.
pub async fn start(config: Config) -> Result<Relay, StartError> {
    let auth = config.auth_config()?;
    let metrics = Arc::new(Metrics::default());
    // Hosts' wall clocks may disagree; tests make relays that do (LOCKSTEP_TEST_CLOCK_SKEW_US).
    let clock = match std::env::var("LOCKSTEP_TEST_CLOCK_SKEW_US")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        Some(skew) => ServerClock::start_skewed(skew),
        None => ServerClock::start(),
    };
    let limits = &config.limits;
    // The backplane: in memory, or Redis shared with other relays (reachable or not yet).
    let (backplane, inbox) = backplane::AnyBackplane::new(config.redis.as_deref())?;
    let backplane = Arc::new(backplane);
    let member_id_block = member_id_block(&backplane).await;
    let core_config = CoreConfig {
        resume_window_us: i64::try_from(limits.resume_window_secs.saturating_mul(1_000_000))
            .unwrap_or(i64::MAX),
        room_idle_expiry_us: i64::try_from(limits.room_idle_secs.saturating_mul(1_000_000))
            .unwrap_or(i64::MAX),
        room_capacity: limits.room_capacity,
        rooms_per_user: limits.rooms_per_user,
        media_hosts: MediaAllowlist::new(config.media_hosts.iter().cloned()),
        chat_rate: (limits.chat_per_sec, limits.chat_burst),
        member_id_block,
        ..CoreConfig::default()
    };
    let seed: [u8; 32] = rand::random();
    let core = RelayCore::new(core_config, seed, metrics.clone());
    let (core_tx, core_rx) = mpsc::channel(server::CORE_CHANNEL);
    let shared = Arc::new(Shared::new(
        metrics,
        clock,
        auth,
        core_tx,
        ConnLimits {
            control: (limits.control_per_sec, limits.control_burst),
            datagram: (limits.datagrams_per_sec, limits.datagram_burst),
            per_ip: limits.connections_per_ip,
        },
        config.allowed_origins.clone(),
    ));
    let id = relay_id();
    let mut tasks = Vec::new();
    // With Redis, rooms are stored for another relay to take over.
    let pending = match backplane.as_ref() {
        backplane::AnyBackplane::Redis(_) => {
            let pending = Arc::new(persist::Pending::default());
            tasks.push(tokio::spawn(persist::write(
                id.clone(),
                pending.clone(),
                backplane.clone(),
                member_id_block,
                shared.core.clone(),
            )));
            Some(pending)
        }
        backplane::AnyBackplane::Memory(_) => None,
    };
    let snapshots = pending
        .clone()
        .map(|p| persist::Snapshotter::new(id.clone(), p));
    tasks.push(tokio::spawn(server::run_core(
        core,
        core_rx,
        clock,
        snapshots,
        shared.clone(),
    )));

    // WebTransport.
    let bundle = load_certificate(&config, SystemTime::now())?;
    let wt_bind_error = |source| StartError::Bind {
        what: "webtransport",
        addr: config.webtransport,
        source,
    };
    let socket = sockets::udp_socket(config.webtransport).map_err(wt_bind_error)?;
    let endpoint = Endpoint::server(server_config(UdpBind::Socket(socket), &bundle)?)
        .map_err(wt_bind_error)?;
    let webtransport_addr = endpoint
        .local_addr()
        .map_err(|e| StartError::WebTransport(e.to_string()))?;
    let endpoint = Arc::new(endpoint);
    let certs = Arc::new(RwLock::new(CertStore::new(bundle)));
    tasks.push(tokio::spawn(wt::serve(endpoint.clone(), shared.clone())));
    tasks.push(tokio::spawn(rotate_certificates(
        endpoint.clone(),
        certs.clone(),
        config.clone(),
        webtransport_addr,
    )));

    // HTTP and WebSocket (over TLS when asked).
    let bind_error = |source| StartError::Bind {
        what: "http",
        addr: config.http,
        source,
    };
    let listener = sockets::tcp_listener(config.http).map_err(bind_error)?;
    let http_addr = listener.local_addr().map_err(bind_error)?;
    let tls = if config.https {
        Some(https_config(&config)?)
    } else {
        None
    };
    let host = |addr: SocketAddr| match &config.public_host {
        Some(h) => format!("{h}:{}", addr.port()),
        None => http::authority(addr),
    };
    let webtransport_url = format!("https://{}{}", host(webtransport_addr), wt::PATH);
    let websocket_url = format!(
        "{}://{}/ws",
        if config.https { "wss" } else { "ws" },
        host(http_addr)
    );
    let cluster = {
        let (id_, ws, wt, certs) = (
            id.clone(),
            websocket_url.clone(),
            webtransport_url.clone(),
            certs.clone(),
        );
        // How clients reach this relay, as the other relays list it (hashes rotate).
        let info = move || cluster::wire::RelayInfo {
            id: id_.clone(),
            websocket: ws.clone(),
            webtransport: wt.clone(),
            certificate_hashes: certs
                .read()
                .map(|c| c.published_hashes(SystemTime::now()))
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.value)
                .collect(),
        };
        Arc::new(cluster::Cluster::new(id, backplane.clone(), clock, info))
    };
    tasks.push(tokio::spawn(cluster::run(cluster.clone(), inbox)));
    if pending.is_some() {
        let tunnels = tunnel::Tunnels::start(cluster.clone(), backplane.clone(), &shared);
        cluster.set_tunnels(tunnels.clone());
        let _ = shared.tunnels.set(tunnels);
    }
    if let Some(pending) = pending {
        let _ = shared.takeover.set(Arc::new(takeover::Takeover::new(
            cluster.clone(),
            backplane.clone(),
            pending,
            shared.core.clone(),
        )));
    }
    let state = http::HttpState {
        shared: shared.clone(),
        certs: certs.clone(),
        cluster: cluster.clone(),
        webtransport_url,
        websocket_url,
    };
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_http, mut stopped) = watch::channel(false);
    let http_task = match tls {
        Some(tls) => {
            let handle = axum_server::Handle::new();
            // TCP_NODELAY: small frames go out at once, not after the peer's delayed ACK.
            let server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(bind_error)?
                .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor))
                .handle(handle.clone());
            tokio::spawn(async move {
                let _ = stopped.wait_for(|s| *s).await;
                handle.graceful_shutdown(Some(Duration::from_secs(2)));
            });
            tokio::spawn(async move {
                if let Err(e) = server.serve(app).await {
                    tracing::error!(error = %e, "https server failed");
                }
            })
        }
        None => {
            // TCP_NODELAY: small frames go out at once, not after the peer's delayed ACK (a
            // 40 ms stall otherwise: Nagle waiting on delayed ACKs).
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(bind_error)?
                .tap_io(|tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    sockets::bound_send_buffer(tcp);
                });
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "http server failed");
                }
            })
        }
    };
    tracing::info!(%http_addr, %webtransport_addr, "lockstep relay listening");
    Ok(Relay {
        http_addr,
        webtransport_addr,
        shared,
        certs,
        endpoint,
        stop_http,
        tasks,
        http_task,
        config,
    })
}

/// Keeps a self-signed certificate fresh: when 40% of its life remains, the next one is made
/// and its hash published; an hour later the endpoint switches to it (live sessions stay on
/// their connections), so clients that fetched `/api/config` in between can pin either.
async fn rotate_certificates(
    endpoint: Arc<Endpoint<Server>>,
    certs: Arc<RwLock<CertStore>>,
    config: Config,
    addr: SocketAddr,
) {
    const CHECK: Duration = Duration::from_secs(600);
    const OVERLAP: Duration = Duration::from_secs(3600);
    loop {
        tokio::time::sleep(CHECK).await;
        let due = certs
            .read()
            .map(|c| c.rotation_due(SystemTime::now()))
            .unwrap_or(false);
        if due && let Err(e) = rotate_once(&endpoint, &certs, &config, addr, OVERLAP).await {
            tracing::error!(error = %e, "certificate rotation failed");
        }
    }
}

/// Makes the next self-signed certificate, publishes its hash, waits `overlap`, then serves it.
async fn rotate_once(
    endpoint: &Endpoint<Server>,
    certs: &RwLock<CertStore>,
    config: &Config,
    addr: SocketAddr,
    overlap: Duration,
) -> Result<(), StartError> {
    if config.cert.is_some() {
        return Err(ConfigError::Invalid {
            setting: "cert",
            message: "a configured certificate is not rotated by the relay".into(),
        }
        .into());
    }
    let next = load_certificate(config, SystemTime::now())?;
    let server = server_config(UdpBind::Address(addr), &next)?;
    if let Ok(mut c) = certs.write() {
        c.stage(next);
    }
    tracing::info!(?overlap, "next certificate published");
    tokio::time::sleep(overlap).await;
    endpoint
        .reload_config(server, false)
        .map_err(|e| StartError::WebTransport(e.to_string()))?;
    if let Ok(mut c) = certs.write() {
        c.promote();
    }
    tracing::info!("certificate rotated; live sessions keep theirs");
    Ok(())
}

/// A fresh id for this relay among relays: random, so a restarted relay is a new one.
fn relay_id() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect()
}

/// This relay's block of member ids: the next of a sequence in Redis, so relays sharing rooms
/// never hand out the same id; a random block when Redis cannot be reached now (4,095 blocks:
/// a clash is unlikely, and only matters if a room then moves between the two); block 0 for a
/// relay alone.
async fn member_id_block(backplane: &backplane::AnyBackplane) -> u32 {
    use backplane::Backplane;
    if let backplane::AnyBackplane::Memory(_) = backplane {
        return 0;
    }
    let key = format!("{}:member-id-blocks", cluster::NAMESPACE);
    match tokio::time::timeout(Duration::from_secs(2), backplane.next_in_sequence(&key)).await {
        Ok(Ok(n)) => u32::try_from(n % u64::from(u32::MAX / core::MEMBER_ID_BLOCK)).unwrap_or(1),
        other => {
            let block = rand::random_range(1..u32::MAX / core::MEMBER_ID_BLOCK);
            tracing::warn!(
                ?other,
                block,
                "Redis unreachable: member ids from a random block"
            );
            block
        }
    }
}
