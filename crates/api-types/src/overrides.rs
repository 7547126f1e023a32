//! `SessionRequest.overrides`: per-run patches on the resolved agent, keyed by dotted
//! paths such as `agent.answer_format` or `agent.environments[kind=web].start_url`.
//!
//! Grammar: `path := segment ("." segment)*`, `segment := ident ("[" ident "=" literal "]")?`.
//! A selector picks the one list element whose field, read as a string, equals the
//! literal (zero or several matches are an error). Every segment but the last must lead
//! to something that exists; the last must name a field the object it lands in can
//! have. Values replace what they target (no deep merge). Type checks are not done
//! here: the patched agent goes through the normal agent validation, and the caller
//! moves errors inside a patched value to the override's own key
//! ([`Applied::relocate`]).

use serde_json::{Map, Value};

use crate::errors::LocItem;

/// Fields of an `Agent` object, the only fields `agent.<field>` may name.
pub(crate) const AGENT_FIELDS: &[&str] = &[
    "name",
    "description",
    "environments",
    "model",
    "reasoning_effort",
    "instructions",
    "subagents",
    "skills",
    "answer_format",
    "tools",
];

const TOOL_FIELDS: &[&str] = &["name", "description", "input_schema"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) field: String,
    pub(crate) selector: Option<Selector>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selector {
    pub(crate) field: String,
    pub(crate) literal: String,
}

/// Parses a path; the error is a sentence for the API user.
pub(crate) fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = path;
    loop {
        let (segment, after) =
            parse_segment(rest).map_err(|why| format!("Invalid override path '{path}': {why}"))?;
        segments.push(segment);
        match after.strip_prefix('.') {
            Some(next) => rest = next,
            None if after.is_empty() => break,
            None => {
                return Err(format!(
                    "Invalid override path '{path}': expected '.' or the end of the path before '{after}'"
                ));
            }
        }
    }
    Ok(segments)
}

fn parse_segment(input: &str) -> Result<(Segment, &str), String> {
    let (field, rest) = split_ident(input).ok_or("expected a field name")?;
    let Some(inside) = rest.strip_prefix('[') else {
        return Ok((
            Segment {
                field: field.to_owned(),
                selector: None,
            },
            rest,
        ));
    };
    let (selector_field, after_field) =
        split_ident(inside).ok_or("expected a field name after '['")?;
    let after_eq = after_field
        .strip_prefix('=')
        .ok_or("expected '=' in the selector")?;
    let close = after_eq
        .find(']')
        .ok_or("expected ']' to close the selector")?;
    let literal = unquote(&after_eq[..close]);
    Ok((
        Segment {
            field: field.to_owned(),
            selector: Some(Selector {
                field: selector_field.to_owned(),
                literal: literal.to_owned(),
            }),
        },
        &after_eq[close + 1..],
    ))
}

/// The identifier at the start of `input` (`[A-Za-z_][A-Za-z0-9_]*`) and what follows.
fn split_ident(input: &str) -> Option<(&str, &str)> {
    let first = input.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let end = input
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(input.len());
    Some(input.split_at(end))
}

/// `'web'` and `"web"` select the same elements as `web`.
fn unquote(literal: &str) -> &str {
    for quote in ['\'', '"'] {
        if let Some(inner) = literal
            .strip_prefix(quote)
            .and_then(|s| s.strip_suffix(quote))
        {
            return inner;
        }
    }
    literal
}

/// What kind of object a segment lands in, which decides the field names it may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    /// `{"agent": ...}`: only `agent`.
    Root,
    Agent,
    Tool,
    /// Environments (their own parser will check them) and the inside of free-form
    /// values such as a JSON Schema: any key.
    Open,
}

impl Container {
    fn allows(self, field: &str) -> bool {
        match self {
            Self::Root => field == "agent",
            Self::Agent => AGENT_FIELDS.contains(&field),
            Self::Tool => TOOL_FIELDS.contains(&field),
            Self::Open => true,
        }
    }

    /// The container found at `field` of this one, or in its list elements.
    fn child(self, field: &str) -> Self {
        match (self, field) {
            (Self::Root, "agent") => Self::Agent,
            (Self::Agent, "tools") => Self::Tool,
            _ => Self::Open,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Root => "the request",
            Self::Agent => "an Agent",
            Self::Tool => "a ToolDefinition",
            Self::Open => "this object",
        }
    }
}

/// Sets `value` at `path` in `root` (`{"agent": ...}`) and returns the concrete location
/// it wrote, e.g. `["agent", "environments", 0, "start_url"]`. The error is a sentence
/// for the API user.
pub(crate) fn apply(root: &mut Value, path: &str, value: Value) -> Result<Vec<LocItem>, String> {
    let segments = parse_path(path)?;
    if segments.len() < 2 || segments[0].field != "agent" || segments[0].selector.is_some() {
        return Err(format!(
            "Invalid override path '{path}': override paths start with 'agent.' and name a field of the agent"
        ));
    }
    let mut written = Vec::new();
    let mut walked = String::new();
    let mut container = Container::Root;
    let mut current = root;
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(&segment.field);
        let fields = as_object(current, &walked, &segment.field)
            .map_err(|why| format!("Invalid override path '{path}': {why}"))?;
        if !container.allows(&segment.field) {
            return Err(format!(
                "Invalid override path '{path}': '{}' is not a field of {}",
                segment.field,
                container.describe()
            ));
        }
        written.push(LocItem::Key(segment.field.clone()));
        let child_container = container.child(&segment.field);
        match &segment.selector {
            None if i == last => {
                fields.insert(segment.field.clone(), value);
                return Ok(written);
            }
            None => {
                current = match fields.get_mut(&segment.field) {
                    Some(child) if !child.is_null() => child,
                    _ => {
                        return Err(format!(
                            "Invalid override path '{path}': '{walked}' does not exist"
                        ));
                    }
                };
            }
            Some(selector) => {
                let Some(Value::Array(elements)) = fields.get_mut(&segment.field) else {
                    return Err(format!(
                        "Invalid override path '{path}': '{walked}' is not a list"
                    ));
                };
                let matches: Vec<usize> = elements
                    .iter()
                    .enumerate()
                    .filter(|(_, element)| selects(selector, element))
                    .map(|(index, _)| index)
                    .collect();
                let selected = match matches.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(format!(
                            "Invalid override path '{path}': no element of '{walked}' has {}={}",
                            selector.field, selector.literal
                        ));
                    }
                    several => {
                        return Err(format!(
                            "Invalid override path '{path}': {} elements of '{walked}' have {}={}; a selector must match exactly one",
                            several.len(),
                            selector.field,
                            selector.literal
                        ));
                    }
                };
                walked.push_str(&format!("[{}={}]", selector.field, selector.literal));
                written.push(LocItem::Index(selected));
                if i == last {
                    elements[selected] = value;
                    return Ok(written);
                }
                current = &mut elements[selected];
            }
        }
        container = child_container;
    }
    // `segments` is never empty, and the loop returns at the last segment.
    Err(format!("Invalid override path '{path}'"))
}

fn as_object<'a>(
    value: &'a mut Value,
    walked: &str,
    field: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    match value {
        Value::Object(fields) => Ok(fields),
        _ => {
            let parent = walked
                .strip_suffix(field)
                .unwrap_or(walked)
                .trim_end_matches('.');
            Err(format!(
                "'{parent}' is not an object, so it has no field '{field}'"
            ))
        }
    }
}

/// Whether a list element's selector field, read as a string, equals the literal.
fn selects(selector: &Selector, element: &Value) -> bool {
    let Some(found) = element.get(&selector.field) else {
        return false;
    };
    match found {
        Value::String(text) => *text == selector.literal,
        Value::Number(_) | Value::Bool(_) => {
            // Compared as text: `Value == String` would only ever match a JSON string.
            let rendered = found.to_string();
            rendered == selector.literal
        }
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// The overrides applied to one request: where each one wrote, and where an error
/// inside what it wrote belongs in the request.
#[derive(Default)]
pub(crate) struct Applied {
    /// (concrete location under the root, request location of the override)
    targets: Vec<(Vec<LocItem>, Vec<LocItem>)>,
}

impl Applied {
    pub(crate) fn record(&mut self, written: Vec<LocItem>, reported_at: Vec<LocItem>) {
        self.targets.push((written, reported_at));
    }

    /// Moves an error found at `["body", "agent", ...]` inside an overridden value to
    /// the override that put the value there, keeping the rest of the path:
    /// `["body","agent","tools",0,"name"]` under `agent.tools` becomes
    /// `["body","overrides","agent.tools",0,"name"]`. Of nested overrides, the deepest wins.
    pub(crate) fn relocate(&self, loc: Vec<LocItem>) -> Vec<LocItem> {
        let Some(under_root) = loc.get(1..) else {
            return loc;
        };
        let best = self
            .targets
            .iter()
            .filter(|(written, _)| under_root.starts_with(written))
            .max_by_key(|(written, _)| written.len());
        match best {
            Some((written, reported_at)) => {
                let mut moved = reported_at.clone();
                moved.extend_from_slice(&under_root[written.len()..]);
                moved
            }
            None => loc,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::loc;

    fn root() -> Value {
        json!({"agent": {
            "name": "a", "description": "d", "model": null, "tools": null,
            "environments": [
                {"id": "w", "kind": "web", "start_url": "https://a.example", "mode": {"type": "visual"}},
                {"id": "d", "kind": "desktop"},
                "h/android",
            ],
        }})
    }

    #[test]
    fn paths_parse_into_segments_and_selectors() {
        let segments = parse_path("agent.environments[kind=web].start_url").unwrap();
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[1].field, "environments");
        assert_eq!(
            segments[1].selector,
            Some(Selector {
                field: "kind".into(),
                literal: "web".into()
            })
        );
        let quoted = parse_path("agent.environments[id='w x']").unwrap();
        assert_eq!(quoted[1].selector.as_ref().unwrap().literal, "w x");
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "",
            "agent.",
            ".agent",
            "agent..model",
            "agent.tools[",
            "agent.tools[name]",
            "agent.tools[name=x",
            "agent.tools[=x]",
            "agent.tools[name=x]y",
            "agent.1model",
            "agent-model",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn values_replace_agent_fields() {
        let mut doc = root();
        let written = apply(&mut doc, "agent.model", json!("m")).unwrap();
        assert_eq!(written, loc!["agent", "model"]);
        assert_eq!(doc["agent"]["model"], "m");
        apply(&mut doc, "agent.instructions", json!("be brief")).unwrap();
        assert_eq!(doc["agent"]["instructions"], "be brief");
    }

    #[test]
    fn selectors_walk_into_the_one_matching_element() {
        let mut doc = root();
        let written = apply(
            &mut doc,
            "agent.environments[kind=web].start_url",
            json!("https://b.example"),
        )
        .unwrap();
        assert_eq!(written, loc!["agent", "environments", 0, "start_url"]);
        assert_eq!(
            doc["agent"]["environments"][0]["start_url"],
            "https://b.example"
        );
        // An environment object takes any key: its own parser checks it later.
        apply(&mut doc, "agent.environments[id=d].session_id", json!("s")).unwrap();
        assert_eq!(doc["agent"]["environments"][1]["session_id"], "s");
        // No deep merge: the mode is replaced whole.
        apply(
            &mut doc,
            "agent.environments[kind=web].mode",
            json!({"type": "text"}),
        )
        .unwrap();
        assert_eq!(
            doc["agent"]["environments"][0]["mode"],
            json!({"type": "text"})
        );
        // A selector as the last segment replaces the element.
        let written = apply(
            &mut doc,
            "agent.environments[kind=desktop]",
            json!({"id": "x"}),
        )
        .unwrap();
        assert_eq!(written, loc!["agent", "environments", 1]);
        assert_eq!(doc["agent"]["environments"][1], json!({"id": "x"}));
    }

    #[test]
    fn selectors_must_match_exactly_one_element() {
        let mut doc = root();
        let none = apply(
            &mut doc,
            "agent.environments[kind=workstation].lazy",
            json!(true),
        )
        .unwrap_err();
        assert!(none.contains("no element"), "{none}");
        let mut doc = json!({"agent": {"environments": [{"kind": "web"}, {"kind": "web"}]}});
        let two = apply(&mut doc, "agent.environments[kind=web].lazy", json!(true)).unwrap_err();
        assert!(two.contains("2 elements"), "{two}");
    }

    #[test]
    fn selectors_compare_scalars_as_strings() {
        let mut doc =
            json!({"agent": {"tools": [{"name": "a", "n": 3}, {"name": "b", "n": true}]}});
        assert_eq!(
            apply(&mut doc, "agent.tools[n=3].description", json!("x")).unwrap(),
            loc!["agent", "tools", 0, "description"]
        );
        assert_eq!(
            apply(&mut doc, "agent.tools[n=true].description", json!("y")).unwrap(),
            loc!["agent", "tools", 1, "description"]
        );
    }

    #[test]
    fn paths_must_stay_in_the_agent_and_name_known_fields() {
        let cases = [
            ("max_steps", "start with 'agent.'"),
            ("agent", "start with 'agent.'"),
            ("agent[kind=web].x", "start with 'agent.'"),
            ("request.agent.model", "start with 'agent.'"),
            ("agent.colour", "'colour' is not a field of an Agent"),
            (
                "agent.tools[name=t].colour",
                "'colour' is not a field of a ToolDefinition",
            ),
            ("agent.model.name", "'agent.model' does not exist"),
            (
                "agent.environments.start_url",
                "'agent.environments' is not an object",
            ),
            ("agent.name[kind=web].x", "'agent.name' is not a list"),
            (
                "agent.answer_format.title",
                "'agent.answer_format' does not exist",
            ),
        ];
        for (path, expected) in cases {
            let mut doc = json!({"agent": {"name": "a", "model": null, "answer_format": null,
                                           "environments": [], "tools": [{"name": "t"}]}});
            let error = apply(&mut doc, path, json!(1)).unwrap_err();
            assert!(error.contains(expected), "{path}: {error}");
        }
    }

    #[test]
    fn free_form_values_take_any_key() {
        let mut doc = json!({"agent": {"answer_format": {"type": "object"}}});
        apply(&mut doc, "agent.answer_format.title", json!("T")).unwrap();
        assert_eq!(doc["agent"]["answer_format"]["title"], "T");
    }

    #[test]
    fn errors_move_to_the_deepest_override_that_wrote_them() {
        let mut applied = Applied::default();
        applied.record(
            loc!["agent", "tools"],
            loc!["body", "overrides", "agent.tools"],
        );
        applied.record(
            loc!["agent", "tools", 0, "name"],
            loc!["body", "overrides", "agent.tools[name=x].name"],
        );
        assert_eq!(
            applied.relocate(loc!["body", "agent", "tools", 1, "description"]),
            loc!["body", "overrides", "agent.tools", 1, "description"]
        );
        assert_eq!(
            applied.relocate(loc!["body", "agent", "tools", 0, "name"]),
            loc!["body", "overrides", "agent.tools[name=x].name"]
        );
        assert_eq!(
            applied.relocate(loc!["body", "agent", "model"]),
            loc!["body", "agent", "model"]
        );
    }
}
