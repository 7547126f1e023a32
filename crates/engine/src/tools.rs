//! The tools a model is offered (`agent-harness.md` §3) and how a call to one is read.

use agentd_domain::{AgentSpec, Outcome};
use agentd_model_client::ToolSpec;
use serde_json::{Value, json};

use crate::answer_format;

pub const ANSWER: &str = "answer";
pub const THINK: &str = "think";

fn outcome_names() -> Vec<&'static str> {
    Outcome::ALL.iter().map(|o| o.as_str()).collect()
}

pub fn answer_tool(agent: &AgentSpec) -> ToolSpec {
    let description = if agent.answer_format.is_some() {
        "Ends the task with your final answer. `answer` must be a JSON object matching the required answer format."
    } else {
        "Ends the task with your final answer, and says how far you got."
    };
    ToolSpec {
        name: ANSWER.to_string(),
        description: description.to_string(),
        parameters: answer_format::answer_tool_parameters(
            agent.answer_format.as_ref(),
            &outcome_names(),
        ),
    }
}

fn think_tool() -> ToolSpec {
    ToolSpec {
        name: THINK.to_string(),
        description: "Writes down a thought (a plan, a note to yourself). It does nothing else."
            .to_string(),
        parameters: json!({
            "type": "object",
            "properties": {"thought": {"type": "string"}},
            "required": ["thought"]
        }),
    }
}

/// Every tool of the agent, built-in tools first.
pub fn all_tools(agent: &AgentSpec) -> Vec<ToolSpec> {
    let mut tools = vec![answer_tool(agent), think_tool()];
    tools.extend(agent.tools.iter().map(|tool| {
        ToolSpec {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool
                .input_schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        }
    }));
    tools
}

/// A call's arguments as an object: models sometimes send a JSON string, or nothing.
pub fn arguments_object(arguments: &Value) -> Result<serde_json::Map<String, Value>, String> {
    match arguments {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(serde_json::Map::new()),
        Value::String(raw) if raw.trim().is_empty() => Ok(serde_json::Map::new()),
        Value::String(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!(
                "the arguments are not a JSON object: {}",
                truncate(raw, 200)
            )),
        },
        other => Err(format!("the arguments are not a JSON object: {other}")),
    }
}

pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max_chars).collect();
        cut.push('…');
        cut
    }
}
