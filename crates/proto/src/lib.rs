//! The lockstep wire protocol.
//!
//! Every part of lockstep (the relay, the Rust SDK, the web client, clients in other languages)
//! speaks the protocol specified in `docs/PROTOCOL.md`; this crate is its Rust implementation
//! and has no IO: it turns messages into bytes and back, cuts a byte stream into frames, and
//! holds the time and timeline math that relay and clients must compute identically.
//!
//! ```
//! use lockstep_proto::{
//!     Encoding, FrameDecoder, Message, PlaybackCommand, ServerTime, Timeline, decode, encode,
//!     encode_frame, limits,
//!     message::Seek,
//! };
//!
//! // A client asks the room to seek; the relay decodes it from the control stream.
//! let seek = Message::Seek(Seek { req: Some(1), position: 42.0 });
//! let payload = encode(&seek, Encoding::MessagePack)?;
//! let mut stream = Vec::new();
//! encode_frame(&payload, limits::MAX_CLIENT_FRAME, &mut stream)?;
//!
//! let mut frames = FrameDecoder::new(limits::MAX_CLIENT_FRAME);
//! let mut input = stream.as_slice();
//! let frame = frames.decode(&mut input)?.expect("one whole frame was fed");
//! let received = decode(&frame, Encoding::MessagePack, limits::MAX_CLIENT_FRAME)?;
//! assert_eq!(received, seek);
//!
//! // The relay schedules it 150 ms ahead; every member computes the same position.
//! let now = ServerTime::from_micros(10_000_000);
//! let timeline = Timeline::new(now).apply(PlaybackCommand::Seek(42.0), now.add_micros(150_000));
//! assert_eq!(timeline.position_at(now.add_micros(150_000)), 42.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Decoding never panics: any byte sequence yields a message or a [`DecodeError`] whose
//! [`code`](DecodeError::code) is the wire error code to answer with.

pub mod clock;
pub mod codec;
pub mod error;
pub mod frame;
pub mod limits;
pub mod message;
pub mod time;
pub mod timeline;
pub mod validate;

pub use clock::ClockSample;
pub use codec::{Encoding, decode, encode, encode_into};
pub use error::{DecodeError, EncodeError, ErrorCode, FieldError, FrameError};
pub use frame::{FRAME_HEADER_LEN, FrameDecoder, encode_frame};
pub use message::{Direction, Message, MessageType, TransportClass};
pub use time::ServerTime;
pub use timeline::{PlaybackCommand, Timeline};
pub use validate::Validate;
