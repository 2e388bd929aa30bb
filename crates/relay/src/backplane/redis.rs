//! The Redis backplane: relays sharing one Redis.
//!
//! One RESP3 connection through the `redis` crate's connection manager: commands and pub/sub
//! share it, subscriptions arrive as push messages, and the manager reconnects with backoff
//! and subscribes again to every channel after a reconnect. A watcher pings Redis twice a
//! second so `/health` knows whether it is reachable even when the relay is idle.
//!
//! Records are hashes `{v: version, d: bytes}` replaced by a Lua compare-and-set; leases are
//! plain keys holding the holder's name with a millisecond expiry, taken and renewed by Lua.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Script, Value,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Backplane, BackplaneError, BackplaneHealth, CasOutcome, Envelope, Record};

/// How often the watcher pings Redis.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// A command (or a connection attempt) that takes longer has failed: a relay must notice a
/// dead Redis quickly, and keep serving its own rooms meanwhile.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest wait between reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// `KEYS[1]`: the record; `ARGV[1]`: the version expected (0: none yet); `ARGV[2]`: the bytes.
/// Returns `{1, new version}` or `{0, current version}`.
const CAS_SCRIPT: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
redis.call('HSET', KEYS[1], 'v', current + 1, 'd', ARGV[2])
return {1, current + 1}
";

/// `KEYS[1]`: the lease; `ARGV[1]`: the holder; `ARGV[2]`: its time to live, ms. 1: held.
const LEASE_SCRIPT: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// `KEYS[1]`: the lease; `ARGV[1]`: the holder. 1: it held it and gave it up.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// `KEYS[1]`: the directory's expiry times (a sorted set); `KEYS[2]`: its values (a hash);
/// `ARGV[1]`: the member; `ARGV[2]`: its time to live, ms; `ARGV[3]`: its value. Redis's own
/// clock decides expiry, so the relays' clocks need not agree. Returns the live members'
/// values as a flat list.
const REGISTER_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(lapsed) do
  redis.call('HDEL', KEYS[2], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('HGETALL', KEYS[2])
";

/// `KEYS[1]`: a sequence; `ARGV[1]`: the least value it must have.
const RAISE_SCRIPT: &str = r"
local current = tonumber(redis.call('GET', KEYS[1])) or 0
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
";

/// The Redis backplane.
pub struct RedisBackplane {
    manager: ConnectionManager,
    fast: super::FastPathSlot,
    health: Arc<Mutex<Reachability>>,
    dropped: Arc<AtomicU64>,
    watcher: JoinHandle<()>,
    cas: Script,
    lease: Script,
    release: Script,
    register: Script,
    raise: Script,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Reachability {
    connected: bool,
    error: Option<String>,
    since: Instant,
    disconnects: u64,
}

impl Reachability {
    fn set(&mut self, connected: bool, error: Option<String>) {
        if connected != self.connected {
            self.since = Instant::now();
            if !connected {
                self.disconnects += 1;
            }
        }
        self.connected = connected;
        self.error = if connected { None } else { error };
    }
}

impl RedisBackplane {
    /// A backplane on the Redis at `url` (`redis://host:port/db`), delivering subscribed
    /// channels' messages to `inbox`. Connects in the background: a Redis that is down now
    /// is reported by [`Backplane::health`], not here. Must run inside a Tokio runtime.
    pub fn connect(url: &str, inbox: mpsc::Sender<Envelope>) -> Result<Self, BackplaneError> {
        let info = url
            .into_connection_info()
            .map_err(|e| BackplaneError::Config(format!("{url}: {e}")))?;
        // Pub/sub messages arrive as RESP3 pushes on the same connection as commands.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        // TCP_NODELAY: relays send small messages back to back (a clock probe after an echo,
        // a room's messages); Nagle would hold the second until the first is acknowledged,
        // up to a delayed ACK's 40 ms, and skew the clock estimates between relays.
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let client = Client::open(info.set_redis_settings(settings).set_tcp_settings(tcp))
            .map_err(|e| BackplaneError::Config(format!("{url}: {e}")))?;
        let health = Arc::new(Mutex::new(Reachability {
            connected: false,
            error: Some("not connected yet".into()),
            since: Instant::now(),
            disconnects: 0,
        }));
        let dropped = Arc::new(AtomicU64::new(0));
        let fast = super::FastPathSlot::default();
        let pushes = {
            let health = health.clone();
            let dropped = dropped.clone();
            let fast = fast.clone();
            move |push: PushInfo| {
                on_push(push, &inbox, &fast, &health, &dropped);
                Ok::<(), redis::aio::SendError>(())
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_push_sender(pushes)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_max_delay(MAX_RECONNECT_DELAY);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BackplaneError::Config(e.to_string()))?;
        let watcher = tokio::spawn(watch(manager.clone(), health.clone()));
        Ok(RedisBackplane {
            manager,
            fast,
            health,
            dropped,
            watcher,
            cas: Script::new(CAS_SCRIPT),
            lease: Script::new(LEASE_SCRIPT),
            release: Script::new(RELEASE_SCRIPT),
            register: Script::new(REGISTER_SCRIPT),
            raise: Script::new(RAISE_SCRIPT),
        })
    }

    /// Sets the fast path (once).
    pub fn set_fast_path(&self, fast: super::FastPath) {
        self.fast.set(fast);
    }

    /// Messages dropped because the inbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Runs a command, noting in the health whether Redis answered.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackplaneError> {
        let mut conn = self.manager.clone();
        let result = cmd.query_async::<T>(&mut conn).await;
        self.note(result)
    }

    fn note<T>(&self, result: Result<T, RedisError>) -> Result<T, BackplaneError> {
        result.map_err(|e| {
            let error = classify(&e);
            if let BackplaneError::Unavailable(message) = &error
                && let Ok(mut health) = self.health.lock()
            {
                health.set(false, Some(message.clone()));
            }
            error
        })
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Backplane for RedisBackplane {
    fn health(&self) -> BackplaneHealth {
        let (connected, error, since, disconnects) = match self.health.lock() {
            Ok(h) => (h.connected, h.error.clone(), h.since, h.disconnects),
            Err(_) => (
                false,
                Some("health state poisoned".into()),
                Instant::now(),
                0,
            ),
        };
        BackplaneHealth {
            kind: "redis",
            connected,
            error,
            since_secs: since.elapsed().as_secs(),
            disconnects,
        }
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BackplaneError> {
        self.run::<i64>(redis::cmd("PUBLISH").arg(channel).arg(payload.as_ref()))
            .await
            .map(|_| ())
    }

    async fn publish_many(&self, messages: Vec<(String, Bytes)>) -> Result<(), BackplaneError> {
        let mut pipe = redis::pipe();
        for (channel, payload) in &messages {
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(payload.as_ref())
                .ignore();
        }
        let mut conn = self.manager.clone();
        let result = pipe.query_async::<()>(&mut conn).await;
        self.note(result)
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BackplaneError> {
        let mut conn = self.manager.clone();
        let result = conn.subscribe(channel).await;
        self.note(result)
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackplaneError> {
        let mut conn = self.manager.clone();
        let result = conn.unsubscribe(channel).await;
        self.note(result)
    }

    async fn load(&self, key: &str) -> Result<Option<Record>, BackplaneError> {
        let (version, value): (Option<u64>, Option<Vec<u8>>) = self
            .run(redis::cmd("HMGET").arg(key).arg("v").arg("d"))
            .await?;
        Ok(match (version, value) {
            (Some(version), Some(value)) => Some(Record {
                version,
                value: Bytes::from(value),
            }),
            _ => None,
        })
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Bytes,
    ) -> Result<CasOutcome, BackplaneError> {
        let mut conn = self.manager.clone();
        let result = self
            .cas
            .key(key)
            .arg(expected)
            .arg(value.as_ref())
            .invoke_async::<(i64, u64)>(&mut conn)
            .await;
        match self.note(result)? {
            (1, version) => Ok(CasOutcome::Written(version)),
            (0, version) => Ok(CasOutcome::Conflict(version)),
            (other, _) => Err(BackplaneError::Protocol(format!(
                "compare-and-set returned {other}"
            ))),
        }
    }

    async fn remove(&self, key: &str) -> Result<(), BackplaneError> {
        self.run::<i64>(redis::cmd("DEL").arg(key))
            .await
            .map(|_| ())
    }

    async fn next_in_sequence(&self, key: &str) -> Result<u64, BackplaneError> {
        self.run::<u64>(redis::cmd("INCR").arg(key)).await
    }

    async fn raise_sequence(&self, key: &str, at_least: u64) -> Result<(), BackplaneError> {
        let mut conn = self.manager.clone();
        let result = self
            .raise
            .key(key)
            .arg(at_least)
            .invoke_async::<i64>(&mut conn)
            .await;
        self.note(result).map(|_| ())
    }

    async fn index_set(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
    ) -> Result<(), BackplaneError> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in &fields {
            cmd.arg(f).arg(v.as_ref());
        }
        self.run::<i64>(&cmd).await.map(|_| ())
    }

    async fn index_remove(&self, key: &str, fields: Vec<String>) -> Result<(), BackplaneError> {
        if fields.is_empty() {
            return Ok(());
        }
        self.run::<i64>(redis::cmd("HDEL").arg(key).arg(fields))
            .await
            .map(|_| ())
    }

    async fn index_get(&self, key: &str, field: &str) -> Result<Option<Bytes>, BackplaneError> {
        self.run::<Option<Vec<u8>>>(redis::cmd("HGET").arg(key).arg(field))
            .await
            .map(|v| v.map(Bytes::from))
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.manager.clone();
        let result = self
            .lease
            .key(key)
            .arg(holder)
            .arg(ttl_ms)
            .invoke_async::<i64>(&mut conn)
            .await;
        self.note(result).map(|held| held == 1)
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<bool, BackplaneError> {
        let mut conn = self.manager.clone();
        let result = self
            .release
            .key(key)
            .arg(holder)
            .invoke_async::<i64>(&mut conn)
            .await;
        self.note(result).map(|released| released == 1)
    }

    async fn register(
        &self,
        directory: &str,
        member: &str,
        ttl: Duration,
        value: Bytes,
    ) -> Result<Vec<(String, Bytes)>, BackplaneError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.manager.clone();
        let result = self
            .register
            .key(format!("{directory}:expiry"))
            .key(format!("{directory}:values"))
            .arg(member)
            .arg(ttl_ms)
            .arg(value.as_ref())
            .invoke_async::<Vec<Vec<u8>>>(&mut conn)
            .await;
        let flat = self.note(result)?;
        let mut members: Vec<(String, Bytes)> = flat
            .chunks_exact(2)
            .map(|pair| {
                (
                    String::from_utf8_lossy(&pair[0]).into_owned(),
                    Bytes::copy_from_slice(&pair[1]),
                )
            })
            .collect();
        members.sort();
        Ok(members)
    }
}

/// A push from Redis: a message on a subscribed channel goes to the inbox; a lost connection
/// is noted (the watcher notes its return).
fn on_push(
    push: PushInfo,
    inbox: &mpsc::Sender<Envelope>,
    fast: &super::FastPathSlot,
    health: &Mutex<Reachability>,
    dropped: &AtomicU64,
) {
    match push.kind {
        PushKind::Message => {
            let mut data = push.data.into_iter();
            let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                return;
            };
            let (Some(channel), Some(payload)) = (bytes_of(channel), bytes_of(payload)) else {
                return;
            };
            let envelope = Envelope {
                channel: String::from_utf8_lossy(&channel).into_owned(),
                payload: Bytes::from(payload),
                received: std::time::Instant::now(),
            };
            if fast.took(&envelope) {
                return;
            }
            if inbox.try_send(envelope).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        PushKind::Disconnection => {
            if let Ok(mut h) = health.lock() {
                h.set(false, Some("connection to Redis lost".into()));
            }
        }
        _ => {}
    }
}

fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// Pings Redis twice a second, so a Redis that went away (or came back) is noticed even when
/// the relay sends nothing, and the connection manager reconnects (and resubscribes).
async fn watch(manager: ConnectionManager, health: Arc<Mutex<Reachability>>) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let mut conn = manager.clone();
        let ping = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let (connected, error) = match ping {
            Ok(Ok(_)) => (true, None),
            Ok(Err(e)) => (false, Some(e.to_string())),
            Err(_) => (false, Some("Redis did not answer within 1 s".to_string())),
        };
        if let Ok(mut h) = health.lock() {
            h.set(connected, error);
        }
    }
}

fn classify(e: &RedisError) -> BackplaneError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() {
        BackplaneError::Unavailable(e.to_string())
    } else {
        BackplaneError::Protocol(e.to_string())
    }
}
