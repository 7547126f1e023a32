//! Which sessions are being driven, and by whom.
//!
//! - Each runnable session (`pending` or `running`) has at most one runner task on this
//!   node. [`Scheduler::ensure_running`] starts one or, if one is already there, marks
//!   it "kicked" so that it looks at the session once more before it exits: a runner
//!   that decided to exit just as a control made the session runnable again does not
//!   leave it stranded.
//! - At start, sessions left `pending` or `running` by the previous process get runners
//!   (they continue from their last recorded step), and queued sessions are started as
//!   far as slots allow.
//! - The idle timer ends idle sessions whose `idle_timeout_s` lapsed. It sleeps until
//!   the earliest deadline in the store, and is nudged when a session goes idle.
//! - When a session ends, its organisation's oldest queued sessions take the freed slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_domain::time::now_ms;
use agentd_domain::{OrgId, SessionId, SessionStatus, events};
use agentd_model_client::ModelClient;
use agentd_store::{DynStore, Guard, SessionRecord, SessionUpdate, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{EngineConfig, EngineError, WebParts, agent_loop, delayed_start, retention};

#[derive(Clone)]
pub(crate) struct Scheduler {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: DynStore,
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) model: ModelClient,
    /// The browser and where screenshots go; `None` on a node without a browser.
    pub(crate) web: Option<WebParts>,
    /// Sessions with a runner on this node; the flag is "look again before exiting".
    runners: Mutex<HashMap<SessionId, bool>>,
    /// Cancelled at shutdown: every runner and background task stops.
    pub(crate) shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Wakes the idle timer when a session goes idle (its deadline may be the earliest).
    idle_changed: Notify,
}

impl Scheduler {
    pub(crate) fn new(
        store: DynStore,
        config: Arc<EngineConfig>,
        model: ModelClient,
        web: Option<WebParts>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                model,
                web,
                runners: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                idle_changed: Notify::new(),
            }),
        }
    }

    pub(crate) async fn start(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let resumable = inner
            .store
            .sessions_in_status(&[SessionStatus::Pending, SessionStatus::Running])
            .await?;
        if !resumable.is_empty() {
            tracing::info!(count = resumable.len(), "resuming sessions left running");
        }
        for id in resumable {
            self.ensure_running(id);
        }
        for org in inner.store.orgs_with_queued().await? {
            self.promote_queued(&org).await;
        }
        let this = self.clone();
        inner.tasks.spawn(async move { this.idle_timer().await });
        if let Some(web) = inner.web.clone() {
            let (store, shutdown) = (inner.store.clone(), inner.shutdown.clone());
            inner.tasks.spawn(async move {
                loop {
                    retention::sweep(store.as_ref(), web.blobs.as_ref()).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(retention::SWEEP_EVERY) => {}
                    }
                }
            });
        }
        Ok(())
    }

    pub(crate) async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn stopping(&self) {
        self.inner.shutdown.cancelled().await
    }

    pub(crate) fn ensure_running(&self, id: SessionId) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let mut runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kicked) = runners.get_mut(&id) {
            *kicked = true;
            return;
        }
        runners.insert(id, false);
        metrics::gauge!("agentd_runners").set(runners.len() as f64);
        drop(runners);
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            loop {
                agent_loop::run(&this.inner, &this, id).await;
                // Exit only if nobody asked for another look meanwhile.
                let mut runners = this.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
                match runners.get_mut(&id) {
                    Some(kicked) if *kicked && !this.inner.shutdown.is_cancelled() => {
                        *kicked = false;
                    }
                    _ => {
                        runners.remove(&id);
                        metrics::gauge!("agentd_runners").set(runners.len() as f64);
                        return;
                    }
                }
            }
        });
    }

    /// What follows a committed transition: a runner for a session that became
    /// runnable, freed slots for queued sessions, a nudge for the idle timer.
    pub(crate) async fn after_commit(&self, before: &SessionRecord, after: &SessionRecord) {
        if after.status.is_runnable() {
            self.ensure_running(after.id);
        }
        if after.status == SessionStatus::Idle {
            self.inner.idle_changed.notify_one();
        }
        if before.status.holds_slot() && !after.status.holds_slot() {
            self.promote_queued(&after.org_id).await;
        }
        // An ended session's browser goes at once (cancel must close it within 1 s);
        // paused and idle sessions keep theirs.
        if after.status.is_terminal()
            && !before.status.is_terminal()
            && let Some(web) = &self.inner.web
        {
            let environments = web.environments.clone();
            let blobs = web.blobs.clone();
            let ended = after.clone();
            self.inner.tasks.spawn(async move {
                environments.close(ended.id).await;
                // `delete_screenshot_after_min: 0` is due now, not at the next sweep.
                retention::sweep_one(blobs.as_ref(), &ended).await;
            });
        }
    }

    pub(crate) async fn promote_queued(&self, org: &OrgId) {
        let promoted = self
            .inner
            .store
            .promote_queued(
                org,
                self.inner.config.slot_limit,
                vec![delayed_start("released")],
            )
            .await;
        match promoted {
            Ok(sessions) => {
                for session in sessions {
                    tracing::info!(session_id = %session.id, "queued session released");
                    self.ensure_running(session.id);
                }
            }
            Err(e) => tracing::error!(org = %org, error = %e, "could not release queued sessions"),
        }
    }

    async fn idle_timer(&self) {
        let inner = &self.inner;
        loop {
            let next = match inner.store.next_idle_deadline().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "idle timer: store unavailable");
                    Some(now_ms() + 1000)
                }
            };
            let sleep = match next {
                Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = inner.idle_changed.notified() => continue,
                _ = tokio::time::sleep(sleep) => {}
            }
            let due = match inner.store.due_idle_sessions(now_ms()).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %e, "idle timer: store unavailable");
                    continue;
                }
            };
            for session in due {
                self.end_idle(session).await;
            }
        }
    }

    /// An idle session whose window lapsed ends `completed`: its last turn was answered.
    async fn end_idle(&self, session: SessionRecord) {
        let guard = Guard {
            epoch: Some(session.epoch),
            statuses: Some(vec![SessionStatus::Idle]),
            slot_limit: None,
        };
        let update = SessionUpdate {
            status: Some(SessionStatus::Completed),
            finished_at: Some(Some(now_ms())),
            idle_deadline: Some(None),
            ..Default::default()
        };
        match self
            .inner
            .store
            .commit(
                session.id,
                &guard,
                update,
                vec![events::completion("finished")],
            )
            .await
        {
            Ok(after) => {
                tracing::info!(session_id = %session.id, "idle window lapsed: session completed");
                self.after_commit(&session, &after).await;
            }
            Err(StoreError::GuardFailed { .. }) => {}
            Err(e) => {
                tracing::error!(session_id = %session.id, error = %e, "could not end idle session")
            }
        }
    }
}
