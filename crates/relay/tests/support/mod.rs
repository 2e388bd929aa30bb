//! Shared by the relay's end-to-end tests: start a relay in-process on free ports, and real
//! clients over loopback (tokio-tungstenite for WebSocket, wtransport for WebTransport).

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod process;
pub mod python;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockstep_proto::message::{Hello, Ping, Welcome};
use lockstep_proto::{Encoding, FrameDecoder, Message, decode, encode, encode_frame, limits};
use lockstep_relay::Relay;
use lockstep_relay::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a test waits for any one expected message.
pub const WAIT: Duration = Duration::from_secs(5);

/// A relay on free loopback ports.
pub async fn relay(configure: impl FnOnce(&mut Config)) -> Relay {
    let mut config = Config {
        http: "127.0.0.1:0".parse().unwrap(),
        webtransport: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    configure(&mut config);
    lockstep_relay::start(config).await.expect("relay starts")
}

/// What a client received.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Received {
    /// A message; `datagram` when it came as a WebTransport datagram.
    Message { message: Message, datagram: bool },
    /// Bytes that did not decode.
    Garbage(String),
    /// The connection closed.
    Closed(String),
}

/// A client of either transport.
pub struct Client {
    pub name: &'static str,
    out: mpsc::Sender<Outbound>,
    inbox: mpsc::Receiver<Received>,
    pub welcome: Option<Welcome>,
}

enum Outbound {
    Close,
    Control(Vec<u8>, Encoding),
    Datagram(Vec<u8>),
    RawText(String),
    RawBinary(Vec<u8>),
}

impl Client {
    /// A WebSocket client; `json` chooses text frames.
    pub async fn websocket(relay: &Relay, json: bool) -> Client {
        Self::websocket_at(relay.http_addr(), json).await
    }

    /// A WebSocket client to an address.
    pub async fn websocket_at(addr: SocketAddr, json: bool) -> Client {
        let url = format!("ws://{addr}/ws");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
        let (in_tx, in_rx) = mpsc::channel::<Received>(100_000);
        tokio::spawn(async move {
            while let Some(o) = out_rx.recv().await {
                let frame = match o {
                    Outbound::Close => {
                        let _ = sink.close().await;
                        return;
                    }
                    Outbound::Control(bytes, Encoding::Json) | Outbound::Datagram(bytes)
                        if json =>
                    {
                        WsMessage::Text(String::from_utf8(bytes).unwrap().into())
                    }
                    Outbound::Control(bytes, _) | Outbound::Datagram(bytes) => {
                        WsMessage::Binary(bytes.into())
                    }
                    Outbound::RawText(t) => WsMessage::Text(t.into()),
                    Outbound::RawBinary(b) => WsMessage::Binary(b.into()),
                };
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let r = match frame {
                    Ok(WsMessage::Binary(b)) => decoded(&b, Encoding::MessagePack, false),
                    Ok(WsMessage::Text(t)) => decoded(t.as_bytes(), Encoding::Json, false),
                    Ok(WsMessage::Close(c)) => {
                        Received::Closed(c.map(|c| c.reason.to_string()).unwrap_or_default())
                    }
                    Ok(_) => continue,
                    Err(e) => Received::Closed(e.to_string()),
                };
                let closed = matches!(r, Received::Closed(_));
                if in_tx.send(r).await.is_err() || closed {
                    return;
                }
            }
            let _ = in_tx.send(Received::Closed("eof".into())).await;
        });
        Client {
            name: if json { "websocket-json" } else { "websocket" },
            out: out_tx,
            inbox: in_rx,
            welcome: None,
        }
    }

    /// A WebTransport client pinning the relay's published certificate hashes.
    pub async fn webtransport(relay: &Relay) -> Client {
        let hashes = relay
            .certificate_hashes()
            .iter()
            .map(|h| {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&h.value)
                    .unwrap();
                wtransport::tls::Sha256Digest::new(bytes.try_into().unwrap())
            })
            .collect::<Vec<_>>();
        Self::webtransport_at(relay.webtransport_addr(), hashes, "/lockstep")
            .await
            .expect("connects")
    }

    /// A WebTransport client to an address and path.
    pub async fn webtransport_at(
        addr: SocketAddr,
        hashes: Vec<wtransport::tls::Sha256Digest>,
        path: &str,
    ) -> Result<Client, String> {
        let config = wtransport::ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes(hashes)
            .build();
        let endpoint = wtransport::Endpoint::client(config).map_err(|e| e.to_string())?;
        let connection = endpoint
            .connect(format!("https://{addr}{path}"))
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(1024);
        let (in_tx, in_rx) = mpsc::channel::<Received>(100_000);
        let conn2 = connection.clone();
        tokio::spawn(async move {
            let _endpoint = endpoint;
            while let Some(o) = out_rx.recv().await {
                match o {
                    Outbound::Control(bytes, _) | Outbound::RawBinary(bytes) => {
                        let mut frame = Vec::new();
                        // Raw frames may be oversize on purpose: write the prefix by hand.
                        if encode_frame(&bytes, usize::MAX, &mut frame).is_err() {
                            frame = (bytes.len() as u32).to_be_bytes().to_vec();
                            frame.extend_from_slice(&bytes);
                        }
                        if send.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    Outbound::Datagram(bytes) => {
                        let _ = conn2.send_datagram(bytes);
                    }
                    Outbound::RawText(_) => {}
                    Outbound::Close => {
                        conn2.close(wtransport::VarInt::from_u32(0), b"bye");
                        return;
                    }
                }
            }
        });
        let in_stream = in_tx.clone();
        tokio::spawn(async move {
            let mut frames = FrameDecoder::new(limits::MAX_RELAY_FRAME);
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match recv.read(&mut buf).await {
                    Ok(Some(n)) => n,
                    _ => {
                        let _ = in_stream
                            .send(Received::Closed("stream ended".into()))
                            .await;
                        return;
                    }
                };
                let mut input = &buf[..n];
                while let Ok(Some(frame)) = frames.decode(&mut input) {
                    if in_stream
                        .send(decoded(&frame, Encoding::MessagePack, false))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        tokio::spawn(async move {
            loop {
                match connection.receive_datagram().await {
                    Ok(d) => {
                        if in_tx
                            .send(decoded(&d, Encoding::MessagePack, true))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = in_tx.send(Received::Closed(e.to_string())).await;
                        return;
                    }
                }
            }
        });
        Ok(Client {
            name: "webtransport",
            out: out_tx,
            inbox: in_rx,
            welcome: None,
        })
    }

    /// Closes the connection (as a client going away would).
    pub async fn close(self) {
        let _ = self.out.send(Outbound::Close).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Sends a message on the control path.
    pub async fn send(&self, message: impl Into<Message>) {
        let message = message.into();
        let json = self.name == "websocket-json";
        let enc = if json {
            Encoding::Json
        } else {
            Encoding::MessagePack
        };
        let bytes = encode(&message, enc).expect("test messages are valid");
        self.out.send(Outbound::Control(bytes, enc)).await.unwrap();
    }

    /// Sends a message as a datagram (WebTransport) or a plain message (WebSocket).
    pub async fn send_datagram(&self, message: impl Into<Message>) {
        let json = self.name == "websocket-json";
        let enc = if json {
            Encoding::Json
        } else {
            Encoding::MessagePack
        };
        let bytes = encode(&message.into(), enc).unwrap();
        self.out.send(Outbound::Datagram(bytes)).await.unwrap();
    }

    /// Sends raw bytes as one control message (a binary frame / a stream frame).
    pub async fn send_raw(&self, bytes: Vec<u8>) {
        self.out.send(Outbound::RawBinary(bytes)).await.unwrap();
    }

    /// Sends a raw text frame (WebSocket only).
    pub async fn send_text(&self, text: &str) {
        self.out.send(Outbound::RawText(text.into())).await.unwrap();
    }

    /// Says hello and waits for the welcome.
    pub async fn hello(&mut self, name: &str) -> Welcome {
        self.hello_with(name, None, None).await.expect("welcome")
    }

    /// Hello with a token and a resume token; the welcome, or the error.
    pub async fn hello_with(
        &mut self,
        name: &str,
        token: Option<String>,
        resume: Option<String>,
    ) -> Result<Welcome, lockstep_proto::message::ErrorMessage> {
        self.send(Hello {
            version: 1,
            client: format!("lockstep-test/{}", self.name),
            features: vec![],
            token,
            name: Some(name.into()),
            resume,
        })
        .await;
        let m = self
            .expect(|m| matches!(m, Message::Welcome(_) | Message::Error(_)))
            .await;
        match m {
            Message::Welcome(w) => {
                self.welcome = Some(w.clone());
                Ok(w)
            }
            Message::Error(e) => Err(e),
            _ => unreachable!(),
        }
    }

    /// Creates a host-mode room named `name` and waits for its `room_state`.
    pub async fn create_room(&mut self, name: &str) -> lockstep_proto::message::RoomState {
        self.send(lockstep_proto::message::CreateRoom {
            req: Some(1),
            name: name.into(),
            password: None,
            media: None,
            mode: lockstep_proto::message::PolicyMode::Host,
            options: None,
        })
        .await;
        match self.expect(|m| matches!(m, Message::RoomState(_))).await {
            Message::RoomState(state) => state,
            _ => unreachable!(),
        }
    }

    /// The next message of any kind.
    pub async fn next(&mut self) -> Option<Received> {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for a message matching `pred`, skipping others; panics after `WAIT`.
    pub async fn expect(&mut self, pred: impl Fn(&Message) -> bool) -> Message {
        self.expect_full(pred).await.0
    }

    /// Like `expect`, and says whether it came as a datagram.
    pub async fn expect_full(&mut self, pred: impl Fn(&Message) -> bool) -> (Message, bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: timed out waiting for a message", self.name));
            match r {
                Some(Received::Message { message, datagram }) if pred(&message) => {
                    return (message, datagram);
                }
                Some(Received::Message { .. }) => {}
                Some(Received::Garbage(g)) => {
                    panic!("{}: undecodable message from the relay: {g}", self.name)
                }
                Some(Received::Closed(why)) => panic!("{}: connection closed: {why}", self.name),
                None => panic!("{}: inbox closed", self.name),
            }
        }
    }

    /// Waits until every predicate has matched some message, in any order (datagrams and the
    /// control stream, or a queue's priorities, may reorder them).
    pub async fn expect_each(&mut self, preds: &[&dyn Fn(&Message) -> bool]) -> Vec<Message> {
        let mut found: Vec<Option<Message>> = vec![None; preds.len()];
        while found.iter().any(Option::is_none) {
            let m = self.expect(|_| true).await;
            if let Some(i) = (0..preds.len()).find(|&i| found[i].is_none() && preds[i](&m)) {
                found[i] = Some(m);
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Waits for the connection to close, skipping messages; returns the messages seen.
    pub async fn expect_closed(&mut self) -> Vec<Message> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(Received::Message { message, .. })) => seen.push(message),
                Ok(Some(Received::Garbage(_))) => {}
                Ok(Some(Received::Closed(_)) | None) => return seen,
                Err(_) => panic!("{}: still open; saw {seen:?}", self.name),
            }
        }
    }

    /// Whether nothing is waiting right now.
    pub fn inbox_is_quiet(&self) -> bool {
        self.inbox.is_empty()
    }

    /// Throws away whatever has arrived.
    pub fn drain_quietly(&mut self) {
        while self.inbox.try_recv().is_ok() {}
    }

    /// Asserts nothing matching `pred` arrives within `within`.
    pub async fn expect_none(&mut self, within: Duration, pred: impl Fn(&Message) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(r) = tokio::time::timeout_at(deadline, self.inbox.recv()).await {
            if let Some(Received::Message { message, .. }) = r
                && pred(&message)
            {
                panic!("{}: unexpected {message:?}", self.name);
            }
        }
    }

    /// A clock sample: sends a ping, returns (rtt, server time at the midpoint estimate).
    pub async fn ping(&mut self, seq: u32) -> (Duration, lockstep_proto::ServerTime, bool) {
        let start = std::time::Instant::now();
        let t0 = 1_000_000 + u64::from(seq);
        self.send_datagram(Ping { seq, t0 }).await;
        let (m, datagram) = self
            .expect_full(|m| matches!(m, Message::Pong(p) if p.seq == seq))
            .await;
        let rtt = start.elapsed();
        let Message::Pong(p) = m else { unreachable!() };
        assert_eq!(p.t0, t0);
        assert!(p.t2 >= p.t1);
        (rtt, p.t2, datagram)
    }
}

fn decoded(bytes: &[u8], enc: Encoding, datagram: bool) -> Received {
    match decode(bytes, enc, limits::MAX_RELAY_FRAME) {
        Ok(message) => Received::Message { message, datagram },
        Err(e) => Received::Garbage(e.to_string()),
    }
}

/// A plain HTTP/1.1 GET over loopback: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A plain HTTP/1.1 POST of a JSON body: (status, body).
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    body: &str,
    bearer: Option<&str>,
) -> (u16, String) {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

async fn http(addr: SocketAddr, request: String) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    out
}
