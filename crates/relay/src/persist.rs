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

/// Snapshots waiting to be written: the newest per room (`None`: the room is gone).
#[derive(Debug, Default)]
pub struct Pending {
    rooms: Mutex<BTreeMap<RoomId, Option<Bytes>>>,
    notify: Notify,
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
                    let stored = StoredRoom {
                        home: self.home.clone(),
                        snapshot,
                    };
                    let bytes = stored.encode();
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    bytes.hash(&mut h);
                    let hash = h.finish();
                    if self.last.insert(id.clone(), hash) != Some(hash) {
                        changed.push((id, Some(Bytes::from(bytes))));
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

/// Writes what is pending, newest first per room, until the relay stops.
pub async fn write(pending: Arc<Pending>, backplane: Arc<AnyBackplane>) {
    // The version this relay last wrote per room; rooms another relay took are left alone.
    let mut versions: HashMap<RoomId, u64> = HashMap::new();
    let mut lost: HashSet<RoomId> = HashSet::new();
    loop {
        pending.notify.notified().await;
        let batch = match pending.rooms.lock() {
            Ok(mut rooms) => std::mem::take(&mut *rooms),
            Err(_) => return,
        };
        let mut batch = batch.into_iter();
        while let Some((id, bytes)) = batch.next() {
            if lost.contains(&id) {
                continue;
            }
            let key = room_key(&id);
            let Some(bytes) = bytes else {
                versions.remove(&id);
                if let Err(e) = backplane.remove(&key).await {
                    tracing::warn!(room = id.as_str(), error = %e, "stored room not removed");
                }
                continue;
            };
            let expected = versions.get(&id).copied().unwrap_or(0);
            match backplane
                .compare_and_set(&key, expected, bytes.clone())
                .await
            {
                Ok(CasOutcome::Written(v)) => {
                    versions.insert(id, v);
                }
                Ok(CasOutcome::Conflict(v)) => {
                    tracing::warn!(
                        room = id.as_str(),
                        expected,
                        found = v,
                        "room stored by another relay: no longer stored from here"
                    );
                    lost.insert(id);
                }
                Err(e) => {
                    // Redis away: keep this and the rest for later (unless newer ones came
                    // meanwhile), and try again shortly.
                    tracing::debug!(room = id.as_str(), error = %e, "rooms not stored yet");
                    if let Ok(mut rooms) = pending.rooms.lock() {
                        rooms.entry(id).or_insert(Some(bytes));
                        for (id, bytes) in batch.by_ref() {
                            rooms.entry(id).or_insert(bytes);
                        }
                    }
                    tokio::time::sleep(RETRY).await;
                    pending.notify.notify_one();
                }
            }
        }
    }
}
