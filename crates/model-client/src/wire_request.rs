//! The Chat Completions request body, in the shape OpenAI documents and compatible
//! servers accept.

use serde_json::{Map, Value, json};

use crate::chat::{ChatMessage, ChatRequest, ContentPart, ToolCall, ToolChoice};

/// The JSON body posted to `{base_url}/chat/completions` for `model`.
pub(crate) fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".to_owned(), json!(model));
    body.insert(
        "messages".to_owned(),
        request.messages.iter().map(message_json).collect(),
    );
    // Some servers refuse `tool_choice` without tools, so both go together or not at all.
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name, "description": tool.description, "parameters": tool.parameters
                }})
            })
            .collect();
        body.insert("tools".to_owned(), Value::Array(tools));
        let tool_choice = match &request.tool_choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".to_owned(), tool_choice);
    }
    Value::Object(body)
}

fn message_json(message: &ChatMessage) -> Value {
    match message {
        ChatMessage::System(text) => json!({"role": "system", "content": text}),
        ChatMessage::User(parts) => json!({"role": "user", "content": user_content(parts)}),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            let mut message = Map::new();
            message.insert("role".to_owned(), json!("assistant"));
            // Null content is what OpenAI sends beside tool calls; a reply with neither
            // gets an empty string, which every server accepts.
            let content = match (content, tool_calls.is_empty()) {
                (Some(text), _) => json!(text),
                (None, false) => Value::Null,
                (None, true) => json!(""),
            };
            message.insert("content".to_owned(), content);
            if !tool_calls.is_empty() {
                message.insert(
                    "tool_calls".to_owned(),
                    tool_calls.iter().map(tool_call_json).collect(),
                );
            }
            Value::Object(message)
        }
        ChatMessage::Tool {
            tool_call_id,
            content,
        } => {
            json!({"role": "tool", "tool_call_id": tool_call_id, "content": content})
        }
    }
}

/// A single text part goes as a plain string (the form every server understands);
/// anything else as a list of parts.
fn user_content(parts: &[ContentPart]) -> Value {
    if let [ContentPart::Text(text)] = parts {
        return json!(text);
    }
    parts
        .iter()
        .map(|part| match part {
            ContentPart::Text(text) => json!({"type": "text", "text": text}),
            ContentPart::ImageUrl(url) => json!({"type": "image_url", "image_url": {"url": url}}),
        })
        .collect()
}

fn tool_call_json(call: &ToolCall) -> Value {
    // Arguments travel as a JSON string. A `Value::String` holds arguments that were not
    // valid JSON when the model sent them: they go back exactly as the model wrote them.
    let arguments = match &call.arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    };
    json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolSpec;

    #[test]
    fn full_conversation_serializes_as_openai_expects() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::System("You are an agent.".to_owned()),
                ChatMessage::user_text("What is 6*7?"),
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "call_0".to_owned(),
                        name: "think".to_owned(),
                        arguments: json!({"thought": "multiply"}),
                    }],
                },
                ChatMessage::Tool {
                    tool_call_id: "call_0".to_owned(),
                    content: "ok".to_owned(),
                },
                ChatMessage::User(vec![
                    ContentPart::Text("Look:".to_owned()),
                    ContentPart::ImageUrl("data:image/jpeg;base64,AAAA".to_owned()),
                ]),
            ],
            tools: vec![ToolSpec {
                name: "think".to_owned(),
                description: "Think.".to_owned(),
                parameters: json!({"type": "object", "properties": {"thought": {"type": "string"}}}),
            }],
            tool_choice: ToolChoice::Auto,
        };
        let expected = json!({
            "model": "holo",
            "messages": [
                {"role": "system", "content": "You are an agent."},
                {"role": "user", "content": "What is 6*7?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "think", "arguments": "{\"thought\":\"multiply\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_0", "content": "ok"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Look:"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {
                "name": "think", "description": "Think.",
                "parameters": {"type": "object", "properties": {"thought": {"type": "string"}}}
            }}],
            "tool_choice": "auto"
        });
        assert_eq!(request_body("holo", &request), expected);
    }

    #[test]
    fn tools_and_tool_choice_are_omitted_without_tools() {
        let request = ChatRequest {
            messages: vec![ChatMessage::user_text("hi")],
            tools: vec![],
            tool_choice: ToolChoice::Required,
        };
        assert_eq!(
            request_body("m", &request),
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        );
    }

    #[test]
    fn tool_choice_forms() {
        let with_choice = |tool_choice| {
            let request = ChatRequest {
                messages: vec![],
                tools: vec![ToolSpec {
                    name: "answer".to_owned(),
                    description: String::new(),
                    parameters: json!({}),
                }],
                tool_choice,
            };
            request_body("m", &request)["tool_choice"].clone()
        };
        assert_eq!(with_choice(ToolChoice::Required), json!("required"));
        assert_eq!(
            with_choice(ToolChoice::Function("answer".to_owned())),
            json!({"type": "function", "function": {"name": "answer"}})
        );
    }

    #[test]
    fn raw_arguments_go_back_verbatim_and_empty_replies_get_empty_content() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::Assistant {
                    content: Some("let me see".to_owned()),
                    tool_calls: vec![ToolCall {
                        id: "a".to_owned(),
                        name: "click_web".to_owned(),
                        arguments: Value::String("{x: 1".to_owned()),
                    }],
                },
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![],
                },
                ChatMessage::User(vec![ContentPart::ImageUrl(
                    "http://127.0.0.1/a.png".to_owned(),
                )]),
            ],
            ..ChatRequest::default()
        };
        let body = request_body("m", &request);
        assert_eq!(body["messages"][0]["content"], "let me see");
        assert_eq!(
            body["messages"][0]["tool_calls"][0]["function"]["arguments"],
            "{x: 1"
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"type": "image_url", "image_url": {"url": "http://127.0.0.1/a.png"}}])
        );
    }
}
