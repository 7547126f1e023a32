//! A minimal Chrome DevTools Protocol client over the browser's WebSocket.
//!
//! agentd uses a few dozen commands of CDP. A generated binding of the whole protocol
//! costs minutes of build time and breaks when Chromium's protocol drifts from the
//! binding's snapshot; plain JSON commands with only the fields we read do neither.
//!
//! One connection serves every target: pages are attached with `flatten: true`, so a
//! command names its page by `sessionId` and events carry the page they came from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// A command that takes longer than this has lost its browser.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error)]
pub enum CdpError {
    #[error("the browser connection is closed")]
    Closed,
    #[error("{method} timed out")]
    Timeout { method: String },
    #[error("{method}: {message}")]
    Protocol { method: String, message: String },
}

/// An event from the browser. `session` is the page's CDP session, `None` for the
/// browser itself.
#[derive(Debug, Clone)]
pub struct Event {
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>;

#[derive(Clone)]
pub struct Cdp {
    inner: Arc<Inner>,
}

struct Inner {
    next_id: AtomicU64,
    pending: Pending,
    outgoing: mpsc::UnboundedSender<String>,
    events: broadcast::Sender<Event>,
    closed: CancellationToken,
}

impl Cdp {
    /// Connects to `ws_url` (the browser's `DevTools listening on` address).
    pub async fn connect(ws_url: &str) -> Result<Cdp, String> {
        let (socket, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .map_err(|e| format!("cannot connect to the browser at {ws_url}: {e}"))?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<String>();
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            outgoing,
            events,
            closed: CancellationToken::new(),
        });

        let writer_closed = inner.closed.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = to_send.recv() => match message {
                        Some(text) => if sink.send(Message::text(text)).await.is_err() { break },
                        None => break,
                    },
                    _ = writer_closed.cancelled() => break,
                }
            }
            let _ = sink.close().await;
        });

        // The reader holds only a weak handle, so dropping every `Cdp` ends it.
        let weak = Arc::downgrade(&inner);
        let reader_closed = inner.closed.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = stream.next() => message,
                    _ = reader_closed.cancelled() => break,
                };
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else {
                    continue;
                };
                let Some(inner) = weak.upgrade() else { break };
                inner.dispatch(text.as_str());
            }
            if let Some(inner) = weak.upgrade() {
                inner.close();
            }
        });
        Ok(Cdp { inner })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Resolves when the connection ends (the browser exited or crashed).
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    pub fn close(&self) {
        self.inner.close();
    }

    /// Sends `method` with `params` to the browser (`session: None`) or to a page.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CdpError> {
        if self.is_closed() {
            return Err(CdpError::Closed);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::String(session.to_string());
        }
        let (tx, rx) = oneshot::channel();
        self.inner.pending().insert(id, tx);
        // Dropped by the caller (a cancelled step): the entry must not linger.
        let _forget = Forget {
            inner: &self.inner,
            id,
        };
        if self.inner.outgoing.send(message.to_string()).is_err() {
            return Err(CdpError::Closed);
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(message))) => Err(CdpError::Protocol {
                method: method.to_string(),
                message,
            }),
            Ok(Err(_)) => Err(CdpError::Closed),
            Err(_) => Err(CdpError::Timeout {
                method: method.to_string(),
            }),
        }
    }
}

struct Forget<'a> {
    inner: &'a Inner,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.inner.pending().remove(&self.id);
    }
}

impl Inner {
    fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Value, String>>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dispatch(&self, text: &str) {
        let Ok(mut message) = serde_json::from_str::<Value>(text) else {
            tracing::debug!("undecodable message from the browser");
            return;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let Some(tx) = self.pending().remove(&id) else {
                return;
            };
            let reply = match message.get_mut("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string()),
                None => Ok(message
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or(Value::Null)),
            };
            let _ = tx.send(reply);
            return;
        }
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return;
        };
        let event = Event {
            session: message
                .get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_string),
            method: method.to_string(),
            params: message
                .get_mut("params")
                .map(Value::take)
                .unwrap_or(Value::Null),
        };
        // No subscriber is fine: nobody waits for this event.
        let _ = self.events.send(event);
    }

    fn close(&self) {
        self.closed.cancel();
        // Dropping the senders wakes every waiter with `Closed`.
        self.pending().clear();
    }
}
