//! JSON Schema for final answers (`answer_format`) and custom tool arguments. Schemas
//! come from API clients, so they are compiled without any remote reference resolver:
//! a `$ref` to a URL is refused at create time and never fetched.

use serde_json::Value;

/// Checks that a schema compiles; the error says why not.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a JSON Schema must be an object".to_string());
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| format!("invalid JSON Schema: {e}"))
}

/// Validates `instance` against `schema`; the error lists what does not match, in a
/// form the model can act on.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("invalid JSON Schema: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(instance)
        .take(8)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("at {path}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The `answer` tool's parameters: the answer itself has the `answer_format` schema.
/// Pydantic writes `$defs` at the schema's root and refers to them as `#/$defs/...`;
/// nested under `properties.answer` those references would dangle, so the definitions
/// move to the root of the parameters schema where the references find them.
pub fn answer_tool_parameters(answer_format: Option<&Value>, outcomes: &[&str]) -> Value {
    let mut answer_schema = answer_format.cloned().unwrap_or_else(
        || serde_json::json!({"type": "string", "description": "the final answer"}),
    );
    let mut parameters = serde_json::json!({
        "type": "object",
        "properties": {
            "outcome": {
                "type": "string",
                "enum": outcomes,
                "description": "success: fully done; partial: some of it; infeasible: cannot be done as asked; blocked: an external obstacle stopped you"
            }
        },
        "required": ["answer", "outcome"]
    });
    for key in ["$defs", "definitions"] {
        if let Some(defs) = answer_schema.as_object_mut().and_then(|o| o.remove(key)) {
            parameters[key] = defs;
        }
    }
    parameters["properties"]["answer"] = answer_schema;
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pydantic_city() -> Value {
        json!({
            "$defs": {"Country": {"properties": {"name": {"title": "Name", "type": "string"}},
                                  "required": ["name"], "title": "Country", "type": "object"}},
            "properties": {"city": {"title": "City", "type": "string"},
                           "country": {"$ref": "#/$defs/Country"}},
            "required": ["city", "country"], "title": "City", "type": "object"
        })
    }

    #[test]
    fn pydantic_schemas_with_defs_validate() {
        let schema = pydantic_city();
        check_schema(&schema).unwrap();
        validate(
            &schema,
            &json!({"city": "Paris", "country": {"name": "France"}}),
        )
        .unwrap();
        let err = validate(&schema, &json!({"city": "Paris", "country": {}})).unwrap_err();
        assert!(err.contains("name"), "{err}");
    }

    #[test]
    fn remote_refs_are_refused_not_fetched() {
        let schema = json!({"$ref": "http://127.0.0.1:9/schema.json"});
        assert!(check_schema(&schema).is_err());
    }

    #[test]
    fn answer_tool_keeps_refs_resolvable() {
        let params = answer_tool_parameters(Some(&pydantic_city()), &["success"]);
        assert!(params["$defs"]["Country"].is_object());
        assert!(params["properties"]["answer"].get("$defs").is_none());
        let answer_call = json!({"answer": {"city": "Paris", "country": {"name": "France"}}, "outcome": "success"});
        validate(&params, &answer_call).unwrap();
        assert!(
            validate(
                &params,
                &json!({"answer": {"city": "Paris"}, "outcome": "success"})
            )
            .is_err()
        );
    }
}
