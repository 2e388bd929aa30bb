//! What both transports do with bytes a client sent: decode, rate-limit, answer pings on the
//! spot, authenticate the hello, and pass the rest to the core.
//!
//! Owns the per-connection inbound rules so WebTransport and WebSocket cannot drift apart.

use std::sync::Arc;

use lockstep_proto::message::{Pong, Transport};
use lockstep_proto::{
    DecodeError, Encoding, ErrorCode, Message, ServerTime, TransportClass, decode, limits,
};

use crate::auth::{self, Identity};
use crate::clock::ServerClock;
use crate::core::{ConnId, Outgoing, SessionIdentity};
use crate::limits::{Strikes, TokenBucket};
use crate::metrics::LimitClass;
use crate::server::{CoreEvent, Shared};
use crate::takeover::ResumeAt;

/// What the transport does after a message.
#[derive(Debug)]
pub enum Flow {
    /// Nothing more.
    Continue,
    /// Send this pong now.
    Pong(Arc<Outgoing>),
    /// The client keeps abusing its limits: close the connection.
    Close(&'static str),
}

/// One connection's inbound state.
#[derive(Debug)]
pub struct Inbound {
    conn: ConnId,
    shared: Arc<Shared>,
    control: TokenBucket,
    datagrams: TokenBucket,
    strikes: Strikes,
    hello_sent: bool,
    transport: Transport,
    /// Where this connection's messages go (a tunnel fills it directly).
    queue: Arc<crate::queue::ClientQueue>,
    /// The session lives on another relay (the room's home): messages go there.
    away: bool,
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if self.away
            && let Some(tunnels) = self.shared.tunnels.get()
        {
            tunnels.member_closed(self.conn);
        }
    }
}

impl Inbound {
    /// Inbound state for a new connection.
    pub fn new(
        conn: ConnId,
        transport: Transport,
        queue: Arc<crate::queue::ClientQueue>,
        shared: Arc<Shared>,
    ) -> Self {
        let l = shared.limits;
        Inbound {
            conn,
            queue,
            transport,
            away: false,
            control: TokenBucket::new(l.control.0, l.control.1),
            datagrams: TokenBucket::new(l.datagram.0, l.datagram.1),
            strikes: Strikes::default(),
            hello_sent: false,
            shared,
        }
    }

    /// Handles one message's bytes. `as_datagram`: it arrived as a WebTransport datagram
    /// (errors about datagrams are not answered). `arrived`: when it was read.
    ///
    /// The work is boxed: a decoded message and the event carrying it to the core take ~1 KiB
    /// of future state, which would otherwise sit in every idle connection's task for its
    /// whole life (measured with heaptrack: ~1.5 KiB of the ~11 KiB per idle WebSocket
    /// client). One short-lived allocation per message costs less than that.
    pub async fn handle(
        &mut self,
        bytes: &[u8],
        encoding: Encoding,
        as_datagram: bool,
        arrived: ServerTime,
    ) -> Flow {
        Box::pin(self.handle_unboxed(bytes, encoding, as_datagram, arrived)).await
    }

    async fn handle_unboxed(
        &mut self,
        bytes: &[u8],
        encoding: Encoding,
        as_datagram: bool,
        arrived: ServerTime,
    ) -> Flow {
        let message = match decode(bytes, encoding, limits::MAX_CLIENT_FRAME) {
            Ok(m) => m,
            Err(e) => {
                if as_datagram {
                    self.shared.metrics.decode_error(e.code());
                    return Flow::Continue;
                }
                return self.bad(&e, arrived).await;
            }
        };
        let class = message.kind().class();
        let (bucket, limit_class) = match class {
            TransportClass::Datagram => (&mut self.datagrams, LimitClass::Datagram),
            TransportClass::Control => (&mut self.control, LimitClass::Control),
        };
        if !bucket.try_take(arrived) {
            self.shared.metrics.rate_limited(limit_class);
            if class == TransportClass::Datagram {
                // Excess datagrams are dropped and counted, never held against the client:
                // browsers send them in bursts, and dropping one costs nothing.
                return Flow::Continue;
            }
            self.report(
                ErrorCode::RateLimited,
                "too many messages: slow down".into(),
                crate::core::request_id(&message),
            )
            .await;
            return self.strike(arrived);
        }
        match message {
            Message::Ping(ping) => {
                if !self.hello_sent {
                    return Flow::Continue;
                }
                self.shared
                    .metrics
                    .message_in(lockstep_proto::MessageType::Ping);
                let pong = Message::Pong(Pong {
                    seq: ping.seq,
                    t0: ping.t0,
                    t1: arrived,
                    t2: self.shared.clock.now(),
                });
                self.shared
                    .metrics
                    .message_out(lockstep_proto::MessageType::Pong, 1);
                Flow::Pong(Arc::new(Outgoing::new(pong)))
            }
            Message::Hello(hello) if !self.hello_sent => {
                self.hello_sent = true;
                self.shared
                    .metrics
                    .message_in(lockstep_proto::MessageType::Hello);
                // A member whose relay is gone: its room comes here first. A member whose
                // room is on another relay that is alive: its session is there.
                if let (Some(token), Some(takeover), Some(tunnels)) = (
                    &hello.resume,
                    self.shared.takeover.get(),
                    self.shared.tunnels.get(),
                ) {
                    match takeover.before_resume(token).await {
                        ResumeAt::Here => {}
                        ResumeAt::Elsewhere(home, room) => {
                            self.away = tunnels
                                .open_resume(
                                    &self.member(),
                                    self.transport,
                                    &home,
                                    &room,
                                    hello.clone(),
                                )
                                .await;
                            if self.away {
                                return Flow::Continue;
                            }
                        }
                        ResumeAt::Unknowable => {
                            // A fresh session here would lose the member's room for good:
                            // it comes back later, or to another relay (the clients try the
                            // others when a relay turns them away before the welcome).
                            self.refuse(
                                "this relay cannot reach the other relays now: \
                                 reconnect later or to another relay",
                            )
                            .await;
                            return Flow::Continue;
                        }
                    }
                }
                let identity = authenticate(&self.shared, hello.token.as_deref());
                self.send(CoreEvent::Hello {
                    conn: self.conn,
                    hello,
                    identity,
                })
                .await;
                Flow::Continue
            }
            message if self.away => {
                if as_datagram && class == TransportClass::Control {
                    return Flow::Continue;
                }
                let forwarded = match self.shared.tunnels.get() {
                    Some(tunnels) => tunnels.forward(self.conn, &message).await,
                    None => false,
                };
                if !forwarded {
                    // The tunnel ended: the room came here (the connection is attached to its
                    // member in this relay's core), or the client was told to come back.
                    self.away = false;
                    self.send(CoreEvent::Message {
                        conn: self.conn,
                        message,
                    })
                    .await;
                }
                Flow::Continue
            }
            Message::JoinRoom(join) if self.hello_sent && !as_datagram => {
                if let (Some(tunnels), Some(takeover)) =
                    (self.shared.tunnels.get(), self.shared.takeover.get())
                    && let Some((home, room)) = takeover.before_join(&join.room).await
                    && let Some(session) = self.export().await
                {
                    self.away = tunnels
                        .open_join(
                            &self.member(),
                            self.transport,
                            &home,
                            &room,
                            session,
                            join.clone().into(),
                        )
                        .await;
                    if self.away {
                        return Flow::Continue;
                    }
                    self.report(
                        ErrorCode::Internal,
                        "the room's relay cannot be reached; reconnect and try again".into(),
                        join.req,
                    )
                    .await;
                    return Flow::Close("session lost on the way to the room's relay");
                }
                self.send(CoreEvent::Message {
                    conn: self.conn,
                    message: Message::JoinRoom(join),
                })
                .await;
                Flow::Continue
            }
            message => {
                if as_datagram && class == TransportClass::Control {
                    // Control messages must not travel unreliably: dropped, as the spec says.
                    return Flow::Continue;
                }
                if as_datagram && !self.hello_sent {
                    return Flow::Continue;
                }
                self.send(CoreEvent::Message {
                    conn: self.conn,
                    message,
                })
                .await;
                Flow::Continue
            }
        }
    }

    /// A framing error on the control stream.
    pub async fn frame_error(&mut self, code: ErrorCode, message: String, now: ServerTime) -> Flow {
        // Boxed for the reason given at `handle`.
        Box::pin(self.report(code, message, None)).await;
        self.strike(now)
    }

    async fn bad(&mut self, e: &DecodeError, now: ServerTime) -> Flow {
        // A relay-to-client type from a client is unknown here, whatever its fields (the
        // spec's rule), not a malformed message of a known type.
        let kind = match e {
            DecodeError::InvalidFields { kind, .. } | DecodeError::OutOfRange { kind, .. } => {
                lockstep_proto::MessageType::from_name(kind)
            }
            _ => None,
        };
        if kind.is_some_and(|k| k.direction() == lockstep_proto::Direction::RelayToClient) {
            let name = kind.map(|k| k.name()).unwrap_or_default();
            self.report(
                ErrorCode::UnknownType,
                format!("`{name}` is a relay-to-client message"),
                e.req(),
            )
            .await;
        } else {
            self.report(e.code(), e.to_string(), e.req()).await;
        }
        self.strike(now)
    }

    async fn report(&mut self, code: ErrorCode, message: String, req: Option<u32>) {
        self.send(CoreEvent::BadInput {
            conn: self.conn,
            code,
            message,
            req,
        })
        .await;
    }

    fn strike(&mut self, now: ServerTime) -> Flow {
        if self.strikes.strike(now) {
            Flow::Close("too many bad or excess messages")
        } else {
            Flow::Continue
        }
    }

    fn member(&self) -> crate::tunnel::Member {
        crate::tunnel::Member {
            conn: self.conn,
            queue: self.queue.clone(),
        }
    }

    /// Tells the client why it cannot stay (a fatal error), then closes the connection (in
    /// the core's order: the error is sent first).
    async fn refuse(&self, message: &str) {
        let error = Message::Error(lockstep_proto::message::ErrorMessage {
            req: None,
            code: ErrorCode::Internal,
            message: message.to_string(),
            fatal: true,
        });
        self.send(CoreEvent::Deliver {
            conns: vec![self.conn],
            message: Arc::new(Outgoing::new(error)),
        })
        .await;
        self.send(CoreEvent::CloseConn {
            conn: self.conn,
            reason: "resume refused: Redis unreachable".into(),
        })
        .await;
    }

    /// Takes the session out of this relay's core, to move it to the room's home.
    async fn export(&self) -> Option<crate::core::SessionHandoff> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(CoreEvent::Export {
            conn: self.conn,
            reply,
        })
        .await;
        answer.await.ok().flatten()
    }

    async fn send(&self, event: CoreEvent) {
        // The core only goes away when the relay stops; then there is no one to tell.
        let _ = self.shared.core.send(event).await;
    }
}

/// What auth makes of a hello's token, as the core takes it.
pub fn authenticate(
    shared: &Shared,
    token: Option<&str>,
) -> Result<SessionIdentity, (ErrorCode, String)> {
    auth::authenticate(token, &shared.auth, ServerClock::unix_seconds())
        .map(session_identity)
        .map_err(|e| {
            let message = match e {
                // The key is the relay's problem; do not describe it to clients.
                auth::AuthError::InvalidKey(_) | auth::AuthError::NoKey => {
                    "the relay cannot verify tokens right now".to_string()
                }
                ref other => other.to_string(),
            };
            (e.code(), message)
        })
}

fn session_identity(identity: Identity) -> SessionIdentity {
    SessionIdentity {
        user_id: identity.user_id,
        name: identity.name,
        may_create_rooms: identity.may_create_rooms,
        moderator: identity.moderator,
    }
}
