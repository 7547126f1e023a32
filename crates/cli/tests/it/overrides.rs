//! `overrides` on a catalog agent, through HTTP: what the session echoes and what the
//! model is actually given.

use serde_json::{Value, json};

use crate::common::{Options, Server, script};
use crate::helpers::{assert_422_at, id_of};

const CONFIG: &str = r#"
[[agents]]
name = "acme/base"
description = "A catalog agent."
environments = []
instructions = "Base instructions: be brief."
"#;

async fn catalog_server() -> Server {
    Server::start_with(Options {
        config: Some(CONFIG.to_string()),
        ..Default::default()
    })
    .await
}

fn city_format() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

fn lookup_tool() -> Value {
    json!({"name": "lookup", "description": "Looks a city up.",
           "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}})
}

#[tokio::test]
async fn overrides_patch_the_catalog_agent_the_model_runs() {
    let server = catalog_server().await;
    script(
        &server,
        "overridden run",
        vec![
            json!({"tool_calls": [{"name": "answer", "arguments": {"answer": {"city": "Paris"}, "outcome": "success"}}]}),
        ],
    );
    let overrides = json!({
        "agent.instructions": "Speak like a ship's captain.",
        "agent.answer_format": city_format(),
        "agent.tools": [lookup_tool()],
    });
    let session = server
        .create(json!({"agent": "acme/base", "messages": "overridden run", "overrides": overrides}))
        .await;
    let id = id_of(&session);

    // The echoed request carries the resolved agent with the patches applied.
    let echoed = &session["request"]["agent"];
    assert_eq!(echoed["name"], "acme/base");
    assert_eq!(echoed["description"], "A catalog agent.");
    assert_eq!(echoed["instructions"], "Speak like a ship's captain.");
    assert_eq!(echoed["answer_format"], city_format());
    assert_eq!(echoed["tools"], json!([lookup_tool()]));
    assert_eq!(session["request"]["overrides"], overrides);
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["request"], session["request"]);

    let status = server.wait_for(&id, "completed").await;
    assert_eq!(status["outcome"], "success");
    let (_, full) = server
        .call("GET", &format!("/api/v2/sessions/{id}"), None)
        .await;
    assert_eq!(full["latest_answer"], json!({"city": "Paris"}));

    // And the model was given them: the new instructions instead of the catalog's,
    // the answer format, and the extra tool next to the built-in ones.
    let request = &server.model.requests()[0];
    let system = request["messages"][0]["content"]
        .as_str()
        .expect("a system prompt");
    assert_eq!(request["messages"][0]["role"], "system");
    assert!(system.contains("Speak like a ship's captain."), "{system}");
    assert!(!system.contains("Base instructions"), "{system}");
    assert!(system.contains("\"city\""), "{system}");
    let tools = request["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["answer", "think", "lookup"]);
    assert_eq!(
        tools[2]["function"]["parameters"],
        lookup_tool()["input_schema"]
    );
    assert_eq!(
        tools[0]["function"]["parameters"]["properties"]["answer"],
        city_format()
    );
}

#[tokio::test]
async fn without_overrides_the_catalog_agent_runs_as_configured() {
    let server = catalog_server().await;
    script(
        &server,
        "plain run",
        vec![
            json!({"tool_calls": [{"name": "answer", "arguments": {"answer": "ok", "outcome": "success"}}]}),
        ],
    );
    let session = server
        .create(json!({"agent": "acme/base", "messages": "plain run"}))
        .await;
    assert_eq!(
        session["request"]["agent"]["instructions"],
        "Base instructions: be brief."
    );
    assert_eq!(session["request"]["agent"]["tools"], Value::Null);
    server.wait_for(&id_of(&session), "completed").await;
    let request = &server.model.requests()[0];
    let system = request["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("Base instructions: be brief."), "{system}");
    let names: Vec<&str> = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["answer", "think"]);
}

#[tokio::test]
async fn a_bad_override_is_a_422_at_its_own_key() {
    let server = catalog_server().await;
    let cases = [
        (
            json!({"agent.bogus": 1}),
            json!(["body", "overrides", "agent.bogus"]),
        ),
        (
            json!({"nothing.here": "x"}),
            json!(["body", "overrides", "nothing.here"]),
        ),
        (
            json!({"agent.instructions": "fine", "agent..tools": []}),
            json!(["body", "overrides", "agent..tools"]),
        ),
        (
            json!({"agent.environments[kind=web].start_url": "https://example.com"}),
            json!([
                "body",
                "overrides",
                "agent.environments[kind=web].start_url"
            ]),
        ),
        (json!(["agent.instructions"]), json!(["body", "overrides"])),
    ];
    for (overrides, loc) in cases {
        let (code, body) = server
            .call(
                "POST",
                "/api/v2/sessions",
                Some(json!({"agent": "acme/base", "messages": "x", "overrides": overrides})),
            )
            .await;
        assert_422_at(code, &body, loc);
    }
    // A value of the wrong type is named at the override that brought it.
    let (code, body) = server
        .call(
            "POST",
            "/api/v2/sessions",
            Some(json!({"agent": "acme/base", "messages": "x",
                        "overrides": {"agent.instructions": 42}})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let locs: Vec<&Value> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["loc"])
        .collect();
    let want = json!(["body", "overrides", "agent.instructions"]);
    let want = want.as_array().unwrap();
    assert!(
        locs.iter().any(|loc| loc
            .as_array()
            .is_some_and(|loc| loc.len() >= want.len() && loc[..want.len()] == want[..])),
        "{body}"
    );
    let (_, list) = server.call("GET", "/api/v2/sessions", None).await;
    assert_eq!(list["total"], 0);
}
