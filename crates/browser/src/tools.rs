//! The web tools offered to the model (`agent-harness.md` §3), as function tools.

use agentd_domain::{BrowserMode, WebSpec};
use agentd_environment::ToolSpec;
use serde_json::{Value, json};

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters: json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }),
    }
}

fn point(description: &str) -> Value {
    json!({"type": "number", "description": description})
}

/// The tools of `spec`'s mode: every mode navigates; visual mode acts by coordinates,
/// text mode pages through chunks.
pub fn web_tools(spec: &WebSpec) -> Vec<ToolSpec> {
    let mut tools = vec![
        tool(
            "go_to_web",
            "Open a URL in the active tab and wait for it to load.",
            json!({"url": {"type": "string"}}),
            &["url"],
        ),
        tool(
            "go_back_web",
            "Go back in the active tab's history.",
            json!({}),
            &[],
        ),
        tool("refresh_web", "Reload the active tab.", json!({}), &[]),
        tool(
            "switch_tab_web",
            "Switch to the tab with this id, or open a new tab at `url`.",
            json!({"tab_id": {"type": "string"}, "url": {"type": "string"}}),
            &[],
        ),
        tool(
            "close_tab_web",
            "Close a tab (the active one when no id is given).",
            json!({"tab_id": {"type": "string"}}),
            &[],
        ),
        tool(
            "wait_web",
            "Wait for the page to settle.",
            json!({"seconds": {"type": "number", "minimum": 0, "maximum": 60}}),
            &["seconds"],
        ),
    ];
    match spec.mode {
        BrowserMode::Visual { .. } => tools.extend([
            tool(
                "click_web",
                "Click at a point of the viewport (CSS pixels, (0,0) top-left, as in the screenshot).",
                json!({
                    "x": point("x"), "y": point("y"),
                    "button": {"type": "string", "enum": ["left", "right", "middle"]},
                    "clicks": {"type": "integer", "minimum": 1, "maximum": 3},
                }),
                &["x", "y"],
            ),
            tool(
                "write",
                "Type text as key presses; clicks at (x, y) first when given. `clear` (default true) replaces what the field holds; `enter` presses Enter after.",
                json!({
                    "text": {"type": "string"}, "x": point("x"), "y": point("y"),
                    "clear": {"type": "boolean"}, "enter": {"type": "boolean"},
                }),
                &["text"],
            ),
            tool(
                "select_option",
                "Choose an option, by its visible label or value, in the native menu (<select>) at (x, y).",
                json!({"x": point("x"), "y": point("y"), "option": {"type": "string"}}),
                &["x", "y", "option"],
            ),
            tool(
                "move_mouse_web",
                "Move the mouse to (x, y), e.g. to reveal a menu.",
                json!({"x": point("x"), "y": point("y")}),
                &["x", "y"],
            ),
            tool(
                "press_keys_web",
                "Press keys together as one chord, e.g. [\"ctrl\", \"a\"] or [\"enter\"].",
                json!({"keys": {"type": "array", "items": {"type": "string"}, "minItems": 1}}),
                &["keys"],
            ),
            tool(
                "scroll_web",
                "Scroll the page, or the element under (x, y) when given, by `amount` pixels (default 80% of the viewport).",
                json!({
                    "direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
                    "x": point("x"), "y": point("y"), "amount": {"type": "number", "minimum": 1},
                }),
                &["direction"],
            ),
            tool(
                "ctrl_f_web",
                "Scroll to the next match of `query` on the page.",
                json!({"query": {"type": "string"}}),
                &["query"],
            ),
            tool(
                "reader_mode",
                "Read the main content of the page as Markdown.",
                json!({}),
                &[],
            ),
        ]),
        BrowserMode::Text { .. } => tools.extend([
            tool(
                "find_in_page",
                "Jump to the chunk of the page that contains `query`.",
                json!({"query": {"type": "string"}}),
                &["query"],
            ),
            tool(
                "switch_chunk",
                "Show the chunk of the page with this index (0-based).",
                json!({"index": {"type": "integer", "minimum": 0}}),
                &["index"],
            ),
        ]),
    }
    tools
}

#[cfg(test)]
mod tests {
    use agentd_domain::{BrowserMode, WebSpec};

    use super::web_tools;

    fn spec(mode: BrowserMode) -> WebSpec {
        WebSpec {
            id: None,
            start_url: None,
            headless: true,
            mode,
            settle_s: None,
            lazy: false,
        }
    }

    fn names(mode: BrowserMode) -> Vec<String> {
        web_tools(&spec(mode)).into_iter().map(|t| t.name).collect()
    }

    const NAVIGATION: [&str; 6] = [
        "go_to_web",
        "go_back_web",
        "refresh_web",
        "switch_tab_web",
        "close_tab_web",
        "wait_web",
    ];

    #[test]
    fn visual_mode_offers_the_pointer_tools_of_the_harness() {
        let mut expected: Vec<&str> = NAVIGATION.to_vec();
        expected.extend([
            "click_web",
            "write",
            "select_option",
            "move_mouse_web",
            "press_keys_web",
            "scroll_web",
            "ctrl_f_web",
            "reader_mode",
        ]);
        assert_eq!(
            names(BrowserMode::Visual {
                width: 1280,
                height: 720,
                markdown: true
            }),
            expected
        );
    }

    #[test]
    fn text_mode_pages_through_chunks_instead() {
        let mut expected: Vec<&str> = NAVIGATION.to_vec();
        expected.extend(["find_in_page", "switch_chunk"]);
        assert_eq!(names(BrowserMode::Text { chunk_size: 100 }), expected);
    }

    #[test]
    fn every_schema_is_a_closed_object_with_known_required_fields() {
        let visual = web_tools(&spec(BrowserMode::Visual {
            width: 800,
            height: 600,
            markdown: false,
        }));
        let text = web_tools(&spec(BrowserMode::Text { chunk_size: 100 }));
        for tool in visual.into_iter().chain(text) {
            let schema = &tool.parameters;
            assert_eq!(schema["type"], "object", "{}", tool.name);
            assert_eq!(schema["additionalProperties"], false, "{}", tool.name);
            for required in schema["required"].as_array().unwrap() {
                let field = required.as_str().unwrap();
                assert!(
                    schema["properties"].get(field).is_some(),
                    "{}: {field}",
                    tool.name
                );
            }
        }
    }
}
