//! Who controls a room's playback: the pluggable consensus policies (host-authoritative and
//! democratic quorum).
//!
//! A skeleton for now: the policies land with their own issue. This crate will stay free of
//! IO, depending only on `lockstep-proto`.
//!
//! ```
//! assert_eq!(lockstep_consensus::MODES, ["host", "democratic"]);
//! ```

/// The policy modes this crate will provide, by their wire names.
pub const MODES: [&str; 2] = ["host", "democratic"];
