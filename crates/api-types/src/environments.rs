//! Environments of an agent (`agent.environments[i]`): inline `web` specs, of either
//! generation of the Browser shape, parsed into the engine's [`WebSpec`], and written
//! back in the newest shape for the `Session.request` echo.
//!
//! What this server cannot serve (other kinds, catalog ids, user-device browsers, vaults,
//! profiles, proxies, attaching to a running browser) is a 422 at the field that asks for
//! it: accepting it and then never honouring it would make a run quietly do something
//! else than the caller described. Keys this server does not know are accepted, as every
//! SDK model allows extra keys, and left out of the echo.

use agentd_domain::{BrowserMode, EnvironmentSpec, WebSpec};
use serde_json::{Map, Value, json};

use crate::errors::{FieldError, LocItem, at};
use crate::validate::{self, Errors, present};

/// The kind an environment object has when it names none: the SDK's kind-less
/// `Browser` model serializes without `kind`, and its own local router reads that as web.
pub(crate) const DEFAULT_KIND: &str = "web";

/// Largest viewport side accepted, in CSS pixels: beyond it a screenshot costs the model
/// more than it can read, and Chromium's own limits come into view.
const MAX_VIEWPORT_SIDE: u32 = 4096;

/// The longest settle wait, in seconds: the same cap as the browser's own `wait_web`.
const MAX_SETTLE_S: f64 = 60.0;

const HOSTS: &[&str] = &["cloud", "user_device"];
/// Legacy `mode` strings; `multimodal` is visual with the page text added.
const LEGACY_MODES: &[&str] = &["visual", "multimodal", "text"];
const MODE_TYPES: &[&str] = &["visual", "text"];

/// Keys whose only served value is null, and why another value is refused.
const REFUSED_UNLESS_NULL: &[(&str, &str)] = &[
    (
        "session_id",
        "session_id: attaching to an existing browser is not supported by this server",
    ),
    (
        "vault_id",
        "vault_id: vaults are not supported by this server",
    ),
    (
        "browser_profile_id",
        "browser_profile_id: browser profiles are not supported by this server",
    ),
    (
        "network",
        "network: browser network settings (proxies) are not supported by this server",
    ),
];

/// Keys whose only served value is false (or null).
const REFUSED_UNLESS_FALSE: &[(&str, &str)] = &[
    (
        "use_default_browser_profile",
        "use_default_browser_profile: browser profiles are not supported by this server",
    ),
    (
        "persist_browser_profile",
        "persist_browser_profile: browser profiles are not supported by this server",
    ),
];

/// Gives a kind-less environment object its default kind, so that overrides can select
/// it with `[kind=web]` and the echo shows what the server understood. A null `kind` is
/// absent, as null is for every optional field.
pub(crate) fn default_kind(environment: &mut Value) {
    if let Value::Object(fields) = environment
        && present(fields, "kind").is_none()
    {
        fields.insert("kind".into(), Value::String(DEFAULT_KIND.into()));
    }
}

/// The wire name of an environment's kind, for the one-per-kind rule.
pub(crate) fn kind(environment: &EnvironmentSpec) -> &'static str {
    match environment {
        EnvironmentSpec::Web(_) => "web",
    }
}

/// Parses one environment, a catalog id (string) or an inline object, into the spec the
/// engine runs; `loc` is where it sits in the request. There is no environment catalog
/// yet, so an id never resolves.
pub(crate) fn parse_environment(
    environment: &Value,
    loc: &[LocItem],
) -> Result<EnvironmentSpec, Vec<FieldError>> {
    match environment {
        Value::String(id) => Err(vec![FieldError::value_error(
            loc.to_vec(),
            format!("environment '{id}' is not in this server's catalog"),
            Some(environment.clone()),
        )]),
        Value::Object(fields) => {
            let kind_loc = at(loc, "kind");
            match present(fields, "kind") {
                None => {}
                Some(Value::String(kind)) if kind == DEFAULT_KIND => {}
                Some(Value::String(kind)) => {
                    return Err(vec![FieldError::value_error(
                        kind_loc,
                        format!("environment kind '{kind}' is not supported by this server"),
                        Some(Value::String(kind.clone())),
                    )]);
                }
                Some(other) => return Err(vec![FieldError::string_type(kind_loc, other)]),
            }
            parse_web(fields, loc).map(EnvironmentSpec::Web)
        }
        other => Err(vec![FieldError::value_error(
            loc.to_vec(),
            "An environment is a catalog id (a string) or an Environment object",
            Some(other.clone()),
        )]),
    }
}

/// A `web` environment. `id` is optional: H requires it of catalog entries, but inline
/// specs written by hand often leave it out, and nothing here looks it up. An absent
/// `headless` is H's default, false; the browser runs headless either way, so the value
/// is only kept for the echo.
fn parse_web(fields: &Map<String, Value>, here: &[LocItem]) -> Result<WebSpec, Vec<FieldError>> {
    let mut errors = Errors::default();
    let id = errors.optional(fields, "id", here, |value, loc| {
        validate::non_empty_string(value, loc).map(str::to_owned)
    });
    match present(fields, "host") {
        None => {}
        Some(host) if host == "cloud" => {}
        Some(host) if host == "user_device" => errors.push(FieldError::value_error(
            at(here, "host"),
            "host: user-device browsers are not supported by this server",
            Some(host.clone()),
        )),
        Some(host) => errors.push(FieldError::enum_value(
            at(here, "host"),
            HOSTS,
            host.clone(),
        )),
    }
    let start_url = errors.optional(fields, "start_url", here, parse_start_url);
    let headless = errors
        .optional(fields, "headless", here, validate::boolean)
        .unwrap_or(false);
    let lazy = errors
        .optional(fields, "lazy", here, validate::boolean)
        .unwrap_or(false);
    let settle_s = errors.optional(fields, "settle_s", here, parse_settle_s);
    for (key, why) in REFUSED_UNLESS_NULL {
        if let Some(value) = present(fields, key) {
            errors.push(FieldError::value_error(
                at(here, *key),
                *why,
                Some(value.clone()),
            ));
        }
    }
    for (key, why) in REFUSED_UNLESS_FALSE {
        if errors.optional(fields, key, here, validate::boolean) == Some(true) {
            errors.push(FieldError::value_error(
                at(here, *key),
                *why,
                Some(Value::Bool(true)),
            ));
        }
    }
    let mode = errors.take_all(parse_mode(fields, here));
    match mode {
        Some(mode) if errors.is_empty() => Ok(WebSpec {
            id,
            start_url,
            headless,
            mode,
            settle_s,
            lazy,
        }),
        _ => Err(errors.0),
    }
}

/// An absolute http(s) URL or `about:blank`: the browser opens nothing else, and a
/// relative or mistyped URL would otherwise fail only once the session runs.
fn parse_start_url(value: &Value, loc: &[LocItem]) -> Result<String, FieldError> {
    let url = validate::string(value, loc)?;
    if url == "about:blank" || is_http_url(url) {
        Ok(url.to_owned())
    } else {
        Err(FieldError::value_error(
            loc.to_vec(),
            "start_url must be an absolute http:// or https:// URL, or about:blank",
            Some(value.clone()),
        ))
    }
}

/// A scheme of `http` or `https`, a non-empty host, a numeric port if any, and no
/// whitespace: enough to catch what people mistype, without a URL parser.
fn is_http_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return false,
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    !host.is_empty()
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_settle_s(value: &Value, loc: &[LocItem]) -> Result<f64, FieldError> {
    let seconds = validate::number(value, loc)?;
    if seconds < 0.0 {
        return Err(FieldError::new(
            loc.to_vec(),
            "greater_than_equal",
            "Input should be greater than or equal to 0",
            Some(value.clone()),
        ));
    }
    if seconds > MAX_SETTLE_S {
        return Err(FieldError::new(
            loc.to_vec(),
            "less_than_equal",
            format!("Input should be less than or equal to {MAX_SETTLE_S}"),
            Some(value.clone()),
        ));
    }
    Ok(seconds)
}

/// The mode requested, before its sizes are read.
enum Requested<'a> {
    Visual {
        /// The mode object, when `mode` is the newest shape.
        object: Option<&'a Map<String, Value>>,
        /// The default of `markdown`: true for legacy `multimodal`.
        markdown: bool,
    },
    Text {
        object: Option<&'a Map<String, Value>>,
    },
}

/// `mode`, in either shape: the newest `{"type": "visual"|"text", ...}` (a missing
/// `type` is visual, the default mode), or a legacy string with the sizes beside it
/// (`width`/`height` for visual and multimodal, `page_chars` for text).
///
/// The two shapes may be mixed, as old code given a new mode object would: a value in
/// the mode object wins, and a top-level `width`, `height` or `page_chars` fills in what
/// the mode object lacks. Top-level `width`/`height` are checked but unused in text mode,
/// since the legacy model always sends them; `page_chars` outside text mode, and a
/// mode-object key of the other mode, are refused rather than ignored.
fn parse_mode(
    fields: &Map<String, Value>,
    here: &[LocItem],
) -> Result<BrowserMode, Vec<FieldError>> {
    let mode_loc = at(here, "mode");
    let requested = match present(fields, "mode") {
        None => Requested::Visual {
            object: None,
            markdown: false,
        },
        Some(Value::String(name)) => match name.as_str() {
            "visual" => Requested::Visual {
                object: None,
                markdown: false,
            },
            "multimodal" => Requested::Visual {
                object: None,
                markdown: true,
            },
            "text" => Requested::Text { object: None },
            _ => {
                return Err(vec![FieldError::enum_value(
                    mode_loc,
                    LEGACY_MODES,
                    Value::String(name.clone()),
                )]);
            }
        },
        Some(Value::Object(object)) => match present(object, "type") {
            None => Requested::Visual {
                object: Some(object),
                markdown: false,
            },
            Some(kind) if kind == "visual" => Requested::Visual {
                object: Some(object),
                markdown: false,
            },
            Some(kind) if kind == "text" => Requested::Text {
                object: Some(object),
            },
            Some(kind) => {
                return Err(vec![FieldError::enum_value(
                    at(&mode_loc, "type"),
                    MODE_TYPES,
                    kind.clone(),
                )]);
            }
        },
        Some(other) => {
            return Err(vec![FieldError::new(
                mode_loc,
                "model_type",
                "Input should be a BrowserMode object or one of 'visual', 'multimodal' or 'text'",
                Some(other.clone()),
            )]);
        }
    };

    let empty = Map::new();
    let mut errors = Errors::default();
    let top_width = errors.optional(fields, "width", here, viewport_side);
    let top_height = errors.optional(fields, "height", here, viewport_side);
    let mode = match requested {
        Requested::Visual {
            object,
            markdown: markdown_default,
        } => {
            if let Some(page_chars) = present(fields, "page_chars") {
                errors.push(FieldError::value_error(
                    at(here, "page_chars"),
                    "page_chars only applies to mode 'text'",
                    Some(page_chars.clone()),
                ));
            }
            let object = object.unwrap_or(&empty);
            refuse_other_mode_keys(object, &mode_loc, &["chunk_size"], "text", &mut errors);
            let width = errors.optional(object, "width", &mode_loc, viewport_side);
            let height = errors.optional(object, "height", &mode_loc, viewport_side);
            let markdown = errors.optional(object, "markdown", &mode_loc, validate::boolean);
            BrowserMode::Visual {
                width: width.or(top_width).unwrap_or(BrowserMode::DEFAULT_WIDTH),
                height: height.or(top_height).unwrap_or(BrowserMode::DEFAULT_HEIGHT),
                markdown: markdown.unwrap_or(markdown_default),
            }
        }
        Requested::Text { object } => {
            let object = object.unwrap_or(&empty);
            refuse_other_mode_keys(
                object,
                &mode_loc,
                &["width", "height", "markdown"],
                "visual",
                &mut errors,
            );
            let top_page_chars = errors.optional(fields, "page_chars", here, chunk_size);
            let chunk = errors.optional(object, "chunk_size", &mode_loc, chunk_size);
            BrowserMode::Text {
                chunk_size: chunk
                    .or(top_page_chars)
                    .unwrap_or(BrowserMode::DEFAULT_CHUNK_SIZE),
            }
        }
    };
    errors.into_result(mode)
}

/// A key of the other mode inside a mode object would be silently meaningless, so it
/// is refused at its place.
fn refuse_other_mode_keys(
    object: &Map<String, Value>,
    mode_loc: &[LocItem],
    keys: &[&str],
    other_mode: &str,
    errors: &mut Errors,
) {
    for key in keys {
        if let Some(value) = present(object, key) {
            errors.push(FieldError::value_error(
                at(mode_loc, *key),
                format!("{key} only applies to {other_mode} mode"),
                Some(value.clone()),
            ));
        }
    }
}

fn viewport_side(value: &Value, loc: &[LocItem]) -> Result<u32, FieldError> {
    validate::positive_integer(value, loc, i128::from(MAX_VIEWPORT_SIDE)).map(|n| n as u32)
}

fn chunk_size(value: &Value, loc: &[LocItem]) -> Result<u32, FieldError> {
    validate::positive_integer(value, loc, i128::from(u32::MAX)).map(|n| n as u32)
}

/// The environment as `Session.request` shows it: the newest Browser shape with every
/// key present, whatever shape the request used. The refused keys show the only value
/// served (null or false), `host` is always `cloud`, and an absent `start_url` shows
/// the page the browser opens, `about:blank`, keeping the key a string as H's schema
/// types it.
/// An inline environment may omit `id`, but the SDK's `Browser` model requires a string
/// there (a null makes the whole `Session` unparseable), so the echo names it `web`.
pub(crate) fn to_wire(web: &WebSpec) -> Value {
    let mode = match web.mode {
        BrowserMode::Visual {
            width,
            height,
            markdown,
        } => json!({"type": "visual", "width": width, "height": height, "markdown": markdown}),
        BrowserMode::Text { chunk_size } => json!({"type": "text", "chunk_size": chunk_size}),
    };
    json!({
        "id": web.id.as_deref().unwrap_or(DEFAULT_KIND),
        "kind": "web",
        "host": "cloud",
        "start_url": web.start_url.as_deref().unwrap_or("about:blank"),
        "headless": web.headless,
        "session_id": null,
        "mode": mode,
        "lazy": web.lazy,
        "settle_s": web.settle_s,
        "vault_id": null,
        "browser_profile_id": null,
        "use_default_browser_profile": false,
        "persist_browser_profile": false,
        "network": null,
    })
}
