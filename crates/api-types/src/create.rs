//! `POST /sessions`: the `SessionRequest` body parsed into the engine's [`SessionSpec`],
//! the echo `Session.request` shows, and the create options the HTTP layer acts on.
//!
//! The order of work: every top-level field is checked; the agent is resolved (a
//! catalog name expanded through [`Catalog`], or the inline object); its optional keys
//! are filled in; the overrides (and the top-level `answer_format` alias) are applied;
//! then the patched agent is validated once, and errors inside an overridden value are
//! reported at the override's key. All errors found are reported together.

use agentd_domain::spec::BUILTIN_TOOL_NAMES;
use agentd_domain::{AgentSpec, EnvironmentSpec, SessionId, SessionSpec, ToolDef};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::environments;
use crate::errors::{FieldError, LocItem, at};
use crate::loc;
use crate::overrides::{self, AGENT_FIELDS, Applied};
use crate::validate::{self, Errors, present};

/// What the create parser needs to know about the server's configuration.
pub trait Catalog {
    /// The catalog agent's spec (an Agent JSON object), for "name" or "name:N".
    fn agent(&self, name: &str, revision: Option<u32>) -> Option<Value>;
    /// Whether a model with this name is configured.
    fn has_model(&self, name: &str) -> bool;
    /// Checks that a JSON Schema compiles (no remote refs); Err(message) otherwise.
    fn check_schema(&self, schema: &Value) -> Result<(), String>;
}

/// One user message (`UserMessageEvent`), validated.
#[derive(Clone, Debug, PartialEq)]
pub struct UserMessage {
    pub text: String,
    /// Images as `data:image/<type>;base64,<payload>` URIs, checked to decode.
    pub images: Vec<String>,
    pub caller_id: String,
}

impl UserMessage {
    /// The message as `Session.request.messages` and `SessionSummary.first_message`
    /// show it, every optional key filled in.
    pub fn wire(&self) -> Value {
        json!({
            "type": "user_message",
            "message": self.text,
            "images": self.images,
            "caller_id": self.caller_id,
        })
    }

    /// The `content` of the `message_event` that logs it: the text, then one
    /// `ImageContent` per image.
    pub fn event_content(&self) -> Vec<Value> {
        let mut content = vec![Value::String(self.text.clone())];
        content.extend(self.images.iter().map(|uri| {
            json!({
                "type": "base64",
                "source": uri,
                "media_type": split_image_data_uri(uri).map_or("image/png", |(media_type, _)| media_type),
            })
        }));
        content
    }
}

/// A create request, parsed.
#[derive(Clone, Debug)]
pub struct ParsedCreate {
    pub spec: SessionSpec,
    /// The request as `Session.request` echoes it: the agent resolved with every Agent
    /// key present and the overrides applied, environments in the newest Browser shape,
    /// messages in full form, every optional field present (null when absent).
    pub request_echo: Value,
    /// The catalog name when `agent` was a string (without a `:N` revision).
    pub agent_name: Option<String>,
    pub messages: Vec<UserMessage>,
    pub group_id: Option<String>,
    pub parent_session_id: Option<SessionId>,
    /// Queue at the concurrency limit (true, the default) or refuse with 429.
    pub queue: bool,
    /// The body as canonical JSON (keys sorted, no whitespace), for comparing the
    /// requests of one idempotency key.
    pub canonical_body: String,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CreateError {
    /// 422: the body does not validate.
    #[error("invalid session request ({} errors)", .0.len())]
    Invalid(Vec<FieldError>),
    /// 404: `agent` names no catalog agent; the string as given (`name` or `name:N`).
    #[error("agent {0:?} not found")]
    AgentNotFound(String),
}

const REASONING_EFFORTS: &[&str] = &["disabled", "low", "medium", "xhigh"];
const TOOL_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,63}$";

/// Parses a `POST /sessions` body.
pub fn parse_create(body: &Value, catalog: &dyn Catalog) -> Result<ParsedCreate, CreateError> {
    let Some(fields) = body.as_object() else {
        return Err(CreateError::Invalid(vec![FieldError::dict_type(
            loc!["body"],
            body,
        )]));
    };
    let mut errors = Errors::default();
    let body_loc = loc!["body"];

    let max_steps = errors.optional(fields, "max_steps", &body_loc, |v, here| {
        validate::integer_in(v, here, 1, i128::from(u32::MAX)).map(|n| n as u32)
    });
    let max_time_s = errors.optional(fields, "max_time_s", &body_loc, |v, here| {
        validate::number(v, here).and_then(|n| validate::greater_than_zero(n, here, v))
    });
    let idle_timeout_s = errors.optional(fields, "idle_timeout_s", &body_loc, |v, here| {
        validate::positive_integer(v, here, i128::from(u64::MAX)).map(|n| n as u64)
    });
    let timezone = errors.optional(fields, "timezone", &body_loc, validate::owned_string);
    let delete_after_min = errors.optional(fields, "delete_after_min", &body_loc, |v, here| {
        validate::integer_in(v, here, 0, i128::from(u64::MAX)).map(|n| n as u64)
    });
    let delete_screenshot_after_min = errors.optional(
        fields,
        "delete_screenshot_after_min",
        &body_loc,
        |v, here| validate::integer_in(v, here, 0, i128::from(u64::MAX)).map(|n| n as u64),
    );
    let queue = errors
        .optional(fields, "queue", &body_loc, validate::boolean)
        .unwrap_or(true);
    let group_id = errors.optional(fields, "group_id", &body_loc, validate::owned_string);
    let parent_session_id =
        errors.optional(fields, "parent_session_id", &body_loc, parse_session_id);
    let messages = match present(fields, "messages") {
        None => None,
        Some(value) => errors.take_all(parse_initial_messages(value)),
    };
    let override_map = errors.optional(fields, "overrides", &body_loc, |v, here| {
        validate::object(v, here).cloned()
    });
    let answer_format_alias = present(fields, "answer_format");
    if answer_format_alias.is_some()
        && override_map
            .as_ref()
            .is_some_and(|map| map.contains_key("agent.answer_format"))
    {
        errors.push(FieldError::value_error(
            loc!["body", "answer_format"],
            "answer_format and overrides['agent.answer_format'] cannot both be given",
            answer_format_alias.cloned(),
        ));
    }

    let (agent, agent_name) = match resolve_agent(fields.get("agent"), catalog) {
        Ok(resolved) => resolved,
        Err(AgentError::Invalid(error)) => {
            errors.push(error);
            return Err(CreateError::Invalid(errors.0));
        }
        // A body that does not validate is a 422 before anything is looked up.
        Err(AgentError::NotFound(name)) if errors.is_empty() => {
            return Err(CreateError::AgentNotFound(name));
        }
        Err(AgentError::NotFound(_)) => return Err(CreateError::Invalid(errors.0)),
    };

    let mut root = json!({ "agent": agent });
    let mut applied = Applied::default();
    if let Some(map) = &override_map {
        apply_overrides(&mut root, map, &mut applied, &mut errors);
    }
    if let Some(schema) = answer_format_alias {
        // Written directly: the path is known good and the agent object always has the field.
        if let Some(agent) = root.get_mut("agent").and_then(Value::as_object_mut) {
            agent.insert("answer_format".into(), schema.clone());
            applied.record(
                loc!["agent", "answer_format"],
                loc!["body", "answer_format"],
            );
        }
    }
    let mut agent = root.get("agent").cloned().unwrap_or(Value::Null);
    let agent_spec = match validate_agent(&agent, catalog) {
        Ok(spec) => Some(spec),
        Err(agent_errors) => {
            errors.extend(agent_errors.into_iter().map(|mut error| {
                error.loc = applied.relocate(error.loc);
                error
            }));
            None
        }
    };

    let (Some(agent_spec), true) = (agent_spec, errors.is_empty()) else {
        return Err(CreateError::Invalid(errors.0));
    };

    echo_environments(&mut agent, &agent_spec.environments);
    let mut echo_overrides = override_map.clone();
    if let Some(schema) = answer_format_alias {
        echo_overrides
            .get_or_insert_with(Map::new)
            .insert("agent.answer_format".into(), schema.clone());
    }
    let request_echo = json!({
        "agent": agent,
        "messages": messages.as_ref().map(|all| all.iter().map(UserMessage::wire).collect::<Vec<_>>()),
        "max_steps": max_steps,
        "max_time_s": fields.get("max_time_s").filter(|_| max_time_s.is_some()),
        "idle_timeout_s": idle_timeout_s,
        "timezone": timezone,
        "delete_after_min": delete_after_min,
        "delete_screenshot_after_min": delete_screenshot_after_min,
        "queue": queue,
        "group_id": group_id,
        "parent_session_id": parent_session_id.map(|id| id.to_string()),
        "overrides": echo_overrides,
    });

    Ok(ParsedCreate {
        spec: SessionSpec {
            agent: agent_spec,
            max_steps,
            max_time_s,
            idle_timeout_s,
            timezone,
            delete_screenshot_after_min,
        },
        request_echo,
        agent_name,
        messages: messages.unwrap_or_default(),
        group_id,
        parent_session_id,
        queue,
        canonical_body: canonical_json(body),
    })
}

fn parse_session_id(value: &Value, here: &[LocItem]) -> Result<SessionId, FieldError> {
    let Some(text) = value.as_str() else {
        return Err(FieldError::new(
            here.to_vec(),
            "uuid_type",
            "UUID input should be a string, bytes or UUID object",
            Some(value.clone()),
        ));
    };
    text.parse::<SessionId>()
        .map_err(|error| FieldError::uuid_parsing(here.to_vec(), text, &error))
}

// ---- messages

/// `SessionRequest.messages`: a string, one `UserMessageEvent` or a list of them.
fn parse_initial_messages(value: &Value) -> Result<Vec<UserMessage>, Vec<FieldError>> {
    let here = loc!["body", "messages"];
    match value {
        Value::String(text) => Ok(vec![UserMessage {
            text: text.clone(),
            images: Vec::new(),
            caller_id: "user".into(),
        }]),
        Value::Object(_) => parse_user_message(value, &here).map(|message| vec![message]),
        Value::Array(items) => {
            let mut errors = Errors::default();
            let messages: Vec<UserMessage> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| errors.take_all(parse_user_message(item, &at(&here, i))))
                .collect();
            errors.into_result(messages)
        }
        other => Err(vec![FieldError::new(
            here,
            "string_type",
            "Input should be a valid string, a user message object or a list of them",
            Some(other.clone()),
        )]),
    }
}

/// One `UserMessageEvent` object at `here`.
pub(crate) fn parse_user_message(
    value: &Value,
    here: &[LocItem],
) -> Result<UserMessage, Vec<FieldError>> {
    let fields = validate::object(value, here).map_err(|error| vec![error])?;
    let mut errors = Errors::default();
    if let Some(kind) = present(fields, "type")
        && kind != "user_message"
    {
        errors.push(FieldError::enum_value(
            at(here, "type"),
            &["user_message"],
            kind.clone(),
        ));
    }
    let text = match fields.get("message") {
        None => {
            errors.push(FieldError::missing(at(here, "message")));
            None
        }
        Some(text) => errors.take(validate::string(text, &at(here, "message")).map(str::to_owned)),
    };
    let images = match present(fields, "images") {
        None => Vec::new(),
        Some(value) => {
            let images_loc = at(here, "images");
            match validate::list(value, &images_loc) {
                Err(error) => {
                    errors.push(error);
                    Vec::new()
                }
                Ok(items) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| errors.take(parse_image(item, &at(&images_loc, i))))
                    .collect(),
            }
        }
    };
    let caller_id = match present(fields, "caller_id") {
        None => "user".to_owned(),
        Some(value) => errors
            .take(validate::string(value, &at(here, "caller_id")).map(str::to_owned))
            .unwrap_or_default(),
    };
    for key in ["files", "skills"] {
        errors.take(refuse_non_empty_list(
            fields,
            key,
            here,
            &format!("message {key}"),
        ));
    }
    match text {
        Some(text) if errors.is_empty() => Ok(UserMessage {
            text,
            images,
            caller_id,
        }),
        _ => Err(errors.0),
    }
}

/// An image: `data:image/<type>;base64,<payload>` whose payload decodes.
fn parse_image(value: &Value, here: &[LocItem]) -> Result<String, FieldError> {
    let uri = validate::string(value, here)?;
    let Some((_, payload)) = split_image_data_uri(uri).filter(|(_, payload)| !payload.is_empty())
    else {
        return Err(FieldError::value_error(
            here.to_vec(),
            "An image must be a base64 data URI such as data:image/png;base64,<data>",
            Some(value.clone()),
        ));
    };
    base64_engine().decode(payload).map_err(|error| {
        // No input: echoing megabytes of image back helps nobody.
        FieldError::value_error(
            here.to_vec(),
            format!("The image's base64 data does not decode: {error}"),
            None,
        )
    })?;
    Ok(uri.to_owned())
}

/// `("image/<type>", payload)` of a `data:image/<type>;base64,<payload>` URI.
fn split_image_data_uri(uri: &str) -> Option<(&str, &str)> {
    let (media_type, payload) = uri.strip_prefix("data:")?.split_once(";base64,")?;
    let subtype = media_type.strip_prefix("image/")?;
    let valid = !subtype.is_empty()
        && subtype
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
    valid.then_some((media_type, payload))
}

/// Standard alphabet; padding optional, since encoders differ on it.
fn base64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Null or `[]` is fine; a non-empty list is a feature this server does not have yet,
/// refused rather than silently ignored.
fn refuse_non_empty_list(
    fields: &Map<String, Value>,
    key: &str,
    here: &[LocItem],
    what: &str,
) -> Result<(), FieldError> {
    let Some(value) = present(fields, key) else {
        return Ok(());
    };
    let key_loc = at(here, key);
    if validate::list(value, &key_loc)?.is_empty() {
        Ok(())
    } else {
        Err(FieldError::value_error(
            key_loc,
            format!("{what} are not supported by this server yet"),
            Some(value.clone()),
        ))
    }
}

// ---- the agent

enum AgentError {
    Invalid(FieldError),
    NotFound(String),
}

/// The agent object a request runs, before overrides and validation, with every Agent
/// key present; and the catalog name when it came from the catalog.
fn resolve_agent(
    agent: Option<&Value>,
    catalog: &dyn Catalog,
) -> Result<(Value, Option<String>), AgentError> {
    let here = loc!["body", "agent"];
    match agent {
        None => Err(AgentError::Invalid(FieldError::missing(here))),
        Some(Value::String(reference)) => {
            validate::non_empty_string(&Value::String(reference.clone()), &here)
                .map_err(AgentError::Invalid)?;
            let (name, revision) = split_revision(reference);
            let mut spec = catalog
                .agent(name, revision)
                .ok_or_else(|| AgentError::NotFound(reference.clone()))?;
            fill_agent_defaults(&mut spec, false);
            Ok((spec, Some(name.to_owned())))
        }
        Some(Value::Object(_)) => {
            let mut spec = agent.cloned().unwrap_or(Value::Null);
            fill_agent_defaults(&mut spec, true);
            Ok((spec, None))
        }
        Some(other) => Err(AgentError::Invalid(FieldError::new(
            here,
            "model_type",
            "Input should be an agent name or a valid Agent object",
            Some(other.clone()),
        ))),
    }
}

/// `name:N` pins revision N; anything else is a plain name.
fn split_revision(reference: &str) -> (&str, Option<u32>) {
    if let Some((name, revision)) = reference.rsplit_once(':')
        && !name.is_empty()
        && !revision.is_empty()
        && revision.bytes().all(|b| b.is_ascii_digit())
        && let Ok(number) = revision.parse::<u32>()
    {
        return (name, Some(number));
    }
    (reference, None)
}

/// Fills absent optional Agent keys (null, or `[]` for environments) and defaults the
/// kind of kind-less environments. For an inline agent, a missing `description` becomes
/// the name: the SDK's own custom-tools example leaves it out.
fn fill_agent_defaults(agent: &mut Value, inline: bool) {
    let Value::Object(fields) = agent else {
        return;
    };
    if inline
        && !fields.contains_key("description")
        && let Some(name) = fields.get("name").filter(|name| name.is_string()).cloned()
    {
        fields.insert("description".into(), name);
    }
    for key in AGENT_FIELDS {
        if matches!(*key, "name" | "description") {
            continue;
        }
        let value = fields.entry(*key).or_insert(Value::Null);
        if *key == "environments" && value.is_null() {
            *value = Value::Array(Vec::new());
        }
    }
    if let Some(Value::Array(environments)) = fields.get_mut("environments") {
        environments.iter_mut().for_each(environments::default_kind);
    }
}

/// Applies `overrides` in a fixed order (shorter paths first, so that a patch inside a
/// replaced value lands in the new value), recording where each one wrote.
fn apply_overrides(
    root: &mut Value,
    overrides: &Map<String, Value>,
    applied: &mut Applied,
    errors: &mut Errors,
) {
    let mut paths: Vec<&String> = overrides.keys().collect();
    paths.sort_by_key(|path| (path.matches(['.', '[']).count(), path.as_str()));
    for path in paths {
        let reported_at = loc!["body", "overrides", path.as_str()];
        let value = overrides.get(path).cloned().unwrap_or(Value::Null);
        match overrides::apply(root, path, value.clone()) {
            Ok(written) => applied.record(written, reported_at),
            Err(msg) => errors.push(FieldError::value_error(reported_at, msg, Some(value))),
        }
    }
}

/// Validates the resolved, overridden agent into the engine's [`AgentSpec`]; errors are
/// located under `["body", "agent"]`.
fn validate_agent(agent: &Value, catalog: &dyn Catalog) -> Result<AgentSpec, Vec<FieldError>> {
    let here = loc!["body", "agent"];
    let fields = validate::object(agent, &here).map_err(|error| vec![error])?;
    let mut errors = Errors::default();
    let name = errors.required(fields, "name", &here, |value, loc| {
        validate::non_empty_string(value, loc).map(str::to_owned)
    });
    let description = errors.required(fields, "description", &here, validate::owned_string);
    let instructions = errors.optional(fields, "instructions", &here, validate::owned_string);
    let model = errors.optional(fields, "model", &here, validate::owned_string);
    if let Some(model) = &model
        && !catalog.has_model(model)
    {
        errors.push(FieldError::value_error(
            at(&here, "model"),
            format!("Model '{model}' is not configured on this server"),
            Some(Value::String(model.clone())),
        ));
    }
    if let Some(effort) = present(fields, "reasoning_effort")
        && !effort
            .as_str()
            .is_some_and(|e| REASONING_EFFORTS.contains(&e))
    {
        errors.push(FieldError::enum_value(
            at(&here, "reasoning_effort"),
            REASONING_EFFORTS,
            effort.clone(),
        ));
    }
    let answer_format = errors.optional(fields, "answer_format", &here, |schema, loc| {
        check_schema(schema, loc, catalog).map(|()| schema.clone())
    });
    let tools = match present(fields, "tools") {
        None => Vec::new(),
        Some(value) => errors
            .take_all(parse_tools(value, &at(&here, "tools"), catalog))
            .unwrap_or_default(),
    };
    let environments = match present(fields, "environments") {
        None => Vec::new(),
        Some(value) => parse_environments(value, &at(&here, "environments"), &mut errors),
    };
    errors.take(refuse_non_empty_list(
        fields,
        "subagents",
        &here,
        "subagents",
    ));
    errors.take(refuse_non_empty_list(fields, "skills", &here, "skills"));

    match (name, description) {
        (Some(name), Some(description)) if errors.is_empty() => Ok(AgentSpec {
            name,
            description,
            instructions,
            model,
            answer_format,
            tools,
            environments,
        }),
        _ => Err(errors.0),
    }
}

fn check_schema(schema: &Value, here: &[LocItem], catalog: &dyn Catalog) -> Result<(), FieldError> {
    validate::object(schema, here)?;
    catalog.check_schema(schema).map_err(|why| {
        FieldError::value_error(
            here.to_vec(),
            format!("Invalid JSON Schema: {why}"),
            Some(schema.clone()),
        )
    })
}

fn parse_tools(
    value: &Value,
    here: &[LocItem],
    catalog: &dyn Catalog,
) -> Result<Vec<ToolDef>, Vec<FieldError>> {
    let items = validate::list(value, here).map_err(|error| vec![error])?;
    let mut errors = Errors::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut tools = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let tool_loc = at(here, i);
        let Some(fields) = errors.take(validate::object(item, &tool_loc)) else {
            continue;
        };
        let name = errors.required(fields, "name", &tool_loc, validate::string);
        if let Some(name) = name {
            let name_loc = at(&tool_loc, "name");
            if !is_tool_name(name) {
                errors.push(FieldError::new(
                    name_loc.clone(),
                    "string_pattern_mismatch",
                    format!("String should match pattern '{TOOL_NAME_PATTERN}'"),
                    Some(Value::String(name.to_owned())),
                ));
            } else if BUILTIN_TOOL_NAMES.contains(&name) {
                errors.push(FieldError::value_error(
                    name_loc.clone(),
                    format!("Tool name '{name}' is reserved for a built-in tool"),
                    Some(Value::String(name.to_owned())),
                ));
            } else if seen.contains(&name) {
                errors.push(FieldError::value_error(
                    name_loc.clone(),
                    format!("Tool name '{name}' is used by more than one tool"),
                    Some(Value::String(name.to_owned())),
                ));
            }
            seen.push(name);
        }
        let description =
            errors.required(fields, "description", &tool_loc, validate::non_empty_string);
        let input_schema = errors.optional(fields, "input_schema", &tool_loc, |schema, loc| {
            check_schema(schema, loc, catalog).map(|()| schema.clone())
        });
        if let (Some(name), Some(description)) = (name, description) {
            tools.push(ToolDef {
                name: name.to_owned(),
                description: description.to_owned(),
                input_schema,
            });
        }
    }
    errors.into_result(tools)
}

fn is_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `agent.environments`, at most one per kind: a second browser could only be ignored,
/// as the engine drives one.
fn parse_environments(
    value: &Value,
    here: &[LocItem],
    errors: &mut Errors,
) -> Vec<EnvironmentSpec> {
    let Some(items) = errors.take(validate::list(value, here)) else {
        return Vec::new();
    };
    let mut parsed: Vec<EnvironmentSpec> = Vec::new();
    let mut first_of_kind: Vec<(&str, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_loc = at(here, i);
        let Some(environment) = errors.take_all(environments::parse_environment(item, &item_loc))
        else {
            continue;
        };
        let kind = environments::kind(&environment);
        if let Some((_, first)) = first_of_kind.iter().find(|(seen, _)| *seen == kind) {
            errors.push(FieldError::value_error(
                item_loc,
                format!(
                    "An agent has at most one environment per kind; environment {first} is already a '{kind}' environment"
                ),
                Some(item.clone()),
            ));
            continue;
        }
        first_of_kind.push((kind, i));
        parsed.push(environment);
    }
    parsed
}

/// Puts the environments in the echo in the newest wire shape, legacy shapes
/// normalised and defaults filled, so the echo shows what the session runs rather than
/// what the request happened to spell. The agent validated, so its environments are
/// exactly `specs`, in order.
fn echo_environments(agent: &mut Value, specs: &[EnvironmentSpec]) {
    if let Value::Object(fields) = agent {
        let wire = specs
            .iter()
            .map(|environment| match environment {
                EnvironmentSpec::Web(web) => environments::to_wire(web),
            })
            .collect();
        fields.insert("environments".into(), Value::Array(wire));
    }
}

// ---- canonical JSON

/// JSON with object keys sorted at every level and no whitespace: two bodies that parse
/// to the same value give the same text, whatever their key order or spacing.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(child) = fields.get(key) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests;
