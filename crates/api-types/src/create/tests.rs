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
            json!({"agent": inline(json!({"environments": [{"id": "w"}]}))}),
            json!(["body", "agent", "environments", 0]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": ["h/web"]}))}),
            json!(["body", "agent", "environments", 0]),
            "value_error",
        ),
        (
            json!({"agent": inline(json!({"environments": [{"kind": "desktop", "id": "d"}]}))}),
            json!(["body", "agent", "environments", 0]),
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
        // A catalog agent's own environments are refused just the same.
        (
            json!({"agent": "h/web-surfer"}),
            json!(["body", "agent", "environments", 0]),
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
    let errors = errors_of(
        json!({"agent": inline(json!({"environments": [{"id": "w", "start_url": "https://a"}]}))}),
    );
    assert_eq!(
        errors[0].msg,
        "environment kind 'web' is not supported by this server yet"
    );
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
fn a_selected_environment_is_still_refused_at_its_own_place() {
    let errors = errors_of(json!({
        "agent": "h/web-surfer",
        "overrides": {"agent.environments[kind=web].start_url": "https://b.example"},
    }));
    assert_eq!(
        located(&errors),
        [(
            json!(["body", "agent", "environments", 0]),
            "value_error".to_owned()
        )]
    );
    // The override did land: the refused environment shows the new start page.
    assert_eq!(
        errors[0].input.as_ref().unwrap()["start_url"],
        "https://b.example"
    );
    assert_eq!(errors[0].input.as_ref().unwrap()["kind"], "web");
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
