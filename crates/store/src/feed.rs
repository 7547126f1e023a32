//! The in-process change feed: one `watch` channel per session that somebody listens
//! to. A commit publishes the session as committed and the events it appended, so a
//! long-poll woken by it can answer without reading the store again.
//!
//! Channels exist only while they have receivers: a session nobody watches costs
//! nothing here, which keeps memory flat with many idle sessions.

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
}

pub type ChangeReceiver = watch::Receiver<Option<Arc<Change>>>;

#[derive(Default)]
pub struct LocalFeed {
    channels: Mutex<HashMap<SessionId, watch::Sender<Option<Arc<Change>>>>>,
}

impl LocalFeed {
    pub fn subscribe(&self, id: SessionId) -> ChangeReceiver {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(&id) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        channels.insert(id, sender);
        receiver
    }

    pub fn publish(&self, change: Change) {
        let id = change.session.id;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = channels.get(&id) else {
            return;
        };
        if sender.receiver_count() == 0 {
            channels.remove(&id);
            return;
        }
        sender.send_replace(Some(Arc::new(change)));
    }

    /// Number of sessions with live channels (for metrics and tests).
    pub fn watched_sessions(&self) -> usize {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels.len()
    }
}
