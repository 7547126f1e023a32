//! One session's browser: its own browser context (cookies and storage of its own, all
//! traffic through its own policy proxy), its tabs, and the web tools carried out on
//! the active tab.

use std::time::Duration;

use agentd_domain::{BrowserMode, WebSpec};
use agentd_environment::{ActionResult, Observation, Screenshot};
use serde_json::{Map, Value, json};

use crate::cdp::{Cdp, CdpError};
use crate::page::Page;
use crate::proxy::PolicyProxy;
use crate::{keys, scripts};

/// Cap on the Markdown a reader-mode call returns.
const READER_LIMIT: usize = 20_000;
/// Cap on the visible Markdown added to an observation.
const VISIBLE_LIMIT: usize = 8_000;
const JPEG_QUALITY: u8 = 75;
/// How long an observation waits for a loading page before it shows what is there.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A context and its first page, made before a session asks for one.
pub struct Warm {
    pub context_id: String,
    pub page: Page,
    pub proxy: PolicyProxy,
}

impl Warm {
    pub async fn create(
        cdp: &Cdp,
        policy: std::sync::Arc<crate::policy::NetworkPolicy>,
    ) -> Result<Warm, String> {
        let proxy = PolicyProxy::start(policy)
            .await
            .map_err(|e| format!("cannot start the browser's policy proxy: {e}"))?;
        let context = cdp
            .call(
                None,
                "Target.createBrowserContext",
                json!({"disposeOnDetach": false, "proxyServer": proxy.url(), "proxyBypassList": "<-loopback>"}),
            )
            .await
            .map_err(|e| e.to_string())?;
        let context_id = context["browserContextId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let target = cdp
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context_id}),
            )
            .await
            .map_err(|e| e.to_string())?;
        let target_id = target["targetId"].as_str().unwrap_or_default();
        let page = Page::attach(
            cdp,
            target_id,
            (BrowserMode::DEFAULT_WIDTH, BrowserMode::DEFAULT_HEIGHT),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Warm {
            context_id,
            page,
            proxy,
        })
    }
}

pub struct SessionBrowser {
    cdp: Cdp,
    /// The browser process generation this context lives in.
    pub generation: u64,
    context_id: String,
    proxy: PolicyProxy,
    spec: WebSpec,
    tabs: Vec<Page>,
    active: usize,
    /// Text mode: the chunk shown.
    chunk: usize,
    /// Told to the model with the next observation (e.g. why the start page did not open).
    notice: Option<String>,
}

/// Why the tools will not open `url`, if they will not: only web pages are browsed (no
/// `file:`, `chrome:` or `data:` URL).
fn not_browsable(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let web =
        lower.starts_with("http://") || lower.starts_with("https://") || lower == "about:blank";
    (!web).then(|| format!("Cannot open {url}: only http and https addresses can be browsed."))
}

impl SessionBrowser {
    pub async fn from_warm(
        cdp: &Cdp,
        generation: u64,
        warm: Warm,
        spec: &WebSpec,
    ) -> Result<SessionBrowser, String> {
        let viewport = spec.mode.viewport();
        if viewport != (BrowserMode::DEFAULT_WIDTH, BrowserMode::DEFAULT_HEIGHT) {
            warm.page
                .set_viewport(viewport)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(SessionBrowser {
            cdp: cdp.clone(),
            generation,
            context_id: warm.context_id,
            proxy: warm.proxy,
            spec: spec.clone(),
            tabs: vec![warm.page],
            active: 0,
            chunk: 0,
            notice: None,
        })
    }

    pub fn is_alive(&self) -> bool {
        !self.cdp.is_closed()
    }

    fn page(&self) -> &Page {
        &self.tabs[self.active]
    }

    /// Opens `url` in the active tab; a refusal of the network policy is reported as such.
    pub async fn go_to(&mut self, url: &str) -> ActionResult {
        if let Some(why) = not_browsable(url) {
            return ActionResult::Failed(why);
        }
        self.proxy.take_refusals();
        let result = self.page().navigate(url).await;
        self.chunk = 0;
        if let Some(refused) = self.refusal() {
            return ActionResult::Failed(refused);
        }
        if let Err(e) = result {
            return ActionResult::Failed(e);
        }
        // An HTTP error is a page like any other, but the model must know the request
        // failed (a site's 404, or the proxy's 502 when the host cannot be reached).
        let answered = self
            .page()
            .eval(scripts::HTTP_STATUS)
            .await
            .unwrap_or_default();
        match answered["status"].as_u64() {
            Some(status) if status >= 400 => ActionResult::Failed(format!(
                "{url} answered HTTP {status}: {}",
                answered["text"].as_str().unwrap_or_default()
            )),
            _ => ActionResult::Done(json!(format!("Opened {url}."))),
        }
    }

    /// The policy's refusals since the last look, as one sentence for the model.
    fn refusal(&self) -> Option<String> {
        let refusals = self.proxy.take_refusals();
        let first = refusals.first()?;
        tracing::warn!(host = %first.host, "navigation refused by the browser's network policy");
        Some(format!("Request refused: {first}."))
    }

    /// Makes the browser's tab list match the context's page targets: tabs the page
    /// opened (links with `target=_blank`, `window.open`) are attached, and the newest
    /// one becomes active, as a user's browser would show it.
    async fn sync_tabs(&mut self) -> Result<Option<String>, CdpError> {
        let targets = self.cdp.call(None, "Target.getTargets", json!({})).await?;
        let mut opened = None;
        let ours: Vec<String> = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["type"] == "page" && t["browserContextId"].as_str() == Some(&self.context_id)
            })
            .filter_map(|t| t["targetId"].as_str().map(str::to_string))
            .collect();
        let active_id = self.page().target_id.clone();
        self.tabs.retain(|tab| ours.contains(&tab.target_id));
        for id in ours {
            if !self.tabs.iter().any(|tab| tab.target_id == id) {
                let page = Page::attach(&self.cdp, &id, self.spec.mode.viewport()).await?;
                self.tabs.push(page);
                opened = Some(id);
            }
        }
        self.active = match &opened {
            Some(_) => self.tabs.len() - 1,
            None => self
                .tabs
                .iter()
                .position(|tab| tab.target_id == active_id)
                .unwrap_or(0),
        };
        if self.tabs.is_empty() {
            self.open_tab("about:blank").await?;
        }
        Ok(opened)
    }

    async fn open_tab(&mut self, url: &str) -> Result<(), CdpError> {
        let target = self
            .cdp
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": self.context_id}),
            )
            .await?;
        let id = target["targetId"].as_str().unwrap_or_default().to_string();
        let page = Page::attach(&self.cdp, &id, self.spec.mode.viewport()).await?;
        self.tabs.push(page);
        self.active = self.tabs.len() - 1;
        if url != "about:blank" {
            let _ = self.page().navigate(url).await;
        }
        Ok(())
    }

    async fn wait_until_ready(&self) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            match self.page().eval("document.readyState").await {
                Ok(Value::String(state)) if state != "loading" => return,
                Ok(_) => {}
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn tab_list(&self) -> Vec<Value> {
        let mut tabs = Vec::with_capacity(self.tabs.len());
        for (i, tab) in self.tabs.iter().enumerate() {
            let title = if i == self.active {
                None
            } else {
                tab.eval("document.title").await.ok()
            };
            tabs.push(json!({"id": tab.target_id, "title": title, "active": i == self.active}));
        }
        tabs
    }

    /// The active tab's address. Called after an action, which ends by taking in the
    /// tabs it opened, so the active tab is already the right one.
    pub async fn location(&self) -> Option<String> {
        let href = self.page().eval("location.href").await.ok()?;
        href.as_str().map(str::to_string)
    }

    /// Something the model must read with the next observation.
    pub fn notify(&mut self, notice: String) {
        self.notice = Some(notice);
    }

    pub async fn observe(&mut self) -> Result<Observation, CdpError> {
        self.sync_tabs().await?;
        self.wait_until_ready().await;
        let notice = self.notice.take();
        let page = self.page().clone();
        let (markdown, visual) = match self.spec.mode {
            BrowserMode::Visual { markdown, .. } => (markdown, true),
            BrowserMode::Text { .. } => (false, false),
        };
        // The screenshot, the slow part, is taken while the page is read: neither
        // changes what the other sees.
        let shooting = async {
            match visual {
                true => Some(page.screenshot_jpeg(JPEG_QUALITY).await),
                false => None,
            }
        };
        let reading = async {
            let meta = page.eval(scripts::METADATA).await?;
            let tabs = self.tab_list().await;
            let visible = match markdown {
                true => page
                    .eval(&scripts::call(
                        scripts::MARKDOWN,
                        &[json!(true), json!(VISIBLE_LIMIT)],
                    ))
                    .await
                    .ok(),
                false => None,
            };
            Ok::<_, CdpError>((meta, tabs, visible))
        };
        let (shot, read) = tokio::join!(shooting, reading);
        let (meta, mut tabs, visible) = read?;
        let url = meta["url"].as_str().unwrap_or_default().to_string();
        let title = meta["title"].as_str().unwrap_or_default().to_string();
        if let Some(tab) = tabs.get_mut(self.active) {
            tab["title"] = json!(title);
        }
        let metadata = json!({
            "url": url, "title": title,
            "tabs": tabs.iter().map(|t| t["id"].clone()).collect::<Vec<_>>(),
            "active_tab": page.target_id,
            "screen_size": meta["screen_size"], "page_size": meta["page_size"],
            "scroll_position": meta["scroll_position"],
        });
        let tab_lines: Vec<String> = tabs
            .iter()
            .map(|t| {
                format!(
                    "- {} {}{}",
                    t["id"].as_str().unwrap_or_default(),
                    t["title"].as_str().unwrap_or_default(),
                    if t["active"] == true { " (active)" } else { "" }
                )
            })
            .collect();
        let mut text = notice
            .map(|notice| format!("Note: {notice}\n"))
            .unwrap_or_default();
        text.push_str(&format!(
            "URL: {url}\nTitle: {title}\nTabs:\n{}\n",
            tab_lines.join("\n")
        ));
        match self.spec.mode {
            BrowserMode::Visual { .. } => {
                let (sx, sy) = (&meta["scroll_position"][0], &meta["scroll_position"][1]);
                let (pw, ph) = (&meta["page_size"][0], &meta["page_size"][1]);
                text.push_str(&format!("Scroll: ({sx}, {sy}) of a {pw}x{ph} page\n"));
                if let Some(visible) = visible {
                    text.push_str("Visible text:\n");
                    text.push_str(visible.as_str().unwrap_or_default());
                    text.push('\n');
                }
                Ok(Observation {
                    kind: "web",
                    screenshot: shot.transpose()?.map(|bytes| Screenshot {
                        media_type: "image/jpeg",
                        bytes,
                    }),
                    text,
                    metadata,
                })
            }
            BrowserMode::Text { chunk_size } => {
                let chunks = self.chunks(chunk_size as usize).await;
                self.chunk = self.chunk.min(chunks.len().saturating_sub(1));
                text.push_str(&format!(
                    "Chunk {} of {}:\n{}\n",
                    self.chunk,
                    chunks.len(),
                    chunks.get(self.chunk).map(String::as_str).unwrap_or("")
                ));
                Ok(Observation {
                    kind: "textual_web",
                    screenshot: None,
                    text,
                    metadata,
                })
            }
        }
    }

    /// The page's Markdown cut into chunks of at most `size` characters.
    async fn chunks(&self, size: usize) -> Vec<String> {
        let markdown = self
            .page()
            .eval(&scripts::call(
                scripts::MARKDOWN,
                &[json!(false), json!(2_000_000)],
            ))
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let chars: Vec<char> = markdown.chars().collect();
        let chunks: Vec<String> = chars
            .chunks(size.max(1))
            .map(|c| c.iter().collect())
            .collect();
        if chunks.is_empty() {
            vec![String::new()]
        } else {
            chunks
        }
    }

    /// Carries out one web tool. `Err` only when the browser itself is gone.
    pub async fn act(
        &mut self,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<ActionResult, CdpError> {
        self.proxy.take_refusals();
        let result = self.dispatch(tool, args).await;
        let result = match result {
            Ok(result) => result,
            Err(e) if self.cdp.is_closed() => return Err(e),
            Err(e) => ActionResult::Failed(format!("{tool} failed: {e}")),
        };
        if let Some(refused) = self.refusal() {
            return Ok(ActionResult::Failed(refused));
        }
        let opened = self.sync_tabs().await?;
        if let Some(settle) = self.spec.settle_s.filter(|s| *s > 0.0) {
            tokio::time::sleep(Duration::from_secs_f64(settle.min(60.0))).await;
        }
        Ok(match (result, opened) {
            (ActionResult::Done(Value::String(text)), Some(tab)) => ActionResult::Done(json!(
                format!("{text} A new tab opened and is now active: {tab}.")
            )),
            (result, _) => result,
        })
    }

    async fn dispatch(
        &mut self,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<ActionResult, CdpError> {
        let num = |name: &str| args.get(name).and_then(Value::as_f64);
        let text = |name: &str| args.get(name).and_then(Value::as_str);
        let viewport = self.spec.mode.viewport();
        let point = || -> Result<(f64, f64), String> {
            let (Some(x), Some(y)) = (num("x"), num("y")) else {
                return Err("x and y are required numbers".to_string());
            };
            if x < 0.0 || y < 0.0 || x >= viewport.0 as f64 || y >= viewport.1 as f64 {
                return Err(format!(
                    "({x}, {y}) is outside the {}x{} viewport",
                    viewport.0, viewport.1
                ));
            }
            Ok((x, y))
        };
        let page = self.page().clone();
        let done = |text: String| Ok(ActionResult::Done(Value::String(text)));
        let failed = |text: String| Ok(ActionResult::Failed(text));
        match tool {
            "go_to_web" => match text("url") {
                Some(url) => Ok(self.go_to(url).await),
                None => failed("go_to_web needs a url.".into()),
            },
            "go_back_web" => match page.history_back().await {
                Ok(true) => done("Went back.".into()),
                Ok(false) => failed("There is no earlier page in this tab's history.".into()),
                Err(e) => failed(e),
            },
            "refresh_web" => match page.reload().await {
                Ok(()) => done("Reloaded.".into()),
                Err(e) => failed(e),
            },
            "switch_tab_web" => {
                if let Some(url) = text("url") {
                    if let Some(why) = not_browsable(url) {
                        return failed(why);
                    }
                    self.open_tab(url).await?;
                    let id = self.page().target_id.clone();
                    return done(format!("Opened a new tab {id} at {url}."));
                }
                let Some(id) = text("tab_id") else {
                    return failed("switch_tab_web needs a tab_id or a url.".into());
                };
                match self.tabs.iter().position(|t| t.target_id == id) {
                    Some(i) => {
                        self.active = i;
                        let _ = self.page().call("Page.bringToFront", json!({})).await;
                        done(format!("Switched to tab {id}."))
                    }
                    None => failed(format!("There is no tab {id}.")),
                }
            }
            "close_tab_web" => {
                let id = text("tab_id")
                    .map(str::to_string)
                    .unwrap_or(page.target_id.clone());
                if !self.tabs.iter().any(|t| t.target_id == id) {
                    return failed(format!("There is no tab {id}."));
                }
                self.cdp
                    .call(None, "Target.closeTarget", json!({"targetId": id}))
                    .await?;
                self.tabs.retain(|t| t.target_id != id);
                if self.tabs.is_empty() {
                    self.open_tab("about:blank").await?;
                }
                self.active = self.active.min(self.tabs.len() - 1);
                done(format!("Closed tab {id}."))
            }
            "wait_web" => {
                let seconds = num("seconds").unwrap_or(1.0).clamp(0.0, 60.0);
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                done(format!("Waited {seconds} s."))
            }
            "click_web" => {
                let (x, y) = match point() {
                    Ok(p) => p,
                    Err(e) => return failed(format!("Cannot click: {e}.")),
                };
                let button = text("button").unwrap_or("left");
                if !matches!(button, "left" | "right" | "middle") {
                    return failed(format!(
                        "Unknown button '{button}': use left, right or middle."
                    ));
                }
                let clicks = args
                    .get("clicks")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .clamp(1, 3) as u32;
                page.settling(page.click(x, y, button, clicks)).await?;
                done(format!("Clicked at ({x}, {y})."))
            }
            "move_mouse_web" => {
                let (x, y) = match point() {
                    Ok(p) => p,
                    Err(e) => return failed(format!("Cannot move the mouse: {e}.")),
                };
                page.move_mouse(x, y).await?;
                done(format!("Moved the mouse to ({x}, {y})."))
            }
            "write" => {
                let Some(value) = text("text") else {
                    return failed("write needs a text.".into());
                };
                if args.contains_key("x") || args.contains_key("y") {
                    let (x, y) = match point() {
                        Ok(p) => p,
                        Err(e) => return failed(format!("Cannot click the field: {e}.")),
                    };
                    page.click(x, y, "left", 1).await?;
                }
                if args.get("clear").and_then(Value::as_bool).unwrap_or(true) {
                    page.eval(scripts::CLEAR_FOCUSED).await?;
                }
                page.type_text(value).await?;
                if args.get("enter").and_then(Value::as_bool).unwrap_or(false) {
                    let enter = keys::parse("enter").into_iter().collect::<Vec<_>>();
                    page.settling(page.chord(&enter)).await?;
                }
                done(format!("Typed {} characters.", value.chars().count()))
            }
            "select_option" => {
                let (x, y) = match point() {
                    Ok(p) => p,
                    Err(e) => return failed(format!("Cannot select: {e}.")),
                };
                let option = text("option").unwrap_or_default();
                let reply = page
                    .eval(&scripts::call(
                        scripts::SELECT_OPTION,
                        &[json!(x), json!(y), json!(option)],
                    ))
                    .await?;
                match reply.get("error").and_then(Value::as_str) {
                    Some(error) => failed(error.to_string()),
                    None => done(format!(
                        "Selected {}.",
                        reply["selected"].as_str().unwrap_or(option)
                    )),
                }
            }
            "press_keys_web" => {
                let names: Vec<&str> = args
                    .get("keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if names.is_empty() {
                    return failed("press_keys_web needs a non-empty list of keys.".into());
                }
                let mut chord = Vec::new();
                for name in &names {
                    match keys::parse(name) {
                        Some(key) => chord.push(key),
                        None => return failed(format!("Unknown key '{name}'.")),
                    }
                }
                page.settling(page.chord(&chord)).await?;
                done(format!("Pressed {}.", names.join("+")))
            }
            "scroll_web" => {
                let direction = text("direction").unwrap_or("down");
                let (width, height) = (viewport.0 as f64, viewport.1 as f64);
                let (x, y) = if args.contains_key("x") || args.contains_key("y") {
                    match point() {
                        Ok(p) => p,
                        Err(e) => return failed(format!("Cannot scroll there: {e}.")),
                    }
                } else {
                    (width / 2.0, height / 2.0)
                };
                let vertical = matches!(direction, "up" | "down");
                let amount = num("amount").unwrap_or(if vertical { height } else { width } * 0.8);
                let (dx, dy) = match direction {
                    "down" => (0.0, amount),
                    "up" => (0.0, -amount),
                    "right" => (amount, 0.0),
                    "left" => (-amount, 0.0),
                    other => {
                        return failed(format!(
                            "Unknown direction '{other}': use up, down, left or right."
                        ));
                    }
                };
                page.wheel(x, y, dx, dy).await?;
                done(format!("Scrolled {direction} by {amount} px."))
            }
            "ctrl_f_web" => {
                let query = text("query").unwrap_or_default();
                let found = page
                    .eval(&scripts::call(scripts::FIND, &[json!(query)]))
                    .await?;
                if found == Value::Bool(true) {
                    done(format!("Found \"{query}\"; the page scrolled to it."))
                } else {
                    done(format!("No match for \"{query}\" on the page."))
                }
            }
            "reader_mode" => {
                let markdown = page
                    .eval(&scripts::call(
                        scripts::MARKDOWN,
                        &[json!(false), json!(READER_LIMIT)],
                    ))
                    .await?;
                done(markdown.as_str().unwrap_or_default().to_string())
            }
            "find_in_page" | "switch_chunk" => {
                let BrowserMode::Text { chunk_size } = self.spec.mode else {
                    return failed(format!("{tool} is only offered in text mode."));
                };
                let chunks = self.chunks(chunk_size as usize).await;
                if tool == "switch_chunk" {
                    let index = args.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if index >= chunks.len() {
                        return failed(format!(
                            "There are {} chunks (0 to {}).",
                            chunks.len(),
                            chunks.len() - 1
                        ));
                    }
                    self.chunk = index;
                    return done(format!("Showing chunk {index}."));
                }
                let query = text("query").unwrap_or_default().to_lowercase();
                match chunks
                    .iter()
                    .position(|c| c.to_lowercase().contains(&query))
                {
                    Some(index) => {
                        self.chunk = index;
                        done(format!("Found in chunk {index}."))
                    }
                    None => done(format!("No match for \"{query}\" on the page.")),
                }
            }
            other => failed(format!("Unknown web tool '{other}'.")),
        }
    }

    /// Closes the context and every tab in it.
    pub async fn close(&self) {
        let _ = self
            .cdp
            .call(
                None,
                "Target.disposeBrowserContext",
                json!({"browserContextId": self.context_id}),
            )
            .await;
    }
}
