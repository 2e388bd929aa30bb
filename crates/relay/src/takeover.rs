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
use crate::persist::{Pending, StoredRoom, invite_index, resume_index, room_key};
use crate::server::CoreEvent;

/// How often a relay that may have died is checked while a member waits.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a relay that is alive takes at most to answer a probe (a Redis round trip each
/// way, ~0.2 ms on one network).
const ALIVE: std::time::Duration = std::time::Duration::from_millis(250);

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
    pub async fn before_resume(&self, token: &str) -> ResumeAt {
        match self.take(token).await {
            Ok(Taken::Here(room)) => {
                tracing::info!(room = room.as_str(), "took over a room whose relay is gone");
                ResumeAt::Here
            }
            Ok(Taken::Elsewhere(home, room)) => ResumeAt::Elsewhere(home, room),
            Ok(Taken::Nothing) => ResumeAt::Here,
            Err(e) if !self.backplane.health().connected => {
                tracing::info!(error = %e, "resume token unknown here and Redis unreachable");
                ResumeAt::Unknowable
            }
            Err(e) => {
                tracing::warn!(error = %e, "room not taken over");
                ResumeAt::Here
            }
        }
    }

    async fn take(&self, token: &str) -> Result<Taken, String> {
        let (tx, rx) = oneshot::channel();
        self.core
            .send(CoreEvent::KnowsResume(token.to_string(), tx))
            .await
            .map_err(|_| "relay stopping")?;
        if rx.await.map_err(|_| "relay stopping")? {
            return Ok(Taken::Nothing);
        }
        if !self.backplane.health().connected {
            // Do not wait on a Redis that is away (the client waits for its welcome).
            return Err("Redis unreachable".into());
        }
        let Some(room) = self
            .backplane
            .index_get(&resume_index(), token)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(Taken::Nothing);
        };
        let room = RoomId::new(String::from_utf8_lossy(&room).into_owned());
        self.take_room(room, Some(token)).await
    }

    /// Where a `join_room` for `room` (an id or an invite code) goes: `Some((home, room id))`
    /// when the room is homed on another relay that is alive (the join goes through a
    /// tunnel); `None` when it is here now (taken over if its relay was gone) or unknown (this
    /// relay's core answers).
    pub async fn before_join(&self, room: &str) -> Option<(String, RoomId)> {
        let mut taken = self.take_room(RoomId::new(room), None).await;
        if matches!(taken, Ok(Taken::Nothing)) {
            // Not a room id: maybe an invite code.
            if let Ok(Some(id)) = self.backplane.index_get(&invite_index(), room).await {
                let id = RoomId::new(String::from_utf8_lossy(&id).into_owned());
                taken = self.take_room(id, None).await;
            }
        }
        match taken {
            Ok(Taken::Elsewhere(home, room)) => Some((home, room)),
            Ok(Taken::Here(room)) => {
                tracing::info!(room = room.as_str(), "took over a room whose relay is gone");
                None
            }
            Ok(Taken::Nothing) => None,
            Err(e) => {
                tracing::warn!(error = %e, "room not taken over");
                None
            }
        }
    }

    /// A room whose relay is gone and whose members here were tunnelled to it: whether it is
    /// here now (taken over by this relay, now or just before).
    pub async fn take_orphan(&self, room: &RoomId) -> bool {
        match self.take_room(room.clone(), None).await {
            Ok(Taken::Here(_)) => true,
            Ok(Taken::Elsewhere(..)) => false,
            // Already ours (a member resumed first), or gone: the core tells which.
            Ok(Taken::Nothing) => true,
            Err(e) => {
                tracing::warn!(error = %e, room = room.as_str(), "orphaned room not taken over");
                false
            }
        }
    }

    /// Takes `room` over if its relay is gone (for a member holding `token`, if given).
    async fn take_room(&self, room: RoomId, token: Option<&str>) -> Result<Taken, String> {
        if !self.backplane.health().connected {
            return Err("Redis unreachable".into());
        }
        let key = room_key(&room);
        let Some(record) = self.backplane.load(&key).await.map_err(|e| e.to_string())? else {
            return Ok(Taken::Nothing);
        };
        let stored = StoredRoom::decode(&record.value).ok_or("unreadable stored room")?;
        let me = self.cluster.relay_id();
        if stored.home == me
            || token.is_some_and(|token| {
                !stored
                    .snapshot
                    .members
                    .iter()
                    .any(|m| m.resume_token == token)
            })
        {
            // Ours already, or not the member's room any more.
            return Ok(Taken::Nothing);
        }
        // A member usually comes here because its relay just died, before the relay's listing
        // lapsed: unless that relay answered a clock probe just now, wait for the listing to
        // lapse (this relay's next renewal round notices it) rather than send the member to a
        // dead relay, or give it a fresh session and lose its room.
        let deadline = tokio::time::Instant::now() + 2 * LISTING_TTL;
        while self.cluster.is_listed(&stored.home) {
            if self.cluster.answers(&stored.home, ALIVE).await {
                // Its relay is alive: the room is there, not here.
                return Ok(Taken::Elsewhere(stored.home, room));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Taken::Nothing);
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
            // Another relay claimed it first: the session is there.
            CasOutcome::Conflict(_) => {
                return Ok(match self.backplane.load(&key).await {
                    Ok(Some(record)) => match StoredRoom::decode(&record.value) {
                        Some(s) if s.home != me => Taken::Elsewhere(s.home, room),
                        _ => Taken::Nothing,
                    },
                    _ => Taken::Nothing,
                });
            }
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
            .map(Taken::Here)
            .map_err(|e| e.to_string())
    }
}

/// Where a resuming member's session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeAt {
    /// Here (or nowhere: the member starts afresh here).
    Here,
    /// On that relay, in that room: the hello goes through a tunnel.
    Elsewhere(String, RoomId),
    /// The token is not known here, and Redis, which would tell, cannot be reached: the
    /// session may well exist elsewhere, so the member must not be given a fresh one here.
    Unknowable,
}

/// What became of a resuming member's room.
enum Taken {
    /// Taken over: it is here now.
    Here(RoomId),
    /// Its home (this relay id) is alive: the session is there.
    Elsewhere(String, RoomId),
    /// Nothing to take: here already, or unknown.
    Nothing,
}
