//! The protocol's limits with their defaults, in one place.
//!
//! Decoders enforce the size limits before parsing and the range limits after; PROTOCOL.md's
//! "Limits" table lists the same numbers (a test keeps them in step).

/// Protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest datagram payload a sender may emit (one MessagePack message, no framing).
///
/// Chromium reports a `maxDatagramSize` of 1211 bytes; 1100 leaves room for QUIC and HTTP/3
/// overhead on paths with a smaller MTU.
pub const MAX_DATAGRAM_PAYLOAD: usize = 1100;

/// Largest control frame payload a client may send to the relay.
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;

/// Largest control frame payload (and WebSocket message) the relay may send to a client.
///
/// Large enough for the room state of a room at its default capacity.
pub const MAX_RELAY_FRAME: usize = 1024 * 1024;

/// Largest media position in seconds (about 115 days), so timeline math stays exact.
pub const MAX_POSITION_SECONDS: f64 = 10_000_000.0;

/// Slowest group playback rate.
pub const MIN_RATE: f64 = 0.25;

/// Fastest group playback rate.
pub const MAX_RATE: f64 = 4.0;

/// Display names and room names, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Chat text, in characters.
pub const MAX_CHAT_CHARS: usize = 500;

/// A reaction (an emoji or a short word), in characters.
pub const MAX_REACTION_CHARS: usize = 16;

/// Room passwords, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 128;

/// JWTs, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Opaque identifiers: room ids, invite codes, resume tokens, client software names, media item
/// ids, feature names (bytes).
pub const MAX_ID_BYTES: usize = 64;

/// Media URLs, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Media titles, reasons and free-text error messages, in characters.
pub const MAX_TEXT_CHARS: usize = 256;

/// Entries in a hello's feature list.
pub const MAX_FEATURES: usize = 32;

/// Default room capacity.
pub const DEFAULT_ROOM_CAPACITY: u32 = 1000;

/// Most members listed in one `room_state`. A bigger room's list is cut (the receiver and the
/// room's hosts, co-hosts and moderators first) and `member_count` gives the size: listing
/// everyone would make each join cost O(members), a 10,000-member room O(N²) bytes in all
/// (the load benchmark's big room reached 4 GiB of queued `room_state`s). 100 members are
/// ~8 KB: each WebSocket keeps a write buffer as big as the largest message it sent.
pub const ROOM_STATE_MEMBERS: usize = 100;
