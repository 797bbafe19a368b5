//! Every string field of the spec language, found by walking the JSON schema
//! (not listed by hand), given each hostile value: a newline, quotes, `#`,
//! `%`, `{{ }}`, a NUL, 10 KB and a leading `-`. Each must be rejected with a
//! positioned diagnostic at the field, or be built and land only where its
//! consumer reads it as plain data.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::support;

const BASE: &str = "tests/errors/base.yml";

/// One step from a node of the document to a child.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    /// The first item of an array.
    Item,
    /// A key of a map with free keys (`sysctl`, `parameters`).
    MapKey,
    /// A value of such a map.
    MapValue,
}

fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/$defs/");
            &schema["$defs"][name]
        }
        None => node,
    }
}

fn is_free_string(node: &Value) -> bool {
    let string = match node.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    string && node.get("enum").is_none() && node.get("const").is_none()
}

/// Every path from the root to a free-form string, each `$ref` walked once.
fn string_fields(
    schema: &Value,
    node: &Value,
    path: &mut Vec<Step>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Vec<Step>>,
) {
    if let Some(r) = node.get("$ref").and_then(Value::as_str)
        && !seen.insert(r.to_string())
    {
        // A type met again (Settings at every layer) has the same fields;
        // strings themselves are checked at every place they occur.
        if !is_free_string(resolve(schema, node)) {
            return;
        }
    }
    let node = resolve(schema, node);
    if is_free_string(node) {
        out.push(path.clone());
        return;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for alt in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            string_fields(schema, alt, path, seen, out);
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            path.push(Step::Key(k.clone()));
            string_fields(schema, v, path, seen, out);
            path.pop();
        }
    }
    if let Some(items) = node.get("items").filter(|i| i.is_object()) {
        path.push(Step::Item);
        string_fields(schema, items, path, seen, out);
        path.pop();
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        path.push(Step::MapValue);
        string_fields(schema, values, path, seen, out);
        path.pop();
        if let Some(names) = node.get("propertyNames") {
            path.push(Step::MapKey);
            string_fields(schema, names, path, seen, out);
            path.pop();
        }
    }
}

/// A key that every map of the spec with free keys accepts (a sysctl key and a GUC name).
const MAP_KEY: &str = "a.b";

/// Sets `value` at `path` in `doc`, creating what is missing; returns the
/// JSON pointer of the node set and the value that was there, if any.
fn place(doc: &mut Value, path: &[Step], value: &str) -> (String, Option<String>) {
    let mut node = doc;
    let mut pointer = String::new();
    for (i, step) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let fresh = || match path.get(i + 1) {
            Some(Step::Item) => Value::Array(Vec::new()),
            Some(_) => Value::Object(Map::new()),
            None => Value::Null,
        };
        match step {
            Step::Key(k) => {
                pointer.push('/');
                pointer.push_str(k);
                let obj = node
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{pointer}: not a mapping"));
                if last {
                    let old = obj.insert(k.clone(), Value::String(value.into()));
                    return (pointer, old.and_then(|v| v.as_str().map(str::to_string)));
                }
                node = obj.entry(k.clone()).or_insert_with(fresh);
            }
            Step::Item => {
                pointer.push_str("/0");
                let arr = node
                    .as_array_mut()
                    .unwrap_or_else(|| panic!("{pointer}: not a sequence"));
                if last {
                    let old = arr.first().and_then(|v| v.as_str().map(str::to_string));
                    if arr.is_empty() {
                        arr.push(Value::Null);
                    }
                    arr[0] = Value::String(value.into());
                    return (pointer, old);
                }
                if arr.is_empty() {
                    arr.push(fresh());
                }
                node = &mut arr[0];
            }
            Step::MapValue => {
                pointer.push('/');
                pointer.push_str(MAP_KEY);
                let obj = node
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{pointer}: not a mapping"));
                if last {
                    obj.insert(MAP_KEY.into(), Value::String(value.into()));
                    return (pointer, None);
                }
                node = obj.entry(MAP_KEY.to_string()).or_insert_with(fresh);
            }
            Step::MapKey => {
                pointer.push('/');
                pointer.push_str(value);
                let obj = node
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{pointer}: not a mapping"));
                obj.insert(value.into(), Value::from(1));
                return (pointer, Some(MAP_KEY.into()));
            }
        }
    }
    unreachable!("an empty path")
}

/// The hostile variants of a valid value.
fn hostile(valid: &str) -> Vec<(&'static str, String)> {
    vec![
        ("newline", format!("{valid}\nx")),
        ("single quote", format!("{valid}'x")),
        ("double quote", format!("{valid}\"x")),
        ("hash", format!("{valid}#x")),
        ("percent", format!("{valid}%n")),
        ("dollar", format!("{valid}$x")),
        ("braces", format!("{valid}{{{{x}}}}")),
        ("NUL", format!("{valid}\0x")),
        ("10 KB", format!("{valid}{}", "a".repeat(10 * 1024))),
        ("leading dash", format!("-{valid}")),
    ]
}

/// Artifacts whose consumer reads `#`, `%` or a word-leading `-` as syntax
/// anywhere on a line: shell scripts, the kickstart, boot entries,
/// haproxy.cfg, cron tables and systemd units.
fn is_syntax_sensitive(path: &str) -> bool {
    path.ends_with(".ks")
        || path.ends_with(".cfg")
        || path.contains("/pxelinux")
        || path.contains("/cron.d/")
        || path.contains("/libexec/")
        || path.ends_with(".sh")
        || path.ends_with(".service")
        || path.ends_with(".timer")
        || path.ends_with(".conf") && path.contains("haproxy")
}

/// True when the line up to `at` is a `#` comment.
fn in_comment(text: &str, at: usize) -> bool {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..at].trim_start().starts_with('#')
}

/// Where an accepted hostile value is harmless; `Err` says where it is not.
fn harmless(kind: &str, value: &str, tree: &pgimg::render::ArtifactTree) -> Result<(), String> {
    for (path, artifact) in &tree.files {
        let Ok(text) = std::str::from_utf8(&artifact.bytes) else {
            continue;
        };
        for (at, _) in text.match_indices(value) {
            let before = text[..at].chars().next_back();
            let word_start = before.is_none_or(char::is_whitespace);
            match kind {
                "hash" | "percent" | "dollar" | "braces" if is_syntax_sensitive(path) => {
                    return Err(format!("{path} carries it"));
                }
                // In a comment of a shell script or a config it is only text.
                "leading dash" if word_start && !in_comment(text, at) => {
                    return Err(format!("{path} has it as a word of its own"));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[test]
fn every_string_field_rejects_or_renders_hostile_values_harmlessly() {
    let schema = pgimg::schema::generate();
    let mut fields = Vec::new();
    string_fields(
        &schema,
        &schema,
        &mut Vec::new(),
        &mut BTreeSet::new(),
        &mut fields,
    );
    assert!(
        fields.len() >= 30,
        "only {} string fields found",
        fields.len()
    );
    let base: Value = serde_yaml::from_str(&support::read(BASE)).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut accepted = 0;
    for path in &fields {
        if path == &[Step::Key("version".into())] {
            continue;
        }
        let mut probe = base.clone();
        let (_, old) = place(&mut probe, path, "probe");
        let valid = match path.last() {
            Some(Step::MapKey) => MAP_KEY.to_string(),
            // A word of its own, so that finding it in an artifact means it came from the spec.
            _ => old.unwrap_or_else(|| "probe7".into()),
        };
        for (kind, value) in hostile(&valid) {
            let mut doc = base.clone();
            let (pointer, _) = place(&mut doc, path, &value);
            let text = serde_yaml::to_string(&doc).unwrap_or_else(|e| panic!("{e}"));
            match pgimg::validate(pgimg::source::SourceFile::new("probe.yml", text), false) {
                Err(diags) => {
                    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
                    let at_field = errors.iter().any(|d| {
                        d.span.is_some()
                            && (d.pointer.starts_with(&pointer) || pointer.starts_with(&d.pointer))
                    });
                    if !at_field {
                        failures.push(format!(
                            "{pointer} ({kind}): rejected, but not at the field: {:?}",
                            errors
                                .iter()
                                .map(|d| (&d.pointer, &d.message))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
                Ok(v) => {
                    accepted += 1;
                    if matches!(
                        kind,
                        "newline" | "single quote" | "double quote" | "NUL" | "10 KB"
                    ) {
                        failures.push(format!("{pointer} ({kind}): accepted"));
                        continue;
                    }
                    let inputs = pgimg::BuildInputs {
                        roles: pgimg::load::RoleTree::embedded(),
                        secrets: Default::default(),
                        mapping: Default::default(),
                        overlays: Default::default(),
                    };
                    match pgimg::build(&v, &inputs) {
                        Ok(tree) => {
                            if let Err(e) = harmless(kind, &value, &tree) {
                                failures.push(format!("{pointer} ({kind}): {e}"));
                            }
                        }
                        Err(e) => failures.push(format!("{pointer} ({kind}): build failed: {e}")),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fields ({accepted} values accepted):\n{}",
        failures.len(),
        fields.len(),
        failures.join("\n")
    );
}
