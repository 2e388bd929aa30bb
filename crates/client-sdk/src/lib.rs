//! The lockstep client SDK for custom players.
//!
//! A skeleton for now: connection, clock sync and the drift controller land with their own
//! issue. The protocol it will speak is re-exported here.
//!
//! ```
//! assert_eq!(lockstep_client::proto::limits::PROTOCOL_VERSION, 1);
//! ```

pub use lockstep_proto as proto;
