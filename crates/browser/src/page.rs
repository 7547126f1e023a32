//! One tab: a page target attached over the shared connection, and the input events,
//! navigations and reads done on it.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::cdp::{Cdp, CdpError};
use crate::keys::Key;

/// Bound on waiting for a page to load after a navigation.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long after an input event a navigation it caused has been announced by. Short,
/// because every click pays it; a navigation announced later is caught by the wait
/// for a loaded page before the next observation.
const NAVIGATION_NOTICE: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Page {
    cdp: Cdp,
    pub target_id: String,
    session: String,
}

impl Page {
    /// Attaches to a page target and sizes its viewport.
    pub async fn attach(
        cdp: &Cdp,
        target_id: &str,
        (width, height): (u32, u32),
    ) -> Result<Page, CdpError> {
        let attached = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let page = Page {
            cdp: cdp.clone(),
            target_id: target_id.to_string(),
            session,
        };
        page.call("Page.enable", json!({})).await?;
        page.set_viewport((width, height)).await?;
        Ok(page)
    }

    /// The viewport in CSS pixels at a scale factor of 1: a screenshot pixel is a CSS pixel.
    pub async fn set_viewport(&self, (width, height): (u32, u32)) -> Result<(), CdpError> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        Ok(())
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// Evaluates an expression and returns its value (awaiting a promise).
    pub async fn eval(&self, expression: &str) -> Result<Value, CdpError> {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = reply.get("exceptionDetails") {
            let message = exception["exception"]["description"]
                .as_str()
                .or(exception["text"].as_str())
                .unwrap_or("exception")
                .to_string();
            return Err(CdpError::Protocol {
                method: "Runtime.evaluate".into(),
                message,
            });
        }
        Ok(reply["result"]["value"].clone())
    }

    /// Navigates and waits for the load event. `Err` carries the browser's reason
    /// (`net::ERR_...`) in words the model can act on.
    pub async fn navigate(&self, url: &str) -> Result<(), String> {
        let mut events = self.cdp.subscribe();
        let reply = self
            .call("Page.navigate", json!({"url": url}))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(error) = reply.get("errorText").and_then(Value::as_str)
            && !error.is_empty()
        {
            return Err(format!("Could not open {url}: {error}."));
        }
        if reply.get("loaderId").is_none() {
            // A same-document navigation (a fragment): nothing loads.
            return Ok(());
        }
        self.wait_for_load(&mut events).await;
        Ok(())
    }

    /// Waits (bounded) for this page's next load event.
    pub async fn wait_for_load(
        &self,
        events: &mut tokio::sync::broadcast::Receiver<crate::cdp::Event>,
    ) {
        let session = self.session.clone();
        let _ = tokio::time::timeout(LOAD_TIMEOUT, async {
            loop {
                match events.recv().await {
                    // A page restored from the back/forward cache, or a history step
                    // within the document, fires no load event: it is there already.
                    Ok(event)
                        if event.session.as_deref() == Some(session.as_str())
                            && (event.method == "Page.loadEventFired"
                                || event.method == "Page.navigatedWithinDocument"
                                || (event.method == "Page.frameNavigated"
                                    && event.params["type"] == "BackForwardCacheRestore")) =>
                    {
                        return;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        })
        .await;
    }

    /// Runs `action` and, if it started a navigation of this page, waits for its load.
    pub async fn settling<T>(
        &self,
        action: impl Future<Output = Result<T, CdpError>>,
    ) -> Result<T, CdpError> {
        let mut events = self.cdp.subscribe();
        let result = action.await?;
        // A navigation an input event causes is announced at once; only then wait.
        let navigating = tokio::time::timeout(NAVIGATION_NOTICE, async {
            loop {
                match events.recv().await {
                    Ok(event)
                        if event.session.as_deref() == Some(self.session.as_str())
                            && matches!(
                                event.method.as_str(),
                                "Page.frameRequestedNavigation" | "Page.frameStartedNavigating"
                            ) =>
                    {
                        return true;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if navigating {
            self.wait_for_load(&mut events).await;
        }
        Ok(result)
    }

    pub async fn history_back(&self) -> Result<bool, String> {
        let history = self
            .call("Page.getNavigationHistory", json!({}))
            .await
            .map_err(|e| e.to_string())?;
        let current = history["currentIndex"].as_i64().unwrap_or(0);
        let Some(entry) = history["entries"]
            .as_array()
            .and_then(|entries| entries.get((current - 1).max(0) as usize))
            .filter(|_| current > 0)
        else {
            return Ok(false);
        };
        let mut events = self.cdp.subscribe();
        self.call(
            "Page.navigateToHistoryEntry",
            json!({"entryId": entry["id"]}),
        )
        .await
        .map_err(|e| e.to_string())?;
        self.wait_for_load(&mut events).await;
        Ok(true)
    }

    pub async fn reload(&self) -> Result<(), String> {
        let mut events = self.cdp.subscribe();
        self.call("Page.reload", json!({}))
            .await
            .map_err(|e| e.to_string())?;
        self.wait_for_load(&mut events).await;
        Ok(())
    }

    async fn mouse(&self, kind: &str, x: f64, y: f64, extra: Value) -> Result<(), CdpError> {
        let mut params = json!({"type": kind, "x": x, "y": y});
        if let (Value::Object(params), Value::Object(extra)) = (&mut params, extra) {
            params.extend(extra);
        }
        self.call("Input.dispatchMouseEvent", params)
            .await
            .map(drop)
    }

    pub async fn move_mouse(&self, x: f64, y: f64) -> Result<(), CdpError> {
        self.mouse("mouseMoved", x, y, json!({})).await
    }

    pub async fn click(&self, x: f64, y: f64, button: &str, clicks: u32) -> Result<(), CdpError> {
        self.move_mouse(x, y).await?;
        let buttons = match button {
            "right" => 2,
            "middle" => 4,
            _ => 1,
        };
        for count in 1..=clicks {
            let press = json!({"button": button, "buttons": buttons, "clickCount": count});
            self.mouse("mousePressed", x, y, press).await?;
            let release = json!({"button": button, "buttons": 0, "clickCount": count});
            self.mouse("mouseReleased", x, y, release).await?;
        }
        Ok(())
    }

    pub async fn wheel(&self, x: f64, y: f64, dx: f64, dy: f64) -> Result<(), CdpError> {
        self.mouse("mouseWheel", x, y, json!({"deltaX": dx, "deltaY": dy}))
            .await
    }

    /// Presses `keys` as one chord: modifiers down, the other keys pressed, all released.
    pub async fn chord(&self, keys: &[Key]) -> Result<(), CdpError> {
        let modifiers: u32 = keys.iter().map(|k| k.modifier).fold(0, |a, b| a | b);
        let with_modifiers = modifiers & !8 != 0;
        for key in keys {
            let text = if with_modifiers {
                None
            } else {
                key.text.clone()
            };
            let kind = if text.is_some() {
                "keyDown"
            } else {
                "rawKeyDown"
            };
            self.key_event(kind, key, modifiers, text.as_deref())
                .await?;
        }
        for key in keys.iter().rev() {
            self.key_event("keyUp", key, modifiers, None).await?;
        }
        Ok(())
    }

    async fn key_event(
        &self,
        kind: &str,
        key: &Key,
        modifiers: u32,
        text: Option<&str>,
    ) -> Result<(), CdpError> {
        let mut params = json!({
            "type": kind, "key": key.key, "code": key.code, "modifiers": modifiers,
            "windowsVirtualKeyCode": key.key_code, "nativeVirtualKeyCode": key.key_code,
        });
        if let Some(text) = text {
            params["text"] = json!(text);
            params["unmodifiedText"] = json!(text);
        }
        // Editing shortcuts need their command named, or headless ignores them.
        if modifiers & 2 != 0 && kind != "keyUp" && key.key.eq_ignore_ascii_case("a") {
            params["commands"] = json!(["selectAll"]);
        }
        self.call("Input.dispatchKeyEvent", params).await.map(drop)
    }

    /// Types `text` as key presses; characters without a key of their own are inserted
    /// as text input, as an input method would.
    pub async fn type_text(&self, text: &str) -> Result<(), CdpError> {
        for c in text.chars() {
            let key = if c == '\n' {
                crate::keys::parse("enter")
            } else {
                crate::keys::parse(&c.to_string())
            };
            match key {
                Some(key) => {
                    let text = key.text.clone();
                    self.key_event("keyDown", &key, 0, text.as_deref()).await?;
                    self.key_event("keyUp", &key, 0, None).await?;
                }
                None => {
                    self.call("Input.insertText", json!({"text": c.to_string()}))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A JPEG of the viewport. Decoding the base64 runs off the async threads.
    pub async fn screenshot_jpeg(&self, quality: u8) -> Result<Vec<u8>, CdpError> {
        let reply = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "jpeg", "quality": quality, "optimizeForSpeed": true}),
            )
            .await?;
        let data = match reply.get("data") {
            Some(Value::String(data)) => data.clone(),
            _ => String::new(),
        };
        tokio::task::spawn_blocking(move || {
            base64::engine::general_purpose::STANDARD.decode(data.as_bytes())
        })
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| CdpError::Protocol {
            method: "Page.captureScreenshot".into(),
            message: "the screenshot is not valid base64".into(),
        })
    }
}
