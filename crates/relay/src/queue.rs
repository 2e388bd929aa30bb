//! A client's outbound queue: bounded, with a policy per kind of message.
//!
//! Owns what happens when a client reads slower than the room talks. The relay's core never
//! waits on a client: it pushes and moves on.
//! - Timeline updates coalesce: only the newest `state_update` waits (older ones are stale).
//! - Members' stats coalesce the same way.
//! - Pongs keep the newest few (drop oldest): an old pong is a bad clock sample anyway.
//! - Control messages are kept in order up to a bound; past it the client is disconnected
//!   (`slow_consumer`), because dropping a control message would corrupt its view of the room.
//!
//! So one slow client costs at most the bound, and never delays anyone else.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lockstep_proto::MessageType;
use tokio::sync::Notify;

use crate::core::Outgoing;
use crate::metrics::Metrics;

/// Control messages a client may have waiting (behind the kernel's 256 KiB send buffer). A
/// queued message stays alive for the slow client after everyone else got it, so the bound is
/// what a reader that stopped costs: at 1,024 a chat-heavy room made each one hold ~1.2 MiB
/// (load benchmark, slow-consumer scenario); at 256, about a quarter of that.
pub const CONTROL_CAPACITY: usize = 256;
/// Pongs a client may have waiting.
pub const PONG_CAPACITY: usize = 4;

/// What the writer gets next.
#[derive(Debug)]
pub enum Next {
    /// A message to send.
    Send(Arc<Outgoing>),
    /// Close the connection, for this reason (after what was sent before).
    Close(String),
}

#[derive(Debug, Default)]
struct State {
    control: VecDeque<Arc<Outgoing>>,
    state_update: Option<Arc<Outgoing>>,
    member_stats: Option<Arc<Outgoing>>,
    pongs: VecDeque<Arc<Outgoing>>,
    close: Option<String>,
    /// Closing: nothing more is queued; what is queued still goes out.
    closing: bool,
}

/// One client's queue, shared by the core (pushing) and the client's writer task.
#[derive(Debug)]
pub struct ClientQueue {
    state: Mutex<State>,
    notify: Notify,
    metrics: Arc<Metrics>,
}

impl ClientQueue {
    /// An empty queue.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(ClientQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            metrics,
        })
    }

    /// Queues a message. Returns false when the client overflowed and is being closed.
    pub fn push(&self, message: Arc<Outgoing>) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if s.closing {
            return false;
        }
        let kind = message.kind();
        match kind {
            MessageType::StateUpdate => {
                if s.state_update.replace(message).is_some() {
                    self.metrics.coalesced(kind);
                }
            }
            MessageType::MemberStats => {
                if s.member_stats.replace(message).is_some() {
                    self.metrics.coalesced(kind);
                }
            }
            MessageType::Pong => {
                if s.pongs.len() >= PONG_CAPACITY {
                    s.pongs.pop_front();
                    self.metrics.dropped(kind);
                }
                s.pongs.push_back(message);
            }
            _ => {
                if s.control.len() >= CONTROL_CAPACITY {
                    s.closing = true;
                    s.close = Some("slow_consumer: the client did not read its messages".into());
                    self.metrics.slow_consumer_disconnect();
                    self.metrics.dropped(kind);
                    drop(s);
                    self.notify.notify_one();
                    return false;
                }
                s.control.push_back(message);
            }
        }
        drop(s);
        self.notify.notify_one();
        true
    }

    /// Asks the writer to close after what is queued.
    pub fn close(&self, reason: String) {
        if let Ok(mut s) = self.state.lock() {
            s.closing = true;
            s.close.get_or_insert(reason);
        }
        self.notify.notify_one();
    }

    /// Messages waiting, for tests and metrics.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .map(|s| {
                s.control.len()
                    + s.pongs.len()
                    + usize::from(s.state_update.is_some())
                    + usize::from(s.member_stats.is_some())
            })
            .unwrap_or(0)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next thing to send; waits while there is none. Pongs and timelines go first: they
    /// are the latency-critical ones.
    pub async fn next(&self) -> Next {
        loop {
            let notified = self.notify.notified();
            if let Some(next) = self.try_next() {
                return next;
            }
            notified.await;
        }
    }

    /// The next thing to send, if anything waits (writers drain a batch with it before one
    /// flush).
    pub fn try_next(&self) -> Option<Next> {
        let Ok(mut s) = self.state.lock() else {
            return Some(Next::Close("queue poisoned".into()));
        };
        if let Some(p) = s.pongs.pop_front() {
            return Some(Next::Send(p));
        }
        if let Some(u) = s.state_update.take() {
            return Some(Next::Send(u));
        }
        if let Some(m) = s.control.pop_front() {
            return Some(Next::Send(m));
        }
        if let Some(m) = s.member_stats.take() {
            return Some(Next::Send(m));
        }
        s.close.take().map(Next::Close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_proto::message::{Ack, RoomId, StateUpdate, TimelineReason};
    use lockstep_proto::{Message, ServerTime, Timeline};

    fn update(seq: u64) -> Arc<Outgoing> {
        let mut timeline = Timeline::new(ServerTime::from_micros(1));
        timeline.seq = seq;
        Arc::new(Outgoing::new(Message::StateUpdate(StateUpdate {
            room: RoomId::new("r"),
            timeline,
            reason: TimelineReason::Seek,
            by: None,
        })))
    }

    fn ack(req: u32) -> Arc<Outgoing> {
        Arc::new(Outgoing::new(Message::Ack(Ack {
            req,
            proposal: None,
        })))
    }

    #[tokio::test]
    async fn timelines_coalesce_to_the_newest() {
        let q = ClientQueue::new(Arc::new(Metrics::default()));
        for seq in 0..100 {
            q.push(update(seq));
        }
        assert_eq!(q.len(), 1);
        match q.next().await {
            Next::Send(m) => {
                assert!(matches!(m.message(), Message::StateUpdate(u) if u.timeline.seq == 99))
            }
            Next::Close(r) => panic!("closed: {r}"),
        }
    }

    #[tokio::test]
    async fn control_overflow_closes_the_client_and_bounds_memory() {
        let q = ClientQueue::new(Arc::new(Metrics::default()));
        for i in 0..CONTROL_CAPACITY {
            assert!(q.push(ack(i as u32)));
        }
        assert!(!q.push(ack(0)), "one past the bound closes");
        assert!(!q.push(ack(0)), "and nothing more is queued");
        assert_eq!(q.len(), CONTROL_CAPACITY);
        let mut sent = 0;
        loop {
            match q.next().await {
                Next::Send(_) => sent += 1,
                Next::Close(reason) => {
                    assert!(reason.starts_with("slow_consumer"));
                    break;
                }
            }
        }
        assert_eq!(
            sent, CONTROL_CAPACITY,
            "what was queued still goes out first"
        );
    }

    #[tokio::test]
    async fn the_writer_wakes_for_new_messages() {
        let q = ClientQueue::new(Arc::new(Metrics::default()));
        let q2 = q.clone();
        let writer = tokio::spawn(async move { matches!(q2.next().await, Next::Send(_)) });
        tokio::task::yield_now().await;
        q.push(ack(1));
        assert!(writer.await.unwrap());
    }
}
