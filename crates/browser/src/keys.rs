//! Key names (`wire-format.md` §9 `Key`) as CDP key events.

/// One key as `Input.dispatchKeyEvent` wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub key: String,
    pub code: String,
    pub key_code: u32,
    /// The text a press types, for printable keys and Enter.
    pub text: Option<String>,
    /// The modifier bit when the key is a modifier (Alt 1, Ctrl 2, Meta 4, Shift 8).
    pub modifier: u32,
}

fn named(key: &str, code: &str, key_code: u32, text: Option<&str>, modifier: u32) -> Key {
    Key {
        key: key.into(),
        code: code.into(),
        key_code,
        text: text.map(str::to_string),
        modifier,
    }
}

/// Parses a key name; `None` for a name that is not a key.
pub fn parse(name: &str) -> Option<Key> {
    let lower = name.to_ascii_lowercase();
    let key = match lower.as_str() {
        "enter" | "return" => named("Enter", "Enter", 13, Some("\r"), 0),
        "tab" => named("Tab", "Tab", 9, None, 0),
        "esc" | "escape" => named("Escape", "Escape", 27, None, 0),
        "backspace" => named("Backspace", "Backspace", 8, None, 0),
        "delete" | "del" => named("Delete", "Delete", 46, None, 0),
        "space" => named(" ", "Space", 32, Some(" "), 0),
        "up" => named("ArrowUp", "ArrowUp", 38, None, 0),
        "down" => named("ArrowDown", "ArrowDown", 40, None, 0),
        "left" => named("ArrowLeft", "ArrowLeft", 37, None, 0),
        "right" => named("ArrowRight", "ArrowRight", 39, None, 0),
        "home" => named("Home", "Home", 36, None, 0),
        "end" => named("End", "End", 35, None, 0),
        "pageup" | "pgup" => named("PageUp", "PageUp", 33, None, 0),
        "pagedown" | "pgdn" => named("PageDown", "PageDown", 34, None, 0),
        "insert" => named("Insert", "Insert", 45, None, 0),
        "shift" | "shiftleft" => named("Shift", "ShiftLeft", 16, None, 8),
        "shiftright" => named("Shift", "ShiftRight", 16, None, 8),
        "ctrl" | "ctrlleft" | "control" | "universal_command" => {
            named("Control", "ControlLeft", 17, None, 2)
        }
        "ctrlright" => named("Control", "ControlRight", 17, None, 2),
        "alt" | "altleft" | "option" | "optionleft" => named("Alt", "AltLeft", 18, None, 1),
        "altright" | "optionright" => named("Alt", "AltRight", 18, None, 1),
        "command" | "win" | "winleft" | "meta" => named("Meta", "MetaLeft", 91, None, 4),
        "winright" => named("Meta", "MetaRight", 92, None, 4),
        "capslock" => named("CapsLock", "CapsLock", 20, None, 0),
        "numlock" => named("NumLock", "NumLock", 144, None, 0),
        "scrolllock" => named("ScrollLock", "ScrollLock", 145, None, 0),
        other => {
            if let Some(n) = other.strip_prefix('f').and_then(|n| n.parse::<u32>().ok())
                && (1..=24).contains(&n)
            {
                let name = format!("F{n}");
                return Some(named(&name, &name, 111 + n, None, 0));
            }
            if let Some(n) = other
                .strip_prefix("num")
                .and_then(|n| n.parse::<u32>().ok())
                && n <= 9
            {
                let digit = n.to_string();
                return Some(named(
                    &digit,
                    &format!("Numpad{n}"),
                    96 + n,
                    Some(&digit),
                    0,
                ));
            }
            return printable(name);
        }
    };
    Some(key)
}

/// A single printable ASCII character.
fn printable(name: &str) -> Option<Key> {
    let mut chars = name.chars();
    let c = chars.next()?;
    if chars.next().is_some() || !(' '..='~').contains(&c) {
        return None;
    }
    let upper = c.to_ascii_uppercase();
    let (code, key_code) = if c.is_ascii_alphabetic() {
        (format!("Key{upper}"), upper as u32)
    } else if c.is_ascii_digit() {
        (format!("Digit{c}"), c as u32)
    } else {
        (String::new(), 0)
    };
    Some(Key {
        key: c.to_string(),
        code,
        key_code,
        text: Some(c.to_string()),
        modifier: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_keys_and_modifiers() {
        assert_eq!(parse("Enter").unwrap().text.as_deref(), Some("\r"));
        assert_eq!(parse("ctrl").unwrap().modifier, 2);
        assert_eq!(parse("universal_command").unwrap().key, "Control");
        assert_eq!(parse("shift").unwrap().modifier, 8);
        assert_eq!(parse("a").unwrap().code, "KeyA");
        assert_eq!(parse("a").unwrap().key_code, 65);
        assert_eq!(parse("7").unwrap().code, "Digit7");
        assert_eq!(parse("f5").unwrap().key, "F5");
        assert_eq!(parse("pgdn").unwrap().key, "PageDown");
        assert!(parse("f25").is_none());
        assert!(parse("nosuchkey").is_none());
        assert!(parse("é").is_none());
    }
}
