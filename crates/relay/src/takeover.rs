//! Taking over a room whose relay is gone, when one of its members resumes here.
//!
//! A member of a dead relay reconnects to another one with its resume token. Before the
//! hello reaches the core, this relay looks the token up in the resume index; if it names a
//! stored room whose home is no longer listed among the relays, the relay claims the room by
//! compare-and-set (exactly one relay wins, however many try at once), imports it with its
//! times shifted by the last clock offset measured to the old home, and from then on stores it
//! itself. The hello then resumes the member as if nothing happened: same id, same role, the
//! room's timeline as it was.

use std::sync::Arc;

use lockstep_proto::message::RoomId;
use tokio::sync::{mpsc, oneshot};

use crate::backplane::{AnyBackplane, Backplane, CasOutcome};
use crate::cluster::{Cluster, LISTING_TTL};
use crate::persist::{Pending, StoredRoom, resume_index, room_key};
use crate::server::CoreEvent;

/// How often a relay that may have died is checked while a member waits.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// What a takeover needs.
#[derive(Debug)]
pub struct Takeover {
    cluster: Arc<Cluster>,
    backplane: Arc<AnyBackplane>,
    pending: Arc<Pending>,
    core: mpsc::Sender<CoreEvent>,
}

impl Takeover {
    /// Takeovers through `backplane` by the relay `cluster` describes.
    pub fn new(
        cluster: Arc<Cluster>,
        backplane: Arc<AnyBackplane>,
        pending: Arc<Pending>,
        core: mpsc::Sender<CoreEvent>,
    ) -> Self {
        Takeover {
            cluster,
            backplane,
            pending,
            core,
        }
    }

    /// A hello with `token` is about to reach the core: take the token's room over first if
    /// its relay is gone. Failures only mean the member starts afresh; they are logged.
    pub async fn before_resume(&self, token: &str) {
        match self.take(token).await {
            Ok(Some(room)) => {
                tracing::info!(room = room.as_str(), "took over a room whose relay is gone");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "room not taken over"),
        }
    }

    async fn take(&self, token: &str) -> Result<Option<RoomId>, String> {
        let (tx, rx) = oneshot::channel();
        self.core
            .send(CoreEvent::KnowsResume(token.to_string(), tx))
            .await
            .map_err(|_| "relay stopping")?;
        if rx.await.map_err(|_| "relay stopping")? {
            return Ok(None);
        }
        let Some(room) = self
            .backplane
            .index_get(&resume_index(), token)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let room = RoomId::new(String::from_utf8_lossy(&room).into_owned());
        let key = room_key(&room);
        let Some(record) = self.backplane.load(&key).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let stored = StoredRoom::decode(&record.value).ok_or("unreadable stored room")?;
        let me = self.cluster.relay_id();
        if stored.home == me
            || !stored
                .snapshot
                .members
                .iter()
                .any(|m| m.resume_token == token)
        {
            // Ours already, or not the member's room any more.
            return Ok(None);
        }
        // A member usually comes here because its relay just died, before the relay's listing
        // lapsed: wait for that (the listing lapses, then this relay's next renewal round
        // notices it) rather than give the member a fresh session and lose its room.
        let deadline = tokio::time::Instant::now() + 2 * LISTING_TTL;
        while self.cluster.peers().iter().any(|p| p.id == stored.home) {
            if tokio::time::Instant::now() >= deadline {
                // Its relay is alive: the room is there, not here.
                return Ok(None);
            }
            tokio::time::sleep(RECHECK).await;
        }
        let offset_us = self
            .cluster
            .peer_clock(&stored.home)
            .map_or(0, |e| e.offset_us);
        let mine = StoredRoom {
            home: me.to_string(),
            snapshot: stored.snapshot,
        };
        let version = match self
            .backplane
            .compare_and_set(&key, record.version, mine.encode().into())
            .await
            .map_err(|e| e.to_string())?
        {
            CasOutcome::Written(v) => v,
            // Another relay claimed it first.
            CasOutcome::Conflict(_) => return Ok(None),
        };
        self.pending.adopt(room.clone(), version);
        let (tx, rx) = oneshot::channel();
        self.core
            .send(CoreEvent::Import {
                snapshot: Box::new(mine.snapshot),
                offset_us,
                reply: tx,
            })
            .await
            .map_err(|_| "relay stopping")?;
        rx.await
            .map_err(|_| "relay stopping")?
            .map(Some)
            .map_err(|e| e.to_string())
    }
}
