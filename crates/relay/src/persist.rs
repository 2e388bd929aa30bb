//! Rooms stored in the backplane, so another relay can take one over when this one is gone.
//!
//! After each pass of the core the relay snapshots the rooms the pass touched; a snapshot
//! that differs from the last one stored goes to [`Pending`] (the newest per room replaces an
//! older one not yet written, so nothing queues without bound), and the writer task stores it
//! with compare-and-set under `lockstep:room:{id}` as `{home, version, snapshot}`. A
//! conflict means another relay wrote the room (it took it over): this relay stops storing it.
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
use tokio::sync::Notify;

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

/// A snapshot to write, and the resume tokens of its members.
#[derive(Debug, Clone)]
struct Entry {
    bytes: Bytes,
    tokens: Vec<String>,
}

/// Snapshots waiting to be written: the newest per room (`None`: the room is gone); and the
/// version this relay last wrote of each room it holds.
#[derive(Debug, Default)]
pub struct Pending {
    rooms: Mutex<BTreeMap<RoomId, Option<Entry>>>,
    notify: Notify,
    versions: Mutex<HashMap<RoomId, u64>>,
}

impl Pending {
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

    /// Looks at the rooms the core touched; hands on those that changed.
    pub fn after_pass(&mut self, core: &mut RelayCore) {
        let touched = core.take_touched_rooms();
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
        }
        self.pending.notify.notify_one();
    }
}

/// Writes what is pending, newest first per room, until the relay stops; keeps the resume
/// index in step.
pub async fn write(pending: Arc<Pending>, backplane: Arc<AnyBackplane>) {
    // Rooms another relay wrote since: left alone.
    let mut lost: HashSet<RoomId> = HashSet::new();
    // The tokens indexed per room, to remove those of members who left.
    let mut indexed: HashMap<RoomId, HashSet<String>> = HashMap::new();
    let index = resume_index();
    loop {
        pending.notify.notified().await;
        let batch = match pending.rooms.lock() {
            Ok(mut rooms) => std::mem::take(&mut *rooms),
            Err(_) => return,
        };
        let mut batch = batch.into_iter();
        while let Some((id, entry)) = batch.next() {
            let key = room_key(&id);
            let Some(entry) = entry else {
                pending.set_version(&id, None);
                lost.remove(&id);
                let tokens: Vec<String> = indexed.remove(&id).into_iter().flatten().collect();
                let removed = async {
                    backplane.remove(&key).await?;
                    backplane.index_remove(&index, tokens).await
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
                    let indexed_ok = async {
                        backplane.index_set(&index, added).await?;
                        backplane.index_remove(&index, gone).await
                    };
                    if let Err(e) = indexed_ok.await {
                        tracing::debug!(room = id.as_str(), error = %e, "resume index not updated");
                        indexed.remove(&id);
                    }
                }
                Ok(CasOutcome::Conflict(v)) => {
                    tracing::warn!(
                        room = id.as_str(),
                        expected,
                        found = v,
                        "room stored by another relay: no longer stored from here"
                    );
                    pending.set_version(&id, None);
                    lost.insert(id);
                }
                Err(e) => {
                    // Redis away: keep this and the rest for later (unless newer ones came
                    // meanwhile), and try again shortly.
                    tracing::debug!(room = id.as_str(), error = %e, "rooms not stored yet");
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
    }
}
