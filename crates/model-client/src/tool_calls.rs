//! Turning what a model wrote into [`ToolCall`]s: argument normalisation, tool calls
//! written in the reply's text instead of `tool_calls`, and unique ids.
//!
//! Many open models served behind "OpenAI-compatible" servers (without a tool-call parser,
//! or with the wrong one) write their calls in `content`. Recognised forms, tried in order:
//! 1. the whole text (after dropping a leading `[TOOL_CALLS]` or `<|python_tag|>` marker,
//!    and unwrapping one fenced code block) is a call object or a list of them;
//! 2. `<tool_call>…</tool_call>` tags around call objects (the last tag may be unclosed);
//! 3. fenced code blocks (```` ```json ````) inside other text;
//! 4. a call object or list embedded in prose.
//!
//! A call object is `{"name", "arguments"}`, also with `parameters`, `args` or `input`
//! for the arguments, `tool`/`tool_name` for the name, or OpenAI's own
//! `{"type":"function","function":{…}}`. In forms 1 and 2 the intent is explicit, so any
//! tool name is accepted (an unknown one is reported to the model by the caller); in forms
//! 3 and 4, where JSON may just be part of an answer, only the names of offered tools count.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::chat::{ChatMessage, ChatRequest, ToolCall};

/// A tool call before it gets its final id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawToolCall {
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) arguments: Value,
}

/// Calls found in a reply's text, and the text that is left around them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExtractedCalls {
    pub(crate) remaining_text: Option<String>,
    pub(crate) calls: Vec<RawToolCall>,
}

/// Which tool names a recognised call may carry.
#[derive(Clone, Copy)]
enum NameFilter<'a> {
    Any,
    Offered(&'a [&'a str]),
}

impl NameFilter<'_> {
    fn allows(self, name: &str) -> bool {
        match self {
            NameFilter::Any => true,
            NameFilter::Offered(names) => names.contains(&name),
        }
    }
}

/// Special tokens some chat templates leak in front of a call; never meaningful text.
const CALL_MARKERS: [&str; 2] = ["[TOOL_CALLS]", "<|python_tag|>"];
const OPEN_TAG: &str = "<tool_call>";
const CLOSE_TAG: &str = "</tool_call>";
const FENCE: &str = "```";
/// Bounds the embedded-JSON scan, which re-parses from every `{` or `[` it tries.
const MAX_EMBEDDED_ATTEMPTS: usize = 64;
const MAX_SCANNED_TEXT_BYTES: usize = 256 * 1024;

/// Normalises tool call arguments: a JSON string is parsed (twice if it was encoded twice),
/// missing or blank arguments become `{}`, and text that is not JSON is kept verbatim as
/// `Value::String` so the caller can report it to the model.
pub(crate) fn normalize_arguments(arguments: &Value) -> Value {
    match arguments {
        Value::Null => Value::Object(Map::new()),
        Value::String(text) if text.trim().is_empty() => Value::Object(Map::new()),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::String(inner)) => match serde_json::from_str::<Value>(&inner) {
                Ok(object @ Value::Object(_)) => object,
                _ => Value::String(text.clone()),
            },
            Ok(parsed) => parsed,
            Err(_) => Value::String(text.clone()),
        },
        other => other.clone(),
    }
}

/// Finds tool calls written in `content`; `None` when there are none (see the module doc
/// for the recognised forms).
pub(crate) fn extract_tool_calls(content: &str, offered_tools: &[&str]) -> Option<ExtractedCalls> {
    let mut text = content.to_owned();
    for marker in CALL_MARKERS {
        text = text.replace(marker, "");
    }
    if let Some(calls) = calls_in_block(&text, NameFilter::Any, false) {
        return Some(ExtractedCalls {
            remaining_text: None,
            calls,
        });
    }
    extract_tagged(&text)
        .or_else(|| extract_fenced(&text, NameFilter::Offered(offered_tools)))
        .or_else(|| extract_embedded(&text, NameFilter::Offered(offered_tools)))
}

fn extracted(remaining: String, calls: Vec<RawToolCall>) -> Option<ExtractedCalls> {
    if calls.is_empty() {
        return None;
    }
    let remaining = remaining.trim();
    let remaining_text = (!remaining.is_empty()).then(|| remaining.to_owned());
    Some(ExtractedCalls {
        remaining_text,
        calls,
    })
}

fn extract_tagged(text: &str) -> Option<ExtractedCalls> {
    let mut remaining = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN_TAG) {
        let after_open = &rest[start + OPEN_TAG.len()..];
        let (inner, after_tag) = match after_open.find(CLOSE_TAG) {
            Some(end) => (&after_open[..end], &after_open[end + CLOSE_TAG.len()..]),
            None => (after_open, ""),
        };
        match calls_in_block(inner, NameFilter::Any, false) {
            Some(found) => {
                remaining.push_str(&rest[..start]);
                calls.extend(found);
            }
            // Not a call after all: the tag stays part of the text.
            None => remaining.push_str(&rest[..rest.len() - after_tag.len()]),
        }
        rest = after_tag;
    }
    remaining.push_str(rest);
    extracted(remaining, calls)
}

fn extract_fenced(text: &str, filter: NameFilter<'_>) -> Option<ExtractedCalls> {
    let mut remaining = String::new();
    let mut calls = Vec::new();
    let mut cursor = 0;
    let mut search_from = 0;
    while let Some(open) = text[search_from..]
        .find(FENCE)
        .map(|offset| search_from + offset)
    {
        let block_start = open + FENCE.len();
        let Some(close) = text[block_start..]
            .find(FENCE)
            .map(|offset| block_start + offset)
        else {
            break;
        };
        if let Some(found) = calls_in_block(&text[block_start..close], filter, true) {
            remaining.push_str(&text[cursor..open]);
            cursor = close + FENCE.len();
            calls.extend(found);
        }
        search_from = close + FENCE.len();
    }
    remaining.push_str(&text[cursor..]);
    extracted(remaining, calls)
}

fn extract_embedded(text: &str, filter: NameFilter<'_>) -> Option<ExtractedCalls> {
    if text.len() > MAX_SCANNED_TEXT_BYTES {
        return None;
    }
    let mut remaining = String::new();
    let mut calls = Vec::new();
    let mut cursor = 0;
    let mut search_from = 0;
    let mut attempts = 0;
    while let Some(start) = text[search_from..]
        .find(['{', '['])
        .map(|offset| search_from + offset)
    {
        attempts += 1;
        if attempts > MAX_EMBEDDED_ATTEMPTS {
            break;
        }
        let mut values = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => {
                let end = start + values.byte_offset();
                if let Some(found) = calls_from_value(&value, filter) {
                    remaining.push_str(&text[cursor..start]);
                    cursor = end;
                    calls.extend(found);
                }
                // A JSON value that is not a call is skipped whole, not re-scanned inside.
                search_from = end;
            }
            _ => search_from = start + 1,
        }
    }
    remaining.push_str(&text[cursor..]);
    extracted(remaining, calls)
}

/// Calls in a block that holds nothing else: one JSON value or several in a row, possibly
/// inside one fenced code block (with or without a language tag). `inside_fence` says the
/// block is already the inside of a fence.
fn calls_in_block(
    block: &str,
    filter: NameFilter<'_>,
    inside_fence: bool,
) -> Option<Vec<RawToolCall>> {
    let mut body = block.trim();
    let mut fenced = inside_fence;
    if let Some(inside) = body
        .strip_prefix(FENCE)
        .and_then(|rest| rest.strip_suffix(FENCE))
    {
        body = inside.trim();
        fenced = true;
    }
    if fenced && !body.starts_with(['{', '[']) {
        // A language tag such as `json` or `tool_call` on the fence's first line.
        let (first_line, after) = body.split_once('\n')?;
        if !first_line
            .trim()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        body = after.trim();
    }
    if body.is_empty() {
        return None;
    }
    let mut calls = Vec::new();
    for value in serde_json::Deserializer::from_str(body).into_iter::<Value>() {
        calls.extend(calls_from_value(&value.ok()?, filter)?);
    }
    (!calls.is_empty()).then_some(calls)
}

/// A call object, a non-empty list of them, or `{"tool_calls": [...]}`.
fn calls_from_value(value: &Value, filter: NameFilter<'_>) -> Option<Vec<RawToolCall>> {
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| call_from_value(item, filter))
            .collect::<Option<Vec<_>>>(),
        Value::Object(object) => match object.get("tool_calls") {
            Some(inner @ Value::Array(_)) => calls_from_value(inner, filter),
            _ => call_from_value(value, filter).map(|call| vec![call]),
        },
        _ => None,
    }
}

const NAME_KEYS: [&str; 4] = ["name", "tool", "tool_name", "function"];
const ARGUMENT_KEYS: [&str; 4] = ["arguments", "parameters", "args", "input"];

fn call_from_value(value: &Value, filter: NameFilter<'_>) -> Option<RawToolCall> {
    let object = value.as_object()?;
    let id = object.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(function @ Value::Object(_)) = object.get("function") {
        let mut call = call_from_value(function, filter)?;
        call.id = call.id.or(id);
        return Some(call);
    }
    let (name_key, name) = NAME_KEYS.iter().find_map(|key| {
        object
            .get(*key)
            .and_then(Value::as_str)
            .map(|name| (*key, name.trim()))
    })?;
    if name.is_empty() || !filter.allows(name) {
        return None;
    }
    let arguments = match ARGUMENT_KEYS.iter().find_map(|key| object.get(*key)) {
        Some(arguments) => normalize_arguments(arguments),
        // Without arguments, only a bare `{"name": ...}` is taken for a call: any other
        // key means this is some other object that happens to have a name.
        None if object
            .keys()
            .all(|key| key == name_key || key == "id" || key == "type") =>
        {
            Value::Object(Map::new())
        }
        None => return None,
    };
    Some(RawToolCall {
        id,
        name: name.to_owned(),
        arguments,
    })
}

/// Gives every call an id unique within the conversation: the model's own when it is
/// present and unused, otherwise `call_<n>` with the smallest free `n`. Ids already used
/// earlier in the conversation are replaced too, so a tool result can always be matched
/// to exactly one call.
pub(crate) fn assign_ids(calls: Vec<RawToolCall>, request: &ChatRequest) -> Vec<ToolCall> {
    let mut taken: HashSet<String> = HashSet::new();
    for message in &request.messages {
        match message {
            ChatMessage::Assistant { tool_calls, .. } => {
                taken.extend(tool_calls.iter().map(|call| call.id.clone()))
            }
            ChatMessage::Tool { tool_call_id, .. } => {
                taken.insert(tool_call_id.clone());
            }
            ChatMessage::System(_) | ChatMessage::User(_) => {}
        }
    }
    let mut next_number = 0usize;
    calls
        .into_iter()
        .map(|call| {
            let given = call
                .id
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty() && !taken.contains(id));
            let id = given.unwrap_or_else(|| {
                loop {
                    let candidate = format!("call_{next_number}");
                    next_number += 1;
                    if !taken.contains(&candidate) {
                        break candidate;
                    }
                }
            });
            taken.insert(id.clone());
            ToolCall {
                id,
                name: call.name,
                arguments: call.arguments,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OFFERED: &[&str] = &["click_web", "answer", "think"];

    fn call(name: &str, arguments: Value) -> RawToolCall {
        RawToolCall {
            id: None,
            name: name.to_owned(),
            arguments,
        }
    }

    fn extract(content: &str) -> Option<ExtractedCalls> {
        extract_tool_calls(content, OFFERED)
    }

    #[test]
    fn arguments_are_normalised() {
        assert_eq!(normalize_arguments(&json!("{\"x\": 1}")), json!({"x": 1}));
        assert_eq!(normalize_arguments(&json!({"x": 1})), json!({"x": 1}));
        assert_eq!(normalize_arguments(&json!("")), json!({}));
        assert_eq!(normalize_arguments(&Value::Null), json!({}));
        assert_eq!(
            normalize_arguments(&json!("\"{\\\"x\\\": 1}\"")),
            json!({"x": 1})
        );
        assert_eq!(normalize_arguments(&json!("{x: 1")), json!("{x: 1"));
    }

    #[test]
    fn whole_content_objects_and_lists_are_calls() {
        let bare = extract(r#"{"name": "click_web", "arguments": {"x": 1, "y": 2}}"#).unwrap();
        assert_eq!(
            bare,
            ExtractedCalls {
                remaining_text: None,
                calls: vec![call("click_web", json!({"x": 1, "y": 2}))]
            }
        );

        let with_parameters =
            extract(r#"  {"name": "think", "parameters": {"thought": "hm"}}  "#).unwrap();
        assert_eq!(
            with_parameters.calls,
            vec![call("think", json!({"thought": "hm"}))]
        );

        let tool_args = extract(r#"{"tool": "answer", "args": "{\"answer\": \"42\"}"}"#).unwrap();
        assert_eq!(
            tool_args.calls,
            vec![call("answer", json!({"answer": "42"}))]
        );

        let list = extract(r#"[{"name": "think", "arguments": {}}, {"name": "answer", "arguments": {"answer": "x"}}]"#)
            .unwrap();
        assert_eq!(list.calls.len(), 2);

        // The whole reply is clearly a call, so even a tool that was not offered counts
        // (the caller tells the model it does not exist).
        let unknown = extract(r#"{"name": "fly_away", "arguments": {}}"#).unwrap();
        assert_eq!(unknown.calls, vec![call("fly_away", json!({}))]);

        let openai_shape = extract(
            r#"{"id": "c1", "type": "function", "function": {"name": "think", "arguments": "{}"}}"#,
        )
        .unwrap();
        assert_eq!(
            openai_shape.calls,
            vec![RawToolCall {
                id: Some("c1".to_owned()),
                ..call("think", json!({}))
            }]
        );
    }

    #[test]
    fn markers_fences_and_tags_are_unwrapped() {
        let mistral =
            extract(r#"[TOOL_CALLS][{"name": "think", "arguments": {"thought": "a"}}]"#).unwrap();
        assert_eq!(mistral.calls, vec![call("think", json!({"thought": "a"}))]);

        let fenced =
            extract("```json\n{\"name\": \"answer\", \"arguments\": {\"answer\": \"42\"}}\n```")
                .unwrap();
        assert_eq!(
            fenced,
            ExtractedCalls {
                remaining_text: None,
                calls: vec![call("answer", json!({"answer": "42"}))]
            }
        );

        let tagged = extract(
            "I will click.\n<tool_call>\n{\"name\": \"click_web\", \"arguments\": {\"x\": 5, \"y\": 6}}\n</tool_call>\n<tool_call>{\"name\": \"think\", \"arguments\": {}}</tool_call>",
        )
        .unwrap();
        assert_eq!(tagged.remaining_text.as_deref(), Some("I will click."));
        assert_eq!(
            tagged.calls,
            vec![
                call("click_web", json!({"x": 5, "y": 6})),
                call("think", json!({}))
            ]
        );

        let unclosed =
            extract("<tool_call>{\"name\": \"think\", \"arguments\": {\"thought\": \"t\"}}")
                .unwrap();
        assert_eq!(unclosed.calls, vec![call("think", json!({"thought": "t"}))]);
    }

    #[test]
    fn calls_inside_prose_need_an_offered_name() {
        let prose = extract(
            "Let me click the button.\n```json\n{\"name\": \"click_web\", \"arguments\": {\"x\": 1, \"y\": 1}}\n```\nThen we will see.",
        )
        .unwrap();
        assert_eq!(
            prose.remaining_text.as_deref(),
            Some("Let me click the button.\n\nThen we will see.")
        );
        assert_eq!(
            prose.calls,
            vec![call("click_web", json!({"x": 1, "y": 1}))]
        );

        let embedded =
            extract("Sure: {\"name\": \"answer\", \"arguments\": {\"answer\": \"Paris\"}} done")
                .unwrap();
        assert_eq!(embedded.remaining_text.as_deref(), Some("Sure:  done"));
        assert_eq!(
            embedded.calls,
            vec![call("answer", json!({"answer": "Paris"}))]
        );

        assert_eq!(
            extract("Here is the data: {\"name\": \"Bob\", \"arguments\": [1, 2]} as asked."),
            None
        );
        assert_eq!(
            extract("The result is {\"name\": \"answer\", \"age\": 3}."),
            None
        );
    }

    #[test]
    fn plain_text_and_other_json_are_not_calls() {
        assert_eq!(extract("The answer is 42."), None);
        assert_eq!(extract("{\"answer\": \"42\"}"), None);
        assert_eq!(extract("[1, 2, 3]"), None);
        assert_eq!(extract("<tool_call>not json</tool_call>"), None);
        assert_eq!(extract("{ unbalanced [ braces"), None);
        assert_eq!(
            extract("Sure\n{\"name\": \"fly_away\", \"arguments\": {}}"),
            None
        );
        assert_eq!(extract(""), None);
    }

    #[test]
    fn ids_are_kept_when_unique_and_generated_otherwise() {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "call_0".to_owned(),
                        name: "think".to_owned(),
                        arguments: json!({}),
                    }],
                },
                ChatMessage::Tool {
                    tool_call_id: "call_0".to_owned(),
                    content: "ok".to_owned(),
                },
            ],
            ..ChatRequest::default()
        };
        let calls = vec![
            RawToolCall {
                id: Some("abc".to_owned()),
                ..call("think", json!({}))
            },
            RawToolCall {
                id: Some("abc".to_owned()),
                ..call("think", json!({}))
            },
            RawToolCall {
                id: Some(String::new()),
                ..call("think", json!({}))
            },
            RawToolCall {
                id: Some("call_0".to_owned()),
                ..call("think", json!({}))
            },
            call("think", json!({})),
        ];
        let ids: Vec<String> = assign_ids(calls, &request)
            .into_iter()
            .map(|call| call.id)
            .collect();
        assert_eq!(ids, ["abc", "call_1", "call_2", "call_3", "call_4"]);
    }
}
