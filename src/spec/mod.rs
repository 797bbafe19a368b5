//! Stage "parse": spec text → YAML with positions → schema check → typed `v1::Spec`.
//!
//! `version:` is peeked first, so that a later spec version can get its own
//! module and a spec in an unknown version gets one clear message instead of
//! a page of schema errors.

pub(crate) mod calendar;
pub mod defaults;
pub mod redact;
pub mod reference;
pub(crate) mod scalar;
pub mod v1;
pub mod yaml;

use serde_json::Value;

use crate::diag::{Code, Diagnostic, Severity};
use crate::schema;
use crate::source::{SourceFile, SpanTable};

/// A spec that passed the schema, with everything needed to point back into its text.
pub struct Parsed {
    pub spec: v1::Spec,
    pub spans: SpanTable,
    pub source: SourceFile,
    /// Diagnostics that do not stop the pipeline: warnings (YAML 1.1
    /// booleans) and the schema's deferred errors (`schema::Report::deferred`),
    /// reported with the semantic checks' findings.
    pub warnings: Vec<Diagnostic>,
}

/// Parses and schema-checks a spec. On failure, every problem found is returned.
pub fn parse(source: SourceFile) -> Result<Parsed, Vec<Diagnostic>> {
    parse_unbounded(source).map_err(bounded)
}

/// At most [`yaml::MAX_DIAGNOSTICS`] problems, then one that says there are
/// more: rendering each costs a look-up in the spec's text, and a screenful
/// more tells the user nothing the first ones did not.
pub fn bounded(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    if diags.len() <= yaml::MAX_DIAGNOSTICS {
        return diags;
    }
    crate::diag::sort(&mut diags);
    let first_left_out = diags.swap_remove(yaml::MAX_DIAGNOSTICS);
    diags.truncate(yaml::MAX_DIAGNOSTICS);
    let mut more = Diagnostic::error(
        Code::TooManyProblems,
        &first_left_out.pointer,
        format!(
            "more than {} problems; the rest, from here on, are not shown",
            yaml::MAX_DIAGNOSTICS
        ),
    )
    .expected("a spec with fewer problems")
    .help("fix the problems shown and run pgimg again");
    if let (Some(file), Some(span)) = (first_left_out.file, first_left_out.span) {
        more = more.with_span(file, span);
    }
    diags.push(more);
    diags
}

fn parse_unbounded(source: SourceFile) -> Result<Parsed, Vec<Diagnostic>> {
    let doc = yaml::parse(&source)?;
    let at = |d: Diagnostic, pointer: &str| match doc.spans.value(pointer) {
        Some(s) => d.with_span(source.name.clone(), s),
        None => d,
    };
    if let Some(v) = doc.value.get("version")
        && v != &Value::from(1)
    {
        let d = Diagnostic::error(
            Code::UnsupportedVersion,
            "/version",
            format!("unsupported spec version: {v}"),
        )
        .expected("`1`")
        .help("this pgimg reads spec version 1");
        return Err(vec![at(d, "/version")]);
    }
    let report = schema::validate(&doc.value, &doc.spans, &source);
    let mut diags = report.errors;
    let deferred = report.deferred;
    let errored: std::collections::BTreeSet<String> = diags
        .iter()
        .chain(&deferred)
        .map(|d| d.pointer.clone())
        .collect();
    for (pointer, word) in &doc.yaml11_booleans {
        if errored.contains(pointer) {
            continue;
        }
        let d = Diagnostic::error(
            Code::Yaml11Boolean,
            pointer,
            format!("plain `{word}` is a boolean to YAML 1.1 readers such as PyYAML"),
        )
        .expected(format!("a quoted string: `'{word}'`"))
        .help("pgimg reads it as the string it looks like; quote it so every reader agrees");
        diags.push(at(d, pointer));
    }
    let (errors, warnings): (Vec<_>, Vec<_>) = diags
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        let mut all = errors;
        all.extend(deferred);
        all.extend(warnings);
        return Err(all);
    }
    match serde_json::from_value::<v1::Spec>(doc.value) {
        Ok(spec) => {
            let mut carried = deferred;
            carried.extend(warnings);
            Ok(Parsed {
                spec,
                spans: doc.spans,
                source,
                warnings: carried,
            })
        }
        // A number too large for its Rust type: the range errors say so.
        Err(_) if !deferred.is_empty() => {
            let mut all = deferred;
            all.extend(warnings);
            Err(all)
        }
        Err(e) => {
            let mut all = warnings;
            all.push(
                Diagnostic::error(
                    Code::SchemaOther,
                    "",
                    format!("the spec does not fit the spec language: {e}"),
                )
                .expected("a spec that the schema and the spec types agree on")
                .help("this is a bug in pgimg: the schema accepted what the types reject"),
            );
            Err(all)
        }
    }
}
