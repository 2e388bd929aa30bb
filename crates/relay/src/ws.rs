//! The WebSocket fallback at `/ws`: one protocol message per WebSocket message, binary for
//! MessagePack, text for JSON; the relay answers in the client's latest encoding.
//!
//! A thin shell: it moves bytes between the socket and [`Inbound`]/[`ClientQueue`]. Small
//! buffers (tungstenite would reserve 128 KiB per connection for reading), keepalive pings,
//! and an idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use lockstep_proto::message::Transport;
use lockstep_proto::{Encoding, limits};

use crate::core::Outgoing;
use crate::metrics::TransportKind;
use crate::queue::{ClientQueue, Next};
use crate::server::{CoreEvent, IpSlot, Shared};
use crate::session::{Flow, Inbound};

/// Read buffer per connection: client messages are small (a ping is ~40 bytes, a hello a few
/// hundred); a larger one is read into a buffer grown to its length. 4 KiB here was the
/// largest single item per idle client in heaptrack.
const READ_BUFFER: usize = 1024;
/// Write buffer per connection before a flush.
const WRITE_BUFFER: usize = 8 * 1024;
/// A write the peer does not take within this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages written before a flush.
const WRITE_BATCH: usize = 64;
/// A ping every this often keeps NATs open and finds dead peers.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// A client silent for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// `GET /ws`: upgrades to a lockstep session.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if !shared.origin_allowed(origin) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let Some(slot) = shared.admit(peer.ip()) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections from this address",
        )
            .into_response();
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(limits::MAX_CLIENT_FRAME)
        .max_frame_size(limits::MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| run(socket, shared, slot))
}

async fn run(socket: WebSocket, shared: Arc<Shared>, slot: IpSlot) {
    let conn = shared.next_conn();
    let queue = ClientQueue::new(shared.metrics.clone());
    shared.metrics.connection_opened(TransportKind::WebSocket);
    if shared
        .core
        .send(CoreEvent::Open {
            conn,
            transport: Transport::Websocket,
            queue: queue.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let json = Arc::new(AtomicBool::new(false));

    let writer_queue = queue.clone();
    let writer_json = json.clone();
    let mut writer = tokio::spawn(async move {
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                next = writer_queue.next() => {
                    // Everything already waiting goes out with one flush (one write syscall for
                    // a burst, not one per message), up to a batch. A client whose socket takes
                    // nothing for WRITE_TIMEOUT is not reading: dropped (its queue would also
                    // overflow, but only after the kernel's buffers). One timer per burst, not
                    // per message: arming a timer per frame showed in `perf` at 100k+/s.
                    let burst = async {
                        let mut next = Some(next);
                        let mut batch = 0;
                        while let Some(item) = next.take() {
                            match item {
                                Next::Send(message) => {
                                    let json = writer_json.load(Ordering::Relaxed);
                                    if let Some(frame) = ws_frame(&message, json) {
                                        sink.feed(frame).await.map_err(|_| ())?;
                                    }
                                }
                                Next::Close(reason) => {
                                    let reason: String = reason.chars().take(100).collect();
                                    let _ = sink
                                        .send(WsMessage::Close(Some(CloseFrame {
                                            code: 1008,
                                            reason: Utf8Bytes::from(reason),
                                        })))
                                        .await;
                                    return Err(());
                                }
                            }
                            batch += 1;
                            if batch < WRITE_BATCH {
                                next = writer_queue.try_next();
                            }
                        }
                        sink.flush().await.map_err(|_| ())
                    };
                    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, burst).await, Ok(Ok(()))) {
                        return;
                    }
                },
                _ = keepalive.tick() => {
                    if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut inbound = Inbound::new(conn, Transport::Websocket, queue.clone(), shared.clone());
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE_TIMEOUT, stream.next()) => next,
            _ = &mut writer => break,
        };
        let message = match next {
            Ok(Some(Ok(m))) => m,
            // Idle, closed, or broken.
            Ok(Some(Err(_)) | None) | Err(_) => break,
        };
        let arrived = shared.clock.now();
        let flow = match message {
            WsMessage::Binary(bytes) => {
                json.store(false, Ordering::Relaxed);
                inbound
                    .handle(&bytes, Encoding::MessagePack, false, arrived)
                    .await
            }
            WsMessage::Text(text) => {
                json.store(true, Ordering::Relaxed);
                inbound
                    .handle(text.as_bytes(), Encoding::Json, false, arrived)
                    .await
            }
            WsMessage::Close(_) => break,
            WsMessage::Ping(_) | WsMessage::Pong(_) => Flow::Continue,
        };
        match flow {
            Flow::Continue => {}
            Flow::Pong(pong) => {
                queue.push(pong);
            }
            Flow::Close(reason) => {
                queue.close(reason.to_string());
                // Let the writer flush and close.
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                break;
            }
        }
    }
    writer.abort();
    let _ = shared.core.send(CoreEvent::Closed { conn }).await;
    shared.metrics.connection_closed(TransportKind::WebSocket);
    drop(slot);
}

/// One outgoing message as a WebSocket frame in the client's encoding (MessagePack shares the
/// encoded buffer; JSON text is copied, it is the rare legacy path).
fn ws_frame(message: &Outgoing, json: bool) -> Option<WsMessage> {
    if json {
        message
            .bytes(Encoding::Json)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(|s| WsMessage::Text(Utf8Bytes::from(s)))
    } else {
        message
            .shared_bytes(Encoding::MessagePack)
            .map(|b| WsMessage::Binary(b.clone()))
    }
}
