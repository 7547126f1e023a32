//! A test web site whose server records what a browser did there.
//!
//! Browser tests must not trust what an agent says it did: [`TestSite`] serves pages with
//! elements at known positions (see [`layout`]), each page reports the DOM events it saw
//! to the server (`POST /_effect`), and tests assert on those [`Effect`]s and on the
//! [`Hit`]s (every request the server answered). It listens on a loopback address only.
//!
//! # Pages
//! Every HTML page reports `loaded` (`{"path": location.pathname}`) on `pageshow`, which
//! also fires when the page is restored from the back/forward cache, so go-to, back and
//! refresh can all be checked. Pages report through one promise chain, so the effects of
//! one page arrive in the order the page saw the events.
//! - `/` (title "Test site"): the controls, all at the rectangles in [`layout`]:
//!   - a button reporting `click`, `dblclick` and `contextmenu` (the context menu is
//!     suppressed), each with `{"button": "left"|"middle"|"right", "detail": <click
//!     count>, "x": clientX, "y": clientY}`. A middle click arrives as `auxclick` in
//!     browsers and is reported as `click` with button `middle`; a right click is reported
//!     as `contextmenu` only. A double click reports `click` (detail 1), `click` (detail 2)
//!     and `dblclick`.
//!   - a form (`GET /submitted`) with the text input `name` and a submit button.
//!   - `keydown` from anywhere in the document, `{"key", "ctrl", "shift", "alt", "meta",
//!     "target": <element id or tag>}`, reported only for keys that do not type one
//!     character (Enter, Tab, arrows, modifiers...) or when ctrl, alt or meta is held, so
//!     typing text stays out of the effects while shortcuts and Enter are visible.
//!   - the `<select id="color">` ([`layout::COLOR_OPTIONS`]) reporting `select_input`
//!     (its `input` event) then `select` (its `change` event), both `{"value"}`.
//!   - a hover target reporting `hover` on `mouseenter`.
//!   - the links "Open tab" (`target=_blank` to `/tab`) and "Page two" (to `/page2`).
//!   - the document is [`layout::PAGE_HEIGHT`] tall with [`layout::NEEDLE_TEXT`] at
//!     [`layout::NEEDLE`]. Scrolling it reports `scroll` `{"x", "y"}` once it settles: on
//!     `scrollend`, or 150 ms after the last `scroll` event where `scrollend` does not
//!     come, never twice for the same position; so the last report holds the final
//!     position of a gesture. The inner `<div id="box">` does the same as `box_scroll`
//!     `{"y": scrollTop}`.
//! - `/submitted?name=...` (title "Submitted"): the server records the submission as an
//!   effect `submit` whose detail holds every query field (`{"name": ...}`).
//! - `/tab` (title "Second tab"): reports `tab_opened` on load.
//! - `/page2` (title "Page two"), `/article` (title "Article": heading, paragraphs, a list
//!   and a link, amid nav, aside and footer clutter, for reader-mode tests).
//! - `/embed?src=URL` (title "Embed"): an `<img>` of `URL`, reporting `embed_loaded` or
//!   `embed_failed` (`{"src"}`) once the browser is done with it, for subresource tests.
//! - `/redirect?to=URL`: a 302 to `URL`. `/slow?ms=N`: answers after N ms (at most
//!   10 s; the wait ends early when the site stops).
//! - `POST /_effect` records `{"kind", "detail"?}`; `GET /_hits` and `GET /_effects` list
//!   what was recorded (`DELETE /_effects` forgets the effects). Anything else is a 404
//!   page.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;

use layout::Rect;

/// The geometry of the controls page `/`, in CSS pixels of the document ((0,0) top-left,
/// `html,body{margin:0}`, `box-sizing:border-box`). Before the page is scrolled these are
/// also viewport coordinates; everything but [`NEEDLE`] fits a 1280x720 viewport.
pub mod layout {
    /// An element's border box.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Rect {
        pub x: u32,
        pub y: u32,
        pub w: u32,
        pub h: u32,
    }

    impl Rect {
        /// The point a test clicks.
        pub fn center(&self) -> (f64, f64) {
            (
                f64::from(self.x) + f64::from(self.w) / 2.0,
                f64::from(self.y) + f64::from(self.h) / 2.0,
            )
        }

        /// Whether a reported point (e.g. a click's clientX/clientY) lies inside.
        pub fn contains(&self, x: f64, y: f64) -> bool {
            x >= f64::from(self.x)
                && x < f64::from(self.x + self.w)
                && y >= f64::from(self.y)
                && y < f64::from(self.y + self.h)
        }
    }

    pub const VIEWPORT_WIDTH: u32 = 1280;
    pub const VIEWPORT_HEIGHT: u32 = 720;
    /// Height of the document, so the page scrolls.
    pub const PAGE_HEIGHT: u32 = 3000;
    /// The `<h1>` "Test site".
    pub const HEADING: Rect = Rect {
        x: 100,
        y: 20,
        w: 600,
        h: 50,
    };
    /// The button `#button` ("Click me").
    pub const BUTTON: Rect = Rect {
        x: 100,
        y: 100,
        w: 200,
        h: 60,
    };
    /// The text input `#name`.
    pub const NAME_INPUT: Rect = Rect {
        x: 100,
        y: 200,
        w: 300,
        h: 40,
    };
    /// The form's submit button `#submit` ("Submit").
    pub const SUBMIT: Rect = Rect {
        x: 420,
        y: 200,
        w: 120,
        h: 40,
    };
    /// The `<select id="color">`.
    pub const COLOR_SELECT: Rect = Rect {
        x: 100,
        y: 280,
        w: 200,
        h: 40,
    };
    /// The options of `#color` as (value, label); the first is selected initially.
    pub const COLOR_OPTIONS: [(&str, &str); 3] =
        [("red", "Red"), ("green", "Green"), ("blue", "Blue")];
    /// The hover target `#hover` ("Hover me").
    pub const HOVER: Rect = Rect {
        x: 100,
        y: 360,
        w: 200,
        h: 60,
    };
    /// The link "Open tab" (`target=_blank`, to `/tab`).
    pub const TAB_LINK: Rect = Rect {
        x: 100,
        y: 460,
        w: 200,
        h: 40,
    };
    /// The link "Page two" (to `/page2`).
    pub const PAGE2_LINK: Rect = Rect {
        x: 100,
        y: 520,
        w: 200,
        h: 40,
    };
    /// The scrollable `<div id="box">`; its content is [`BOX_CONTENT_HEIGHT`] tall, so
    /// its scrollTop goes from 0 to `BOX_CONTENT_HEIGHT - BOX.h`.
    pub const BOX: Rect = Rect {
        x: 700,
        y: 100,
        w: 400,
        h: 300,
    };
    pub const BOX_CONTENT_HEIGHT: u32 = 2000;
    /// The text for find-in-page tests, far below the first viewport.
    pub const NEEDLE: Rect = Rect {
        x: 100,
        y: 2500,
        w: 400,
        h: 40,
    };
    pub const NEEDLE_TEXT: &str = "Needle in the haystack";

    /// The promise above, checked when the crate compiles.
    const _: () = {
        let inside = [
            HEADING,
            BUTTON,
            NAME_INPUT,
            SUBMIT,
            COLOR_SELECT,
            HOVER,
            TAB_LINK,
            PAGE2_LINK,
            BOX,
        ];
        let mut i = 0;
        while i < inside.len() {
            let rect = inside[i];
            assert!(rect.x + rect.w <= VIEWPORT_WIDTH && rect.y + rect.h <= VIEWPORT_HEIGHT);
            i += 1;
        }
        assert!(NEEDLE.y + NEEDLE.h <= PAGE_HEIGHT && NEEDLE.y >= VIEWPORT_HEIGHT);
    };
}

/// The longest `/slow` wait, so a mistyped `ms` cannot hang a test run.
const MAX_SLOW_MS: u64 = 10_000;

/// Paths of the site's own instrumentation, left out of the hits so they stay readable.
const UNRECORDED: [&str; 3] = ["/_effect", "/_hits", "/_effects"];

/// One request the site answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    pub method: String,
    /// The path with its query, e.g. `/submitted?name=x`.
    pub path: String,
}

/// Something a page (or the server, for `submit`) saw happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub kind: String,
    /// Null when the page sent none.
    #[serde(default)]
    pub detail: Value,
}

/// A running test site. Dropping it stops the server.
pub struct TestSite {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

struct Shared {
    hits: Mutex<Vec<Hit>>,
    /// The effects in arrival order; a watch so tests wait on them instead of polling.
    effects: watch::Sender<Vec<Effect>>,
    /// Set to true once when the handle is dropped; ends `/slow` waits.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn hits(&self) -> MutexGuard<'_, Vec<Hit>> {
        // Each hit is pushed in one step, so a poisoned lock holds nothing half-written.
        self.hits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, effect: Effect) {
        self.effects.send_modify(|effects| effects.push(effect));
    }
}

impl TestSite {
    /// Starts the site on a free port of 127.0.0.1.
    pub async fn start() -> io::Result<TestSite> {
        TestSite::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// Starts the site on a free port of `ip`, which must be a loopback address (e.g.
    /// 127.0.0.2, a second host for network-policy tests); others are refused with
    /// [`io::ErrorKind::InvalidInput`] so a test never serves beyond the machine.
    pub async fn start_on(ip: Ipv4Addr) -> io::Result<TestSite> {
        if !ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ip} is not a loopback address"),
            ));
        }
        let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            hits: Mutex::new(Vec::new()),
            effects: watch::Sender::new(Vec::new()),
            shutdown: watch::Sender::new(false),
        });
        let mut shutdown = shared.shutdown.subscribe();
        let serving =
            axum::serve(listener, router(Arc::clone(&shared))).with_graceful_shutdown(async move {
                // An error means the sender is gone, which is a shutdown as well.
                let _ = shutdown.wait_for(|stopped| *stopped).await;
            });
        tokio::spawn(async move {
            let _ = serving.await;
        });
        Ok(TestSite { shared, addr })
    }

    /// `http://<addr>` followed by `path`, which should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request answered, in arrival order, except those to `/_effect`, `/_hits` and
    /// `/_effects`. A request counts when it arrives, so a `/slow` one is here at once.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits().clone()
    }

    /// Every effect recorded (since the last [`Self::clear_effects`]), in arrival order.
    pub fn effects(&self) -> Vec<Effect> {
        self.shared.effects.borrow().clone()
    }

    /// Forgets the effects so far, so the next wait sees only new ones (e.g. the second
    /// `loaded` of `/` after going back). An effect a page sent just before may still
    /// arrive afterwards.
    pub fn clear_effects(&self) {
        self.shared.effects.send_modify(Vec::clear);
    }

    /// Waits until an effect matching `pred` has been recorded and returns the first one
    /// (effects already recorded count). On timeout the error lists every effect seen.
    pub async fn wait_for_effect(
        &self,
        pred: impl Fn(&Effect) -> bool,
        timeout: Duration,
    ) -> Result<Effect, String> {
        let mut effects = self.shared.effects.subscribe();
        let mut found = None;
        // The sender lives as long as `self`, so the wait itself cannot fail.
        let _ = tokio::time::timeout(
            timeout,
            effects.wait_for(|seen| {
                found = seen.iter().find(|effect| pred(effect)).cloned();
                found.is_some()
            }),
        )
        .await;
        found.ok_or_else(|| {
            let seen = serde_json::to_string(&*self.shared.effects.borrow()).unwrap_or_default();
            format!("no matching effect within {timeout:?}; effects seen: {seen}")
        })
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for TestSite {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TestSite")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(controls))
        .route("/page2", get(|| async { page("Page two", "", PAGE2, "") }))
        .route("/tab", get(|| async { page("Second tab", "", TAB, "report('tab_opened');") }))
        .route("/article", get(|| async { page("Article", "", ARTICLE, "") }))
        .route("/submitted", get(submitted))
        .route("/redirect", get(redirect))
        .route("/embed", get(embed))
        .route("/slow", get(slow))
        .route("/_effect", post(record_effect))
        .route("/_hits", get(|State(shared): State<Arc<Shared>>| async move { axum::Json(shared.hits().clone()) }))
        .route(
            "/_effects",
            get(|State(shared): State<Arc<Shared>>| async move {
                axum::Json(shared.effects.borrow().clone())
            })
            .delete(|State(shared): State<Arc<Shared>>| async move {
                shared.effects.send_modify(Vec::clear);
                StatusCode::NO_CONTENT
            }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record_hit))
        .with_state(shared)
}

async fn record_hit(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    if !UNRECORDED.contains(&uri.path()) {
        let path = uri
            .path_and_query()
            .map_or(uri.path(), |path| path.as_str());
        let hit = Hit {
            method: request.method().to_string(),
            path: path.to_owned(),
        };
        shared.hits().push(hit);
    }
    next.run(request).await
}

async fn record_effect(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    // Pages send a plain string body (no JSON content type, so no CORS preflight either).
    match serde_json::from_slice::<Effect>(&body) {
        Ok(effect) => {
            shared.record(effect);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("not an effect: {error}")).into_response(),
    }
}

async fn submitted(
    State(shared): State<Arc<Shared>>,
    Query(fields): Query<Vec<(String, String)>>,
) -> Html<String> {
    let name = fields
        .iter()
        .find(|(key, _)| key == "name")
        .map_or("", |(_, value)| value);
    let body = format!("<h1>Submitted</h1><p id=\"submitted\">{}</p>", escape(name));
    let detail: Map<String, Value> = fields
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    shared.record(Effect {
        kind: "submit".into(),
        detail: Value::Object(detail),
    });
    page("Submitted", "", &body, "")
}

#[derive(Deserialize)]
struct RedirectQuery {
    to: String,
}

async fn redirect(Query(query): Query<RedirectQuery>) -> Response {
    match HeaderValue::try_from(query.to) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "`to` is not a valid Location").into_response(),
    }
}

#[derive(Deserialize)]
struct EmbedQuery {
    src: String,
}

async fn embed(Query(query): Query<EmbedQuery>) -> Html<String> {
    let src = escape(&query.src);
    let body = format!("<h1>Embed</h1><img id=\"embedded\" alt=\"embedded\" src=\"{src}\">");
    // Registered after the image element exists; `complete` covers an image settled before.
    let script = r#"
const img = document.getElementById('embedded');
const settle = () => report(img.naturalWidth > 0 ? 'embed_loaded' : 'embed_failed', {src: img.src});
if (img.complete) settle(); else { img.addEventListener('load', settle); img.addEventListener('error', settle); }
"#;
    page("Embed", "", &body, script)
}

#[derive(Deserialize)]
struct SlowQuery {
    #[serde(default)]
    ms: u64,
}

async fn slow(State(shared): State<Arc<Shared>>, Query(query): Query<SlowQuery>) -> Response {
    let ms = query.ms.min(MAX_SLOW_MS);
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => {}
        _ = shutdown.wait_for(|stopped| *stopped) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    page(
        "Slow",
        "",
        &format!("<h1>Slow</h1><p>Answered after {ms} ms.</p>"),
        "",
    )
    .into_response()
}

async fn not_found(uri: Uri) -> Response {
    let body = format!(
        "<h1>Not found</h1><p>Nothing at {}.</p>",
        escape(uri.path())
    );
    (StatusCode::NOT_FOUND, page("Not found", "", &body, "")).into_response()
}

/// The CSS placing an element exactly at `rect`.
fn at(rect: Rect) -> String {
    let Rect { x, y, w, h } = rect;
    format!("position:absolute;left:{x}px;top:{y}px;width:{w}px;height:{h}px")
}

async fn controls() -> Html<String> {
    use layout::*;
    let options: String = COLOR_OPTIONS
        .iter()
        .map(|(value, label)| format!("<option value=\"{value}\">{label}</option>"))
        .collect();
    let body = format!(
        concat!(
            "<h1 style=\"{heading}\">Test site</h1>",
            "<button id=\"button\" type=\"button\" style=\"{button};background:#4a90d9;color:#fff\">Click me</button>",
            "<form method=\"GET\" action=\"/submitted\">",
            "<input id=\"name\" name=\"name\" placeholder=\"Your name\" autocomplete=\"off\" style=\"{input}\">",
            "<button id=\"submit\" type=\"submit\" style=\"{submit}\">Submit</button></form>",
            "<select id=\"color\" style=\"{select}\">{options}</select>",
            "<div id=\"hover\" style=\"{hover};background:#f5c542;line-height:{hover_h}px;text-align:center\">Hover me</div>",
            "<a id=\"tab\" href=\"/tab\" target=\"_blank\" style=\"{tab};line-height:{tab_h}px\">Open tab</a>",
            "<a id=\"page2\" href=\"/page2\" style=\"{page2};line-height:{page2_h}px\">Page two</a>",
            "<div id=\"box\" style=\"{boxed};overflow:auto;background:#eee\"><div style=\"position:relative;height:{box_content}px\">",
            "<p>Top of the box</p><p style=\"position:absolute;bottom:0\">Bottom of the box</p></div></div>",
            "<p id=\"needle\" style=\"{needle}\">{needle_text}</p>",
        ),
        heading = at(HEADING),
        options = options,
        button = at(BUTTON),
        input = at(NAME_INPUT),
        submit = at(SUBMIT),
        select = at(COLOR_SELECT),
        hover = at(HOVER),
        hover_h = HOVER.h,
        tab = at(TAB_LINK),
        tab_h = TAB_LINK.h,
        page2 = at(PAGE2_LINK),
        page2_h = PAGE2_LINK.h,
        boxed = at(BOX),
        box_content = BOX_CONTENT_HEIGHT,
        needle = at(NEEDLE),
        needle_text = NEEDLE_TEXT,
    );
    let style = format!("*{{margin:0;box-sizing:border-box}}body{{height:{PAGE_HEIGHT}px}}");
    page("Test site", &style, &body, CONTROLS_JS)
}

/// A page with the shared reporting script and `script` after its `body`.
fn page(title: &str, style: &str, body: &str, script: &str) -> Html<String> {
    Html(format!(
        concat!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>",
            // An empty icon, so Chromium asks for no /favicon.ico and the hits stay clean.
            "<link rel=\"icon\" href=\"data:,\"><style>html,body{{margin:0}}{style}</style></head>\n",
            "<body>{body}\n<script>{report}{script}</script></body></html>\n"
        ),
        title = title,
        style = style,
        body = body,
        report = REPORT_JS,
        script = script,
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Sends effects one after another so they arrive in order; `keepalive` lets a report
/// already sent survive the page navigating away.
const REPORT_JS: &str = r#"
let chain = Promise.resolve();
function report(kind, detail) {
  const body = JSON.stringify(detail === undefined ? {kind} : {kind, detail});
  chain = chain.then(() => fetch('/_effect', {method: 'POST', body, keepalive: true})).catch(() => {});
}
addEventListener('pageshow', () => report('loaded', {path: location.pathname}));
"#;

const CONTROLS_JS: &str = r#"
const buttons = ['left', 'middle', 'right'];
const pointer = e => ({button: buttons[e.button] ?? String(e.button), detail: e.detail, x: e.clientX, y: e.clientY});
const button = document.getElementById('button');
button.addEventListener('click', e => report('click', pointer(e)));
button.addEventListener('auxclick', e => { if (e.button !== 2) report('click', pointer(e)); });
button.addEventListener('dblclick', e => report('dblclick', pointer(e)));
button.addEventListener('contextmenu', e => { e.preventDefault(); report('contextmenu', pointer(e)); });
document.addEventListener('keydown', e => {
  if (e.key.length === 1 && !e.ctrlKey && !e.altKey && !e.metaKey) return;
  report('keydown', {key: e.key, ctrl: e.ctrlKey, shift: e.shiftKey, alt: e.altKey, meta: e.metaKey,
    target: e.target.id || e.target.tagName.toLowerCase()});
});
const color = document.getElementById('color');
color.addEventListener('input', () => report('select_input', {value: color.value}));
color.addEventListener('change', () => report('select', {value: color.value}));
document.getElementById('hover').addEventListener('mouseenter', () => report('hover'));
function settled(target, kind, position) {
  let timer, last;
  const send = () => {
    clearTimeout(timer);
    const now = position(), key = JSON.stringify(now);
    if (key !== last) { last = key; report(kind, now); }
  };
  target.addEventListener('scroll', () => { clearTimeout(timer); timer = setTimeout(send, 150); });
  target.addEventListener('scrollend', send);
}
settled(document, 'scroll', () => ({x: scrollX, y: scrollY}));
const box = document.getElementById('box');
settled(box, 'box_scroll', () => ({y: box.scrollTop}));
"#;

const PAGE2: &str =
    r#"<h1>Page two</h1><p>The second page. <a id="home" href="/">Back to the controls</a></p>"#;

const TAB: &str = r#"<h1>Second tab</h1><p>Opened from the controls page.</p>"#;

const ARTICLE: &str = r#"<nav><a href="/">Home</a> | <a href="/page2">News</a> | <a href="/page2">Sports</a> | <a href="/page2">Weather</a> | <a href="/page2">Sign in</a></nav>
<aside><p>Advertisement: buy one lighthouse, get one free.</p></aside>
<main><article>
<h1>How lighthouses work</h1>
<p>For centuries, lighthouses have guided ships past dangerous coasts. A lighthouse marks a hazard, a harbour entrance or a safe channel, and each one shows a light pattern of its own so that sailors can tell them apart at night.</p>
<p>The heart of a classic lighthouse is its lens. Before the nineteenth century, keepers used open fires and then oil lamps with polished reflectors, which wasted most of their light. The Fresnel lens changed that by bending the light of a single lamp into a narrow, powerful beam.</p>
<h2>The parts of a lighthouse</h2>
<ul>
<li>The lantern room, a glass enclosure at the top that holds the light.</li>
<li>The Fresnel lens, built from concentric rings of glass prisms.</li>
<li>The gallery, a walkway around the lantern room used for cleaning the windows.</li>
<li>The keeper's house, where the keeper and their family lived.</li>
</ul>
<p>Each lighthouse has a characteristic: a sequence of flashes and darkness, such as one white flash every ten seconds. Charts list the characteristic next to the lighthouse, so a navigator who counts the flashes knows exactly which light is in view.</p>
<p>Today most lighthouses are automated. Electric lamps, light sensors and backup batteries replaced the keepers, and satellite navigation has made the lights less essential, yet many still shine as a last line of defence when electronics fail.</p>
<p>Read more about coastal navigation on <a id="more" href="/page2">page two</a>.</p>
</article></main>
<footer><p>&copy; 2025 Test Site &middot; <a href="/page2">Privacy</a> &middot; <a href="/page2">Terms</a> &middot; <a href="/page2">Contact</a></p></footer>"#;
