//! Rooms stored in the backplane, so another relay can take one over when this one is gone.
//!
//! After each pass of the core the relay snapshots the rooms the pass touched; a snapshot
//! that differs from the last one stored goes to [`Pending`] (the newest per room replaces an
//! older one not yet written, so nothing queues without bound), and the writer task stores it
//! with compare-and-set under `lockstep:room:{id}` as `{home, version, snapshot}`. A
//! conflict means another relay wrote the room (it took it over while this one was cut off
//! from Redis): this relay lets the room go and tells its members here to come back, so
//! they resume where the room is. A record gone altogether means Redis lost its data: every
//! room is stored again.
//! Members' last reported positions are left out: they change every second and come back
//! with the members' next `stats`.
//!
//! Without Redis nothing is stored: one relay's rooms live and die with it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lockstep_proto::message::RoomId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::{Notify, watch};

use crate::backplane::{AnyBackplane, Backplane, CasOutcome};
use crate::cluster::NAMESPACE;
use crate::core::{RelayCore, RoomSnapshot};

/// A room as stored: which relay holds it, and its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRoom {
    /// The relay holding the room (its home).
    pub home: String,
    /// The room.
    pub snapshot: RoomSnapshot,
}

impl StoredRoom {
    /// MessagePack bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// From MessagePack bytes.
    pub fn decode(bytes: &[u8]) -> Option<StoredRoom> {
        rmp_serde::from_slice(bytes).ok()
    }
}

/// How long to wait before writing again while the backplane is away.
const RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// The key a room is stored under.
pub fn room_key(id: &RoomId) -> String {
    format!("{NAMESPACE}:room:{}", id.as_str())
}

/// The index from resume tokens to the rooms their members are in: a relay a member resumes
/// on finds the room there when the member's relay is gone.
pub fn resume_index() -> String {
    format!("{NAMESPACE}:resume")
}

/// The index from invite codes to rooms: an invite link works through any relay.
pub fn invite_index() -> String {
    format!("{NAMESPACE}:invites")
}

/// A snapshot to write, the resume tokens of its members and its invite code.
#[derive(Debug, Clone)]
struct Entry {
    bytes: Bytes,
    tokens: Vec<String>,
    invite: String,
}

/// Snapshots waiting to be written: the newest per room (`None`: the room is gone); and the
/// version this relay last wrote of each room it holds.
///
/// Generations tell the core when to acknowledge: each pass that hands over changes is a new
/// generation, and the writer says which generation is stored entirely. An `ack` waits for
/// the generation of the pass that made it (nothing acknowledged is lost with the relay),
/// unless the backplane is failing: then rooms are served from memory, and acks go out at
/// once.
#[derive(Debug)]
pub struct Pending {
    rooms: Mutex<BTreeMap<RoomId, Option<Entry>>>,
    notify: Notify,
    versions: Mutex<HashMap<RoomId, u64>>,
    /// Redis lost what was stored (it restarted without its data): store every room again.
    resync: std::sync::atomic::AtomicBool,
    /// The newest generation handed to the writer.
    submitted: AtomicU64,
    /// The newest generation stored; also signalled when writes start failing.
    stored: watch::Sender<u64>,
    /// The last write failed (the backplane is away).
    failing: AtomicBool,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            rooms: Mutex::default(),
            notify: Notify::new(),
            versions: Mutex::default(),
            resync: AtomicBool::new(false),
            submitted: AtomicU64::new(0),
            stored: watch::channel(0).0,
            failing: AtomicBool::new(false),
        }
    }
}

impl Pending {
    /// The newest generation handed to the writer: what was changed so far.
    pub fn generation(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Whether generation `g` is stored, or writes are failing (nothing can be stored now).
    pub fn settled(&self, g: u64) -> bool {
        *self.stored.borrow() >= g || self.failing.load(Ordering::Acquire)
    }

    /// Changes when a generation is stored or writes start failing.
    pub fn watch_stored(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    /// This relay took the room over by writing `version` itself: it stores it from now on.
    pub fn adopt(&self, id: RoomId, version: u64) {
        if let Ok(mut v) = self.versions.lock() {
            v.insert(id, version);
        }
    }

    fn version(&self, id: &RoomId) -> Option<u64> {
        self.versions.lock().ok()?.get(id).copied()
    }

    fn set_version(&self, id: &RoomId, version: Option<u64>) {
        if let Ok(mut v) = self.versions.lock() {
            match version {
                Some(version) => v.insert(id.clone(), version),
                None => v.remove(id),
            };
        }
    }
}

/// What the core task keeps to notice real changes: a hash of the last snapshot per room.
#[derive(Debug)]
pub struct Snapshotter {
    home: String,
    pending: Arc<Pending>,
    last: HashMap<RoomId, u64>,
}

impl Snapshotter {
    /// Snapshots of rooms held by relay `home`, handed to `pending`.
    pub fn new(home: String, pending: Arc<Pending>) -> Self {
        Snapshotter {
            home,
            pending,
            last: HashMap::new(),
        }
    }

    /// What the snapshots go to.
    pub fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// Looks at the rooms the core touched (every room, after a resync); hands on those that
    /// changed.
    pub fn after_pass(&mut self, core: &mut RelayCore) {
        let mut touched = core.take_touched_rooms();
        if self
            .pending
            .resync
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.last.clear();
            touched.extend(core.room_ids());
        }
        if touched.is_empty() {
            return;
        }
        let mut changed = Vec::new();
        for id in touched {
            match core.room_snapshot(&id) {
                Some(mut snapshot) => {
                    for m in &mut snapshot.control.members {
                        m.position = None;
                    }
                    let tokens = snapshot
                        .members
                        .iter()
                        .map(|m| m.resume_token.clone())
                        .collect();
                    let invite = snapshot.invite.clone();
                    let stored = StoredRoom {
                        home: self.home.clone(),
                        snapshot,
                    };
                    let bytes = stored.encode();
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    bytes.hash(&mut h);
                    let hash = h.finish();
                    if self.last.insert(id.clone(), hash) != Some(hash) {
                        let entry = Entry {
                            bytes: Bytes::from(bytes),
                            tokens,
                            invite,
                        };
                        changed.push((id, Some(entry)));
                    }
                }
                None => {
                    if self.last.remove(&id).is_some() {
                        changed.push((id, None));
                    }
                }
            }
        }
        if changed.is_empty() {
            return;
        }
        if let Ok(mut rooms) = self.pending.rooms.lock() {
            rooms.extend(changed);
            self.pending.submitted.fetch_add(1, Ordering::AcqRel);
        }
        self.pending.notify.notify_one();
    }
}

/// Writes what is pending, newest first per room, until the relay stops; keeps the resume
/// index in step. `member_id_block` is re-asserted if Redis lost its data.
pub async fn write(
    relay_id: String,
    pending: Arc<Pending>,
    backplane: Arc<AnyBackplane>,
    member_id_block: u32,
    core: tokio::sync::mpsc::Sender<crate::server::CoreEvent>,
) {
    // Rooms another relay wrote since: left alone.
    let mut lost: HashSet<RoomId> = HashSet::new();
    // The invite code indexed per room.
    let mut invites: HashMap<RoomId, String> = HashMap::new();
    let invite_key = invite_index();
    // The tokens indexed per room, to remove those of members who left.
    let mut indexed: HashMap<RoomId, HashSet<String>> = HashMap::new();
    let index = resume_index();
    // After Redis comes back, every room is stored again: if Redis lost its data, that is
    // how it is noticed (the records are gone); if not, it costs one write per room.
    let mut watch = tokio::time::interval(RETRY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut disconnects = backplane.health().disconnects;
    let mut resync_due = false;
    loop {
        tokio::select! {
            () = pending.notify.notified() => {}
            _ = watch.tick() => {
                let health = backplane.health();
                resync_due |= health.disconnects != disconnects;
                disconnects = health.disconnects;
                if resync_due && health.connected {
                    resync_due = false;
                    pending.resync.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                continue;
            }
        }
        let (batch, generation) = match pending.rooms.lock() {
            Ok(mut rooms) => (std::mem::take(&mut *rooms), pending.generation()),
            Err(_) => return,
        };
        // Whether all of the batch is stored (or settled another way).
        let mut complete = true;
        let mut batch = batch.into_iter();
        while let Some((id, entry)) = batch.next() {
            let key = room_key(&id);
            let Some(entry) = entry else {
                pending.set_version(&id, None);
                lost.remove(&id);
                let tokens: Vec<String> = indexed.remove(&id).into_iter().flatten().collect();
                let invite: Vec<String> = invites.remove(&id).into_iter().collect();
                let removed = async {
                    backplane.remove(&key).await?;
                    backplane.index_remove(&index, tokens).await?;
                    backplane.index_remove(&invite_key, invite).await
                };
                if let Err(e) = removed.await {
                    tracing::warn!(room = id.as_str(), error = %e, "stored room not removed");
                }
                continue;
            };
            let expected = pending.version(&id).unwrap_or(0);
            if lost.contains(&id) && expected == 0 {
                continue;
            }
            match backplane
                .compare_and_set(&key, expected, entry.bytes.clone())
                .await
            {
                Ok(CasOutcome::Written(v)) => {
                    pending.failing.store(false, Ordering::Release);
                    pending.set_version(&id, Some(v));
                    lost.remove(&id);
                    let now: HashSet<String> = entry.tokens.iter().cloned().collect();
                    let before = indexed.insert(id.clone(), now.clone()).unwrap_or_default();
                    let room = Bytes::copy_from_slice(id.as_str().as_bytes());
                    let added = now
                        .difference(&before)
                        .map(|t| (t.clone(), room.clone()))
                        .collect();
                    let gone = before.difference(&now).cloned().collect();
                    let invite = (invites.get(&id) != Some(&entry.invite))
                        .then(|| (entry.invite.clone(), room.clone()));
                    let indexed_ok = async {
                        backplane.index_set(&index, added).await?;
                        backplane.index_remove(&index, gone).await?;
                        if let Some(invite) = invite {
                            backplane.index_set(&invite_key, vec![invite]).await?;
                        }
                        Ok::<(), crate::backplane::BackplaneError>(())
                    };
                    match indexed_ok.await {
                        Ok(()) => {
                            invites.insert(id.clone(), entry.invite.clone());
                        }
                        Err(e) => {
                            tracing::debug!(room = id.as_str(), error = %e, "indexes not updated");
                            indexed.remove(&id);
                            invites.remove(&id);
                        }
                    }
                }
                Ok(CasOutcome::Conflict(0)) => {
                    // The record is gone but nobody claimed the room (a claim writes a newer
                    // version): Redis lost its data. Store everything again, index every token
                    // again, and keep the member-id sequence past this relay's block.
                    tracing::warn!(
                        room = id.as_str(),
                        "stored room missing: Redis lost its data; storing every room again"
                    );
                    pending.set_version(&id, None);
                    indexed.clear();
                    invites.clear();
                    pending
                        .resync
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    let key = format!("{NAMESPACE}:member-id-blocks");
                    if let Err(e) = backplane
                        .raise_sequence(&key, u64::from(member_id_block))
                        .await
                    {
                        tracing::debug!(error = %e, "member-id sequence not raised");
                    }
                    if let Ok(mut rooms) = pending.rooms.lock() {
                        rooms.entry(id).or_insert(Some(entry));
                    }
                    complete = false;
                    pending.notify.notify_one();
                }
                Ok(CasOutcome::Conflict(v)) if written_by(&backplane, &key, &relay_id).await => {
                    // Our own write, whose answer was lost with a connection (Redis ran it):
                    // carry on from its version.
                    tracing::debug!(
                        room = id.as_str(),
                        version = v,
                        "own write landed unanswered"
                    );
                    pending.set_version(&id, Some(v));
                    if let Ok(mut rooms) = pending.rooms.lock() {
                        rooms.entry(id).or_insert(Some(entry));
                    }
                    complete = false;
                    pending.notify.notify_one();
                }
                Ok(CasOutcome::Conflict(v)) => {
                    tracing::warn!(
                        room = id.as_str(),
                        expected,
                        found = v,
                        "another relay took the room: its members here are sent there"
                    );
                    pending.set_version(&id, None);
                    lost.insert(id.clone());
                    let _ = core.send(crate::server::CoreEvent::Evict(id)).await;
                }
                Err(e) => {
                    // Redis away: keep this and the rest for later (unless newer ones came
                    // meanwhile), and try again shortly.
                    tracing::debug!(room = id.as_str(), error = %e, "rooms not stored yet");
                    complete = false;
                    // Acks stop waiting: rooms are served from memory until Redis is back.
                    pending.failing.store(true, Ordering::Release);
                    pending.stored.send_modify(|_| {});
                    if let Ok(mut rooms) = pending.rooms.lock() {
                        rooms.entry(id).or_insert(Some(entry));
                        for (id, entry) in batch.by_ref() {
                            rooms.entry(id).or_insert(entry);
                        }
                    }
                    tokio::time::sleep(RETRY).await;
                    pending.notify.notify_one();
                }
            }
        }
        if complete {
            pending.stored.send_modify(|g| *g = (*g).max(generation));
        }
    }
}

/// Whether the record at `key` names `relay_id` as the room's home (a relay that took the room
/// over writes its own id).
async fn written_by(backplane: &AnyBackplane, key: &str, relay_id: &str) -> bool {
    match backplane.load(key).await {
        Ok(Some(record)) => StoredRoom::decode(&record.value).is_some_and(|s| s.home == relay_id),
        _ => false,
    }
}
