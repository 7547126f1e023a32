//! The smaller request bodies: messages to a session, custom tool results, and feedback.

use serde_json::{Value, json};

use crate::create::{UserMessage, parse_user_message};
use crate::errors::{FieldError, LocItem, at};
use crate::loc;
use crate::validate::{self, Errors, present};

/// `POST /sessions/{id}/messages`: `{"type":"user_message",...}`, `{"type":"batch",
/// "messages":[...]}` (at least one), or a dict without `type`, which the SDK sends
/// unchanged when the caller passes one: read as a message when it has `message`, as
/// a batch when it has `messages`.
pub fn parse_messages_body(body: &Value) -> Result<Vec<UserMessage>, Vec<FieldError>> {
    let here = loc!["body"];
    let fields = validate::object(body, &here).map_err(|error| vec![error])?;
    let is_batch = match present(fields, "type") {
        Some(kind) if kind == "user_message" => false,
        Some(kind) if kind == "batch" => true,
        Some(kind) => {
            return Err(vec![FieldError::enum_value(
                loc!["body", "type"],
                &["user_message", "batch"],
                kind.clone(),
            )]);
        }
        None => !fields.contains_key("message") && fields.contains_key("messages"),
    };
    if !is_batch {
        return parse_user_message(body, &here).map(|message| vec![message]);
    }
    let messages_loc = loc!["body", "messages"];
    let Some(value) = fields.get("messages") else {
        return Err(vec![FieldError::missing(messages_loc)]);
    };
    let items = validate::list(value, &messages_loc).map_err(|error| vec![error])?;
    if items.is_empty() {
        return Err(vec![too_short(messages_loc)]);
    }
    let mut errors = Errors::default();
    let messages: Vec<UserMessage> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| errors.take_all(parse_user_message(item, &at(&messages_loc, i))))
        .collect();
    errors.into_result(messages)
}

fn too_short(loc: Vec<LocItem>) -> FieldError {
    FieldError::new(
        loc,
        "too_short",
        "List should have at least 1 item after validation, not 0",
        Some(json!([])),
    )
}

/// A tool call as the session lists it and the client echoes it back (`ToolRequest`).
#[derive(Clone, Debug, PartialEq)]
pub struct ToolRequestWire {
    pub tool_name: String,
    /// An object, or null.
    pub args: Value,
    pub id: Option<String>,
}

impl ToolRequestWire {
    pub fn to_json(&self) -> Value {
        json!({"tool_name": self.tool_name, "args": self.args, "id": self.id})
    }
}

/// What the client's tool produced.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolOutcome {
    /// `tool_result`: any JSON.
    Result(Value),
    /// `error_event`: the text shown to the model, and which component failed.
    Error { error: String, origin: String },
}

/// One result posted to `/tool_results`.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResultInput {
    pub tool_req: ToolRequestWire,
    pub outcome: ToolOutcome,
}

/// `POST /sessions/{id}/tool_results`. The body is not formally discriminated: `type ==
/// "batch"` or a `results` key is a batch (at least one result); otherwise `kind ==
/// "error_event"` is a failure and anything else a success. `tool_req` is required on
/// both kinds, since it is what ties a result to the call it answers.
pub fn parse_tool_results(body: &Value) -> Result<Vec<ToolResultInput>, Vec<FieldError>> {
    let here = loc!["body"];
    let fields = validate::object(body, &here).map_err(|error| vec![error])?;
    let is_batch =
        fields.get("type").is_some_and(|kind| kind == "batch") || fields.contains_key("results");
    if !is_batch {
        return parse_tool_result(body, &here).map(|result| vec![result]);
    }
    let results_loc = loc!["body", "results"];
    let Some(value) = fields.get("results") else {
        return Err(vec![FieldError::missing(results_loc)]);
    };
    let items = validate::list(value, &results_loc).map_err(|error| vec![error])?;
    if items.is_empty() {
        return Err(vec![too_short(results_loc)]);
    }
    let mut errors = Errors::default();
    let results: Vec<ToolResultInput> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| errors.take_all(parse_tool_result(item, &at(&results_loc, i))))
        .collect();
    errors.into_result(results)
}

/// One `ToolResultEvent` or `ErrorEvent` at `here`.
fn parse_tool_result(value: &Value, here: &[LocItem]) -> Result<ToolResultInput, Vec<FieldError>> {
    let fields = validate::object(value, here).map_err(|error| vec![error])?;
    let mut errors = Errors::default();
    let is_error = match present(fields, "kind") {
        None => false,
        Some(kind) if kind == "tool_result" => false,
        Some(kind) if kind == "error_event" => true,
        Some(kind) => {
            return Err(vec![FieldError::enum_value(
                at(here, "kind"),
                &["tool_result", "error_event"],
                kind.clone(),
            )]);
        }
    };
    let tool_req = match fields.get("tool_req") {
        None => {
            errors.push(FieldError::missing(at(here, "tool_req")));
            None
        }
        Some(value) => errors.take_all(parse_tool_request(value, &at(here, "tool_req"))),
    };
    let outcome = if is_error {
        let error = errors.required(fields, "error", here, validate::owned_string);
        let origin = errors.required(fields, "origin", here, validate::owned_string);
        error
            .zip(origin)
            .map(|(error, origin)| ToolOutcome::Error { error, origin })
    } else {
        Some(ToolOutcome::Result(
            fields.get("result").cloned().unwrap_or(Value::Null),
        ))
    };
    match (tool_req, outcome) {
        (Some(tool_req), Some(outcome)) if errors.is_empty() => {
            Ok(ToolResultInput { tool_req, outcome })
        }
        _ => Err(errors.0),
    }
}

fn parse_tool_request(value: &Value, here: &[LocItem]) -> Result<ToolRequestWire, Vec<FieldError>> {
    let fields = validate::object(value, here).map_err(|error| vec![error])?;
    let mut errors = Errors::default();
    let tool_name = errors.required(fields, "tool_name", here, validate::owned_string);
    let args = match fields.get("args") {
        None | Some(Value::Null) => Value::Null,
        Some(args @ Value::Object(_)) => args.clone(),
        Some(other) => {
            errors.push(FieldError::dict_type(at(here, "args"), other));
            Value::Null
        }
    };
    let id = present(fields, "id")
        .and_then(|id| errors.take(validate::string(id, &at(here, "id")).map(str::to_owned)));
    match tool_name {
        Some(tool_name) if errors.is_empty() => Ok(ToolRequestWire {
            tool_name,
            args,
            id,
        }),
        _ => Err(errors.0),
    }
}

/// `Feedback`: `{success: bool (required), message: string | null}`, returned with both
/// keys present, as stored.
pub fn parse_feedback(body: &Value) -> Result<Value, Vec<FieldError>> {
    let here = loc!["body"];
    let fields = validate::object(body, &here).map_err(|error| vec![error])?;
    let mut errors = Errors::default();
    let success = match fields.get("success") {
        None => {
            errors.push(FieldError::missing(loc!["body", "success"]));
            None
        }
        Some(value) => errors.take(validate::boolean(value, &loc!["body", "success"])),
    };
    let message = present(fields, "message")
        .and_then(|value| errors.take(validate::string(value, &loc!["body", "message"])));
    errors.into_result(json!({"success": success, "message": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locs(errors: &[FieldError]) -> Vec<(Value, String)> {
        errors
            .iter()
            .map(|e| (json!(e.loc), e.kind.clone()))
            .collect()
    }

    #[test]
    fn messages_bodies_take_every_sdk_form() {
        let one = parse_messages_body(&json!({"type": "user_message", "message": "hi"})).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].text, "hi");
        assert_eq!(one[0].caller_id, "user");

        let untyped = parse_messages_body(&json!({"message": "hi", "caller_id": "bot"})).unwrap();
        assert_eq!(untyped[0].caller_id, "bot");

        let batch = parse_messages_body(&json!({"type": "batch", "messages": [
            {"message": "a"}, {"type": "user_message", "message": "b"}]}))
        .unwrap();
        assert_eq!(
            batch.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );

        let untyped_batch = parse_messages_body(&json!({"messages": [{"message": "a"}]})).unwrap();
        assert_eq!(untyped_batch.len(), 1);
    }

    #[test]
    fn bad_messages_bodies_are_located() {
        let cases = [
            (json!("hi"), json!(["body"]), "dict_type"),
            (
                json!({"type": "note", "message": "x"}),
                json!(["body", "type"]),
                "enum",
            ),
            (
                json!({"type": "user_message"}),
                json!(["body", "message"]),
                "missing",
            ),
            (json!({}), json!(["body", "message"]), "missing"),
            (
                json!({"type": "batch"}),
                json!(["body", "messages"]),
                "missing",
            ),
            (
                json!({"type": "batch", "messages": []}),
                json!(["body", "messages"]),
                "too_short",
            ),
            (
                json!({"type": "batch", "messages": {}}),
                json!(["body", "messages"]),
                "list_type",
            ),
            (
                json!({"type": "batch", "messages": [{"message": "a"}, {"message": 1}]}),
                json!(["body", "messages", 1, "message"]),
                "string_type",
            ),
            (
                json!({"type": "batch", "messages": [{"type": "batch", "messages": [{"message": "a"}]}]}),
                json!(["body", "messages", 0, "type"]),
                "enum",
            ),
            (
                json!({"message": "x", "images": ["http://x/y.png"]}),
                json!(["body", "images", 0]),
                "value_error",
            ),
            (
                json!({"message": "x", "files": [{"source": "a", "name": "b"}]}),
                json!(["body", "files"]),
                "value_error",
            ),
        ];
        for (body, loc, kind) in cases {
            let errors = parse_messages_body(&body).unwrap_err();
            assert!(
                locs(&errors).contains(&(loc.clone(), kind.to_owned())),
                "{body}: expected {loc} {kind}, got {:?}",
                locs(&errors)
            );
        }
    }

    #[test]
    fn a_single_tool_result_or_error_parses() {
        let result = parse_tool_results(&json!({"kind": "tool_result",
            "tool_req": {"tool_name": "add", "args": {"a": 2}, "id": "call_1"}, "result": 5}))
        .unwrap();
        assert_eq!(
            result,
            [ToolResultInput {
                tool_req: ToolRequestWire {
                    tool_name: "add".into(),
                    args: json!({"a": 2}),
                    id: Some("call_1".into())
                },
                outcome: ToolOutcome::Result(json!(5)),
            }]
        );
        assert_eq!(
            result[0].tool_req.to_json(),
            json!({"tool_name": "add", "args": {"a": 2}, "id": "call_1"})
        );

        let error = parse_tool_results(
            &json!({"kind": "error_event", "error": "boom", "origin": "client",
            "tool_req": {"tool_name": "add", "args": null, "id": null}}),
        )
        .unwrap();
        assert_eq!(
            error[0].outcome,
            ToolOutcome::Error {
                error: "boom".into(),
                origin: "client".into()
            }
        );
        assert_eq!(error[0].tool_req.args, Value::Null);
        assert_eq!(error[0].tool_req.id, None);

        // No kind: a success; no result: null.
        let bare = parse_tool_results(&json!({"tool_req": {"tool_name": "t"}})).unwrap();
        assert_eq!(bare[0].outcome, ToolOutcome::Result(Value::Null));
    }

    #[test]
    fn batches_of_tool_results_parse_in_order() {
        let batch = parse_tool_results(&json!({"type": "batch", "results": [
            {"kind": "tool_result", "tool_req": {"tool_name": "a", "args": {}, "id": "1"}, "result": "x"},
            {"kind": "error_event", "error": "e", "origin": "client", "tool_req": {"tool_name": "b", "args": {}, "id": "2"}},
        ]}))
        .unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].tool_req.tool_name, "b");
        // A `results` key alone makes a batch.
        let untyped =
            parse_tool_results(&json!({"results": [{"tool_req": {"tool_name": "a"}}]})).unwrap();
        assert_eq!(untyped.len(), 1);
    }

    #[test]
    fn bad_tool_results_are_located() {
        let cases = [
            (json!([]), json!(["body"]), "dict_type"),
            (
                json!({"type": "batch", "results": []}),
                json!(["body", "results"]),
                "too_short",
            ),
            (
                json!({"type": "batch"}),
                json!(["body", "results"]),
                "missing",
            ),
            (
                json!({"kind": "tool_result"}),
                json!(["body", "tool_req"]),
                "missing",
            ),
            (
                json!({"kind": "other", "tool_req": {"tool_name": "a"}}),
                json!(["body", "kind"]),
                "enum",
            ),
            (
                json!({"kind": "tool_result", "tool_req": {"tool_name": "a", "args": [1]}}),
                json!(["body", "tool_req", "args"]),
                "dict_type",
            ),
            (
                json!({"kind": "tool_result", "tool_req": {"args": {}}}),
                json!(["body", "tool_req", "tool_name"]),
                "missing",
            ),
            (
                json!({"kind": "error_event", "origin": "client", "tool_req": {"tool_name": "a"}}),
                json!(["body", "error"]),
                "missing",
            ),
            (
                json!({"kind": "error_event", "error": "e", "tool_req": {"tool_name": "a"}}),
                json!(["body", "origin"]),
                "missing",
            ),
            (
                json!({"results": [{"tool_req": {"tool_name": "a"}}, {"tool_req": {"tool_name": 7}}]}),
                json!(["body", "results", 1, "tool_req", "tool_name"]),
                "string_type",
            ),
            (
                json!({"tool_req": {"tool_name": "a", "id": 3}}),
                json!(["body", "tool_req", "id"]),
                "string_type",
            ),
        ];
        for (body, loc, kind) in cases {
            let errors = parse_tool_results(&body).unwrap_err();
            assert!(
                locs(&errors).contains(&(loc.clone(), kind.to_owned())),
                "{body}: expected {loc} {kind}, got {:?}",
                locs(&errors)
            );
        }
    }

    #[test]
    fn feedback_needs_a_boolean_success() {
        assert_eq!(
            parse_feedback(&json!({"success": true})).unwrap(),
            json!({"success": true, "message": null})
        );
        assert_eq!(
            parse_feedback(&json!({"success": false, "message": "wrong city"})).unwrap(),
            json!({"success": false, "message": "wrong city"})
        );
        let missing = parse_feedback(&json!({"message": "x"})).unwrap_err();
        assert_eq!(
            locs(&missing),
            [(json!(["body", "success"]), "missing".to_owned())]
        );
        let both = parse_feedback(&json!({"success": "yes", "message": 3})).unwrap_err();
        assert_eq!(
            locs(&both),
            [
                (json!(["body", "success"]), "bool_type".to_owned()),
                (json!(["body", "message"]), "string_type".to_owned()),
            ]
        );
    }
}
