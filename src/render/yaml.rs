//! A YAML emitter for YAML 1.1 readers (PyYAML: Patroni, cloud-init).
//!
//! Every string value is single-quoted, so no value can change type on the
//! way (`on`, `0755`, `1e3`, `null`, `~` stay strings) and no value can start
//! a comment, an alias or a new key. Mapping keys are written plain only when
//! they are unambiguous words. Map order is the order the caller built,
//! which is fixed: output is deterministic.

use serde_json::Value;

/// Serializes a value as a YAML document (block style, two-space indent).
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out, Position::Root);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Position {
    Root,
    MapValue,
    SeqItem,
}

fn emit(value: &Value, indent: usize, out: &mut String, pos: Position) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            if pos == Position::MapValue {
                out.push('\n');
            }
            for (i, (k, v)) in map.iter().enumerate() {
                if !(pos == Position::SeqItem && i == 0) {
                    out.push_str(&pad);
                }
                out.push_str(&key(k));
                out.push(':');
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        emit(v, indent + 2, out, Position::MapValue)
                    }
                    Value::Array(a) if !a.is_empty() => emit(v, indent, out, Position::MapValue),
                    _ => {
                        out.push(' ');
                        out.push_str(&scalar(v));
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            if pos == Position::MapValue {
                out.push('\n');
            }
            for (i, item) in items.iter().enumerate() {
                if !(pos == Position::SeqItem && i == 0) {
                    out.push_str(&pad);
                }
                out.push_str("- ");
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        emit(item, indent + 2, out, Position::SeqItem)
                    }
                    Value::Array(a) if !a.is_empty() => {
                        emit(item, indent + 2, out, Position::SeqItem)
                    }
                    _ => {
                        out.push_str(&scalar(item));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            if pos == Position::SeqItem || pos == Position::Root {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A quoted YAML scalar: single quotes (the only escape is `''`), or double
/// quotes with escapes when the text holds a line break or another control
/// character, which single quotes would fold into spaces.
pub(crate) fn quote(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Words a YAML 1.1 reader would not read back as the same string key.
const AMBIGUOUS: &[&str] = &[
    "y", "yes", "n", "no", "on", "off", "true", "false", "null", "~",
];

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !AMBIGUOUS.contains(&k.to_ascii_lowercase().as_str());
    if plain { k.to_string() } else { quote(k) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_look_like_other_types_are_quoted() {
        let v = json!({"a": "on", "b": "0755", "c": 10, "d": true, "on": "x", "e": "it's"});
        assert_eq!(
            to_yaml(&v),
            "a: 'on'\nb: '0755'\nc: 10\nd: true\n'on': 'x'\ne: 'it''s'\n"
        );
    }

    #[test]
    fn control_characters_use_double_quotes() {
        assert_eq!(quote("a\nb\t\"c\\"), "\"a\\nb\\t\\\"c\\\\\"");
    }

    #[test]
    fn nested_blocks() {
        let v = json!({"m": {"k": [1, {"x": "y", "z": [ "a" ]}], "e": {}}, "l": []});
        assert_eq!(
            to_yaml(&v),
            "m:\n  k:\n  - 1\n  - x: 'y'\n    z:\n    - 'a'\n  e: {}\nl: []\n"
        );
    }
}
