//! Lenient reading of a Chat Completions response.
//!
//! "OpenAI-compatible" servers (vLLM, Ollama, llama.cpp, LM Studio, gateways) differ in
//! the details, so every field is optional, `null` counts as missing, unknown fields are
//! ignored, and fields whose shape varies between servers are read from `serde_json::Value`
//! by hand: `content` as a string or a list of parts, `finish_reason` as any string,
//! `usage` under its several names, reasoning as `reasoning_content`, `reasoning`,
//! thinking parts or a `<think>` block, tool call arguments as a string or an object.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::chat::{ChatRequest, ChatResponse, Usage};
use crate::error::body_excerpt;
use crate::tool_calls::{RawToolCall, assign_ids, extract_tool_calls, normalize_arguments};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireCompletion {
    #[serde(deserialize_with = "null_as_default")]
    choices: Vec<WireChoice>,
    usage: Value,
    error: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireChoice {
    #[serde(deserialize_with = "null_as_default")]
    message: WireMessage,
    finish_reason: Value,
    /// Legacy completions put the text here.
    text: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireMessage {
    content: Value,
    reasoning_content: Value,
    reasoning: Value,
    tool_calls: Value,
    /// The pre-`tool_calls` single function call, still sent by some servers.
    function_call: Value,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads a response body into a [`ChatResponse`]; `Err` describes what is wrong with it.
/// `request` supplies the offered tool names (for calls written in the text) and the ids
/// already used in the conversation.
pub(crate) fn parse_chat_response(
    body: &[u8],
    request: &ChatRequest,
) -> Result<ChatResponse, String> {
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        format!(
            "the body is not JSON ({error}): {}",
            body_excerpt(&String::from_utf8_lossy(body), 300)
        )
    })?;
    if !document.is_object() {
        return Err(format!(
            "expected a JSON object, got: {}",
            body_excerpt(&document.to_string(), 300)
        ));
    }
    let completion = WireCompletion::deserialize(&document).map_err(|error| {
        format!(
            "unexpected shape ({error}): {}",
            body_excerpt(&document.to_string(), 300)
        )
    })?;
    let Some(choice) = completion.choices.first() else {
        return Err(match loose_text(&completion.error) {
            Some(message) => format!(
                "it carries an error instead of a completion: {}",
                body_excerpt(&message, 300)
            ),
            None => "it has no choices".to_owned(),
        });
    };
    let message = &choice.message;

    let mut thinking_parts = Vec::new();
    let mut content =
        content_text(&message.content, &mut thinking_parts).or_else(|| loose_text(&choice.text));
    let mut reasoning = loose_text(&message.reasoning_content)
        .or_else(|| loose_text(&message.reasoning))
        .or_else(|| (!thinking_parts.is_empty()).then(|| thinking_parts.join("\n")));
    if let Some((thought, rest)) = content.as_deref().and_then(split_think_block) {
        reasoning = reasoning.or(Some(thought));
        content = Some(rest);
    }

    let mut raw_calls = native_tool_calls(message);
    if raw_calls.is_empty() && !request.tools.is_empty() {
        let offered: Vec<&str> = request
            .tools
            .iter()
            .map(|tool| tool.name.as_str())
            .collect();
        if let Some(extracted) = content
            .as_deref()
            .and_then(|text| extract_tool_calls(text, &offered))
        {
            tracing::debug!(
                calls = extracted.calls.len(),
                "tool calls recovered from the reply's text"
            );
            content = extracted.remaining_text;
            raw_calls = extracted.calls;
        }
    }

    Ok(ChatResponse {
        content: non_blank(content),
        reasoning_content: non_blank(reasoning),
        tool_calls: assign_ids(raw_calls, request),
        finish_reason: non_blank(loose_text(&choice.finish_reason)),
        usage: parse_usage(&completion.usage),
    })
}

fn non_blank(text: Option<String>) -> Option<String> {
    text.map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The text of `content`: a string, or the text parts of a list joined together. Thinking
/// parts go to `thinking_parts` instead.
fn content_text(content: &Value, thinking_parts: &mut Vec<String>) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                let text = loose_text(part);
                match (kind, text) {
                    ("thinking" | "reasoning", Some(text)) => thinking_parts.push(text),
                    (_, Some(text)) => texts.push(text),
                    (_, None) => {}
                }
            }
            (!texts.is_empty()).then(|| texts.concat())
        }
        Value::Object(_) => loose_text(content),
        _ => None,
    }
}

/// Text from a value of varying shape: a string, a list of texts, or an object holding
/// its text under one of the usual keys.
fn loose_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().filter_map(loose_text).collect();
            (!texts.is_empty()).then(|| texts.join(""))
        }
        Value::Object(object) => [
            "text",
            "content",
            "thinking",
            "reasoning",
            "summary",
            "message",
        ]
        .iter()
        .find_map(|key| object.get(*key).and_then(loose_text)),
        Value::Number(number) => Some(number.to_string()),
        Value::Null | Value::Bool(_) => None,
    }
}

/// Splits reasoning written in the text: a leading `<think>…</think>` block, or text
/// ending in `</think>` when the template already opened the block in the prompt.
/// Returns `(reasoning, rest)`.
fn split_think_block(text: &str) -> Option<(String, String)> {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";
    let trimmed = text.trim_start();
    if let Some(after_open) = trimmed.strip_prefix(OPEN) {
        return Some(match after_open.split_once(CLOSE) {
            Some((thought, rest)) => (thought.trim().to_owned(), rest.to_owned()),
            // Cut off while thinking: it is all reasoning.
            None => (after_open.trim().to_owned(), String::new()),
        });
    }
    if !text.contains(OPEN)
        && let Some((thought, rest)) = text.split_once(CLOSE)
    {
        return Some((thought.trim().to_owned(), rest.to_owned()));
    }
    None
}

fn native_tool_calls(message: &WireMessage) -> Vec<RawToolCall> {
    let items: Vec<&Value> = match &message.tool_calls {
        Value::Array(items) => items.iter().collect(),
        single @ Value::Object(_) => vec![single],
        _ => Vec::new(),
    };
    let calls: Vec<RawToolCall> = items.into_iter().filter_map(native_tool_call).collect();
    if calls.is_empty() {
        return native_tool_call(&message.function_call)
            .into_iter()
            .collect();
    }
    calls
}

/// `{"id", "type": "function", "function": {"name", "arguments"}}`, also tolerating the
/// function's fields at the top level. An entry with neither name nor arguments is noise.
fn native_tool_call(item: &Value) -> Option<RawToolCall> {
    let object = item.as_object()?;
    let function = object
        .get("function")
        .and_then(Value::as_object)
        .unwrap_or(object);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let arguments = function
        .get("arguments")
        .or_else(|| function.get("parameters"));
    if name.is_empty() && arguments.is_none_or(Value::is_null) {
        return None;
    }
    let id = object.get("id").and_then(Value::as_str).map(str::to_owned);
    Some(RawToolCall {
        id,
        name,
        arguments: normalize_arguments(arguments.unwrap_or(&Value::Null)),
    })
}

fn parse_usage(usage: &Value) -> Usage {
    let count = |paths: &[&[&str]]| {
        paths
            .iter()
            .find_map(|path| {
                let value = path.iter().try_fold(usage, |value, key| value.get(*key))?;
                (!value.is_null()).then(|| loose_count(value))
            })
            .unwrap_or(0)
    };
    Usage {
        input_tokens: count(&[&["prompt_tokens"], &["input_tokens"]]),
        output_tokens: count(&[&["completion_tokens"], &["output_tokens"]]),
        reasoning_tokens: count(&[
            &["completion_tokens_details", "reasoning_tokens"],
            &["output_tokens_details", "reasoning_tokens"],
            &["reasoning_tokens"],
        ]),
        cached_tokens: count(&[
            &["prompt_tokens_details", "cached_tokens"],
            &["input_tokens_details", "cached_tokens"],
            &["cached_tokens"],
            &["prompt_cache_hit_tokens"],
        ]),
    }
}

/// A token count written as an integer, a float or a numeric string; anything else is 0.
fn loose_count(value: &Value) -> u64 {
    if let Some(count) = value.as_u64() {
        return count;
    }
    let float = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    // Saturating float-to-int conversion; negative and NaN become 0.
    float
        .filter(|count| *count > 0.0)
        .map_or(0, |count| count.round() as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::{ChatMessage, ToolCall, ToolSpec};

    fn request_with_tools(names: &[&str]) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::user_text("go")],
            tools: names
                .iter()
                .map(|name| ToolSpec {
                    name: (*name).to_owned(),
                    description: String::new(),
                    parameters: json!({}),
                })
                .collect(),
            ..ChatRequest::default()
        }
    }

    fn parse(body: Value) -> ChatResponse {
        parse_chat_response(
            body.to_string().as_bytes(),
            &request_with_tools(&["click_web", "answer", "think"]),
        )
        .unwrap()
    }

    fn parse_error(body: &str) -> String {
        parse_chat_response(body.as_bytes(), &request_with_tools(&["answer"])).unwrap_err()
    }

    #[test]
    fn standard_openai_reply() {
        let response = parse(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "click_web", "arguments": "{\"x\": 10, \"y\": 20}"}}
            ]}, "finish_reason": "tool_calls", "logprobs": null}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 7}},
            "system_fingerprint": "fp"
        }));
        assert_eq!(
            response,
            ChatResponse {
                content: None,
                reasoning_content: None,
                tool_calls: vec![ToolCall {
                    id: "call_abc".to_owned(),
                    name: "click_web".to_owned(),
                    arguments: json!({"x": 10, "y": 20})
                }],
                finish_reason: Some("tool_calls".to_owned()),
                usage: Usage {
                    input_tokens: 120,
                    output_tokens: 30,
                    reasoning_tokens: 7,
                    cached_tokens: 100
                },
            }
        );
    }

    #[test]
    fn odd_finish_reasons_content_and_missing_usage() {
        let empty_reason =
            parse(json!({"choices": [{"message": {"content": "hello"}, "finish_reason": ""}]}));
        assert_eq!(empty_reason.content.as_deref(), Some("hello"));
        assert_eq!(empty_reason.finish_reason, None);
        assert_eq!(empty_reason.usage, Usage::default());

        let custom_reason = parse(
            json!({"choices": [{"message": {"content": "x"}, "finish_reason": "eos_token"}], "usage": null}),
        );
        assert_eq!(custom_reason.finish_reason.as_deref(), Some("eos_token"));

        let missing_everything = parse(json!({"choices": [{}]}));
        assert_eq!(missing_everything, ChatResponse::default());

        let null_message = parse(json!({"choices": [{"message": null, "finish_reason": null}]}));
        assert_eq!(null_message, ChatResponse::default());

        let parts = parse(json!({"choices": [{"message": {"content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "world"}
        ]}}]}));
        assert_eq!(parts.content.as_deref(), Some("Hello world"));
        assert_eq!(parts.reasoning_content.as_deref(), Some("hmm"));

        let legacy_text =
            parse(json!({"choices": [{"text": "plain completion", "finish_reason": "length"}]}));
        assert_eq!(legacy_text.content.as_deref(), Some("plain completion"));
    }

    #[test]
    fn reasoning_comes_from_any_of_its_usual_places() {
        let vllm = parse(
            json!({"choices": [{"message": {"content": "ok", "reasoning_content": "because"}}]}),
        );
        assert_eq!(vllm.reasoning_content.as_deref(), Some("because"));

        let ollama =
            parse(json!({"choices": [{"message": {"content": "ok", "reasoning": "since"}}]}));
        assert_eq!(ollama.reasoning_content.as_deref(), Some("since"));

        let think_block = parse(
            json!({"choices": [{"message": {"content": "<think>\nplan it\n</think>\n\nThe answer."}}]}),
        );
        assert_eq!(think_block.reasoning_content.as_deref(), Some("plan it"));
        assert_eq!(think_block.content.as_deref(), Some("The answer."));

        let opened_by_template =
            parse(json!({"choices": [{"message": {"content": "plan it</think>The answer."}}]}));
        assert_eq!(
            opened_by_template.reasoning_content.as_deref(),
            Some("plan it")
        );
        assert_eq!(opened_by_template.content.as_deref(), Some("The answer."));
    }

    #[test]
    fn arguments_as_objects_invalid_text_or_nothing() {
        let response = parse(json!({"choices": [{"message": {"tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "click_web", "arguments": {"x": 1, "y": 2}}},
            {"id": "b", "type": "function", "function": {"name": "click_web", "arguments": "{\"x\": 1, \"y\":"}},
            {"id": "c", "type": "function", "function": {"name": "think", "arguments": ""}},
            {"id": "d", "type": "function", "function": {"name": "think"}},
            {"type": "function", "function": {}}
        ]}}]}));
        let arguments: Vec<Value> = response
            .tool_calls
            .iter()
            .map(|call| call.arguments.clone())
            .collect();
        assert_eq!(
            arguments,
            [
                json!({"x": 1, "y": 2}),
                json!("{\"x\": 1, \"y\":"),
                json!({}),
                json!({})
            ]
        );
    }

    #[test]
    fn missing_and_duplicate_ids_are_replaced() {
        let response = parse(json!({"choices": [{"message": {"tool_calls": [
            {"type": "function", "function": {"name": "think", "arguments": "{}"}},
            {"id": "", "type": "function", "function": {"name": "think", "arguments": "{}"}},
            {"id": "same", "type": "function", "function": {"name": "think", "arguments": "{}"}},
            {"id": "same", "type": "function", "function": {"name": "think", "arguments": "{}"}}
        ]}}]}));
        let ids: Vec<&str> = response
            .tool_calls
            .iter()
            .map(|call| call.id.as_str())
            .collect();
        assert_eq!(ids, ["call_0", "call_1", "same", "call_2"]);
    }

    #[test]
    fn legacy_function_call_and_top_level_fields() {
        let legacy = parse(json!({"choices": [{"message": {"content": null,
            "function_call": {"name": "answer", "arguments": "{\"answer\": \"42\"}"}}}]}));
        assert_eq!(legacy.tool_calls[0].name, "answer");
        assert_eq!(legacy.tool_calls[0].arguments, json!({"answer": "42"}));

        let flat = parse(
            json!({"choices": [{"message": {"tool_calls": [{"id": "x", "name": "think", "arguments": {"thought": "t"}}]}}]}),
        );
        assert_eq!(flat.tool_calls[0].name, "think");
        assert_eq!(flat.tool_calls[0].arguments, json!({"thought": "t"}));
    }

    #[test]
    fn tool_calls_written_in_content_are_recovered() {
        let tagged = parse(json!({"choices": [{"message": {"content":
            "<think>need to answer</think>Answering now.\n<tool_call>\n{\"name\": \"answer\", \"arguments\": {\"answer\": \"42\", \"outcome\": \"success\"}}\n</tool_call>"},
            "finish_reason": "stop"}]}));
        assert_eq!(tagged.reasoning_content.as_deref(), Some("need to answer"));
        assert_eq!(tagged.content.as_deref(), Some("Answering now."));
        assert_eq!(tagged.tool_calls.len(), 1);
        assert_eq!(tagged.tool_calls[0].id, "call_0");
        assert_eq!(
            tagged.tool_calls[0].arguments,
            json!({"answer": "42", "outcome": "success"})
        );
        assert_eq!(tagged.finish_reason.as_deref(), Some("stop"));

        let fenced = parse(json!({"choices": [{"message": {"content":
            "```json\n[{\"name\": \"think\", \"parameters\": {\"thought\": \"a\"}}, {\"name\": \"click_web\", \"arguments\": {\"x\": 1, \"y\": 2}}]\n```"}}]}));
        assert_eq!(fenced.content, None);
        assert_eq!(
            fenced
                .tool_calls
                .iter()
                .map(|call| call.name.as_str())
                .collect::<Vec<_>>(),
            ["think", "click_web"]
        );
    }

    #[test]
    fn content_is_left_alone_when_native_calls_exist_or_no_tools_were_offered() {
        let body = json!({"choices": [{"message": {
            "content": "{\"name\": \"think\", \"arguments\": {}}",
            "tool_calls": [{"id": "n", "type": "function", "function": {"name": "answer", "arguments": "{}"}}]
        }}]});
        let with_native = parse(body);
        assert_eq!(with_native.tool_calls.len(), 1);
        assert_eq!(
            with_native.content.as_deref(),
            Some("{\"name\": \"think\", \"arguments\": {}}")
        );

        let no_tools = parse_chat_response(
            json!({"choices": [{"message": {"content": "{\"name\": \"think\", \"arguments\": {}}"}}]}).to_string().as_bytes(),
            &ChatRequest::default(),
        )
        .unwrap();
        assert!(no_tools.tool_calls.is_empty());
    }

    #[test]
    fn usage_under_other_names_and_types() {
        let response = parse(json!({"choices": [{"message": {"content": "x"}}],
            "usage": {"input_tokens": "12", "output_tokens": 3.0, "output_tokens_details": {"reasoning_tokens": 1},
                      "prompt_cache_hit_tokens": 4}}));
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 3,
                reasoning_tokens: 1,
                cached_tokens: 4
            }
        );
        let negative = parse(
            json!({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": -5}}),
        );
        assert_eq!(negative.usage.input_tokens, 0);
    }

    #[test]
    fn unusable_bodies_are_explained() {
        assert!(
            parse_error("<html>Bad gateway</html>").starts_with("the body is not JSON"),
            "{}",
            parse_error("<html>")
        );
        assert!(parse_error("[1]").starts_with("expected a JSON object"));
        assert_eq!(parse_error("{\"choices\": []}"), "it has no choices");
        assert_eq!(parse_error("{}"), "it has no choices");
        assert_eq!(
            parse_error("{\"error\": {\"message\": \"model overloaded\", \"code\": 503}}"),
            "it carries an error instead of a completion: model overloaded"
        );
        assert!(parse_error("{\"choices\": [\"text\"]}").starts_with("unexpected shape"));
    }
}
