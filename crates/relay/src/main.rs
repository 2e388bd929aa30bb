//! `lockstep`: the relay binary.
//!
//! `lockstep [serve]` runs the relay (settings from defaults, an optional TOML file,
//! `LOCKSTEP_*` environment variables and flags, in rising precedence); `lockstep token` mints
//! a JWT with the configured secret for local testing.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lockstep_relay::auth::{Claims, mint_hs256};
use lockstep_relay::clock::ServerClock;
use lockstep_relay::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "Watch media together, in sync: the lockstep relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at start-up: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the relay (the default).
    Serve(ServeArgs),
    /// Mint an HS256 token with the configured secret (for local testing).
    Token(TokenArgs),
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "LOCKSTEP_CONFIG")]
    config: Option<PathBuf>,
    /// TCP address for the page, WebSocket and API (port 0: any free port) [default: 127.0.0.1:8080].
    #[arg(long, env = "LOCKSTEP_HTTP")]
    http: Option<SocketAddr>,
    /// UDP address for WebTransport (port 0: any free port) [default: 127.0.0.1:4433].
    #[arg(long, env = "LOCKSTEP_WEBTRANSPORT")]
    webtransport: Option<SocketAddr>,
    /// Host name clients use in URLs.
    #[arg(long, env = "LOCKSTEP_PUBLIC_HOST")]
    public_host: Option<String>,
    /// PEM certificate chain (default: generated self-signed).
    #[arg(long, env = "LOCKSTEP_CERT")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "LOCKSTEP_KEY")]
    key: Option<PathBuf>,
    /// Write generated certificates here.
    #[arg(long, env = "LOCKSTEP_CERTS_DIR")]
    certs_dir: Option<PathBuf>,
    /// Redis shared with other relays (redis://host:port/db; default: one relay, in memory).
    #[arg(long, env = "LOCKSTEP_REDIS")]
    redis: Option<String>,
    /// Serve HTTPS/WSS with --cert and --key.
    #[arg(long, env = "LOCKSTEP_HTTPS", num_args = 0..=1, default_missing_value = "true")]
    https: Option<bool>,
    /// Origins browser pages may connect from (comma-separated; default: any).
    #[arg(
        long = "allowed-origin",
        env = "LOCKSTEP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Hosts media URLs may use (comma-separated; `*.example.org` for subdomains; default: any).
    #[arg(
        long = "media-host",
        env = "LOCKSTEP_MEDIA_HOSTS",
        value_delimiter = ','
    )]
    media_hosts: Vec<String>,
    /// Log format.
    #[arg(long, env = "LOCKSTEP_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Refuse clients without a valid token.
    #[arg(long, env = "LOCKSTEP_REQUIRE_AUTH", num_args = 0..=1, default_missing_value = "true")]
    require_auth: Option<bool>,
    /// Token algorithm: HS256, EdDSA or RS256.
    #[arg(long, env = "LOCKSTEP_JWT_ALGORITHM")]
    jwt_algorithm: Option<String>,
    /// HS256 shared secret.
    #[arg(long, env = "LOCKSTEP_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM public key for EdDSA or RS256.
    #[arg(long, env = "LOCKSTEP_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Required token audience.
    #[arg(long, env = "LOCKSTEP_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Required token issuer.
    #[arg(long, env = "LOCKSTEP_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Members per room.
    #[arg(long, env = "LOCKSTEP_ROOM_CAPACITY")]
    room_capacity: Option<u32>,
    /// Rooms one user may own.
    #[arg(long, env = "LOCKSTEP_ROOMS_PER_USER")]
    rooms_per_user: Option<u32>,
    /// Connections one IP address may hold.
    #[arg(long, env = "LOCKSTEP_CONNECTIONS_PER_IP")]
    connections_per_ip: Option<u32>,
    /// Seconds a dropped member may resume.
    #[arg(long, env = "LOCKSTEP_RESUME_WINDOW_SECS")]
    resume_window_secs: Option<u64>,
    /// Control messages per second per client.
    #[arg(long, env = "LOCKSTEP_CONTROL_PER_SEC")]
    control_per_sec: Option<f64>,
    /// Datagram-class messages per second per client.
    #[arg(long, env = "LOCKSTEP_DATAGRAMS_PER_SEC")]
    datagrams_per_sec: Option<f64>,
}

#[derive(Args)]
struct TokenArgs {
    /// TOML configuration file (for the secret and audience).
    #[arg(long, env = "LOCKSTEP_CONFIG")]
    config: Option<PathBuf>,
    /// HS256 secret (default: the configured one).
    #[arg(long, env = "LOCKSTEP_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// User id (`sub`).
    #[arg(long)]
    sub: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Permissions: create_rooms, moderate (repeat or comma-separate).
    #[arg(long = "perm", value_delimiter = ',')]
    perms: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    ttl_secs: u64,
}

impl ServeArgs {
    /// Settings: defaults, then the file, then environment and flags.
    fn config(&self) -> Result<Config, String> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident => $target:expr),* $(,)?) => {
                $(if let Some(v) = self.$field.clone() { $target = v; })*
            };
        }
        set! {
            http => c.http,
            webtransport => c.webtransport,
            https => c.https,
            log_format => c.log_format,
            require_auth => c.auth.required,
            jwt_algorithm => c.auth.algorithm,
            room_capacity => c.limits.room_capacity,
            rooms_per_user => c.limits.rooms_per_user,
            connections_per_ip => c.limits.connections_per_ip,
            resume_window_secs => c.limits.resume_window_secs,
            control_per_sec => c.limits.control_per_sec,
            datagrams_per_sec => c.limits.datagrams_per_sec,
        }
        macro_rules! set_some {
            ($($field:ident => $target:expr),* $(,)?) => {
                $(if let Some(v) = self.$field.clone() { $target = Some(v); })*
            };
        }
        set_some! {
            public_host => c.public_host,
            cert => c.cert,
            key => c.key,
            certs_dir => c.certs_dir,
            redis => c.redis,
            jwt_secret => c.auth.secret,
            jwt_public_key => c.auth.public_key,
            jwt_audience => c.auth.audience,
            jwt_issuer => c.auth.issuer,
        }
        if !self.allowed_origins.is_empty() {
            c.allowed_origins = self.allowed_origins.clone();
        }
        if !self.media_hosts.is_empty() {
            c.media_hosts = self.media_hosts.clone();
        }
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(args),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn token(args: TokenArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("lockstep token: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    let Some(secret) = args.secret.or(config.auth.secret.clone()) else {
        eprintln!(
            "lockstep token: no secret: pass --secret, set LOCKSTEP_JWT_SECRET, or auth.secret in the config file"
        );
        return ExitCode::FAILURE;
    };
    let mut claims = Claims::new(args.sub, ServerClock::unix_seconds() + args.ttl_secs);
    claims.name = args.name;
    claims.perms = args.perms;
    claims.aud = config.auth.audience.clone();
    claims.iss = config.auth.issuer.clone();
    match mint_hs256(&claims, secret.as_bytes()) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lockstep token: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lockstep: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lockstep: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let relay = match lockstep_relay::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("lockstep: {e}");
                return ExitCode::FAILURE;
            }
        };
        // A closed stdout (a supervisor that stopped reading) must not stop the relay.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "lockstep relay ready: open {}", relay.page_url());
        let _ = writeln!(
            out,
            "  WebSocket  ws://{}/ws\n  WebTransport https://{}/lockstep (UDP)",
            lockstep_relay::http::authority(relay.http_addr()),
            lockstep_relay::http::authority(relay.webtransport_addr())
        );
        let _ = out.flush();
        drop(out);
        wait_for_signal().await;
        tracing::info!("shutting down");
        relay.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
