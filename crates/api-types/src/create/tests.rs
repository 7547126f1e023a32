use agentd_domain::{BrowserMode, WebSpec};
use serde_json::{Value, json};

use super::*;

/// A catalog of three agents and two models. Its schema check refuses remote `$ref`s
/// and unknown `type` names, enough to show that `check_schema` is consulted for every
/// schema and that its message reaches the user.
struct TestCatalog;

impl Catalog for TestCatalog {
    fn agent(&self, name: &str, revision: Option<u32>) -> Option<Value> {
        match (name, revision) {
            ("plain", None) => {
                Some(json!({"name": "plain", "description": "Answers questions.", "model": "m1"}))
            }
            ("tools-agent", Some(1)) => {
                Some(json!({"name": "tools-agent", "description": "v1", "environments": []}))
            }
            ("tools-agent", None | Some(2)) => Some(json!({
                "name": "tools-agent", "description": "v2", "environments": [],
                "tools": [{"name": "lookup", "description": "Looks things up.", "input_schema": null}],
            })),
            ("h/web-surfer", None) => Some(json!({
                "name": "h/web-surfer", "description": "Browses.",
                "environments": [{"id": "h/web", "start_url": "https://a.example"}],
            })),
            ("two-browsers", None) => Some(json!({
                "name": "two-browsers", "description": "d",
                "environments": [{"id": "a", "kind": "web"}, {"id": "b"}],
            })),
            _ => None,
        }
    }

    fn has_model(&self, name: &str) -> bool {
        matches!(name, "m1" | "m2")
    }

    fn check_schema(&self, schema: &Value) -> Result<(), String> {
        fn walk(value: &Value) -> Result<(), String> {
            match value {
                Value::Object(fields) => {
                    if let Some(Value::String(target)) = fields.get("$ref")
                        && !target.starts_with('#')
                    {
                        return Err(format!("remote reference {target} is not allowed"));
                    }
                    if let Some(Value::String(kind)) = fields.get("type")
                        && ![
                            "object", "array", "string", "number", "integer", "boolean", "null",
                        ]
                        .contains(&kind.as_str())
                    {
                        return Err(format!("unknown type {kind}"));
                    }
                    fields.values().try_for_each(walk)
                }
                Value::Array(items) => items.iter().try_for_each(walk),
                _ => Ok(()),
            }
        }
        walk(schema)
    }
}

fn parse(body: Value) -> Result<ParsedCreate, CreateError> {
    parse_create(&body, &TestCatalog)
}

fn errors_of(body: Value) -> Vec<FieldError> {
    match parse(body.clone()) {
        Err(CreateError::Invalid(errors)) => errors,
        other => panic!("{body}: expected a validation error, got {other:?}"),
    }
}

fn located(errors: &[FieldError]) -> Vec<(Value, String)> {
    errors
        .iter()
        .map(|e| (json!(e.loc), e.kind.clone()))
        .collect()
}

/// A pydantic model's schema, as `answer_schema=` sends it.
fn city_schema() -> Value {
    json!({
        "$defs": {"Country": {"properties": {"code": {"title": "Code", "type": "string"}},
                              "required": ["code"], "title": "Country", "type": "object"}},
        "properties": {"name": {"title": "Name", "type": "string"}, "country": {"$ref": "#/$defs/Country"}},
        "required": ["name", "country"],
        "title": "City",
        "type": "object",
    })
}

fn inline(extra: Value) -> Value {
    let mut agent = json!({"name": "calc", "description": "Adds numbers.", "environments": []});
    if let (Value::Object(agent), Value::Object(extra)) = (&mut agent, extra) {
        agent.extend(extra);
    }
    agent
}

#[test]
fn the_plain_sdk_request_parses() {
    let parsed = parse(json!({"agent": "plain", "messages": "What is 6*7?"})).unwrap();
    assert_eq!(parsed.agent_name.as_deref(), Some("plain"));
    assert_eq!(
        parsed.spec,
        SessionSpec {
            agent: AgentSpec {
                name: "plain".into(),
                description: "Answers questions.".into(),
                instructions: None,
                model: Some("m1".into()),
                answer_format: None,
                tools: vec![],
                environments: vec![],
            },
            max_steps: None,
            max_time_s: None,
            idle_timeout_s: None,
            timezone: None,
            delete_screenshot_after_min: None,
        }
    );
    assert_eq!(
        parsed.messages,
        [UserMessage {
            text: "What is 6*7?".into(),
            images: vec![],
            caller_id: "user".into()
        }]
    );
    assert!(parsed.queue);
    assert_eq!(parsed.group_id, None);
    assert_eq!(parsed.parent_session_id, None);
}

#[test]
fn the_echo_has_every_key() {
    let parsed = parse(json!({"agent": "plain", "messages": "hi"})).unwrap();
    assert_eq!(
        parsed.request_echo,
        json!({
            "agent": {
                "name": "plain", "description": "Answers questions.", "environments": [], "model": "m1",
                "reasoning_effort": null, "instructions": null, "subagents": null, "skills": null,
                "answer_format": null, "tools": null,
            },
            "messages": [{"type": "user_message", "message": "hi", "images": [], "caller_id": "user"}],
            "max_steps": null, "max_time_s": null, "idle_timeout_s": null, "timezone": null,
            "delete_after_min": null, "delete_screenshot_after_min": null, "queue": true,
            "group_id": null, "parent_session_id": null, "overrides": null,
        })
    );
    let none = parse(json!({"agent": "plain"})).unwrap();
    assert_eq!(none.request_echo["messages"], Value::Null);
    assert!(none.messages.is_empty());
}

#[test]
fn every_option_is_read_and_echoed() {
    let parent = "0196a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b";
    let parsed = parse(json!({
        "agent": inline(json!({"model": "m2", "instructions": "Be brief.", "reasoning_effort": "low",
                               "subagents": [], "skills": null})),
        "messages": [{"message": "a"}, {"type": "user_message", "message": "b", "caller_id": "ops",
                      "images": ["data:image/jpeg;base64,/9j/4AAQ"], "files": [], "skills": null}],
        "max_steps": 5.0,
        "max_time_s": 90.5,
        "idle_timeout_s": 300,
        "timezone": "Europe/Paris",
        "delete_after_min": 0,
        "delete_screenshot_after_min": 10,
        "queue": false,
        "group_id": "batch-7",
        "parent_session_id": parent,
        "agent_artifact": "v3",
        "something_new": {"x": 1},
    }))
    .unwrap();
    assert_eq!(parsed.agent_name, None);
    assert_eq!(parsed.spec.max_steps, Some(5));
    assert_eq!(parsed.spec.max_time_s, Some(90.5));
    assert_eq!(parsed.spec.idle_timeout_s, Some(300));
    assert_eq!(parsed.spec.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(parsed.spec.agent.model.as_deref(), Some("m2"));
    assert_eq!(parsed.spec.agent.instructions.as_deref(), Some("Be brief."));
    assert!(!parsed.queue);
    assert_eq!(parsed.group_id.as_deref(), Some("batch-7"));
    assert_eq!(
        parsed.parent_session_id.map(|id| id.to_string()).as_deref(),
        Some(parent)
    );
    assert_eq!(parsed.messages.len(), 2);
    assert_eq!(parsed.messages[1].caller_id, "ops");
    assert_eq!(
        parsed.messages[1].images,
        ["data:image/jpeg;base64,/9j/4AAQ"]
    );

    let echo = &parsed.request_echo;
    assert_eq!(echo["max_steps"], 5);
    assert_eq!(echo["max_time_s"], 90.5);
    assert_eq!(echo["idle_timeout_s"], 300);
    assert_eq!(echo["delete_after_min"], 0);
    assert_eq!(echo["delete_screenshot_after_min"], 10);
    assert_eq!(echo["queue"], false);
    assert_eq!(echo["parent_session_id"], parent);
    assert_eq!(echo["agent"]["reasoning_effort"], "low");
    assert_eq!(
        echo["messages"][0],
        json!({"type": "user_message", "message": "a", "images": [], "caller_id": "user"})
    );
    assert!(echo.get("agent_artifact").is_none() && echo.get("something_new").is_none());
}

#[test]
fn null_means_absent_for_every_optional_field() {
    let parsed = parse(json!({
        "agent": "plain", "messages": null, "max_steps": null, "max_time_s": null, "idle_timeout_s": null,
        "timezone": null, "delete_after_min": null, "delete_screenshot_after_min": null, "queue": null,
        "group_id": null, "parent_session_id": null, "overrides": null, "answer_format": null,
    }))
    .unwrap();
    assert!(parsed.queue);
    assert!(parsed.messages.is_empty());
    assert_eq!(parsed.spec.idle_timeout_s, None);
    assert_eq!(parsed.request_echo["overrides"], Value::Null);
}

#[test]
fn a_single_message_object_is_one_message() {
    let parsed =
        parse(json!({"agent": "plain", "messages": {"message": "x", "caller_id": null}})).unwrap();
    assert_eq!(parsed.messages.len(), 1);
    assert_eq!(parsed.messages[0].caller_id, "user");
}

#[test]
fn inline_agents_carry_tools_and_pydantic_answer_formats() {
    let parsed = parse(json!({
        "agent": inline(json!({
            "answer_format": city_schema(),
            "tools": [{"name": "add", "description": "Adds.", "input_schema": {
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"], "type": "object"}},
                      {"name": "_now", "description": "Time."}],
        })),
        "messages": "Add 2 and 3",
    }))
    .unwrap();
    let agent = &parsed.spec.agent;
    assert_eq!(agent.answer_format.as_ref(), Some(&city_schema()));
    assert_eq!(agent.tools.len(), 2);
    assert_eq!(agent.tools[0].name, "add");
    assert_eq!(
        agent.tools[0].input_schema.as_ref().unwrap()["required"],
        json!(["a", "b"])
    );
    assert_eq!(agent.tools[1].input_schema, None);
    assert_eq!(parsed.request_echo["agent"]["answer_format"], city_schema());
}

#[test]
fn an_inline_agent_without_description_is_described_by_its_name() {
    let parsed = parse(json!({"agent": {"name": "calc", "tools": []}})).unwrap();
    assert_eq!(parsed.spec.agent.description, "calc");
    assert_eq!(parsed.request_echo["agent"]["description"], "calc");
    assert_eq!(parsed.request_echo["agent"]["environments"], json!([]));
}

#[test]
fn catalog_names_may_pin_a_revision() {
    let latest = parse(json!({"agent": "tools-agent"})).unwrap();
    assert_eq!(latest.spec.agent.description, "v2");
    assert_eq!(latest.spec.agent.tools.len(), 1);
    let pinned = parse(json!({"agent": "tools-agent:1"})).unwrap();
    assert_eq!(pinned.spec.agent.description, "v1");
    assert_eq!(pinned.agent_name.as_deref(), Some("tools-agent"));
    assert_eq!(split_revision("org/a:12"), ("org/a", Some(12)));
    assert_eq!(split_revision("a:"), ("a:", None));
    assert_eq!(split_revision(":3"), (":3", None));
    assert_eq!(split_revision("a:x"), ("a:x", None));
}

#[test]
fn unknown_catalog_agents_are_not_found() {
    assert_eq!(
        parse(json!({"agent": "nope:3"})).unwrap_err(),
        CreateError::AgentNotFound("nope:3".into())
    );
    assert_eq!(
        parse(json!({"agent": "tools-agent:9"})).unwrap_err(),
        CreateError::AgentNotFound("tools-agent:9".into())
    );
    // A body that does not validate is a 422 first, as FastAPI checks before the handler runs.
    let errors = errors_of(json!({"agent": "nope", "max_steps": 0}));
    assert_eq!(
        located(&errors),
        [(
            json!(["body", "max_steps"]),
            "greater_than_equal".to_owned()
        )]
    );
}

/// (body, loc, kind): each body must report at least this error.
fn bad_bodies() -> Vec<(Value, Value, &'static str)> {
    let uuid_error_body = json!({"agent": "plain", "parent_session_id": "not-a-uuid"});
    vec![
        (json!("agent"), json!(["body"]), "dict_type"),
        (json!({}), json!(["body", "agent"]), "missing"),
        (
            json!({"agent": ""}),
            json!(["body", "agent"]),
            "string_too_short",
        ),
        (json!({"agent": 5}), json!(["body", "agent"]), "model_type"),
        (
            json!({"agent": null}),
            json!(["body", "agent"]),
            "model_type",
        ),
        // Scalars.
        (
            json!({"agent": "plain", "max_steps": true}),
            json!(["body", "max_steps"]),
            "int_type",
        ),
        (
            json!({"agent": "plain", "max_steps": "5"}),
            json!(["body", "max_steps"]),
            "int_type",
        ),
        (
            json!({"agent": "plain", "max_steps": 1.5}),
            json!(["body", "max_steps"]),
            "int_from_float",
        ),
        (
            json!({"agent": "plain", "max_steps": 0}),
            json!(["body", "max_steps"]),
            "greater_than_equal",
        ),
        (
            json!({"agent": "plain", "max_steps": 5_000_000_000u64}),
            json!(["body", "max_steps"]),
            "less_than_equal",
        ),
        (
            json!({"agent": "plain", "max_time_s": 0}),
            json!(["body", "max_time_s"]),
            "greater_than",
        ),
        (
            json!({"agent": "plain", "max_time_s": -1.5}),
            json!(["body", "max_time_s"]),
            "greater_than",
        ),
        (
            json!({"agent": "plain", "max_time_s": true}),
            json!(["body", "max_time_s"]),
            "float_type",
        ),
        (
            json!({"agent": "plain", "idle_timeout_s": 0}),
            json!(["body", "idle_timeout_s"]),
            "greater_than",
        ),
        (
            json!({"agent": "plain", "idle_timeout_s": 2.5}),
            json!(["body", "idle_timeout_s"]),
            "int_from_float",
        ),
        (
            json!({"agent": "plain", "timezone": 1}),
            json!(["body", "timezone"]),
            "string_type",
        ),
        (
            json!({"agent": "plain", "delete_after_min": -1}),
            json!(["body", "delete_after_min"]),
            "greater_than_equal",
        ),
        (
            json!({"agent": "plain", "delete_screenshot_after_min": "1"}),
            json!(["body", "delete_screenshot_after_min"]),
            "int_type",
        ),
        (
            json!({"agent": "plain", "queue": "yes"}),
            json!(["body", "queue"]),
            "bool_type",
        ),
        (
            json!({"agent": "plain", "queue": 1}),
            json!(["body", "queue"]),
            "bool_type",
        ),
        (
            json!({"agent": "plain", "group_id": 7}),
            json!(["body", "group_id"]),
            "string_type",
        ),
        (
            uuid_error_body,
            json!(["body", "parent_session_id"]),
            "uuid_parsing",
        ),
        (
            json!({"agent": "plain", "parent_session_id": 7}),
            json!(["body", "parent_session_id"]),
            "uuid_type",
        ),
        (
            json!({"agent": "plain", "overrides": []}),
            json!(["body", "overrides"]),
            "dict_type",
        ),
        (
            json!({"agent": "plain", "answer_format": "json"}),
            json!(["body", "answer_format"]),
            "dict_type",
        ),
        // Messages.
        (
            json!({"agent": "plain", "messages": 5}),
            json!(["body", "messages"]),
            "string_type",
        ),
        (
            json!({"agent": "plain", "messages": {}}),
            json!(["body", "messages", "message"]),
            "missing",
        ),
        (
            json!({"agent": "plain", "messages": {"type": "batch", "message": "a"}}),
            json!(["body", "messages", "type"]),
            "enum",
        ),
        (
            json!({"agent": "plain", "messages": ["a"]}),
            json!(["body", "messages", 0]),
            "dict_type",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a"}, {"message": 1}]}),
            json!(["body", "messages", 1, "message"]),
            "string_type",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "caller_id": 3}]}),
            json!(["body", "messages", 0, "caller_id"]),
            "string_type",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "images": "x"}]}),
            json!(["body", "messages", 0, "images"]),
            "list_type",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "images": [1]}]}),
            json!(["body", "messages", 0, "images", 0]),
            "string_type",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "images": ["https://x.example/a.png"]}]}),
            json!(["body", "messages", 0, "images", 0]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "images": ["data:text/plain;base64,aGk="]}]}),
            json!(["body", "messages", 0, "images", 0]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "images": ["data:image/png;base64,@@@"]}]}),
            json!(["body", "messages", 0, "images", 0]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "images": ["data:image/png;base64,"]}]}),
            json!(["body", "messages", 0, "images", 0]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "messages": [{"message": "a", "files": [{"source": "aGk=", "name": "a.txt"}]}]}),
            json!(["body", "messages", 0, "files"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "messages": {"message": "a", "skills": [{"name": "s"}]}}),
            json!(["body", "messages", "skills"]),
            "value_error",
        ),
        // The inline agent.
        (
            json!({"agent": {}}),
            json!(["body", "agent", "name"]),
            "missing",
        ),
        (
            json!({"agent": {}}),
            json!(["body", "agent", "description"]),
            "missing",
        ),
        (
            json!({"agent": {"name": 3}}),
            json!(["body", "agent", "name"]),
            "string_type",
        ),
        (
            json!({"agent": {"name": ""}}),
            json!(["body", "agent", "name"]),
            "string_too_short",
        ),
        (
            json!({"agent": inline(json!({"description": null}))}),
            json!(["body", "agent", "description"]),
            "string_type",
        ),
        (
            json!({"agent": inline(json!({"environments": "h/web"}))}),
            json!(["body", "agent", "environments"]),
            "list_type",
        ),
        (
            json!({"agent": inline(json!({"environments": ["h/web"]}))}),
            json!(["body", "agent", "environments", 0]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"kind": "desktop", "id": "d"}]}))}),
            json!(["body", "agent", "environments", 0, "kind"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"kind": "workstation"}]}))}),
            json!(["body", "agent", "environments", 0, "kind"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"kind": 3}]}))}),
            json!(["body", "agent", "environments", 0, "kind"]),
            "string_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [7]}))}),
            json!(["body", "agent", "environments", 0]),
            "value_error",
        ),
        // Web environments.
        (
            json!({"agent": inline(json!({"environments": [{"id": ""}]}))}),
            json!(["body", "agent", "environments", 0, "id"]),
            "string_too_short",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"host": "user_device"}]}))}),
            json!(["body", "agent", "environments", 0, "host"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"host": "moon"}]}))}),
            json!(["body", "agent", "environments", 0, "host"]),
            "enum",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"start_url": "example.com"}]}))}),
            json!(["body", "agent", "environments", 0, "start_url"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"start_url": "ftp://example.com/"}]}))}),
            json!(["body", "agent", "environments", 0, "start_url"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"start_url": "https://:80/"}]}))}),
            json!(["body", "agent", "environments", 0, "start_url"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"start_url": 5}]}))}),
            json!(["body", "agent", "environments", 0, "start_url"]),
            "string_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"headless": "yes"}]}))}),
            json!(["body", "agent", "environments", 0, "headless"]),
            "bool_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"lazy": 1}]}))}),
            json!(["body", "agent", "environments", 0, "lazy"]),
            "bool_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"settle_s": -1}]}))}),
            json!(["body", "agent", "environments", 0, "settle_s"]),
            "greater_than_equal",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"settle_s": 60.5}]}))}),
            json!(["body", "agent", "environments", 0, "settle_s"]),
            "less_than_equal",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"settle_s": "1"}]}))}),
            json!(["body", "agent", "environments", 0, "settle_s"]),
            "float_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"session_id": "local-1"}]}))}),
            json!(["body", "agent", "environments", 0, "session_id"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"vault_id": "0196a0b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b"}]}))}),
            json!(["body", "agent", "environments", 0, "vault_id"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"browser_profile_id": "p"}]}))}),
            json!(["body", "agent", "environments", 0, "browser_profile_id"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"network": {"proxy_url": "http://p:3128"}}]}))}),
            json!(["body", "agent", "environments", 0, "network"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"persist_browser_profile": true}]}))}),
            json!([
                "body",
                "agent",
                "environments",
                0,
                "persist_browser_profile"
            ]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"use_default_browser_profile": "no"}]}))}),
            json!([
                "body",
                "agent",
                "environments",
                0,
                "use_default_browser_profile"
            ]),
            "bool_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": "fancy"}]}))}),
            json!(["body", "agent", "environments", 0, "mode"]),
            "enum",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": 3}]}))}),
            json!(["body", "agent", "environments", 0, "mode"]),
            "model_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"type": "multimodal"}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "type"]),
            "enum",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"type": "visual", "width": 0}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "width"]),
            "greater_than",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"height": 4097}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "height"]),
            "less_than_equal",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"markdown": "yes"}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "markdown"]),
            "bool_type",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"type": "text", "chunk_size": 0}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "chunk_size"]),
            "greater_than",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"type": "visual", "chunk_size": 100}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "chunk_size"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": {"type": "text", "width": 800}}]}))}),
            json!(["body", "agent", "environments", 0, "mode", "width"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": "visual", "width": 0, "height": 600}]}))}),
            json!(["body", "agent", "environments", 0, "width"]),
            "greater_than",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": "text", "width": 1.5}]}))}),
            json!(["body", "agent", "environments", 0, "width"]),
            "int_from_float",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": "visual", "page_chars": 5000}]}))}),
            json!(["body", "agent", "environments", 0, "page_chars"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"page_chars": 5000}]}))}),
            json!(["body", "agent", "environments", 0, "page_chars"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": "multimodal", "page_chars": 5000}]}))}),
            json!(["body", "agent", "environments", 0, "page_chars"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"mode": "text", "page_chars": -3}]}))}),
            json!(["body", "agent", "environments", 0, "page_chars"]),
            "greater_than",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"id": "a"}, {"id": "b", "kind": "web"}]}))}),
            json!(["body", "agent", "environments", 1]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"model": 3}))}),
            json!(["body", "agent", "model"]),
            "string_type",
        ),
        (
            json!({"agent": inline(json!({"model": "gpt-unknown"}))}),
            json!(["body", "agent", "model"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"instructions": ["x"]}))}),
            json!(["body", "agent", "instructions"]),
            "string_type",
        ),
        (
            json!({"agent": inline(json!({"reasoning_effort": "high"}))}),
            json!(["body", "agent", "reasoning_effort"]),
            "enum",
        ),
        (
            json!({"agent": inline(json!({"answer_format": "json"}))}),
            json!(["body", "agent", "answer_format"]),
            "dict_type",
        ),
        (
            json!({"agent": inline(json!({"answer_format": {"$ref": "https://x.example/s.json"}}))}),
            json!(["body", "agent", "answer_format"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"subagents": ["h/web-surfer"]}))}),
            json!(["body", "agent", "subagents"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"subagents": "x"}))}),
            json!(["body", "agent", "subagents"]),
            "list_type",
        ),
        (
            json!({"agent": inline(json!({"skills": [{"name": "s"}]}))}),
            json!(["body", "agent", "skills"]),
            "value_error",
        ),
        // Tools.
        (
            json!({"agent": inline(json!({"tools": {}}))}),
            json!(["body", "agent", "tools"]),
            "list_type",
        ),
        (
            json!({"agent": inline(json!({"tools": [5]}))}),
            json!(["body", "agent", "tools", 0]),
            "dict_type",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"description": "d"}]}))}),
            json!(["body", "agent", "tools", 0, "name"]),
            "missing",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "bad-name", "description": "d"}]}))}),
            json!(["body", "agent", "tools", 0, "name"]),
            "string_pattern_mismatch",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "9lives", "description": "d"}]}))}),
            json!(["body", "agent", "tools", 0, "name"]),
            "string_pattern_mismatch",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "a".repeat(65), "description": "d"}]}))}),
            json!(["body", "agent", "tools", 0, "name"]),
            "string_pattern_mismatch",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "answer", "description": "d"}]}))}),
            json!(["body", "agent", "tools", 0, "name"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "t", "description": "d"}, {"name": "t", "description": "e"}]}))}),
            json!(["body", "agent", "tools", 1, "name"]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "t"}]}))}),
            json!(["body", "agent", "tools", 0, "description"]),
            "missing",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "t", "description": ""}]}))}),
            json!(["body", "agent", "tools", 0, "description"]),
            "string_too_short",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "t", "description": "d", "input_schema": "x"}]}))}),
            json!(["body", "agent", "tools", 0, "input_schema"]),
            "dict_type",
        ),
        (
            json!({"agent": inline(json!({"tools": [{"name": "t", "description": "d", "input_schema": {"type": "thing"}}]}))}),
            json!(["body", "agent", "tools", 0, "input_schema"]),
            "value_error",
        ),
        // A catalog agent's own environments are checked just the same.
        (
            json!({"agent": "two-browsers"}),
            json!(["body", "agent", "environments", 1]),
            "value_error",
        ),
        // Overrides and the answer_format alias.
        (
            json!({"agent": "plain", "answer_format": city_schema(), "overrides": {"agent.answer_format": city_schema()}}),
            json!(["body", "answer_format"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"max_steps": 3}}),
            json!(["body", "overrides", "max_steps"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.colour": "red"}}),
            json!(["body", "overrides", "agent.colour"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent..model": "m2"}}),
            json!(["body", "overrides", "agent..model"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.tools": "x"}}),
            json!(["body", "overrides", "agent.tools"]),
            "list_type",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.model": "nope"}}),
            json!(["body", "overrides", "agent.model"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.answer_format": []}}),
            json!(["body", "overrides", "agent.answer_format"]),
            "dict_type",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.answer_format": {"type": "thing"}}}),
            json!(["body", "overrides", "agent.answer_format"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.tools": [{"name": "a-b", "description": "d"}]}}),
            json!(["body", "overrides", "agent.tools", 0, "name"]),
            "string_pattern_mismatch",
        ),
        (
            json!({"agent": "plain", "answer_format": {"type": "thing"}}),
            json!(["body", "answer_format"]),
            "value_error",
        ),
        (
            json!({"agent": "plain", "overrides": {"agent.environments[kind=web].start_url": "https://b.example"}}),
            json!([
                "body",
                "overrides",
                "agent.environments[kind=web].start_url"
            ]),
            "value_error",
        ),
        (
            json!({"agent": "two-browsers", "overrides": {"agent.environments[kind=web].start_url": "https://b.example"}}),
            json!([
                "body",
                "overrides",
                "agent.environments[kind=web].start_url"
            ]),
            "value_error",
        ),
        (
            json!({"agent": "h/web-surfer", "overrides": {"agent.environments[kind=web].start_url": "file:///etc/passwd"}}),
            json!([
                "body",
                "overrides",
                "agent.environments[kind=web].start_url"
            ]),
            "value_error",
        ),
        (
            json!({"agent": "h/web-surfer", "overrides": {"agent.environments[kind=web].mode": {"type": "text", "chunk_size": 0}}}),
            json!([
                "body",
                "overrides",
                "agent.environments[kind=web].mode",
                "chunk_size"
            ]),
            "greater_than",
        ),
        (
            json!({"agent": "tools-agent", "overrides": {"agent.tools[name=lookup].description": ""}}),
            json!(["body", "overrides", "agent.tools[name=lookup].description"]),
            "string_too_short",
        ),
    ]
}

#[test]
fn bad_bodies_are_located_precisely() {
    for (body, loc, kind) in bad_bodies() {
        let errors = errors_of(body.clone());
        assert!(
            located(&errors).contains(&(loc.clone(), kind.to_owned())),
            "{body}\n  expected {loc} {kind}\n  got {:?}",
            located(&errors)
        );
    }
}

#[test]
fn unsupported_features_say_so() {
    let environment_message = |environment: Value| {
        let errors = errors_of(json!({"agent": inline(json!({"environments": [environment]}))}));
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].msg.clone()
    };
    assert_eq!(
        environment_message(json!({"kind": "desktop", "id": "d"})),
        "environment kind 'desktop' is not supported by this server"
    );
    assert_eq!(
        environment_message(json!("h/web")),
        "environment 'h/web' is not in this server's catalog"
    );
    assert_eq!(
        environment_message(json!({"host": "user_device"})),
        "host: user-device browsers are not supported by this server"
    );
    for (key, value) in [
        ("session_id", json!("local-1")),
        ("vault_id", json!("v")),
        ("browser_profile_id", json!("p")),
        ("network", json!({"managed_proxy": {"country": "FR"}})),
        ("use_default_browser_profile", json!(true)),
        ("persist_browser_profile", json!(true)),
    ] {
        let message = environment_message(json!({ key: value }));
        assert!(
            message.starts_with(&format!("{key}: "))
                && message.ends_with("not supported by this server"),
            "{key}: {message}"
        );
    }
    let errors = errors_of(json!({"agent": inline(json!({"subagents": ["x"]}))}));
    assert_eq!(
        errors[0].msg,
        "subagents are not supported by this server yet"
    );
    let errors = errors_of(json!({"agent": inline(json!({"skills": ["x"]}))}));
    assert_eq!(errors[0].msg, "skills are not supported by this server yet");
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = errors_of(json!({
        "agent": inline(json!({"model": "nope", "tools": [{"name": "think", "description": ""}]})),
        "max_steps": 0,
        "max_time_s": "soon",
        "messages": [{"message": 1}],
        "overrides": {"agent.instructions": 5},
    }));
    let got = located(&errors);
    for expected in [
        (json!(["body", "max_steps"]), "greater_than_equal"),
        (json!(["body", "max_time_s"]), "float_type"),
        (json!(["body", "messages", 0, "message"]), "string_type"),
        (json!(["body", "agent", "model"]), "value_error"),
        (json!(["body", "agent", "tools", 0, "name"]), "value_error"),
        (
            json!(["body", "agent", "tools", 0, "description"]),
            "string_too_short",
        ),
        (
            json!(["body", "overrides", "agent.instructions"]),
            "string_type",
        ),
    ] {
        assert!(
            got.contains(&(expected.0.clone(), expected.1.to_owned())),
            "missing {expected:?} in {got:?}"
        );
    }
    assert_eq!(got.len(), 7, "{got:?}");
}

#[test]
fn overrides_patch_a_catalog_agent_for_one_run() {
    let tools =
        json!([{"name": "add", "description": "Adds.", "input_schema": {"type": "object"}}]);
    let overrides = json!({
        "agent.answer_format": city_schema(),
        "agent.tools": tools,
        "agent.instructions": "Answer in French.",
        "agent.model": "m2",
    });
    let parsed = parse(json!({"agent": "plain", "messages": "x", "overrides": overrides})).unwrap();
    let agent = &parsed.spec.agent;
    assert_eq!(agent.answer_format.as_ref(), Some(&city_schema()));
    assert_eq!(agent.tools[0].name, "add");
    assert_eq!(agent.instructions.as_deref(), Some("Answer in French."));
    assert_eq!(agent.model.as_deref(), Some("m2"));
    // The echo shows the agent as it runs, and the overrides as given.
    assert_eq!(parsed.request_echo["agent"]["tools"], tools);
    assert_eq!(parsed.request_echo["agent"]["model"], "m2");
    assert_eq!(parsed.request_echo["overrides"], overrides);
}

#[test]
fn overrides_can_remove_what_the_server_does_not_support() {
    let parsed =
        parse(json!({"agent": "h/web-surfer", "overrides": {"agent.environments": []}})).unwrap();
    assert!(parsed.spec.agent.environments.is_empty());
}

#[test]
fn overrides_select_the_web_environment_even_when_it_names_no_kind() {
    let parsed = parse(json!({
        "agent": "h/web-surfer",
        "overrides": {
            "agent.environments[kind=web].start_url": "http://127.0.0.1:9/",
            "agent.environments[kind=web].mode": {"type": "text"},
        },
    }))
    .unwrap();
    let web = parsed.spec.agent.web().unwrap();
    assert_eq!(web.start_url.as_deref(), Some("http://127.0.0.1:9/"));
    assert_eq!(web.id.as_deref(), Some("h/web"));
    assert_eq!(web.mode, BrowserMode::Text { chunk_size: 20_000 });
    let echoed = &parsed.request_echo["agent"]["environments"][0];
    assert_eq!(echoed["start_url"], "http://127.0.0.1:9/");
    assert_eq!(
        echoed["mode"],
        json!({"type": "text", "chunk_size": 20_000})
    );
}

#[test]
fn the_top_level_answer_format_is_an_alias_of_its_override() {
    let parsed = parse(json!({"agent": "plain", "answer_format": city_schema()})).unwrap();
    assert_eq!(
        parsed.spec.agent.answer_format.as_ref(),
        Some(&city_schema())
    );
    assert_eq!(parsed.request_echo["agent"]["answer_format"], city_schema());
    assert_eq!(
        parsed.request_echo["overrides"],
        json!({"agent.answer_format": city_schema()})
    );
    // Next to other overrides.
    let parsed = parse(json!({"agent": "plain", "answer_format": city_schema(),
                              "overrides": {"agent.instructions": "x"}}))
    .unwrap();
    assert_eq!(
        parsed.request_echo["overrides"],
        json!({"agent.instructions": "x", "agent.answer_format": city_schema()})
    );
}

#[test]
fn nested_overrides_apply_parents_first() {
    let parsed = parse(json!({"agent": "plain", "overrides": {
        "agent.tools[name=a].description": "patched",
        "agent.tools": [{"name": "a", "description": "original"}],
    }}))
    .unwrap();
    assert_eq!(parsed.spec.agent.tools[0].description, "patched");
}

#[test]
fn canonical_body_ignores_key_order_and_spacing() {
    let a: Value = serde_json::from_str(
        r#"{"messages": "hi", "agent": {"name": "x", "tools": [], "description": "d"}}"#,
    )
    .unwrap();
    let b: Value = serde_json::from_str(
        r#"{"agent":{"description":"d","tools":[],"name":"x"},"messages":"hi"}"#,
    )
    .unwrap();
    let pa = parse(a).unwrap();
    let pb = parse(b).unwrap();
    assert_eq!(pa.canonical_body, pb.canonical_body);
    assert_eq!(
        pa.canonical_body,
        r#"{"agent":{"description":"d","name":"x","tools":[]},"messages":"hi"}"#
    );
    let c =
        parse(json!({"agent": {"name": "x", "description": "d", "tools": []}, "messages": "hi!"}))
            .unwrap();
    assert_ne!(pa.canonical_body, c.canonical_body);
    assert_eq!(
        canonical_json(&json!({"é\"": [1.5, null, true]})),
        r#"{"é\"":[1.5,null,true]}"#
    );
}

#[test]
fn user_messages_render_for_the_wire_and_the_log() {
    let message = UserMessage {
        text: "What is in this picture?".into(),
        images: vec![
            "data:image/jpeg;base64,/9j/4AAQ".into(),
            "data:image/png;base64,iVBORw0KGgo=".into(),
        ],
        caller_id: "user".into(),
    };
    assert_eq!(
        message.wire(),
        json!({"type": "user_message", "message": "What is in this picture?",
               "images": ["data:image/jpeg;base64,/9j/4AAQ", "data:image/png;base64,iVBORw0KGgo="],
               "caller_id": "user"})
    );
    assert_eq!(
        message.event_content(),
        [
            json!("What is in this picture?"),
            json!({"type": "base64", "source": "data:image/jpeg;base64,/9j/4AAQ", "media_type": "image/jpeg"}),
            json!({"type": "base64", "source": "data:image/png;base64,iVBORw0KGgo=", "media_type": "image/png"}),
        ]
    );
}

#[test]
fn images_accept_padded_and_unpadded_base64() {
    for uri in [
        "data:image/png;base64,aGk=",
        "data:image/png;base64,aGk",
        "data:image/svg+xml;base64,PHN2Zy8+",
    ] {
        let parsed =
            parse(json!({"agent": "plain", "messages": {"message": "x", "images": [uri]}}));
        assert!(parsed.is_ok(), "{uri}: {parsed:?}");
    }
}

#[test]
fn validation_bodies_read_well() {
    let errors =
        errors_of(json!({"agent": "plain", "max_steps": 0, "overrides": {"agent.model": "nope"}}));
    let body = crate::validation_error_body(&errors);
    assert_eq!(
        body["message"],
        "max_steps: Input should be greater than or equal to 1; \
         overrides.agent.model: Model 'nope' is not configured on this server"
    );
}

// ---- web environments

/// The one environment of an inline agent given `environment`.
fn web_of(environment: Value) -> WebSpec {
    let parsed = parse(json!({"agent": inline(json!({"environments": [environment.clone()]}))}))
        .unwrap_or_else(|error| panic!("{environment}: {error:?}"));
    assert_eq!(parsed.spec.agent.environments.len(), 1);
    parsed.spec.agent.web().cloned().unwrap()
}

fn visual(width: u32, height: u32, markdown: bool) -> BrowserMode {
    BrowserMode::Visual {
        width,
        height,
        markdown,
    }
}

#[test]
fn a_bare_web_environment_gets_the_defaults() {
    let expected = WebSpec {
        id: None,
        start_url: None,
        headless: false,
        mode: visual(1280, 720, false),
        settle_s: None,
        lazy: false,
    };
    assert_eq!(web_of(json!({"kind": "web"})), expected);
    // Kind-less, as the SDK's `Browser` model serializes inside a dict agent.
    assert_eq!(web_of(json!({})), expected);
    assert_eq!(web_of(json!({"kind": null, "mode": null})), expected);
}

#[test]
fn web_environments_read_every_served_field() {
    let web = web_of(json!({
        "id": "crm-browser", "kind": "web", "host": "cloud", "start_url": "https://crm.example.org/a?b#c",
        "headless": true, "lazy": true, "settle_s": 1.5,
        "session_id": null, "vault_id": null, "browser_profile_id": null, "network": null,
        "use_default_browser_profile": false, "persist_browser_profile": null,
        "mode": {"type": "visual", "width": 1024, "height": 768, "markdown": true},
        "something_new": {"x": 1},
    }));
    assert_eq!(
        web,
        WebSpec {
            id: Some("crm-browser".into()),
            start_url: Some("https://crm.example.org/a?b#c".into()),
            headless: true,
            mode: visual(1024, 768, true),
            settle_s: Some(1.5),
            lazy: true,
        }
    );
    for url in [
        "about:blank",
        "http://127.0.0.1:9/",
        "HTTPS://user:pw@example.com",
        "http://[::1]:8080/x",
    ] {
        assert_eq!(
            web_of(json!({"start_url": url})).start_url.as_deref(),
            Some(url)
        );
    }
    assert_eq!(web_of(json!({"settle_s": 0})).settle_s, Some(0.0));
    assert_eq!(web_of(json!({"settle_s": 60})).settle_s, Some(60.0));
}

#[test]
fn browser_modes_of_the_newest_shape() {
    assert_eq!(
        web_of(json!({"mode": {"type": "text"}})).mode,
        BrowserMode::Text { chunk_size: 20_000 }
    );
    assert_eq!(
        web_of(json!({"mode": {"type": "text", "chunk_size": 5000.0}})).mode,
        BrowserMode::Text { chunk_size: 5000 }
    );
    assert_eq!(
        web_of(json!({"mode": {"type": "visual"}})).mode,
        visual(1280, 720, false)
    );
    // A mode object without `type` is visual, the default mode.
    assert_eq!(
        web_of(json!({"mode": {"width": 800, "markdown": true}})).mode,
        visual(800, 720, true)
    );
    assert_eq!(
        web_of(json!({"mode": {"width": 4096, "height": 1}})).mode,
        visual(4096, 1, false)
    );
}

#[test]
fn legacy_browser_shapes_are_normalised() {
    assert_eq!(
        web_of(json!({"mode": "visual", "width": 1200, "height": 1200})).mode,
        visual(1200, 1200, false)
    );
    assert_eq!(
        web_of(json!({"width": 1000})).mode,
        visual(1000, 720, false)
    );
    assert_eq!(
        web_of(json!({"mode": "multimodal"})).mode,
        visual(1280, 720, true)
    );
    assert_eq!(
        web_of(json!({"mode": "multimodal", "width": 640, "height": 480})).mode,
        visual(640, 480, true)
    );
    assert_eq!(
        web_of(json!({"mode": "text", "page_chars": 8000})).mode,
        BrowserMode::Text { chunk_size: 8000 }
    );
    // The legacy model always carries its sizes, text mode included.
    assert_eq!(
        web_of(json!({"mode": "text", "width": 1200, "height": 1200, "page_chars": 20000, "headless": false})).mode,
        BrowserMode::Text { chunk_size: 20_000 }
    );
}

#[test]
fn mixed_shapes_prefer_the_mode_object_and_fill_in_from_the_top_level() {
    assert_eq!(
        web_of(json!({"mode": {"type": "visual", "width": 800}, "width": 1000, "height": 600}))
            .mode,
        visual(800, 600, false)
    );
    assert_eq!(
        web_of(json!({"mode": {"type": "text"}, "page_chars": 3000})).mode,
        BrowserMode::Text { chunk_size: 3000 }
    );
    assert_eq!(
        web_of(json!({"mode": {"type": "text", "chunk_size": 100}, "page_chars": 3000})).mode,
        BrowserMode::Text { chunk_size: 100 }
    );
}

#[test]
fn one_environment_per_kind() {
    let errors =
        errors_of(json!({"agent": inline(json!({"environments": [{}, {"kind": "web"}]}))}));
    assert_eq!(
        located(&errors),
        [(
            json!(["body", "agent", "environments", 1]),
            "value_error".to_owned()
        )]
    );
    assert_eq!(
        errors[0].msg,
        "An agent has at most one environment per kind; environment 0 is already a 'web' environment"
    );
}

#[test]
fn the_echo_shows_environments_in_the_newest_shape() {
    let parsed = parse(json!({
        "agent": inline(json!({"environments": [
            {"id": "old", "mode": "multimodal", "width": 1200, "height": 900, "start_url": "https://a.example",
             "host": null, "something_new": 1},
        ]})),
    }))
    .unwrap();
    assert_eq!(
        parsed.request_echo["agent"]["environments"],
        json!([{
            "id": "old", "kind": "web", "host": "cloud", "start_url": "https://a.example",
            "headless": false, "session_id": null,
            "mode": {"type": "visual", "width": 1200, "height": 900, "markdown": true},
            "lazy": false, "settle_s": null, "vault_id": null, "browser_profile_id": null,
            "use_default_browser_profile": false, "persist_browser_profile": false, "network": null,
        }])
    );
    // Defaults are filled in too; an absent start page is the blank page the browser opens.
    let parsed = parse(json!({"agent": inline(json!({"environments": [{"mode": "text", "page_chars": 900, "lazy": true, "settle_s": 2}]}))}))
        .unwrap();
    let echoed = &parsed.request_echo["agent"]["environments"][0];
    assert_eq!(echoed["kind"], "web");
    // The SDK's model of a browser environment requires a string id: a missing one echoes as "web".
    assert_eq!(echoed["id"], "web");
    assert_eq!(echoed["start_url"], "about:blank");
    assert_eq!(echoed["mode"], json!({"type": "text", "chunk_size": 900}));
    assert_eq!(echoed["lazy"], true);
    assert_eq!(echoed["settle_s"], 2.0);
    assert!(echoed.get("page_chars").is_none() && echoed.get("width").is_none());
    // A catalog agent's environment too.
    let parsed = parse(json!({"agent": "h/web-surfer"})).unwrap();
    assert_eq!(
        parsed.request_echo["agent"]["environments"][0]["mode"],
        json!({"type": "visual", "width": 1280, "height": 720, "markdown": false})
    );
    assert_eq!(
        parsed.request_echo["agent"]["environments"][0]["start_url"],
        "https://a.example"
    );
}

#[test]
fn every_problem_of_one_environment_is_reported_at_once() {
    let errors = errors_of(json!({"agent": inline(json!({"environments": [
        {"host": "user_device", "vault_id": "v", "start_url": "nope", "mode": {"width": 0}},
    ]}))}));
    let got = located(&errors);
    let at = |key: &str| json!(["body", "agent", "environments", 0, key]);
    for expected in [
        (at("host"), "value_error"),
        (at("vault_id"), "value_error"),
        (at("start_url"), "value_error"),
        (
            json!(["body", "agent", "environments", 0, "mode", "width"]),
            "greater_than",
        ),
    ] {
        assert!(
            got.contains(&(expected.0.clone(), expected.1.to_owned())),
            "missing {expected:?} in {got:?}"
        );
    }
    assert_eq!(got.len(), 4, "{got:?}");
}
