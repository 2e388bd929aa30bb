//! One client connection, WebSocket or WebTransport, behind one type ([`Conn`]), and the
//! [`Dialer`] that opens them.
//!
//! - **WebSocket**: a TCP socket bound to one of the loopback source addresses (127.0.0.2 and
//!   up; each address has its own ~28,000 ephemeral ports, so tens of thousands of
//!   connections fit), then the WebSocket handshake with small buffers (tungstenite would
//!   allocate 128 KiB per connection for reading). Binary MessagePack messages.
//! - **WebTransport**: one session per client over a few shared QUIC endpoints (UDP sockets)
//!   bound to the same source addresses, pinning the relay's certificate hashes; one
//!   bidirectional control stream with 4-byte big-endian length frames, and datagrams for the
//!   datagram-class messages (PROTOCOL.md §2.1).
//!
//! [`Conn::recv`] is cancel-safe, so a member can wait for a message and for its timers at
//! once. A client that stops calling it stops reading its socket, which is how the
//! slow-consumer scenario makes slow clients.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockstep_proto::message::Transport;
use lockstep_proto::{Encoding, FrameDecoder, Message, decode, encode, encode_frame, limits};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use super::relay::Target;
use super::{Error, Result};

/// WebSocket read buffer, and WebTransport control-stream read buffer, per client.
const READ_BUFFER: usize = 4 * 1024;
/// Socket receive buffer of a client that will stop reading: small, so the relay sees it slow
/// soon instead of after megabytes of kernel buffering.
const SLOW_RECV_BUFFER: u32 = 4 * 1024;
/// Socket buffers of the shared QUIC endpoints: a big room's fan-out reaches an endpoint as one
/// burst of datagrams, which the default 208 KiB drops in part (counted by the kernel as
/// `UdpRcvbufErrors`); the clients' own drops must not be what the run measures. Capped by
/// `net.core.rmem_max`.
const UDP_BUFFER: usize = 4 << 20;
/// QUIC idle timeout: clients ping every second, so only a dead relay hits it.
const WT_IDLE: Duration = Duration::from_secs(30);
/// How long to wait for a WebTransport session's close reason after its stream ended.
const CLOSE_REASON_WITHIN: Duration = Duration::from_millis(500);

/// Why a connection could not be opened; `kind` is what the report counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectError {
    /// The step that failed (`tcp_bind`, `tcp_connect`, `ws_handshake`, `wt_connect`,
    /// `wt_stream`).
    pub(crate) kind: &'static str,
    /// The error.
    pub(crate) detail: String,
}

impl ConnectError {
    fn new(kind: &'static str, e: impl std::fmt::Display) -> ConnectError {
        ConnectError {
            kind,
            detail: e.to_string(),
        }
    }
}

/// What a connection delivered.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A message (boxed: most are small, a few, like `room_state`, are large).
    Message(Box<Message>),
    /// Bytes that did not decode.
    Undecodable(String),
    /// The connection ended, with the peer's reason when it gave one.
    Closed(String),
}

fn incoming(bytes: &[u8], encoding: Encoding) -> Incoming {
    match decode(bytes, encoding, limits::MAX_RELAY_FRAME) {
        Ok(m) => Incoming::Message(Box::new(m)),
        Err(e) => Incoming::Undecodable(e.to_string()),
    }
}

/// The loopback source addresses clients bind to: 127.0.0.2, 127.0.0.3, ... when the relay
/// is on IPv4 loopback; none (the kernel chooses) otherwise.
pub(crate) fn source_addrs(relay: SocketAddr, count: u8) -> Vec<IpAddr> {
    match relay.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => (0..count.min(250))
            .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + k)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Source addresses needed for `ws_clients` WebSocket connections: ~28,000 ephemeral ports
/// each, with a quarter kept spare for the TIME_WAIT of earlier runs.
pub(crate) fn sources_needed(ws_clients: usize) -> u8 {
    u8::try_from(ws_clients.div_ceil(21_000)).unwrap_or(u8::MAX)
}

/// A UDP socket bound to `bind` with [`UDP_BUFFER`] buffers (as far as the kernel allows).
fn udp_socket(bind: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Larger buffers only help; a kernel that caps them lower still works.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    Ok(socket.into())
}

/// Opens connections to one relay.
pub(crate) struct Dialer {
    ws_addr: SocketAddr,
    ws_url: String,
    wt_url: String,
    sources: Vec<IpAddr>,
    wt_endpoints: Vec<Endpoint<Client>>,
}

impl Dialer {
    /// A dialer for `target` over `sources`; `wt_endpoints` QUIC endpoints are bound when
    /// some clients use WebTransport (`0`: none).
    pub(crate) fn new(
        target: &Target,
        sources: Vec<IpAddr>,
        wt_endpoints: usize,
    ) -> Result<Dialer> {
        let mut endpoints = Vec::with_capacity(wt_endpoints);
        for k in 0..wt_endpoints {
            let bind = match sources.get(k % sources.len().max(1)) {
                Some(ip) => SocketAddr::new(*ip, 0),
                None => SocketAddr::from(([0, 0, 0, 0], 0)),
            };
            let hashes = target
                .hashes
                .iter()
                .map(|h| wtransport::tls::Sha256Digest::new(*h));
            let socket = udp_socket(bind).map_err(|e| {
                Error::Machine(format!("cannot bind a QUIC endpoint to {bind}: {e}"))
            })?;
            let config = wtransport::ClientConfig::builder()
                .with_bind_socket(socket)
                .with_server_certificate_hashes(hashes)
                .max_idle_timeout(Some(WT_IDLE))
                .map_err(|e| Error::Other(format!("QUIC idle timeout: {e}")))?
                .build();
            let endpoint = Endpoint::client(config).map_err(|e| {
                Error::Machine(format!("cannot bind a QUIC endpoint to {bind}: {e}"))
            })?;
            endpoints.push(endpoint);
        }
        Ok(Dialer {
            ws_addr: target.ws_addr,
            ws_url: target.ws_url.clone(),
            wt_url: target.wt_url.clone(),
            sources,
            wt_endpoints: endpoints,
        })
    }

    /// Client `index`'s connection over `transport`; `slow`: it will stop reading, so its
    /// receive buffer is kept small.
    pub(crate) async fn connect(
        &self,
        index: usize,
        transport: Transport,
        slow: bool,
    ) -> std::result::Result<Conn, ConnectError> {
        match transport {
            Transport::Websocket => self.websocket(index, slow).await,
            Transport::Webtransport => self.webtransport(index).await,
        }
    }

    async fn websocket(&self, index: usize, slow: bool) -> std::result::Result<Conn, ConnectError> {
        let socket = match self.ws_addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| ConnectError::new("tcp_socket", e))?;
        if !self.sources.is_empty() {
            let src = self.sources[index % self.sources.len()];
            socket
                .bind(SocketAddr::new(src, 0))
                .map_err(|e| ConnectError::new("tcp_bind", e))?;
        }
        if slow {
            socket
                .set_recv_buffer_size(SLOW_RECV_BUFFER)
                .map_err(|e| ConnectError::new("tcp_socket", e))?;
        }
        let stream = socket
            .connect(self.ws_addr)
            .await
            .map_err(|e| ConnectError::new("tcp_connect", e))?;
        // Commands and pings are small and latency is what is measured.
        stream
            .set_nodelay(true)
            .map_err(|e| ConnectError::new("tcp_socket", e))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(self.ws_url.as_str(), stream, Some(config))
                .await
                .map_err(|e| ConnectError::new("ws_handshake", e))?;
        Ok(Conn::Ws(Box::new(WsConn { ws })))
    }

    async fn webtransport(&self, index: usize) -> std::result::Result<Conn, ConnectError> {
        let Some(endpoint) = self
            .wt_endpoints
            .get(index % self.wt_endpoints.len().max(1))
        else {
            return Err(ConnectError::new("wt_connect", "no QUIC endpoint"));
        };
        let conn = endpoint
            .connect(self.wt_url.as_str())
            .await
            .map_err(|e| ConnectError::new("wt_connect", e))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ConnectError::new("wt_stream", e))?
            .await
            .map_err(|e| ConnectError::new("wt_stream", e))?;
        Ok(Conn::Wt(Box::new(WtConn {
            conn,
            send,
            recv,
            frames: FrameDecoder::new(limits::MAX_RELAY_FRAME),
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pending: VecDeque::new(),
            out: Vec::new(),
        })))
    }
}

/// A WebSocket connection.
pub(crate) struct WsConn {
    ws: WebSocketStream<TcpStream>,
}

/// A WebTransport session with its control stream.
pub(crate) struct WtConn {
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    frames: FrameDecoder,
    buf: Box<[u8]>,
    /// Frames decoded from one read and not yet handed out.
    pending: VecDeque<Incoming>,
    out: Vec<u8>,
}

impl WtConn {
    async fn close_reason(&self, fallback: String) -> String {
        match tokio::time::timeout(CLOSE_REASON_WITHIN, self.conn.closed()).await {
            Ok(e) => e.to_string(),
            Err(_) => fallback,
        }
    }
}

/// One client connection.
pub(crate) enum Conn {
    /// WebSocket.
    Ws(Box<WsConn>),
    /// WebTransport.
    Wt(Box<WtConn>),
}

impl Conn {
    /// Sends a message on the control path (a WebSocket message, a control-stream frame).
    pub(crate) async fn send(&mut self, message: &Message) -> std::result::Result<(), String> {
        let bytes = encode(message, Encoding::MessagePack).map_err(|e| e.to_string())?;
        match self {
            Conn::Ws(c) => {
                c.ws.send(WsMessage::Binary(bytes.into()))
                    .await
                    .map_err(|e| e.to_string())
            }
            Conn::Wt(c) => {
                c.out.clear();
                encode_frame(&bytes, limits::MAX_CLIENT_FRAME, &mut c.out)
                    .map_err(|e| e.to_string())?;
                c.send.write_all(&c.out).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Sends a datagram-class message: a datagram on WebTransport (the control stream if it
    /// does not fit), an ordinary message on WebSocket.
    pub(crate) async fn send_datagram(
        &mut self,
        message: &Message,
    ) -> std::result::Result<(), String> {
        match self {
            Conn::Ws(_) => self.send(message).await,
            Conn::Wt(c) => {
                let bytes = encode(message, Encoding::MessagePack).map_err(|e| e.to_string())?;
                if bytes.len() <= limits::MAX_DATAGRAM_PAYLOAD
                    && c.conn.send_datagram(&bytes).is_ok()
                {
                    return Ok(());
                }
                self.send(message).await
            }
        }
    }

    /// The next thing the connection delivers. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Incoming {
        match self {
            Conn::Ws(c) => loop {
                match c.ws.next().await {
                    Some(Ok(WsMessage::Binary(b))) => return incoming(&b, Encoding::MessagePack),
                    Some(Ok(WsMessage::Text(t))) => return incoming(t.as_bytes(), Encoding::Json),
                    Some(Ok(WsMessage::Close(frame))) => {
                        return Incoming::Closed(
                            frame.map_or_else(|| "close".to_owned(), |f| f.reason.to_string()),
                        );
                    }
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Incoming::Closed(e.to_string()),
                    None => return Incoming::Closed("end of stream".to_owned()),
                }
            },
            Conn::Wt(c) => loop {
                if let Some(i) = c.pending.pop_front() {
                    return i;
                }
                tokio::select! {
                    read = c.recv.read(&mut c.buf) => match read {
                        Ok(Some(n)) => {
                            let mut input = &c.buf[..n];
                            while !input.is_empty() {
                                match c.frames.decode(&mut input) {
                                    Ok(Some(frame)) => c
                                        .pending
                                        .push_back(incoming(&frame, Encoding::MessagePack)),
                                    Ok(None) => break,
                                    Err(e) => c.pending.push_back(Incoming::Undecodable(e.to_string())),
                                }
                            }
                        }
                        Ok(None) => {
                            return Incoming::Closed(c.close_reason("control stream ended".into()).await);
                        }
                        Err(e) => return Incoming::Closed(c.close_reason(e.to_string()).await),
                    },
                    datagram = c.conn.receive_datagram() => match datagram {
                        Ok(d) => return incoming(&d, Encoding::MessagePack),
                        Err(e) => return Incoming::Closed(e.to_string()),
                    },
                }
            },
        }
    }

    /// Closes the connection (politely; errors do not matter any more).
    pub(crate) async fn close(&mut self) {
        match self {
            Conn::Ws(c) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), c.ws.close(None)).await;
            }
            Conn::Wt(c) => c.conn.close(VarInt::from_u32(0), b"done"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_relays_get_loopback_sources() {
        let sources = source_addrs("127.0.0.1:8080".parse().unwrap(), 3);
        assert_eq!(
            sources,
            vec![
                "127.0.0.2".parse::<IpAddr>().unwrap(),
                "127.0.0.3".parse().unwrap(),
                "127.0.0.4".parse().unwrap()
            ]
        );
        assert!(source_addrs("10.0.0.1:8080".parse().unwrap(), 3).is_empty());
        assert_eq!(source_addrs("127.0.0.1:1".parse().unwrap(), 255).len(), 250);
        assert_eq!(sources_needed(1_000), 1);
        assert_eq!(sources_needed(50_000), 3);
    }
}
