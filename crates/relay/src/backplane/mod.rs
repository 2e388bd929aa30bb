//! The backplane: what relays share when there is more than one of them.
//!
//! Three primitives, enough for rooms that live on one relay (their *home*) while their
//! members connect anywhere:
//! - **channels**: publish bytes to a named channel; a relay receives what is published on
//!   the channels it subscribed to (room broadcasts, control messages for a room's home);
//! - **versioned records**: a key holds bytes and a version, replaced only by a writer that
//!   names the version it read (compare-and-set), so two relays can never both overwrite a
//!   room's state;
//! - **leases**: a key held by one holder for a time, renewed by it, free for another once it
//!   lapses (who is a room's home).
//!
//! Two implementations: [`MemoryBackplane`] (the default: one relay, nothing outside the
//! process) and [`RedisBackplane`] (`--redis redis://…`: several relays on one Redis, with
//! Lua scripts for the compare-and-set and the lease). [`AnyBackplane`] is whichever the
//! configuration chose. Messages received on subscribed channels arrive on the bounded
//! receiver returned with the backplane.

mod memory;
mod redis;

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

pub use memory::MemoryBackplane;
pub use redis::RedisBackplane;

/// Messages received on subscribed channels that may wait to be handled; past this, the
/// newest are dropped and counted (a relay that falls this far behind has bigger problems).
pub const INBOX_CAPACITY: usize = 16_384;

/// A message received on a subscribed channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The channel it was published on.
    pub channel: String,
    /// What was published.
    pub payload: Bytes,
    /// When it came off the connection: clock probes are timed from here, not from when a
    /// busy relay got round to reading them.
    pub received: std::time::Instant,
}

/// A handler that takes some messages as they come off the connection, before the inbox
/// (returns whether it took the message): a room's messages for members here go straight to
/// their queues instead of waiting for the task that reads the inbox. It must be quick.
pub type FastPath = Box<dyn Fn(&Envelope) -> bool + Send + Sync>;

/// Where a backplane keeps its fast path, once set.
#[derive(Clone, Default)]
pub(crate) struct FastPathSlot(std::sync::Arc<std::sync::OnceLock<FastPath>>);

impl std::fmt::Debug for FastPathSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FastPathSlot")
            .field(&self.0.get().is_some())
            .finish()
    }
}

impl FastPathSlot {
    fn set(&self, fast: FastPath) {
        let _ = self.0.set(fast);
    }

    /// Whether the fast path took `envelope`.
    fn took(&self, envelope: &Envelope) -> bool {
        self.0.get().is_some_and(|f| f(envelope))
    }
}

/// A versioned record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its version: 1 for the first write, one more for each later one.
    pub version: u64,
    /// Its bytes.
    pub value: Bytes,
}

/// What a compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the record now has this version.
    Written(u64),
    /// Not written: the record's version is this one, not the one expected (0: no record).
    Conflict(u64),
}

/// Whether the backplane can be used right now, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackplaneHealth {
    /// `"memory"` or `"redis"`.
    pub kind: &'static str,
    /// Whether operations can succeed now (always, in memory).
    pub connected: bool,
    /// The last error, while not connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds since `connected` last changed.
    pub since_secs: u64,
    /// Times the connection was lost since the start (a change means Redis may have restarted
    /// in between, however briefly).
    pub disconnects: u64,
}

/// Why a backplane operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackplaneError {
    /// The backplane cannot be reached (Redis is down or unreachable).
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
    /// It answered something this relay does not understand.
    #[error("backplane answered unexpectedly: {0}")]
    Protocol(String),
    /// The configuration is unusable (a bad URL).
    #[error("backplane configuration: {0}")]
    Config(String),
}

/// The operations relays share. Implemented by [`MemoryBackplane`] and [`RedisBackplane`].
pub trait Backplane: Send + Sync {
    /// Whether it can be used now.
    fn health(&self) -> BackplaneHealth;

    /// Publishes `payload` on `channel` to every relay subscribed to it (this one included).
    fn publish(
        &self,
        channel: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// Publishes several messages in this order, in one round trip where the backplane can
    /// (a Redis pipeline).
    fn publish_many(
        &self,
        messages: Vec<(String, Bytes)>,
    ) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// Starts delivering `channel`'s messages to this relay's inbox. Kept across reconnects.
    fn subscribe(&self, channel: &str) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// Stops delivering `channel`'s messages.
    fn unsubscribe(&self, channel: &str)
    -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// The record at `key`, if any.
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Record>, BackplaneError>> + Send;

    /// Writes `value` at `key` if the record's version is `expected` (0: only if there is no
    /// record yet).
    fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Bytes,
    ) -> impl Future<Output = Result<CasOutcome, BackplaneError>> + Send;

    /// Removes the record at `key`, whatever its version.
    fn remove(&self, key: &str) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// The next number of the sequence at `key` (1, 2, …), never handed out twice.
    fn next_in_sequence(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<u64, BackplaneError>> + Send;

    /// Makes sure the sequence at `key` hands out only numbers above `at_least` (after Redis
    /// lost its data, the relays re-assert what they hold).
    fn raise_sequence(
        &self,
        key: &str,
        at_least: u64,
    ) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// Sets fields of the index at `key` (an index maps names to small values).
    fn index_set(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
    ) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// Removes fields of the index at `key`.
    fn index_remove(
        &self,
        key: &str,
        fields: Vec<String>,
    ) -> impl Future<Output = Result<(), BackplaneError>> + Send;

    /// One field of the index at `key`.
    fn index_get(
        &self,
        key: &str,
        field: &str,
    ) -> impl Future<Output = Result<Option<Bytes>, BackplaneError>> + Send;

    /// Takes the lease at `key` for `holder` for `ttl`, or renews it if `holder` has it;
    /// false while someone else holds it.
    fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, BackplaneError>> + Send;

    /// Gives the lease up if `holder` has it; true if it did.
    fn release_lease(
        &self,
        key: &str,
        holder: &str,
    ) -> impl Future<Output = Result<bool, BackplaneError>> + Send;

    /// Lists `member` in `directory` with `value` for `ttl` (renewed by calling again), drops
    /// members whose time lapsed, and returns every member listed now, this one included.
    fn register(
        &self,
        directory: &str,
        member: &str,
        ttl: Duration,
        value: Bytes,
    ) -> impl Future<Output = Result<Vec<(String, Bytes)>, BackplaneError>> + Send;
}

/// The backplane the configuration chose.
#[derive(Debug)]
pub enum AnyBackplane {
    /// One relay, in memory.
    Memory(MemoryBackplane),
    /// Relays sharing a Redis.
    Redis(RedisBackplane),
}

impl AnyBackplane {
    /// Sets the fast path (once; later calls are ignored).
    pub fn set_fast_path(&self, fast: FastPath) {
        match self {
            AnyBackplane::Memory(b) => b.set_fast_path(fast),
            AnyBackplane::Redis(b) => b.set_fast_path(fast),
        }
    }

    /// The backplane for `redis_url` (none: in memory) and the inbox of its subscriptions.
    /// A Redis that cannot be reached yet is not an error: the relay starts, serves, and
    /// reports the backplane as disconnected until Redis answers.
    pub fn new(
        redis_url: Option<&str>,
    ) -> Result<(Self, mpsc::Receiver<Envelope>), BackplaneError> {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let backplane = match redis_url {
            None => AnyBackplane::Memory(MemoryBackplane::new(tx)),
            Some(url) => AnyBackplane::Redis(RedisBackplane::connect(url, tx)?),
        };
        Ok((backplane, rx))
    }
}

impl Backplane for AnyBackplane {
    fn health(&self) -> BackplaneHealth {
        match self {
            AnyBackplane::Memory(b) => b.health(),
            AnyBackplane::Redis(b) => b.health(),
        }
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.publish(channel, payload).await,
            AnyBackplane::Redis(b) => b.publish(channel, payload).await,
        }
    }

    async fn publish_many(&self, messages: Vec<(String, Bytes)>) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.publish_many(messages).await,
            AnyBackplane::Redis(b) => b.publish_many(messages).await,
        }
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.subscribe(channel).await,
            AnyBackplane::Redis(b) => b.subscribe(channel).await,
        }
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.unsubscribe(channel).await,
            AnyBackplane::Redis(b) => b.unsubscribe(channel).await,
        }
    }

    async fn load(&self, key: &str) -> Result<Option<Record>, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.load(key).await,
            AnyBackplane::Redis(b) => b.load(key).await,
        }
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Bytes,
    ) -> Result<CasOutcome, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.compare_and_set(key, expected, value).await,
            AnyBackplane::Redis(b) => b.compare_and_set(key, expected, value).await,
        }
    }

    async fn remove(&self, key: &str) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.remove(key).await,
            AnyBackplane::Redis(b) => b.remove(key).await,
        }
    }

    async fn next_in_sequence(&self, key: &str) -> Result<u64, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.next_in_sequence(key).await,
            AnyBackplane::Redis(b) => b.next_in_sequence(key).await,
        }
    }

    async fn raise_sequence(&self, key: &str, at_least: u64) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.raise_sequence(key, at_least).await,
            AnyBackplane::Redis(b) => b.raise_sequence(key, at_least).await,
        }
    }

    async fn index_set(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
    ) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.index_set(key, fields).await,
            AnyBackplane::Redis(b) => b.index_set(key, fields).await,
        }
    }

    async fn index_remove(&self, key: &str, fields: Vec<String>) -> Result<(), BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.index_remove(key, fields).await,
            AnyBackplane::Redis(b) => b.index_remove(key, fields).await,
        }
    }

    async fn index_get(&self, key: &str, field: &str) -> Result<Option<Bytes>, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.index_get(key, field).await,
            AnyBackplane::Redis(b) => b.index_get(key, field).await,
        }
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.acquire_lease(key, holder, ttl).await,
            AnyBackplane::Redis(b) => b.acquire_lease(key, holder, ttl).await,
        }
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<bool, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.release_lease(key, holder).await,
            AnyBackplane::Redis(b) => b.release_lease(key, holder).await,
        }
    }

    async fn register(
        &self,
        directory: &str,
        member: &str,
        ttl: Duration,
        value: Bytes,
    ) -> Result<Vec<(String, Bytes)>, BackplaneError> {
        match self {
            AnyBackplane::Memory(b) => b.register(directory, member, ttl, value).await,
            AnyBackplane::Redis(b) => b.register(directory, member, ttl, value).await,
        }
    }
}
