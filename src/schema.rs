//! The JSON schema of the spec: generated from `spec::v1` by schemars,
//! committed as `schema/pgimg.schema.json`, and used to validate the JSON
//! view of a spec before anything else looks at it.

use std::sync::OnceLock;

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::source::{SourceFile, SpanTable, child};

/// Where editors find the published schema (the `$id`).
pub const SCHEMA_ID: &str = "https://pgimg.dev/schema/v1/pgimg.schema.json";

/// The schema as a JSON value, generated from the Rust types and the
/// defaults table, in a form other validators accept (Ajv's strict mode):
/// no `null` where a key may simply be left out, no non-standard `format`,
/// `ipv4`/`ipv6` formats on addresses, a `default` on every field that has one.
pub fn generate() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<crate::spec::v1::Spec>();
    let mut value = schema.to_value();
    standardize(&mut value);
    if let Some(address) = value.pointer_mut("/$defs/Address")
        && let Value::Object(map) = address
    {
        // Annotations, as `format` is in draft 2020-12 by default: pgimg checks
        // addresses semantically (PG0103), so one bad address does not hide the
        // other problems of a spec behind the schema stage.
        map.insert(
            "anyOf".into(),
            serde_json::json!([
                {"type": "string", "format": "ipv4"},
                {"type": "string", "format": "ipv6"}
            ]),
        );
    }
    apply_defaults(&mut value);
    if let Value::Object(map) = &mut value {
        map.insert("$id".into(), Value::String(SCHEMA_ID.into()));
    }
    value
}

/// Drops what schemars writes for Rust's sake and editors misread: the
/// `null` of an `Option` (a key left out is the same, and editors would offer
/// `null` as a completion) and the `uint32`-style formats no standard defines.
fn standardize(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(kinds)) = map.get_mut("type") {
                kinds.retain(|k| k != "null");
                if kinds.len() == 1 {
                    let only = kinds[0].clone();
                    map.insert("type".into(), only);
                }
            }
            let numeric_format = map.get("format").and_then(Value::as_str).is_some_and(|f| {
                matches!(
                    f,
                    "int8"
                        | "int16"
                        | "int32"
                        | "int64"
                        | "uint8"
                        | "uint16"
                        | "uint32"
                        | "uint64"
                        | "uint"
                        | "int"
                        | "float"
                        | "double"
                )
            });
            if numeric_format {
                map.remove("format");
            }
            for key in ["anyOf", "oneOf"] {
                let Some(Value::Array(branches)) = map.get_mut(key) else {
                    continue;
                };
                branches.retain(|b| b.get("type").and_then(Value::as_str) != Some("null"));
                if branches.len() == 1 {
                    let only = branches.remove(0);
                    map.remove(key);
                    if let Value::Object(inner) = only {
                        for (k, v) in inner {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
            }
            for v in map.values_mut() {
                standardize(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(standardize),
        _ => {}
    }
}

/// Writes each row of `spec::defaults` into its field: the `default`
/// keyword for a fixed value, and a last sentence of the description.
fn apply_defaults(root: &mut Value) {
    for entry in crate::spec::defaults::table() {
        let (def, property) = entry.def_and_property();
        let owner = if def == "Spec" {
            format!("/properties/{property}")
        } else {
            format!("/$defs/{def}/properties/{property}")
        };
        let Some(Value::Object(field)) = root.pointer_mut(&owner) else {
            panic!(
                "spec::defaults names `{}`, which the schema does not have",
                entry.field
            );
        };
        if let crate::spec::defaults::DefaultValue::Fixed(value) = &entry.value {
            field.insert("default".into(), value());
        }
        let described = field
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        field.insert(
            "description".into(),
            Value::String(format!("{described} Default: {}.", entry.shown())),
        );
    }
}

/// The schema as committed: pretty JSON with a final newline.
pub fn generate_text() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).unwrap_or_default();
    text.push('\n');
    text
}

/// Generates and compiles the schema ahead of its first use: a few
/// milliseconds that `pgimg build` spends on a spare core instead of
/// between reading the spec and checking it.
pub fn prepare() {
    schema();
}

fn schema() -> &'static (Value, Option<jsonschema::Validator>) {
    static SCHEMA: OnceLock<(Value, Option<jsonschema::Validator>)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let value = generate();
        let validator = jsonschema::validator_for(&value).ok();
        (value, validator)
    })
}

/// The schema's verdict on a document.
#[derive(Debug, Default)]
pub struct Report {
    /// Violations that stop the pipeline: the document does not fit the spec's types.
    pub errors: Vec<Diagnostic>,
    /// Violations the model can still carry (a number out of its range, a key
    /// required only under a condition): reported together with the semantic
    /// checks, so that one of them does not hide every other problem.
    pub deferred: Vec<Diagnostic>,
}

/// Validates a document; each violation becomes a diagnostic at its node.
pub fn validate(instance: &Value, spans: &SpanTable, source: &SourceFile) -> Report {
    let (root, validator) = schema();
    let Some(validator) = validator else {
        return Report {
            errors: vec![Diagnostic::error(
                Code::SchemaOther,
                "",
                "internal error: the built-in schema does not compile",
            )],
            deferred: Vec::new(),
        };
    };
    let mut out = Report::default();
    for err in validator.iter_errors(instance) {
        let target = if is_deferrable(&err) {
            &mut out.deferred
        } else {
            &mut out.errors
        };
        report(&err, root, spans, source, target);
    }
    out
}

/// True for a violation after which the document still deserializes into
/// the spec's types with a meaning the semantic checks can work on.
fn is_deferrable(err: &ValidationError<'_>) -> bool {
    match err.kind() {
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. } => true,
        ValidationErrorKind::Required { .. } => err.schema_path().as_str().contains("/then/"),
        _ => false,
    }
}

/// Keys people write for a setting pgimg spells differently, with what to write instead.
const KEY_HINTS: &[(&str, &str)] = &[
    (
        "retention_days",
        "for time-based retention write `retention_full_type: time` and the days in `retention_full`",
    ),
    (
        "retention_full_days",
        "for time-based retention write `retention_full_type: time` and the days in `retention_full`",
    ),
];

/// The errors of the one branch of an `anyOf`/`oneOf` that fits the value's
/// type, if exactly one does: for `Option<T>` (`anyOf: [T, null]`) or an
/// untagged scalar, the user meant that branch, and its errors say what to fix.
fn fitting_branch<'e>(
    context: &'e [Vec<ValidationError<'static>>],
    pointer: &str,
) -> Option<&'e [ValidationError<'static>]> {
    let misfit = |e: &ValidationError| {
        e.instance_path().as_str() == pointer
            && matches!(
                e.kind(),
                ValidationErrorKind::Type { .. }
                    | ValidationErrorKind::Constant { .. }
                    | ValidationErrorKind::Enum { .. }
            )
    };
    let mut fitting = context
        .iter()
        .filter(|errs| !errs.is_empty() && !errs.iter().any(misfit));
    match (fitting.next(), fitting.next()) {
        (Some(errs), None) => Some(errs),
        _ => None,
    }
}

/// Turns one schema violation into diagnostics at its node.
fn report(
    err: &ValidationError<'_>,
    root: &Value,
    spans: &SpanTable,
    source: &SourceFile,
    out: &mut Vec<Diagnostic>,
) {
    let pointer = err.instance_path().as_str().to_string();
    let sub = subschema(root, &pointer);
    let plain_secret = crate::diag::is_secret_pointer(&pointer) && !err.instance().is_object();
    let found = if plain_secret {
        "a plain value (not shown: it may be the secret itself)".to_string()
    } else {
        describe(err.instance())
    };
    let at = |p: &str, key: bool| {
        let span = if key {
            spans.key(p)
        } else {
            spans.edit_span(p)
        };
        span.map(|s| (source.name.clone(), s))
    };
    let mut push = |d: Diagnostic, p: &str, key: bool| {
        let d = if plain_secret {
            d.help("a spec never holds a secret, only where to read it: `{ env: NAME }` or `{ file: PATH }`")
        } else {
            d
        };
        out.push(match at(p, key) {
            Some((f, s)) => d.with_span(f, s),
            None => d,
        });
    };
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = sub.map(property_names).unwrap_or_default();
            for key in unexpected {
                let p = child(&pointer, key);
                let mut d = Diagnostic::error(Code::UnknownKey, &p, format!("unknown key `{key}`"));
                let hint = KEY_HINTS.iter().find(|(k, _)| k == key).map(|(_, h)| *h);
                d = match (hint, did_you_mean(key, &allowed)) {
                    (Some(h), _) => d.expected(format!("one of {}", list(&allowed))).help(h),
                    (None, Some(s)) => d.expected(format!("a known key; did you mean `{s}`?")),
                    (None, None) => d.expected(format!("one of {}", list(&allowed))),
                };
                push(d, &p, true);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let what = sub
                .and_then(|s| property_schema(root, s, name))
                .and_then(description)
                .unwrap_or_default();
            let d = Diagnostic::error(Code::MissingKey, &pointer, format!("missing key `{name}`"))
                .expected(format!("`{name}`: {what}"));
            push(d, &pointer, true);
        }
        ValidationErrorKind::Type { .. } => {
            let expected = sub
                .map(|s| expected_of(root, s))
                .unwrap_or_else(|| "another type".into());
            let d = Diagnostic::error(
                Code::WrongType,
                &pointer,
                format!("wrong type: found {found}"),
            )
            .expected(expected);
            push(d, &pointer, false);
        }
        ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::MinLength { .. }
        | ValidationErrorKind::MaxLength { .. } => {
            let expected = sub
                .map(|s| expected_of(root, s))
                .unwrap_or_else(|| "another value".into());
            let d = Diagnostic::error(Code::BadString, &pointer, format!("invalid value: {found}"))
                .expected(expected);
            push(d, &pointer, false);
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            let d = Diagnostic::error(
                Code::OutOfRange,
                &pointer,
                format!("value too small: {found}"),
            )
            .expected(range_text(sub, limit));
            push(d, &pointer, false);
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            let d = Diagnostic::error(
                Code::OutOfRange,
                &pointer,
                format!("value too large: {found}"),
            )
            .expected(range_text(sub, limit));
            push(d, &pointer, false);
        }
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => {
            let expected = sub
                .map(|s| expected_of(root, s))
                .unwrap_or_else(|| "another value".into());
            let d = Diagnostic::error(
                Code::NotAllowed,
                &pointer,
                format!("value not allowed: {found}"),
            )
            .expected(expected);
            push(d, &pointer, false);
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            if let Some(errs) = fitting_branch(context, &pointer) {
                for e in errs {
                    report(e, root, spans, source, out);
                }
                return;
            }
            let expected = sub
                .map(|s| expected_of(root, s))
                .unwrap_or_else(|| "another value".into());
            let code = if sub.map(|s| choices(root, s).is_some()).unwrap_or(false) {
                Code::NotAllowed
            } else {
                Code::WrongType
            };
            let d = Diagnostic::error(code, &pointer, format!("invalid value: {found}"))
                .expected(expected);
            push(d, &pointer, false);
        }
        ValidationErrorKind::MinItems { limit } => {
            let n = err.instance().as_array().map_or(0, Vec::len);
            let d = Diagnostic::error(
                Code::SchemaOther,
                &pointer,
                format!("too few items: found {n}"),
            )
            .expected(format!(
                "at least {limit} item{}",
                if *limit == 1 { "" } else { "s" }
            ));
            push(d, &pointer, false);
        }
        _ => {
            let expected = sub
                .map(|s| expected_of(root, s))
                .unwrap_or_else(|| "a value the schema accepts".into());
            let d =
                Diagnostic::error(Code::SchemaOther, &pointer, err.to_string()).expected(expected);
            push(d, &pointer, false);
        }
    }
}

fn range_text(sub: Option<&Value>, limit: &Value) -> String {
    let min = sub.and_then(|s| s.get("minimum")).map(|v| v.to_string());
    let max = sub.and_then(|s| s.get("maximum")).map(|v| v.to_string());
    match (min, max) {
        (Some(a), Some(b)) => format!("a number from {a} to {b}"),
        (Some(a), None) => format!("a number of at least {a}"),
        (None, Some(b)) => format!("a number of at most {b}"),
        (None, None) => format!("a number within {limit}"),
    }
}

/// A short human description of a found value.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).flat_map(char::escape_default).collect();
            if s.chars().count() > 60 {
                format!("the string `{shown}…`")
            } else {
                format!("the string `{shown}`")
            }
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn resolve_ref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut n = node;
    for _ in 0..16 {
        match n.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#') {
                Some(p) => match root.pointer(p) {
                    Some(t) => n = t,
                    None => return n,
                },
                None => return n,
            },
            None => return n,
        }
    }
    n
}

/// The non-null branch of an `Option<T>` schema, resolved.
fn unwrap_nullable<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let n = resolve_ref(root, node);
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = n.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 && branches.len() == 2 {
                return resolve_ref(root, non_null[0]);
            }
        }
    }
    n
}

/// The schema that applies at an instance pointer.
fn subschema<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = unwrap_nullable(root, root);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = if let Some(p) = node.get("properties").and_then(|p| p.get(&token)) {
            p
        } else if let Some(items) = node.get("items").filter(|_| token.parse::<usize>().is_ok()) {
            items
        } else {
            node.get("additionalProperties").filter(|v| v.is_object())?
        };
        node = unwrap_nullable(root, next);
    }
    Some(node)
}

fn property_schema<'a>(root: &'a Value, node: &'a Value, name: &str) -> Option<&'a Value> {
    node.get("properties")
        .and_then(|p| p.get(name))
        .map(|p| unwrap_nullable(root, p))
}

fn property_names(node: &Value) -> Vec<String> {
    node.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn description(node: &Value) -> Option<String> {
    node.get("description")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The allowed constants of an enum-like schema.
fn choices(root: &Value, node: &Value) -> Option<Vec<String>> {
    if let Some(e) = node.get("enum").and_then(Value::as_array) {
        return Some(
            e.iter()
                .map(|v| v.to_string().trim_matches('"').to_string())
                .collect(),
        );
    }
    let branches = node
        .get("oneOf")
        .or_else(|| node.get("anyOf"))?
        .as_array()?;
    let mut out = Vec::new();
    for b in branches {
        let b = resolve_ref(root, b);
        if let Some(c) = b.get("const") {
            out.push(c.to_string().trim_matches('"').to_string());
        } else if let Some(e) = b.get("enum").and_then(Value::as_array) {
            out.extend(
                e.iter()
                    .map(|v| v.to_string().trim_matches('"').to_string()),
            );
        } else {
            return None;
        }
    }
    Some(out)
}

/// What a schema node expects, in words.
fn expected_of(root: &Value, node: &Value) -> String {
    if let Some(c) = choices(root, node) {
        return format!("one of {}", list(&c));
    }
    if (node.get("pattern").is_some() || node.get("maxLength").is_some())
        && let Some(d) = description(node)
    {
        return d;
    }
    if let Some(branches) = node
        .get("oneOf")
        .or_else(|| node.get("anyOf"))
        .and_then(Value::as_array)
    {
        let parts: Vec<String> = branches
            .iter()
            .map(|b| {
                let b = resolve_ref(root, b);
                if let Some(req) = b.get("required").and_then(Value::as_array)
                    && req.len() == 1
                {
                    format!("`{{{}: …}}`", req[0].as_str().unwrap_or_default())
                } else {
                    type_words(b)
                }
            })
            .collect();
        return parts.join(" or ");
    }
    type_words(node)
}

fn type_words(node: &Value) -> String {
    let kinds: Vec<&str> = match node.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| *s != "null")
            .collect(),
        _ => return description(node).unwrap_or_else(|| "another value".into()),
    };
    let words: Vec<&str> = kinds
        .iter()
        .map(|k| match *k {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "`true` or `false`",
            _ => "a value",
        })
        .collect();
    words.join(" or ")
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
