//! The in-process change feed: one `watch` channel per session that somebody listens
//! to. A commit publishes the session as committed and the events it appended, so a
//! long-poll woken by it can answer without reading the store again.
//!
//! Channels exist only while they have receivers: a session nobody watches costs
//! nothing here, which keeps memory flat with many idle sessions. A channel whose last
//! receiver went is dropped at its session's next commit, or by the sweep that runs
//! whenever the map has doubled, so abandoned channels (and the last change each holds)
//! never outnumber the live ones by much.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentd_domain::SessionId;
use tokio::sync::watch;

use crate::{EventRecord, SessionRecord};

/// One commit: the session after it, and the events it appended (the first of them at
/// index `session.event_count - events.len()`).
#[derive(Debug)]
pub struct Change {
    pub session: SessionRecord,
    pub events: Vec<EventRecord>,
    /// When the change was published, right after its commit: wake latencies are
    /// measured from here.
    pub published: std::time::Instant,
}

impl Change {
    pub fn new(session: SessionRecord, events: Vec<EventRecord>) -> Change {
        Change {
            session,
            events,
            published: std::time::Instant::now(),
        }
    }
}

pub type ChangeReceiver = watch::Receiver<Option<Arc<Change>>>;

#[derive(Default)]
pub struct LocalFeed {
    channels: Mutex<Channels>,
}

#[derive(Default)]
struct Channels {
    by_session: HashMap<SessionId, watch::Sender<Option<Arc<Change>>>>,
    /// The map's size at which abandoned channels are swept next.
    sweep_at: usize,
}

/// Sweeps start at this many channels, so small maps are never swept.
const FIRST_SWEEP: usize = 64;

impl LocalFeed {
    pub fn subscribe(&self, id: SessionId) -> ChangeReceiver {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.by_session.get(&id) {
            return sender.subscribe();
        }
        if channels.by_session.len() >= channels.sweep_at.max(FIRST_SWEEP) {
            channels
                .by_session
                .retain(|_, sender| sender.receiver_count() > 0);
            channels.sweep_at = channels.by_session.len() * 2;
        }
        let (sender, receiver) = watch::channel(None);
        channels.by_session.insert(id, sender);
        receiver
    }

    pub fn publish(&self, mut change: Change) {
        change.published = std::time::Instant::now();
        let id = change.session.id;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = channels.by_session.get(&id) else {
            return;
        };
        if sender.receiver_count() == 0 {
            channels.by_session.remove(&id);
            return;
        }
        sender.send_replace(Some(Arc::new(change)));
    }

    /// Number of sessions with live channels (for metrics and tests).
    pub fn watched_sessions(&self) -> usize {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .by_session
            .retain(|_, sender| sender.receiver_count() > 0);
        channels.by_session.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(feed: &LocalFeed) -> usize {
        feed.channels.lock().unwrap().by_session.len()
    }

    #[test]
    fn abandoned_channels_are_swept_as_the_map_grows() {
        let feed = LocalFeed::default();
        let kept: Vec<ChangeReceiver> = (0..10).map(|_| feed.subscribe(SessionId::new())).collect();
        for _ in 0..1000 {
            drop(feed.subscribe(SessionId::new()));
        }
        // Never more than the sweep threshold beyond twice the live channels.
        assert!(
            held(&feed) <= FIRST_SWEEP.max(2 * kept.len()) + 1,
            "{}",
            held(&feed)
        );
        assert_eq!(feed.watched_sessions(), kept.len());
        assert!(kept.iter().all(|r| !r.has_changed().unwrap_or(true)));
    }

    #[test]
    fn a_second_subscriber_shares_the_channel() {
        let feed = LocalFeed::default();
        let id = SessionId::new();
        let _a = feed.subscribe(id);
        let _b = feed.subscribe(id);
        assert_eq!(held(&feed), 1);
    }
}
