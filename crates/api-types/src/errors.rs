//! Error bodies. Validation failures are FastAPI-shaped (`detail` is a list of
//! `{type, loc, msg, input}`) and also carry a flat `message`, so that both the SDK's
//! `HTTPValidationError` model and a human reading `str(ApiError)` get something useful.
//! The 429 body is the SDK's `QuotaErrorResponse`; any other shape there makes the SDK
//! raise a parsing error instead of its typed exception.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

/// One step of an error location: an object key or a list index. Serialized as a JSON
/// string or integer, as FastAPI does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LocItem {
    Key(String),
    Index(usize),
}

impl Serialize for LocItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Key(key) => serializer.serialize_str(key),
            Self::Index(index) => serializer.serialize_u64(*index as u64),
        }
    }
}

impl fmt::Display for LocItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(key) => f.write_str(key),
            Self::Index(index) => write!(f, "{index}"),
        }
    }
}

impl From<&str> for LocItem {
    fn from(key: &str) -> Self {
        Self::Key(key.to_owned())
    }
}

impl From<String> for LocItem {
    fn from(key: String) -> Self {
        Self::Key(key)
    }
}

impl From<&String> for LocItem {
    fn from(key: &String) -> Self {
        Self::Key(key.clone())
    }
}

impl From<usize> for LocItem {
    fn from(index: usize) -> Self {
        Self::Index(index)
    }
}

/// Builds a `Vec<LocItem>` from keys and indices: `loc!["body", "agent", "tools", 0]`.
#[macro_export]
macro_rules! loc {
    ($($item:expr),* $(,)?) => {
        ::std::vec![$($crate::errors::LocItem::from($item)),*]
    };
}

/// `base` extended by one item.
pub(crate) fn at(base: &[LocItem], item: impl Into<LocItem>) -> Vec<LocItem> {
    let mut loc = base.to_vec();
    loc.push(item.into());
    loc
}

/// One validation problem, in FastAPI's terms: where (`loc`, starting with `body`,
/// `query`, `path` or `header`), what (`kind`, serialized as `type`, e.g. `missing` or
/// `int_type`), a sentence for people (`msg`) and the offending value when known.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub loc: Vec<LocItem>,
    pub msg: String,
    pub kind: String,
    pub input: Option<Value>,
}

impl FieldError {
    pub fn new(
        loc: Vec<LocItem>,
        kind: &str,
        msg: impl Into<String>,
        input: Option<Value>,
    ) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
            input,
        }
    }

    /// Any failed check; `kind` is a FastAPI error type such as `value_error`.
    pub fn invalid(
        loc: Vec<LocItem>,
        kind: &str,
        msg: impl Into<String>,
        input: Option<Value>,
    ) -> Self {
        Self::new(loc, kind, msg, input)
    }

    /// A required field is absent.
    pub fn missing(loc: Vec<LocItem>) -> Self {
        Self::new(loc, "missing", "Field required", None)
    }

    /// A check that needs a sentence rather than a type name (FastAPI's `value_error`).
    pub fn value_error(loc: Vec<LocItem>, msg: impl Into<String>, input: Option<Value>) -> Self {
        Self::new(loc, "value_error", msg, input)
    }

    /// A body that is not JSON at all; `detail` is the parser's own account of why.
    pub fn json_invalid(detail: &str) -> Self {
        Self::new(
            loc!["body"],
            "json_invalid",
            format!("JSON decode error: {detail}"),
            None,
        )
    }

    /// A string that should be a UUID and is not (path or query parameters, body fields).
    pub fn uuid_parsing(loc: Vec<LocItem>, input: &str, error: &uuid::Error) -> Self {
        Self::new(
            loc,
            "uuid_parsing",
            format!("Input should be a valid UUID, {error}"),
            Some(Value::String(input.to_owned())),
        )
    }

    pub(crate) fn string_type(loc: Vec<LocItem>, input: &Value) -> Self {
        Self::new(
            loc,
            "string_type",
            "Input should be a valid string",
            Some(input.clone()),
        )
    }

    pub(crate) fn bool_type(loc: Vec<LocItem>, input: &Value) -> Self {
        Self::new(
            loc,
            "bool_type",
            "Input should be a valid boolean",
            Some(input.clone()),
        )
    }

    pub(crate) fn dict_type(loc: Vec<LocItem>, input: &Value) -> Self {
        Self::new(
            loc,
            "dict_type",
            "Input should be a valid dictionary",
            Some(input.clone()),
        )
    }

    pub(crate) fn list_type(loc: Vec<LocItem>, input: &Value) -> Self {
        Self::new(
            loc,
            "list_type",
            "Input should be a valid list",
            Some(input.clone()),
        )
    }

    pub(crate) fn enum_value(loc: Vec<LocItem>, allowed: &[&str], input: Value) -> Self {
        Self::new(
            loc,
            "enum",
            format!("Input should be {}", quoted_alternatives(allowed)),
            Some(input),
        )
    }

    /// The location as the flat message shows it: every item but the first (`body`,
    /// `query`...), joined by dots; the first item alone when there is nothing else.
    pub fn dotted_loc(&self) -> String {
        let rest: Vec<String> = self.loc.iter().skip(1).map(ToString::to_string).collect();
        if rest.is_empty() {
            self.loc
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        } else {
            rest.join(".")
        }
    }

    /// The FastAPI `ValidationError` object: `{type, loc, msg, input?}`.
    pub fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("type".into(), Value::String(self.kind.clone()));
        entry.insert("loc".into(), json!(self.loc));
        entry.insert("msg".into(), Value::String(self.msg.clone()));
        if let Some(input) = &self.input {
            entry.insert("input".into(), input.clone());
        }
        Value::Object(entry)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.dotted_loc(), self.msg)
    }
}

/// `'a', 'b' or 'c'`, as pydantic lists the values an enum accepts.
pub(crate) fn quoted_alternatives(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|v| format!("'{v}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The 422 body: `{"message": "agent: Field required; ...", "detail": [ValidationError...]}`.
pub fn validation_error_body(errors: &[FieldError]) -> Value {
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    json!({
        "message": message,
        "detail": errors.iter().map(FieldError::to_json).collect::<Vec<_>>(),
    })
}

/// Any other error (404, 409, 400...): `{"message": m, "detail": [{"type", "msg", "message"}]}`.
/// The entry carries both `msg` and `message` so that every reader of either envelope
/// finds the sentence.
pub fn error_body(message: &str, kind: &str) -> Value {
    json!({
        "message": message,
        "detail": [{"type": kind, "msg": message, "message": message}],
    })
}

/// The 429 `QuotaErrorResponse` of create and messages: the organisation holds `active`
/// of its `limit` slots, and either may not queue or its queue is full.
pub fn quota_error_body(active: u32, limit: u32, queue_full: bool) -> Value {
    // Queueing only happens at the limit, so the limit is reached either way; the
    // detail says whether queueing was refused or impossible.
    let kind = if queue_full {
        "queue_full"
    } else {
        "plan_limit"
    };
    json!({
        "message": "Concurrent session limit reached",
        "detail": [{
            "type": kind,
            "message": format!("{active}/{limit} sessions active"),
            "scope": "org",
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loc_items_serialize_as_strings_and_integers() {
        let loc = loc!["body", "agent", "tools", 0, "name"];
        assert_eq!(json!(loc), json!(["body", "agent", "tools", 0, "name"]));
    }

    #[test]
    fn validation_body_flattens_locations_without_their_first_item() {
        let errors = [
            FieldError::missing(loc!["body", "agent"]),
            FieldError::new(
                loc!["body", "agent", "tools", 0, "name"],
                "string_type",
                "Input should be a valid string",
                Some(json!(3)),
            ),
        ];
        let body = validation_error_body(&errors);
        assert_eq!(
            body["message"],
            "agent: Field required; agent.tools.0.name: Input should be a valid string"
        );
        assert_eq!(
            body["detail"],
            json!([
                {"type": "missing", "loc": ["body", "agent"], "msg": "Field required"},
                {"type": "string_type", "loc": ["body", "agent", "tools", 0, "name"],
                 "msg": "Input should be a valid string", "input": 3},
            ])
        );
    }

    #[test]
    fn a_location_of_one_item_is_shown_whole() {
        let body = validation_error_body(&[FieldError::json_invalid(
            "expected value at line 1 column 1",
        )]);
        assert_eq!(
            body["message"],
            "body: JSON decode error: expected value at line 1 column 1"
        );
        assert_eq!(body["detail"][0]["type"], "json_invalid");
    }

    #[test]
    fn error_body_repeats_the_message_in_its_detail() {
        assert_eq!(
            error_body("Session not found", "not_found"),
            json!({"message": "Session not found",
                   "detail": [{"type": "not_found", "msg": "Session not found", "message": "Session not found"}]})
        );
    }

    #[test]
    fn quota_bodies_name_the_limit_that_was_hit() {
        assert_eq!(
            quota_error_body(3, 3, false),
            json!({"message": "Concurrent session limit reached",
                   "detail": [{"type": "plan_limit", "message": "3/3 sessions active", "scope": "org"}]})
        );
        let full = quota_error_body(2, 2, true);
        assert_eq!(full["message"], "Concurrent session limit reached");
        assert_eq!(full["detail"][0]["type"], "queue_full");
        assert_eq!(full["detail"][0]["message"], "2/2 sessions active");
    }

    #[test]
    fn enum_messages_list_the_values_like_pydantic() {
        assert_eq!(quoted_alternatives(&["a"]), "'a'");
        assert_eq!(quoted_alternatives(&["a", "b", "c"]), "'a', 'b' or 'c'");
    }
}
