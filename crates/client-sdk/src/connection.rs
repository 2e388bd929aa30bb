//! The connection to a relay: WebTransport when it works, WebSocket otherwise, and back again
//! after a drop with the resume token — to the same relay, or when it cannot be reached, to
//! one of the other relays it listed in `/api/config` (relays sharing rooms through Redis: the
//! resume token finds the room there).
//!
//! Owns the transports and reconnection, nothing of the room: it hands every message to the
//! caller and sends what the caller gives it (datagram-class messages as datagrams on
//! WebTransport, everything else on the control stream).

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use lockstep_proto::message::{Hello, Transport, Welcome};
use lockstep_proto::{
    Encoding, FrameDecoder, Message, TransportClass, decode, encode, encode_frame, limits,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TransportChoice {
    /// WebTransport, falling back to WebSocket.
    #[default]
    Auto,
    /// WebTransport only.
    Webtransport,
    /// WebSocket only.
    Websocket,
}

/// Where and how to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The relay's HTTP base (`http://host:port`), for `/api/config`.
    pub relay: Option<String>,
    /// WebTransport URL, overriding the relay's published one.
    pub webtransport_url: Option<String>,
    /// WebSocket URL, overriding the relay's published one.
    pub websocket_url: Option<String>,
    /// Certificate hashes to pin (added to the published ones).
    pub certificate_hashes: Vec<[u8; 32]>,
    /// Transport choice.
    pub transport: TransportChoice,
    /// Display name.
    pub name: Option<String>,
    /// JWT, when the relay requires one.
    pub token: Option<String>,
    /// Client software name for `hello.client`.
    pub client: String,
}

/// What the connection reports.
// Most events are messages, so boxing the large variant would cost an allocation per message
// to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ConnectionEvent {
    /// Connected and welcomed (again, after a drop: `welcome.resumed` says whether the session
    /// and room came back).
    Connected {
        /// The transport in use.
        transport: Transport,
        /// The relay's welcome.
        welcome: Welcome,
    },
    /// A message from the relay (other than the welcome).
    Message(Message),
    /// The connection dropped; reconnecting.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The relay refused the session for good (bad token, version): no retry.
    Refused {
        /// The relay's error.
        reason: String,
    },
}

/// A live connection, reconnecting by itself.
#[derive(Debug)]
pub struct Connection {
    out: mpsc::Sender<Message>,
    events: mpsc::Receiver<ConnectionEvent>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// Starts connecting.
    pub fn start(options: ConnectOptions) -> Connection {
        let (out, out_rx) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(4096);
        let task = tokio::spawn(manage(options, out_rx, events_tx));
        Connection { out, events, task }
    }

    /// Sends a message (dropped while disconnected: the room's state comes back on resume).
    pub async fn send(&self, message: impl Into<Message>) {
        let _ = self.out.send(message.into()).await;
    }

    /// A sender for other tasks.
    pub fn sender(&self) -> mpsc::Sender<Message> {
        self.out.clone()
    }

    /// The next event.
    pub async fn next(&mut self) -> Option<ConnectionEvent> {
        self.events.recv().await
    }
}

/// One transport connection: messages out, messages in.
struct Link {
    transport: Transport,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Result<Message, String>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn manage(
    options: ConnectOptions,
    mut out: mpsc::Receiver<Message>,
    events: mpsc::Sender<ConnectionEvent>,
) {
    let mut resume: Option<String> = None;
    // The other relays sharing this one's rooms, as it last listed them: where to go when it
    // cannot be reached (its rooms move there, and the resume token finds them).
    let mut alternates: Vec<Endpoints> = Vec::new();
    let mut backoff = Duration::from_millis(250);
    // The last connection ended before its welcome: that relay cannot place the session now
    // (it may be cut off from the others), so the others are tried first.
    let mut turned_away = false;
    loop {
        let mut welcomed = false;
        let ended = session(
            &options,
            &mut resume,
            &mut alternates,
            turned_away,
            &mut welcomed,
            &mut out,
            &events,
        )
        .await;
        turned_away = !welcomed;
        if welcomed {
            backoff = Duration::from_millis(250);
        }
        match ended {
            Ok(()) => return,
            Err(Fatal(reason)) => {
                let _ = events.send(ConnectionEvent::Refused { reason }).await;
                return;
            }
            Err(Retry(reason)) => {
                tracing::info!(%reason, ?backoff, "disconnected; reconnecting");
                if events
                    .send(ConnectionEvent::Disconnected { reason })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

enum Ending {
    Retry(String),
    Fatal(String),
}
use Ending::{Fatal, Retry};

/// One connection's life: connect, hello, pump until it drops.
async fn session(
    options: &ConnectOptions,
    resume: &mut Option<String>,
    alternates: &mut Vec<Endpoints>,
    others_first: bool,
    welcomed: &mut bool,
    out: &mut mpsc::Receiver<Message>,
    events: &mpsc::Sender<ConnectionEvent>,
) -> Result<(), Ending> {
    let mut link = connect(options, alternates, others_first)
        .await
        .map_err(Retry)?;
    link.tx
        .send(
            Hello {
                version: limits::PROTOCOL_VERSION,
                client: options.client.clone(),
                features: vec![],
                token: options.token.clone(),
                name: options.name.clone(),
                resume: resume.clone(),
            }
            .into(),
        )
        .await
        .map_err(|_| Retry("link closed".into()))?;
    let welcome = loop {
        let next = tokio::time::timeout(Duration::from_secs(5), link.rx.recv())
            .await
            .map_err(|_| Retry("no welcome".into()))?;
        match next {
            Some(Ok(Message::Welcome(w))) => break w,
            // Only a refusal retrying cannot fix ends the connection for good; a relay that is
            // shutting down or busy is tried again.
            Some(Ok(Message::Error(e)))
                if matches!(
                    e.code,
                    lockstep_proto::ErrorCode::AuthRequired
                        | lockstep_proto::ErrorCode::AuthFailed
                        | lockstep_proto::ErrorCode::UnsupportedVersion
                ) =>
            {
                return Err(Fatal(format!("{}: {}", e.code.name(), e.message)));
            }
            Some(Ok(Message::Error(e))) if e.fatal => return Err(Retry(e.message)),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Retry(e)),
            None => return Err(Retry("closed before welcome".into())),
        }
    };
    *resume = Some(welcome.resume_token.clone());
    *welcomed = true;
    events
        .send(ConnectionEvent::Connected {
            transport: link.transport,
            welcome,
        })
        .await
        .map_err(|_| Retry("caller gone".into()))?;
    loop {
        tokio::select! {
            m = out.recv() => match m {
                Some(m) => {
                    if link.tx.send(m).await.is_err() {
                        return Err(Retry("link closed".into()));
                    }
                }
                None => return Ok(()),
            },
            m = link.rx.recv() => match m {
                Some(Ok(m)) => {
                    if events.send(ConnectionEvent::Message(m)).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(Retry(e)),
                None => return Err(Retry("connection closed".into())),
            },
        }
    }
}

/// Where one relay is reached.
#[derive(Debug, Clone, Default)]
struct Endpoints {
    webtransport: Option<String>,
    websocket: Option<String>,
    hashes: Vec<[u8; 32]>,
}

impl Endpoints {
    /// Adds what a relay's `/api/config` (or one entry of its `relays`) says, keeping what
    /// the options set.
    fn add(&mut self, config: &serde_json::Value) {
        if self.webtransport.is_none() {
            self.webtransport = config["webtransport"]["url"].as_str().map(String::from);
        }
        if self.websocket.is_none() {
            self.websocket = config["websocket"]["url"].as_str().map(String::from);
        }
        if let Some(hashes) = config["webtransport"]["certificate_hashes"].as_array() {
            for h in hashes {
                let bytes = h["value"]
                    .as_str()
                    .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                if let Some(b) = bytes {
                    self.hashes.push(b);
                }
            }
        }
    }
}

/// The relay's endpoints, and the other relays it lists (empty when it cannot be read).
async fn endpoints(options: &ConnectOptions) -> (Endpoints, Vec<Endpoints>) {
    let mut e = Endpoints {
        webtransport: options.webtransport_url.clone(),
        websocket: options.websocket_url.clone(),
        hashes: options.certificate_hashes.clone(),
    };
    let mut others = Vec::new();
    if let Some(relay) = &options.relay {
        match fetch_config(relay).await {
            Ok(config) => {
                e.add(&config);
                for r in config["relays"].as_array().into_iter().flatten() {
                    let mut other = Endpoints::default();
                    other.add(r);
                    others.push(other);
                }
            }
            Err(err) => tracing::warn!(%relay, error = %err, "cannot read the relay's /api/config"),
        }
    }
    (e, others)
}

/// Connects to the relay, or when it cannot be reached, to one of the others it listed last;
/// `others_first`: the others before it (it turned the last connection away).
async fn connect(
    options: &ConnectOptions,
    alternates: &mut Vec<Endpoints>,
    others_first: bool,
) -> Result<Link, String> {
    let (e, others) = endpoints(options).await;
    if !others.is_empty() {
        *alternates = others;
    }
    if !others_first || alternates.is_empty() {
        let why = match connect_to(options, e).await {
            Ok(link) => return Ok(link),
            Err(why) => why,
        };
        return connect_to_others(options, alternates).await.ok_or(why);
    }
    match connect_to_others(options, alternates).await {
        Some(link) => Ok(link),
        None => connect_to(options, e).await,
    }
}

async fn connect_to_others(options: &ConnectOptions, alternates: &[Endpoints]) -> Option<Link> {
    for other in alternates {
        match connect_to(options, other.clone()).await {
            Ok(link) => {
                tracing::info!(relay = ?other.websocket, "connected to another relay of the room");
                return Some(link);
            }
            Err(e) => tracing::debug!(error = %e, "another relay cannot be reached"),
        }
    }
    None
}

async fn connect_to(options: &ConnectOptions, e: Endpoints) -> Result<Link, String> {
    let try_wt = options.transport != TransportChoice::Websocket;
    let try_ws = options.transport != TransportChoice::Webtransport;
    let mut why = String::new();
    if try_wt {
        match &e.webtransport {
            Some(url) => {
                match tokio::time::timeout(Duration::from_secs(3), connect_wt(url, &e.hashes)).await
                {
                    Ok(Ok(link)) => return Ok(link),
                    Ok(Err(err)) => why = format!("WebTransport failed: {err}"),
                    Err(_) => why = "WebTransport did not connect within 3 s".into(),
                }
            }
            None => why = "no WebTransport URL".into(),
        }
        if try_ws {
            tracing::info!(reason = %why, "falling back to WebSocket");
        }
    }
    if try_ws {
        let url = e.websocket.ok_or("no WebSocket URL")?;
        return connect_ws(&url).await;
    }
    Err(why)
}

async fn connect_wt(url: &str, hashes: &[[u8; 32]]) -> Result<Link, String> {
    let config = if hashes.is_empty() {
        wtransport::ClientConfig::builder()
            .with_bind_default()
            .with_native_certs()
            .build()
    } else {
        wtransport::ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes(
                hashes
                    .iter()
                    .map(|h| wtransport::tls::Sha256Digest::new(*h)),
            )
            .build()
    };
    let endpoint = wtransport::Endpoint::client(config).map_err(|e| e.to_string())?;
    let connection = endpoint.connect(url).await.map_err(|e| e.to_string())?;
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut out) = mpsc::channel::<Message>(256);
    let (in_tx, rx) = mpsc::channel(4096);
    let writer_conn = connection.clone();
    let writer = tokio::spawn(async move {
        let _endpoint = endpoint;
        let mut frame = Vec::new();
        while let Some(m) = out.recv().await {
            let Ok(bytes) = encode(&m, Encoding::MessagePack) else {
                continue;
            };
            if m.kind().class() == TransportClass::Datagram
                && bytes.len() <= limits::MAX_DATAGRAM_PAYLOAD
                && writer_conn.send_datagram(&bytes).is_ok()
            {
                continue;
            }
            frame.clear();
            if encode_frame(&bytes, limits::MAX_CLIENT_FRAME, &mut frame).is_err() {
                continue;
            }
            if send.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let stream_tx = in_tx.clone();
    let reader = tokio::spawn(async move {
        let mut frames = FrameDecoder::new(limits::MAX_RELAY_FRAME);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match recv.read(&mut buf).await {
                Ok(Some(n)) => n,
                Ok(None) | Err(_) => {
                    let _ = stream_tx.send(Err("control stream closed".into())).await;
                    return;
                }
            };
            let mut input = &buf[..n];
            while let Ok(Some(frame)) = frames.decode(&mut input) {
                if let Ok(m) = decode(&frame, Encoding::MessagePack, limits::MAX_RELAY_FRAME)
                    && stream_tx.send(Ok(m)).await.is_err()
                {
                    return;
                }
            }
        }
    });
    let datagrams = tokio::spawn(async move {
        loop {
            match connection.receive_datagram().await {
                Ok(d) => {
                    if let Ok(m) = decode(&d, Encoding::MessagePack, limits::MAX_DATAGRAM_PAYLOAD)
                        && in_tx.send(Ok(m)).await.is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = in_tx.send(Err(e.to_string())).await;
                    return;
                }
            }
        }
    });
    Ok(Link {
        transport: Transport::Webtransport,
        tx,
        rx,
        tasks: vec![writer, reader, datagrams],
    })
}

async fn connect_ws(url: &str) -> Result<Link, String> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut out) = mpsc::channel::<Message>(256);
    let (in_tx, rx) = mpsc::channel(4096);
    let writer = tokio::spawn(async move {
        while let Some(m) = out.recv().await {
            let Ok(bytes) = encode(&m, Encoding::MessagePack) else {
                continue;
            };
            if sink.send(WsMessage::Binary(bytes.into())).await.is_err() {
                return;
            }
        }
    });
    let reader = tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            let decoded = match frame {
                Ok(WsMessage::Binary(b)) => {
                    decode(&b, Encoding::MessagePack, limits::MAX_RELAY_FRAME)
                }
                Ok(WsMessage::Text(t)) => {
                    decode(t.as_bytes(), Encoding::Json, limits::MAX_RELAY_FRAME)
                }
                Ok(WsMessage::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            if let Ok(m) = decoded
                && in_tx.send(Ok(m)).await.is_err()
            {
                return;
            }
        }
        let _ = in_tx.send(Err("websocket closed".into())).await;
    });
    Ok(Link {
        transport: Transport::Websocket,
        tx,
        rx,
        tasks: vec![writer, reader],
    })
}

/// `GET {relay}/api/config` over plain HTTP (a relay on loopback or behind TLS termination
/// publishes the same JSON).
async fn fetch_config(relay: &str) -> Result<serde_json::Value, String> {
    let rest = relay
        .strip_prefix("http://")
        .ok_or("the relay URL must be http:// for /api/config")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET /api/config HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("no body")?;
    serde_json::from_str(body).map_err(|e| e.to_string())
}
