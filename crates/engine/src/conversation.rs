//! The model's context, rebuilt from the session's event log. Because the log is the
//! only memory, a runner started after a crash sees exactly what the previous one had
//! recorded, and nothing it had not.
//!
//! Chat APIs want every assistant tool call followed directly by its result. A user
//! message logged while calls are still open (sent mid-step, or while the client runs
//! its tools) is therefore held back and placed right after the last open call's result.

use std::collections::HashMap;

use agentd_model_client::{ChatMessage, ContentPart, ToolCall};
use agentd_store::EventRecord;
use serde_json::Value;

/// Screenshots sent to the model as images; older ones become a line of text, so a
/// long session's prompt does not grow without bound (`agent-harness.md` §2).
pub const SCREENSHOTS_SHOWN: usize = 3;

#[derive(Debug, Default)]
pub struct Conversation {
    /// Index of the next event to read.
    pub cursor: u64,
    pub messages: Vec<ChatMessage>,
    open_calls: Vec<String>,
    held_back: Vec<ChatMessage>,
    /// Screenshots this runner took, by resource URL, as data URLs. A runner started
    /// after a restart has none of the old ones and shows their text only.
    pub screenshots: HashMap<String, String>,
    /// Messages holding a screenshot image, oldest first.
    with_images: Vec<usize>,
}

impl Conversation {
    pub fn extend(&mut self, events: &[EventRecord], vision: bool) {
        for event in events {
            if event.index < self.cursor {
                continue;
            }
            self.cursor = event.index + 1;
            if event.event_type == "AgentEvent" {
                self.push_agent_event(&event.data, vision);
            }
        }
    }

    fn push_agent_event(&mut self, data: &Value, vision: bool) {
        let kind = data.get("kind").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "message_event" => {
                let message = ChatMessage::User(content_parts(data.get("content"), vision));
                self.push_user(message);
            }
            "policy_event" => self.push_policy(data),
            "observation_event" => {
                let text = data.get("text").and_then(Value::as_str).unwrap_or_default();
                let image = data
                    .pointer("/image/source")
                    .and_then(Value::as_str)
                    .and_then(|url| self.screenshots.remove(url));
                let message = observation_message(text, image.filter(|_| vision));
                self.push_user(message);
            }
            "tool_result" => {
                let content = match data.get("result") {
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                    None => "null".to_string(),
                };
                self.push_tool_message(data.get("tool_req"), content);
            }
            "error_event" if data.get("tool_req").is_some_and(|r| !r.is_null()) => {
                let error = data.get("error").and_then(Value::as_str).unwrap_or("error");
                self.push_tool_message(data.get("tool_req"), format!("Error: {error}"));
            }
            _ => {}
        }
    }

    fn push_user(&mut self, message: ChatMessage) {
        let has_image = matches!(&message, ChatMessage::User(parts) if parts.iter().any(|p| matches!(p, ContentPart::ImageUrl(_))));
        if self.open_calls.is_empty() {
            self.messages.push(message);
            if has_image {
                self.with_images.push(self.messages.len() - 1);
                self.forget_old_images();
            }
        } else {
            self.held_back.push(message);
        }
    }

    fn forget_old_images(&mut self) {
        while self.with_images.len() > SCREENSHOTS_SHOWN {
            let index = self.with_images.remove(0);
            if let Some(ChatMessage::User(parts)) = self.messages.get_mut(index) {
                for part in parts.iter_mut() {
                    if matches!(part, ContentPart::ImageUrl(_)) {
                        *part =
                            ContentPart::Text("[an earlier screenshot, no longer shown]".into());
                    }
                }
            }
        }
    }

    fn push_policy(&mut self, data: &Value) {
        let content = data
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_string);
        let tool_calls: Vec<ToolCall> = data
            .get("tool_reqs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|req| ToolCall {
                id: req
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: req
                    .get("tool_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: req.get("args").cloned().unwrap_or(Value::Null),
            })
            .collect();
        self.open_calls = tool_calls.iter().map(|c| c.id.clone()).collect();
        let no_calls = tool_calls.is_empty();
        self.messages.push(ChatMessage::Assistant {
            content,
            tool_calls,
        });
        if no_calls {
            let errors: Vec<&str> = data
                .get("validation_errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !errors.is_empty() {
                self.messages.push(ChatMessage::User(vec![ContentPart::Text(
                    errors.join("\n"),
                )]));
            }
            self.flush_held_back();
        }
    }

    fn push_tool_message(&mut self, tool_req: Option<&Value>, content: String) {
        let id = tool_req
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.open_calls.retain(|open| open != &id);
        self.messages.push(ChatMessage::Tool {
            tool_call_id: id,
            content,
        });
        if self.open_calls.is_empty() {
            self.flush_held_back();
        }
    }

    fn flush_held_back(&mut self) {
        for message in std::mem::take(&mut self.held_back) {
            self.push_user(message);
        }
    }
}

/// The model's view of an observation: its text, and the screenshot when there is one.
pub fn observation_message(text: &str, image_data_url: Option<String>) -> ChatMessage {
    let mut parts = vec![ContentPart::Text(format!("Observation:\n{text}"))];
    if let Some(url) = image_data_url {
        parts.push(ContentPart::ImageUrl(url));
    }
    ChatMessage::User(parts)
}

fn content_parts(content: Option<&Value>, vision: bool) -> Vec<ContentPart> {
    let mut parts = Vec::new();
    for item in content.and_then(Value::as_array).into_iter().flatten() {
        match item {
            Value::String(text) => parts.push(ContentPart::Text(text.clone())),
            Value::Object(image) => {
                let source = image
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if vision {
                    parts.push(ContentPart::ImageUrl(source.to_string()));
                } else {
                    parts.push(ContentPart::Text(
                        "[an image was attached; this model cannot see images]".to_string(),
                    ));
                }
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        parts.push(ContentPart::Text(String::new()));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(index: u64, data: Value) -> EventRecord {
        EventRecord {
            index,
            event_type: "AgentEvent".into(),
            data,
            timestamp: 0,
        }
    }

    #[test]
    fn a_message_sent_while_calls_are_open_follows_their_results() {
        let events = [
            ev(
                0,
                json!({"kind":"message_event","caller_id":"user","content":["task"]}),
            ),
            ev(
                1,
                json!({"kind":"policy_event","content":null,"tool_reqs":[{"tool_name":"lookup","args":{},"id":"c1"}]}),
            ),
            ev(
                2,
                json!({"kind":"message_event","caller_id":"user","content":["also this"]}),
            ),
            ev(
                3,
                json!({"kind":"tool_result","tool_req":{"tool_name":"lookup","args":{},"id":"c1"},"result":5}),
            ),
        ];
        let mut conversation = Conversation::default();
        conversation.extend(&events, false);
        let kinds: Vec<&str> = conversation
            .messages
            .iter()
            .map(|m| match m {
                ChatMessage::User(_) => "user",
                ChatMessage::Assistant { .. } => "assistant",
                ChatMessage::Tool { .. } => "tool",
                ChatMessage::System(_) => "system",
            })
            .collect();
        assert_eq!(kinds, ["user", "assistant", "tool", "user"]);
        assert_eq!(conversation.cursor, 4);
    }

    #[test]
    fn a_reply_without_a_tool_call_is_followed_by_its_correction() {
        let events = [
            ev(
                0,
                json!({"kind":"message_event","caller_id":"user","content":["task"]}),
            ),
            ev(
                1,
                json!({"kind":"policy_event","content":"hmm","tool_reqs":[],"validation_errors":["Call a tool."]}),
            ),
        ];
        let mut conversation = Conversation::default();
        conversation.extend(&events, false);
        assert_eq!(conversation.messages.len(), 3);
    }
}
