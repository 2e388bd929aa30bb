//! The in-memory backplane: one relay, the default. Channels loop back to this relay's own
//! subscriptions; records and leases live in maps. The same rules as Redis, so code written
//! against the backplane behaves alike on one relay and on many.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Backplane, BackplaneError, BackplaneHealth, CasOutcome, Envelope, Record};

/// The in-memory backplane.
#[derive(Debug)]
pub struct MemoryBackplane {
    inbox: mpsc::Sender<Envelope>,
    fast: super::FastPathSlot,
    state: Mutex<State>,
    started: Instant,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    subscribed: HashSet<String>,
    records: HashMap<String, Record>,
    leases: HashMap<String, (String, Instant)>,
    directories: HashMap<String, HashMap<String, (Bytes, Instant)>>,
    indexes: HashMap<String, HashMap<String, Bytes>>,
    sequences: HashMap<String, u64>,
}

impl MemoryBackplane {
    /// A backplane delivering subscribed channels' messages to `inbox`.
    pub fn new(inbox: mpsc::Sender<Envelope>) -> Self {
        MemoryBackplane {
            inbox,
            fast: super::FastPathSlot::default(),
            state: Mutex::new(State::default()),
            started: Instant::now(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets the fast path (once).
    pub fn set_fast_path(&self, fast: super::FastPath) {
        self.fast.set(fast);
    }

    /// Messages dropped because the inbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, BackplaneError> {
        self.state
            .lock()
            .map_err(|_| BackplaneError::Unavailable("in-memory state poisoned".into()))
    }
}

impl Backplane for MemoryBackplane {
    fn health(&self) -> BackplaneHealth {
        BackplaneHealth {
            kind: "memory",
            connected: true,
            error: None,
            since_secs: self.started.elapsed().as_secs(),
            disconnects: 0,
        }
    }

    async fn publish_many(&self, messages: Vec<(String, Bytes)>) -> Result<(), BackplaneError> {
        for (channel, payload) in messages {
            self.publish(&channel, payload).await?;
        }
        Ok(())
    }

    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BackplaneError> {
        if !self.state()?.subscribed.contains(channel) {
            return Ok(());
        }
        let envelope = Envelope {
            channel: channel.to_string(),
            payload,
            received: std::time::Instant::now(),
        };
        if self.fast.took(&envelope) {
            return Ok(());
        }
        if self.inbox.try_send(envelope).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BackplaneError> {
        self.state()?.subscribed.insert(channel.to_string());
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackplaneError> {
        self.state()?.subscribed.remove(channel);
        Ok(())
    }

    async fn load(&self, key: &str) -> Result<Option<Record>, BackplaneError> {
        Ok(self.state()?.records.get(key).cloned())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Bytes,
    ) -> Result<CasOutcome, BackplaneError> {
        let mut state = self.state()?;
        let current = state.records.get(key).map_or(0, |r| r.version);
        if current != expected {
            return Ok(CasOutcome::Conflict(current));
        }
        let version = current + 1;
        state
            .records
            .insert(key.to_string(), Record { version, value });
        Ok(CasOutcome::Written(version))
    }

    async fn remove(&self, key: &str) -> Result<(), BackplaneError> {
        self.state()?.records.remove(key);
        Ok(())
    }

    async fn next_in_sequence(&self, key: &str) -> Result<u64, BackplaneError> {
        let mut state = self.state()?;
        let n = state.sequences.entry(key.to_string()).or_insert(0);
        *n += 1;
        Ok(*n)
    }

    async fn raise_sequence(&self, key: &str, at_least: u64) -> Result<(), BackplaneError> {
        let mut state = self.state()?;
        let n = state.sequences.entry(key.to_string()).or_insert(0);
        *n = (*n).max(at_least);
        Ok(())
    }

    async fn index_set(
        &self,
        key: &str,
        fields: Vec<(String, Bytes)>,
    ) -> Result<(), BackplaneError> {
        self.state()?
            .indexes
            .entry(key.to_string())
            .or_default()
            .extend(fields);
        Ok(())
    }

    async fn index_remove(&self, key: &str, fields: Vec<String>) -> Result<(), BackplaneError> {
        if let Some(index) = self.state()?.indexes.get_mut(key) {
            for f in fields {
                index.remove(&f);
            }
        }
        Ok(())
    }

    async fn index_get(&self, key: &str, field: &str) -> Result<Option<Bytes>, BackplaneError> {
        Ok(self
            .state()?
            .indexes
            .get(key)
            .and_then(|i| i.get(field).cloned()))
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, BackplaneError> {
        let now = Instant::now();
        let mut state = self.state()?;
        let free = state
            .leases
            .get(key)
            .is_none_or(|(h, until)| h == holder || *until <= now);
        if free {
            state
                .leases
                .insert(key.to_string(), (holder.to_string(), now + ttl));
        }
        Ok(free)
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<bool, BackplaneError> {
        let mut state = self.state()?;
        let held = state.leases.get(key).is_some_and(|(h, _)| h == holder);
        if held {
            state.leases.remove(key);
        }
        Ok(held)
    }

    async fn register(
        &self,
        directory: &str,
        member: &str,
        ttl: Duration,
        value: Bytes,
    ) -> Result<Vec<(String, Bytes)>, BackplaneError> {
        let now = Instant::now();
        let mut state = self.state()?;
        let listed = state.directories.entry(directory.to_string()).or_default();
        listed.insert(member.to_string(), (value, now + ttl));
        listed.retain(|_, (_, until)| *until > now);
        let mut members: Vec<_> = listed
            .iter()
            .map(|(m, (v, _))| (m.clone(), v.clone()))
            .collect();
        members.sort();
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rules_redis_follows_too() {
        let (tx, mut rx) = mpsc::channel(4);
        let b = MemoryBackplane::new(tx);
        // Channels: only subscribed ones arrive.
        b.publish("room:a", Bytes::from_static(b"lost"))
            .await
            .unwrap();
        b.subscribe("room:a").await.unwrap();
        b.publish("room:a", Bytes::from_static(b"one"))
            .await
            .unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(
            (got.channel.as_str(), &got.payload[..]),
            ("room:a", &b"one"[..])
        );
        b.unsubscribe("room:a").await.unwrap();
        b.publish("room:a", Bytes::from_static(b"two"))
            .await
            .unwrap();
        assert!(rx.try_recv().is_err());
        // Records: versions, conflicts.
        let v = Bytes::from_static(b"v");
        assert_eq!(
            b.compare_and_set("k", 0, v.clone()).await.unwrap(),
            CasOutcome::Written(1)
        );
        assert_eq!(
            b.compare_and_set("k", 0, v.clone()).await.unwrap(),
            CasOutcome::Conflict(1)
        );
        assert_eq!(
            b.compare_and_set("k", 1, v.clone()).await.unwrap(),
            CasOutcome::Written(2)
        );
        assert_eq!(b.load("k").await.unwrap().map(|r| r.version), Some(2));
        assert_eq!(b.load("nothing").await.unwrap(), None);
        b.index_set(
            "idx",
            vec![("t1".into(), v.clone()), ("t2".into(), v.clone())],
        )
        .await
        .unwrap();
        b.index_remove("idx", vec!["t1".into()]).await.unwrap();
        assert_eq!(b.index_get("idx", "t1").await.unwrap(), None);
        assert_eq!(b.index_get("idx", "t2").await.unwrap(), Some(v.clone()));
        assert_eq!(b.next_in_sequence("seq").await.unwrap(), 1);
        assert_eq!(b.next_in_sequence("seq").await.unwrap(), 2);
        b.raise_sequence("seq", 10).await.unwrap();
        b.raise_sequence("seq", 5).await.unwrap();
        assert_eq!(b.next_in_sequence("seq").await.unwrap(), 11);
        b.remove("k").await.unwrap();
        assert_eq!(b.load("k").await.unwrap(), None);
        assert_eq!(
            b.compare_and_set("k", 0, v.clone()).await.unwrap(),
            CasOutcome::Written(1)
        );
        // Leases: held, renewed by the holder, free once lapsed or released.
        let ttl = Duration::from_millis(500);
        assert!(b.acquire_lease("home:a", "r1", ttl).await.unwrap());
        assert!(!b.acquire_lease("home:a", "r2", ttl).await.unwrap());
        assert!(b.acquire_lease("home:a", "r1", ttl).await.unwrap());
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(b.acquire_lease("home:a", "r2", ttl).await.unwrap());
        assert!(!b.release_lease("home:a", "r1").await.unwrap());
        assert!(b.release_lease("home:a", "r2").await.unwrap());
        assert!(b.acquire_lease("home:a", "r1", ttl).await.unwrap());
        // Directories: listed while renewed.
        let names = |v: Vec<(String, Bytes)>| v.into_iter().map(|(m, _)| m).collect::<Vec<_>>();
        let one = Bytes::from_static(b"1");
        assert_eq!(
            names(b.register("relays", "r1", ttl, one.clone()).await.unwrap()),
            ["r1"]
        );
        assert_eq!(
            names(b.register("relays", "r2", ttl, one.clone()).await.unwrap()),
            ["r1", "r2"]
        );
        tokio::time::advance(Duration::from_millis(300)).await;
        b.register("relays", "r2", ttl, one.clone()).await.unwrap();
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(
            names(b.register("relays", "r2", ttl, one).await.unwrap()),
            ["r2"]
        );
        // A full inbox drops and counts.
        b.subscribe("busy").await.unwrap();
        for _ in 0..6 {
            b.publish("busy", Bytes::new()).await.unwrap();
        }
        assert_eq!(b.dropped(), 2);
    }
}
