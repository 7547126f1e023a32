//! The `web` environment of `agent-harness.md` §3–§5: one Chromium per node, one
//! browser context and page per session, reached over the Chrome DevTools Protocol.
//! Only this crate knows CDP.
//!
//! # Layout
//! - [`process`]: finding, launching and killing Chromium; leftovers of a crashed run.
//! - [`cdp`]: the protocol client (JSON over the browser's WebSocket).
//! - [`page`]: one tab: input events, navigation, screenshots.
//! - [`session`]: one session's context, its tabs and the web tools.
//! - [`policy`], [`proxy`]: the network policy, enforced by a proxy per context that
//!   resolves and checks every address itself (so DNS rebinding cannot slip past).
//!
//! # Failure model
//! The browser is launched lazily, at the first session that needs it. If it exits or
//! its connection drops, every live context is forgotten; the next step of each of
//! those sessions finds no live browser and gets a fresh context at its last URL, the
//! same path a session takes after a restart of agentd (`docs/browser.md`).

pub mod cdp;
mod keys;
mod page;
pub mod policy;
pub mod process;
pub mod proxy;
mod scripts;
mod session;
mod tools;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use agentd_domain::{SessionId, WebSpec};
use agentd_environment::{
    ActionResult, EnvironmentError, Environments, Observation, Opened, ToolSpec,
};
use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::cdp::Cdp;
use crate::policy::NetworkPolicy;
use crate::process::ChromiumProcess;
use crate::proxy::PolicyProxy;
use crate::session::{SessionBrowser, Warm};

pub use crate::tools::web_tools;

#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// The Chromium binary; `None` looks on PATH.
    pub chromium: Option<PathBuf>,
    /// Where the browser's profile and pid file live (under the data directory).
    pub dir: PathBuf,
    pub policy: NetworkPolicy,
    /// Contexts kept ready for the next sessions.
    pub warm_contexts: usize,
}

/// The node's browser and the sessions' contexts in it.
pub struct WebEnvironments {
    shared: Arc<Shared>,
}

struct Shared {
    config: BrowserConfig,
    browser: Mutex<Option<Arc<Running>>>,
    sessions: std::sync::Mutex<HashMap<SessionId, Arc<Mutex<SessionBrowser>>>>,
    warm: std::sync::Mutex<Vec<(u64, Warm)>>,
    generation: std::sync::atomic::AtomicU64,
}

struct Running {
    cdp: Cdp,
    generation: u64,
    process: std::sync::Mutex<Option<ChromiumProcess>>,
    pid: u32,
    _node_proxy: PolicyProxy,
    /// The node's policy with this browser's DevTools socket refused too.
    policy: Arc<NetworkPolicy>,
    /// Set when agentd shuts the browser down, so its end is not taken for a crash.
    stopping: std::sync::atomic::AtomicBool,
}

impl WebEnvironments {
    /// Cleans up what an earlier run left; the browser itself starts at first use.
    pub fn new(config: BrowserConfig) -> WebEnvironments {
        if let Some(pid) = process::clean_up_leftovers(&config.dir) {
            tracing::info!(pid, "stopped a browser left by an earlier run");
        }
        WebEnvironments {
            shared: Arc::new(Shared {
                config,
                browser: Mutex::new(None),
                sessions: std::sync::Mutex::new(HashMap::new()),
                warm: std::sync::Mutex::new(Vec::new()),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Stops the browser (at shutdown). Sessions keep their place in the event log.
    pub async fn shutdown(&self) {
        self.shared.sessions().clear();
        self.shared.warm().clear();
        if let Some(running) = self.shared.browser.lock().await.take() {
            running
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            running.stop();
            // The group was sent SIGKILL; agentd exits only once it is really gone.
            if !process::wait_group_gone(running.pid, std::time::Duration::from_secs(5)).await {
                tracing::warn!(pid = running.pid, "browser processes still alive after 5 s");
            }
        }
    }
}

impl Running {
    fn stop(&self) {
        self.cdp.close();
        if let Some(mut process) = self
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            process.kill();
        }
    }
}

impl Shared {
    fn sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Mutex<SessionBrowser>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes how many sessions hold a context (`agentd_browser_contexts`).
    fn count_contexts(&self, sessions: &HashMap<SessionId, Arc<Mutex<SessionBrowser>>>) {
        metrics::gauge!("agentd_browser_contexts").set(sessions.len() as f64);
    }

    fn warm(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Warm)>> {
        self.warm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live browser, launched if there is none (or the last one died).
    async fn browser(self: &Arc<Self>) -> Result<Arc<Running>, EnvironmentError> {
        let mut slot = self.browser.lock().await;
        if let Some(running) = slot.as_ref()
            && !running.cdp.is_closed()
        {
            return Ok(running.clone());
        }
        if let Some(dead) = slot.take() {
            dead.stop();
        }
        let unavailable =
            |e: String| EnvironmentError::Unavailable(format!("the browser is unavailable: {e}"));
        let binary =
            process::find_chromium(self.config.chromium.as_deref()).map_err(unavailable)?;
        // The default context is never used by a session; its traffic is policed all the same.
        let node_proxy = PolicyProxy::start(Arc::new(self.config.policy.clone()))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let process = ChromiumProcess::launch(&binary, &self.config.dir, &node_proxy.url())
            .await
            .map_err(unavailable)?;
        let cdp = Cdp::connect(&process.ws_url).await.map_err(unavailable)?;
        // Sessions' contexts are policed with the DevTools socket refused as well.
        let mut policy = self.config.policy.clone();
        match process::devtools_socket(&process.ws_url) {
            Some(addr) => policy.deny_devtools(addr),
            None => {
                return Err(unavailable(format!(
                    "unexpected DevTools URL {}",
                    process.ws_url
                )));
            }
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let running = Arc::new(Running {
            cdp,
            generation,
            pid: process.pid(),
            process: std::sync::Mutex::new(Some(process)),
            _node_proxy: node_proxy,
            policy: Arc::new(policy),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        self.watch(running.clone());
        *slot = Some(running.clone());
        self.refill(running.clone());
        Ok(running)
    }

    /// Forgets every context of a browser that died, so its sessions are restored.
    fn watch(self: &Arc<Self>, running: Arc<Running>) {
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            running.cdp.closed().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let generation = running.generation;
            let lost = {
                let mut sessions = shared.sessions();
                let before = sessions.len();
                sessions.retain(|_, s| {
                    s.try_lock()
                        .map(|s| s.generation != generation)
                        .unwrap_or(true)
                });
                shared.count_contexts(&sessions);
                before - sessions.len()
            };
            shared.warm().retain(|(g, _)| *g != generation);
            if running.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(pid = running.pid, "browser stopped");
                return;
            }
            tracing::warn!(
                pid = running.pid,
                lost,
                "the browser stopped; its sessions get a fresh context at their next step"
            );
            running.stop();
            metrics::counter!("agentd_browser_restarts_total").increment(1);
        });
    }

    /// Tops up the warm pool in the background.
    fn refill(self: &Arc<Self>, running: Arc<Running>) {
        let want = self.config.warm_contexts;
        let have = self
            .warm()
            .iter()
            .filter(|(g, _)| *g == running.generation)
            .count();
        if have >= want {
            return;
        }
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            for _ in have..want {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                match Warm::create(&running.cdp, running.policy.clone()).await {
                    Ok(warm) => shared.warm().push((running.generation, warm)),
                    Err(e) => {
                        tracing::debug!(error = %e, "could not warm a browser context");
                        return;
                    }
                }
            }
        });
    }

    fn live(&self, session: SessionId) -> Option<Arc<Mutex<SessionBrowser>>> {
        self.sessions().get(&session).cloned()
    }
}

fn browser_lost(e: impl std::fmt::Display) -> EnvironmentError {
    EnvironmentError::Unavailable(format!("the browser stopped: {e}"))
}

#[async_trait]
impl Environments for WebEnvironments {
    fn web_tools(&self, spec: &WebSpec) -> Vec<ToolSpec> {
        tools::web_tools(spec)
    }

    async fn open(
        &self,
        session: SessionId,
        spec: &WebSpec,
        last_url: Option<&str>,
    ) -> Result<Opened, EnvironmentError> {
        let shared = &self.shared;
        if let Some(live) = shared.live(session)
            && live.lock().await.is_alive()
        {
            return Ok(Opened::Live);
        }
        let started = std::time::Instant::now();
        let running = shared.browser().await?;
        let warm = {
            let mut pool = shared.warm();
            let position = pool.iter().position(|(g, _)| *g == running.generation);
            position.map(|i| pool.swap_remove(i).1)
        };
        let pooled = warm.is_some();
        let warm = match warm {
            Some(warm) => warm,
            None => Warm::create(&running.cdp, running.policy.clone())
                .await
                .map_err(browser_lost)?,
        };
        shared.refill(running.clone());
        let mut browser = SessionBrowser::from_warm(&running.cdp, running.generation, warm, spec)
            .await
            .map_err(browser_lost)?;
        // The context is ready here; loading the start page is the site's time, not ours.
        metrics::histogram!("agentd_browser_open_seconds", "pooled" => if pooled { "yes" } else { "no" })
            .record(started.elapsed().as_secs_f64());
        let loading = std::time::Instant::now();
        let (url, opened) = match last_url.filter(|u| !u.is_empty() && *u != "about:blank") {
            Some(url) => (
                Some(url.to_string()),
                Opened::Restored {
                    url: url.to_string(),
                },
            ),
            None => (spec.start_url.clone(), Opened::Fresh),
        };
        if let Some(url) = url.filter(|u| u != "about:blank") {
            // A start page that fails to load is the model's to see, not a failure.
            if let ActionResult::Failed(why) = browser.go_to(&url).await {
                tracing::info!(%why, "the first page did not open");
                browser.notify(format!("{url} did not open: {why}"));
            }
        }
        {
            let mut sessions = shared.sessions();
            sessions.insert(session, Arc::new(Mutex::new(browser)));
            shared.count_contexts(&sessions);
        }
        metrics::histogram!("agentd_browser_start_page_seconds")
            .record(loading.elapsed().as_secs_f64());
        Ok(opened)
    }

    async fn observe(&self, session: SessionId) -> Result<Observation, EnvironmentError> {
        let live = self
            .shared
            .live(session)
            .ok_or_else(|| browser_lost("no browser is open for this session"))?;
        let mut browser = live.lock().await;
        browser.observe().await.map_err(browser_lost)
    }

    async fn act(
        &self,
        session: SessionId,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<ActionResult, EnvironmentError> {
        let live = self
            .shared
            .live(session)
            .ok_or_else(|| browser_lost("no browser is open for this session"))?;
        let mut browser = live.lock().await;
        browser.act(tool, args).await.map_err(browser_lost)
    }

    async fn location(&self, session: SessionId) -> Option<String> {
        let live = self.shared.live(session)?;
        let browser = live.lock().await;
        browser.location().await
    }

    async fn close(&self, session: SessionId) {
        let live = self.shared.sessions().remove(&session);
        if let Some(live) = live {
            live.lock().await.close().await;
        }
        // Counted once the context is disposed of, so the gauge never shows it gone early.
        self.shared.count_contexts(&self.shared.sessions());
    }
}
