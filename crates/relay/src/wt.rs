//! WebTransport at `/lockstep`: one bidirectional control stream of length-prefixed
//! MessagePack frames, and datagrams for clock pings and timelines.
//!
//! A thin shell over `wtransport`: it checks the path and origin, admits the connection,
//! runs the frame decoder, and moves bytes between the session and
//! [`Inbound`]/[`ClientQueue`]. Pongs leave straight from the reader, as datagrams.

use std::sync::Arc;
use std::time::Duration;

use lockstep_proto::message::Transport;
use lockstep_proto::{Encoding, FrameDecoder, encode_frame, limits};
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use crate::metrics::TransportKind;
use crate::queue::{ClientQueue, Next};
use crate::server::{CoreEvent, IpSlot, Shared};
use crate::session::{Flow, Inbound};

/// The URL path of lockstep's WebTransport sessions.
pub const PATH: &str = "/lockstep";
/// A session must open its control stream within this long.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Application close code: policy (bad input, slow consumer, shutdown).
const CLOSE_POLICY: u32 = 0x1008;
/// Most messages written to the control stream in one write.
const WRITE_BATCH: usize = 64;
/// Most bytes gathered for one control stream write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Accepts sessions until the endpoint closes.
pub async fn serve(endpoint: Arc<Endpoint<Server>>, shared: Arc<Shared>) {
    loop {
        let incoming = endpoint.accept().await;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = session(incoming, shared).await {
                tracing::debug!(error = %e, "webtransport session ended");
            }
        });
    }
}

/// Read buffer of the control stream: client frames are small; larger ones are assembled
/// by the frame decoder across reads.
const READ_BUFFER: usize = 1024;

/// What a session needs once it is accepted.
struct Accepted {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    slot: IpSlot,
}

async fn session(incoming: IncomingSession, shared: Arc<Shared>) -> Result<(), String> {
    // The handshake's futures are large and needed once: boxed, they do not stay in the
    // session's task for its whole life (heaptrack: every idle session carries its task).
    let Some(accepted) = Box::pin(accept(incoming, &shared)).await? else {
        return Ok(());
    };
    run(accepted, shared).await
}

/// The handshake, the checks, and the control stream; `None` when the request was refused.
async fn accept(
    incoming: IncomingSession,
    shared: &Arc<Shared>,
) -> Result<Option<Accepted>, String> {
    let request = incoming.await.map_err(|e| e.to_string())?;
    if request.path() != PATH {
        request.not_found().await;
        return Ok(None);
    }
    if !shared.origin_allowed(request.origin()) {
        request.forbidden().await;
        return Ok(None);
    }
    let Some(slot) = shared.admit(request.remote_address().ip()) else {
        request.too_many_requests().await;
        return Ok(None);
    };
    let connection = request.accept().await.map_err(|e| e.to_string())?;
    let (send, recv) = tokio::time::timeout(STREAM_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| "no control stream".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Some(Accepted {
        connection,
        send,
        recv,
        slot,
    }))
}

/// An accepted session until it ends.
async fn run(accepted: Accepted, shared: Arc<Shared>) -> Result<(), String> {
    let Accepted {
        connection,
        mut send,
        mut recv,
        slot,
    } = accepted;
    let conn = shared.next_conn();
    let queue = ClientQueue::new(shared.metrics.clone());
    shared
        .metrics
        .connection_opened(TransportKind::WebTransport);
    shared
        .core
        .send(CoreEvent::Open {
            conn,
            transport: Transport::Webtransport,
            queue: queue.clone(),
        })
        .await
        .map_err(|_| "relay stopping".to_string())?;

    let writer_queue = queue.clone();
    let writer_conn = connection.clone();
    let mut writer = tokio::spawn(async move {
        // Control frames already waiting are written together (one stream write per burst).
        // Grown by the first bursts, not reserved up front: most sessions are idle.
        let mut frames = Vec::new();
        let mut frame = Vec::new();
        loop {
            let mut next = Some(writer_queue.next().await);
            let mut batch = 0;
            frames.clear();
            while let Some(item) = next.take() {
                match item {
                    Next::Send(message) => {
                        let Some(bytes) = message.bytes(Encoding::MessagePack) else {
                            continue;
                        };
                        let fits = bytes.len()
                            <= limits::MAX_DATAGRAM_PAYLOAD
                                .min(writer_conn.max_datagram_size().unwrap_or(0));
                        // Datagram-class messages go as datagrams when they fit; otherwise, and
                        // when the datagram cannot be sent, on the stream (never fragmented).
                        if !(message.is_datagram()
                            && fits
                            && writer_conn.send_datagram(bytes).is_ok())
                        {
                            frame.clear();
                            if encode_frame(bytes, limits::MAX_RELAY_FRAME, &mut frame).is_ok() {
                                frames.extend_from_slice(&frame);
                            }
                        }
                    }
                    Next::Close(reason) => {
                        if !frames.is_empty() {
                            let _ = send.write_all(&frames).await;
                        }
                        let _ = send.finish().await;
                        writer_conn.close(VarInt::from_u32(CLOSE_POLICY), reason.as_bytes());
                        return;
                    }
                }
                batch += 1;
                if batch < WRITE_BATCH && frames.len() < WRITE_BATCH_BYTES {
                    next = writer_queue.try_next();
                }
            }
            if !frames.is_empty() && send.write_all(&frames).await.is_err() {
                return;
            }
        }
    });

    let mut inbound = Inbound::new(conn, Transport::Webtransport, queue.clone(), shared.clone());
    let mut frames = FrameDecoder::new(limits::MAX_CLIENT_FRAME);
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        tokio::select! {
            read = recv.read(&mut buf) => {
                let n = match read {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => break,
                };
                let arrived = shared.clock.now();
                let mut input = &buf[..n];
                let mut close = None;
                while !input.is_empty() {
                    let flow = match frames.decode(&mut input) {
                        Ok(Some(frame)) => inbound.handle(&frame, Encoding::MessagePack, false, arrived).await,
                        Ok(None) => Flow::Continue,
                        Err(e) => inbound.frame_error(e.code(), e.to_string(), arrived).await,
                    };
                    match flow {
                        Flow::Continue => {}
                        Flow::Pong(pong) => send_pong(&connection, &queue, pong),
                        Flow::Close(reason) => {
                            close = Some(reason);
                            break;
                        }
                    }
                }
                if let Some(reason) = close {
                    queue.close(reason.to_string());
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                    break;
                }
            }
            datagram = connection.receive_datagram() => {
                let Ok(datagram) = datagram else { break };
                if datagram.len() > limits::MAX_DATAGRAM_PAYLOAD {
                    // Longer than the protocol allows a datagram: dropped, as the spec says.
                    shared.metrics.decode_error(lockstep_proto::ErrorCode::TooLarge);
                    continue;
                }
                let arrived = shared.clock.now();
                match inbound.handle(&datagram, Encoding::MessagePack, true, arrived).await {
                    Flow::Continue => {}
                    Flow::Pong(pong) => send_pong(&connection, &queue, pong),
                    Flow::Close(reason) => {
                        queue.close(reason.to_string());
                        let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                        break;
                    }
                }
            }
            _ = &mut writer => break,
        }
    }
    writer.abort();
    let _ = shared.core.send(CoreEvent::Closed { conn }).await;
    shared
        .metrics
        .connection_closed(TransportKind::WebTransport);
    drop(slot);
    Ok(())
}

/// Pongs leave at once as a datagram (the clock sample is only as good as its speed); if the
/// datagram cannot go, through the queue.
fn send_pong(connection: &Connection, queue: &ClientQueue, pong: Arc<crate::core::Outgoing>) {
    let sent = pong
        .bytes(Encoding::MessagePack)
        .is_some_and(|b| connection.send_datagram(b).is_ok());
    if !sent {
        queue.push(pong);
    }
}
