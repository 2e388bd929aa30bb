//! A message on its way out, encoded at most once per encoding however many clients get it.
//!
//! Owns the serialize-once rule: a broadcast to a thousand members is one `Arc<Outgoing>`;
//! the first writer that needs MessagePack (or JSON) encodes it, every other writer reuses
//! the bytes.

use std::sync::OnceLock;

use bytes::Bytes;
use lockstep_proto::{Encoding, Message, MessageType, TransportClass, encode};

/// A message and its lazily encoded forms.
#[derive(Debug)]
pub struct Outgoing {
    message: Message,
    // `Bytes`, so that handing the encoding to a thousand WebSocket writers is a thousand
    // reference counts, not a thousand copies.
    msgpack: OnceLock<Option<Bytes>>,
    json: OnceLock<Option<Bytes>>,
}

impl Outgoing {
    /// Wraps a message for sending.
    pub fn new(message: Message) -> Self {
        Outgoing {
            message,
            msgpack: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message's type.
    pub fn kind(&self) -> MessageType {
        self.message.kind()
    }

    /// Whether it travels as a datagram where the transport has them.
    pub fn is_datagram(&self) -> bool {
        self.kind().class() == TransportClass::Datagram
    }

    /// The encoded bytes; `None` if the message cannot be encoded (a relay bug, logged once).
    pub fn bytes(&self, encoding: Encoding) -> Option<&[u8]> {
        self.shared_bytes(encoding).map(|b| b.as_ref())
    }

    /// The encoded bytes as a shared buffer (cloning it does not copy).
    pub fn shared_bytes(&self, encoding: Encoding) -> Option<&Bytes> {
        let cell = match encoding {
            Encoding::MessagePack => &self.msgpack,
            Encoding::Json => &self.json,
        };
        cell.get_or_init(|| match encode(&self.message, encoding) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(e) => {
                tracing::error!(kind = self.kind().name(), error = %e, "relay built an invalid message");
                None
            }
        })
        .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_proto::message::Ping;

    #[test]
    fn encodes_once_per_encoding() {
        let out = Outgoing::new(Message::Ping(Ping { seq: 1, t0: 2 }));
        let a = out.bytes(Encoding::MessagePack).unwrap().as_ptr();
        let b = out.bytes(Encoding::MessagePack).unwrap().as_ptr();
        assert_eq!(a, b, "the second call reuses the first encoding");
        assert!(out.bytes(Encoding::Json).unwrap().starts_with(b"{"));
    }
}
