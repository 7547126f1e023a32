//! Environments of an agent (`agent.environments[i]`). This server has no environment
//! runtime yet, so every environment is refused with a sentence saying so, rather than
//! accepted and silently never provisioned. The browser work replaces
//! [`parse_environment`] with a real parser; callers already treat its `Ok` value as
//! the environment's resolved wire form (kind defaulted) and put it in the spec.

use serde_json::Value;

use crate::errors::{FieldError, LocItem};

/// The kind an environment object has when it names none: the SDK's kind-less
/// `Browser` model serializes without `kind`, and its own local router reads that as web.
pub(crate) const DEFAULT_KIND: &str = "web";

/// Gives a kind-less environment object its default kind, so that overrides can select
/// it with `[kind=web]` and the echo shows what the server understood.
pub(crate) fn default_kind(environment: &mut Value) {
    if let Value::Object(fields) = environment
        && !fields.contains_key("kind")
    {
        fields.insert("kind".into(), Value::String(DEFAULT_KIND.into()));
    }
}

/// Parses one environment, a catalog id (string) or an inline object, into its resolved
/// form; `loc` is where it sits in the request.
pub(crate) fn parse_environment(environment: &Value, loc: &[LocItem]) -> Result<Value, FieldError> {
    let msg = match environment {
        Value::String(id) => format!("environment '{id}' is not supported by this server yet"),
        Value::Object(fields) => match fields.get("kind") {
            None | Some(Value::Null) => {
                format!("environment kind '{DEFAULT_KIND}' is not supported by this server yet")
            }
            Some(Value::String(kind)) => {
                format!("environment kind '{kind}' is not supported by this server yet")
            }
            Some(other) => {
                let mut kind_loc = loc.to_vec();
                kind_loc.push("kind".into());
                return Err(FieldError::string_type(kind_loc, other));
            }
        },
        other => {
            return Err(FieldError::value_error(
                loc.to_vec(),
                "An environment is a catalog id (a string) or an Environment object",
                Some(other.clone()),
            ));
        }
    };
    Err(FieldError::value_error(
        loc.to_vec(),
        msg,
        Some(environment.clone()),
    ))
}
