//! The script: what the scripted model answers, and the pure functions that pick a reply
//! for a request and turn it into an HTTP answer. No IO here, so all of it is unit-tested.
//!
//! The choice of reply depends only on the request body (its first user message and how
//! many assistant messages it carries), never on what the server saw before: that keeps
//! the script correct for concurrent sessions and across restarts of the agent server.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A parsed script: rules tried in order, then the default replies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Script {
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default, deserialize_with = "optional_one_or_many")]
    default: Option<Vec<Reply>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// Substring looked for in the text of the request's first user message.
    #[serde(rename = "match")]
    pattern: String,
    #[serde(deserialize_with = "one_or_many")]
    replies: Vec<Reply>,
    /// The reply to a request whose `tool_choice` forces a function (a forced final
    /// answer), whatever the turn; without it forced requests follow `replies`.
    #[serde(default)]
    forced: Option<Reply>,
}

/// One scripted answer. Unknown fields are refused so a typo in a test script fails
/// loudly instead of silently answering something else.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Reply {
    tool_calls: Vec<ScriptedToolCall>,
    content: Option<String>,
    reasoning_content: Option<String>,
    finish_reason: Option<String>,
    usage: Option<Map<String, Value>>,
    /// Wait this long before answering.
    pub(crate) delay_ms: u64,
    /// Answer with this HTTP status instead of a completion.
    status: Option<u16>,
    /// Raw body of a `status` answer (a string is sent verbatim, anything else as JSON).
    body: Option<Value>,
    /// `Retry-After` header of a `status` answer.
    retry_after: Option<Value>,
    /// A body sent as is with status 200 (a string verbatim, anything else as JSON).
    raw: Option<Value>,
    /// Answer with an `answer` tool call echoing the last user message.
    echo_user: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedToolCall {
    name: String,
    #[serde(default = "empty_object")]
    arguments: Value,
    #[serde(default)]
    id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Lets a script write a single reply where a list is expected. Goes through `Value` (not an
/// untagged enum) so that a typo in a reply is reported by name.
fn replies_from_value(value: Value) -> Result<Vec<Reply>, String> {
    match value {
        list @ Value::Array(_) => serde_json::from_value(list).map_err(|error| error.to_string()),
        single @ Value::Object(_) => serde_json::from_value(single)
            .map(|reply| vec![reply])
            .map_err(|error| error.to_string()),
        other => Err(format!(
            "expected a reply or a list of replies, got {other}"
        )),
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Reply>, D::Error> {
    replies_from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

fn optional_one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Reply>>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => replies_from_value(value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl Script {
    /// Parses and checks a script document.
    pub(crate) fn parse(document: &Value) -> Result<Script, String> {
        let script =
            Script::deserialize(document).map_err(|error| format!("invalid script: {error}"))?;
        for (index, rule) in script.rules.iter().enumerate() {
            if rule.replies.is_empty() {
                return Err(format!(
                    "invalid script: rule {index} ('{}') has no replies",
                    rule.pattern
                ));
            }
        }
        if script.default.as_ref().is_some_and(Vec::is_empty) {
            return Err("invalid script: default has no replies".to_owned());
        }
        Ok(script)
    }

    /// Picks the reply for a chat request body; `Err` explains why none applies.
    pub(crate) fn select(&self, request: &Value) -> Result<SelectedReply, String> {
        let first_user_text = user_message_texts(request).next().unwrap_or_default();
        let rule = self
            .rules
            .iter()
            .find(|rule| first_user_text.contains(&rule.pattern));
        let turn = assistant_message_count(request);
        let forces_a_function = request
            .get("tool_choice")
            .is_some_and(|choice| choice.get("function").is_some());
        if let Some(forced) = rule.and_then(|rule| rule.forced.as_ref())
            && forces_a_function
        {
            return Ok(SelectedReply {
                reply: forced.clone(),
                turn,
            });
        }
        let replies = rule
            .map(|rule| &rule.replies)
            .or(self.default.as_ref())
            .ok_or_else(|| {
                format!("no rule of the script matched the first user message and there is no default: {first_user_text:?}")
            })?;
        // Past the end the last reply repeats; parse() guarantees the list is not empty.
        let reply = replies
            .get(turn)
            .or(replies.last())
            .ok_or_else(|| "the matching rule has no replies".to_owned())?;
        Ok(SelectedReply {
            reply: reply.clone(),
            turn,
        })
    }
}

/// A reply together with the turn index it was chosen for (used in tool call ids).
#[derive(Debug, Clone)]
pub(crate) struct SelectedReply {
    pub(crate) reply: Reply,
    pub(crate) turn: usize,
}

/// An HTTP answer, independent of the server framework.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) retry_after: Option<String>,
}

impl SelectedReply {
    /// Builds the HTTP answer for this reply to `request`.
    pub(crate) fn answer(&self, request: &Value) -> Answer {
        let reply = &self.reply;
        if let Some(status) = reply.status {
            let body = match &reply.body {
                Some(body) => raw_body(body),
                None => json!({"error": {"message": format!("scripted error status {status}"), "type": "scripted_error"}})
                    .to_string(),
            };
            let retry_after = reply.retry_after.as_ref().map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            });
            return Answer {
                status,
                body,
                retry_after,
            };
        }
        if let Some(raw) = &reply.raw {
            return Answer {
                status: 200,
                body: raw_body(raw),
                retry_after: None,
            };
        }
        Answer {
            status: 200,
            body: self.completion(request).to_string(),
            retry_after: None,
        }
    }

    /// The `chat.completion` object for a normal (non-error, non-raw) reply.
    fn completion(&self, request: &Value) -> Value {
        let reply = &self.reply;
        let mut scripted_calls = reply.tool_calls.clone();
        if reply.echo_user {
            let last_user_text = user_message_texts(request).last().unwrap_or_default();
            scripted_calls.push(ScriptedToolCall {
                name: "answer".to_owned(),
                arguments: json!({"answer": last_user_text, "outcome": "success"}),
                id: None,
            });
        }
        let tool_calls: Vec<Value> = scripted_calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let id = call.id.clone().unwrap_or_else(|| format!("call_{}_{index}", self.turn));
                // A string is sent verbatim so tests can script malformed arguments.
                let arguments = match &call.arguments {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                json!({"id": id, "type": "function", "function": {"name": call.name, "arguments": arguments}})
            })
            .collect();
        let finish_reason = reply.finish_reason.clone().unwrap_or_else(|| {
            if tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .to_owned()
        });

        let mut message = Map::new();
        message.insert("role".to_owned(), json!("assistant"));
        message.insert("content".to_owned(), json!(reply.content));
        if let Some(reasoning) = &reply.reasoning_content {
            message.insert("reasoning_content".to_owned(), json!(reasoning));
        }
        if !tool_calls.is_empty() {
            message.insert("tool_calls".to_owned(), Value::Array(tool_calls));
        }

        let mut usage = reply.usage.clone().unwrap_or_default();
        let prompt_tokens = usage
            .get("prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        let completion_tokens = usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(5);
        usage.insert("prompt_tokens".to_owned(), json!(prompt_tokens));
        usage.insert("completion_tokens".to_owned(), json!(completion_tokens));
        usage
            .entry("total_tokens")
            .or_insert(json!(prompt_tokens + completion_tokens));

        json!({
            "id": format!("chatcmpl-scripted-{}", self.turn),
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model").and_then(Value::as_str).unwrap_or("scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage,
        })
    }
}

fn raw_body(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn messages(request: &Value) -> &[Value] {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn assistant_message_count(request: &Value) -> usize {
    messages(request)
        .iter()
        .filter(|message| message.get("role").and_then(Value::as_str) == Some("assistant"))
        .count()
}

/// The text of every user message, in order; text parts of a multi-part message are
/// joined with newlines and image parts ignored.
fn user_message_texts(request: &Value) -> impl Iterator<Item = String> + '_ {
    messages(request)
        .iter()
        .filter(|message| message.get("role").and_then(Value::as_str) == Some("user"))
        .map(|message| match message.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: Value) -> Value {
        json!({"model": "m", "messages": messages})
    }

    fn completion_of(script: &Value, request: &Value) -> Value {
        let selected = Script::parse(script).unwrap().select(request).unwrap();
        let answer = selected.answer(request);
        assert_eq!(answer.status, 200);
        serde_json::from_str(&answer.body).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_matches_the_first_user_message_only() {
        let script = json!({"rules": [
            {"match": "6*7", "replies": [{"content": "first"}]},
            {"match": "7", "replies": [{"content": "second"}]},
            {"match": "later", "replies": [{"content": "never"}]}
        ]});
        let asked = request(json!([
            {"role": "system", "content": "later"},
            {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "image_url", "image_url": {"url": "data:x"}}, {"type": "text", "text": "6*7?"}]},
            {"role": "user", "content": "later"}
        ]));
        let completion = completion_of(&script, &asked);
        assert_eq!(completion["choices"][0]["message"]["content"], "first");
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        assert_eq!(completion["model"], "m");
    }

    #[test]
    fn default_applies_when_no_rule_matches_and_its_absence_is_an_error() {
        let asked = request(json!([{"role": "user", "content": "hello"}]));
        let with_default = json!({"rules": [{"match": "bye", "replies": [{"content": "no"}]}], "default": [{"content": "yes"}]});
        assert_eq!(
            completion_of(&with_default, &asked)["choices"][0]["message"]["content"],
            "yes"
        );

        let without_default = json!({"rules": [{"match": "bye", "replies": [{"content": "no"}]}]});
        let error = Script::parse(&without_default)
            .unwrap()
            .select(&asked)
            .unwrap_err();
        assert!(error.contains("no rule"), "{error}");
    }

    #[test]
    fn reply_index_is_the_number_of_assistant_messages_and_the_last_repeats() {
        let script = json!({"default": [{"content": "zero"}, {"content": "one"}]});
        let mut messages = vec![json!({"role": "user", "content": "hi"})];
        let mut seen = Vec::new();
        for _ in 0..3 {
            let completion = completion_of(&script, &request(Value::Array(messages.clone())));
            seen.push(
                completion["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            messages.push(json!({"role": "assistant", "content": "x"}));
            messages.push(json!({"role": "tool", "tool_call_id": "a", "content": "ok"}));
        }
        assert_eq!(seen, ["zero", "one", "one"]);
    }

    #[test]
    fn tool_calls_get_ids_arguments_as_strings_and_default_finish_reason() {
        let script = json!({"default": [{"content": "x"}, {"tool_calls": [
            {"name": "think", "arguments": {"thought": "hm"}},
            {"name": "answer", "arguments": "{not json", "id": "mine"}
        ], "usage": {"prompt_tokens": 100}}]});
        let asked = request(
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]),
        );
        let completion = completion_of(&script, &asked);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls[0]["id"], "call_1_0");
        assert_eq!(calls[0]["function"]["arguments"], r#"{"thought":"hm"}"#);
        assert_eq!(calls[1]["id"], "mine");
        assert_eq!(calls[1]["function"]["arguments"], "{not json");
        assert_eq!(
            completion["usage"],
            json!({"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105})
        );
    }

    #[test]
    fn echo_user_answers_with_the_last_user_message() {
        let script = json!({"default": {"echo_user": true}});
        let asked = request(json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "second"}
        ]));
        let completion = completion_of(&script, &asked);
        let call = &completion["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "answer");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"answer": "second", "outcome": "success"}));
    }

    #[test]
    fn status_and_raw_replies_are_sent_as_given() {
        let asked = request(json!([{"role": "user", "content": "hi"}]));
        let status = Script::parse(
            &json!({"default": [{"status": 429, "body": "slow down", "retry_after": 2}]}),
        )
        .unwrap()
        .select(&asked)
        .unwrap()
        .answer(&asked);
        assert_eq!(
            status,
            Answer {
                status: 429,
                body: "slow down".to_owned(),
                retry_after: Some("2".to_owned())
            }
        );

        let raw = Script::parse(&json!({"default": [{"raw": "{\"choices\": []"}]}))
            .unwrap()
            .select(&asked)
            .unwrap()
            .answer(&asked);
        assert_eq!(
            raw,
            Answer {
                status: 200,
                body: "{\"choices\": []".to_owned(),
                retry_after: None
            }
        );
    }

    #[test]
    fn malformed_scripts_are_refused_with_a_reason() {
        let typo = Script::parse(&json!({"default": [{"contnet": "x"}]})).unwrap_err();
        assert!(typo.contains("contnet"), "{typo}");
        let empty = Script::parse(&json!({"rules": [{"match": "a", "replies": []}]})).unwrap_err();
        assert!(empty.contains("no replies"), "{empty}");
        assert!(Script::parse(&json!({"rules": []})).is_ok());
    }
}
