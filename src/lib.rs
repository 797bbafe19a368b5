//! pgimg: one declarative cluster spec in, reproducible per-host boot
//! artifacts out.
//!
//! The pipeline, one module per stage:
//!
//! `load` (the only reader) → `spec::parse` (YAML with positions, then the
//! JSON schema) → `model::resolve` (defaults applied once) → `check::run`
//! (semantic rules) → `plan`/`render` (pure: model → in-memory artifact
//! tree) → `write` (the only writer). Diagnostics are collected per stage and
//! gate the next one.

pub mod check;
pub mod cli;
pub mod diag;
pub mod load;
pub mod model;
pub mod schema;
pub mod source;
pub mod spec;

use std::path::Path;

use diag::Diagnostic;
use source::SourceFile;

/// The tool could not do its job (as opposed to: the spec is wrong).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Template(String),
}

impl Error {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// A spec that passed every check, resolved, with its warnings.
pub struct Validated {
    pub parsed: spec::Parsed,
    pub fleet: model::Fleet,
    pub warnings: Vec<Diagnostic>,
}

/// Parses, schema-checks, resolves and semantically checks a spec.
/// `Err` carries every diagnostic found (errors and warnings), sorted.
pub fn validate(source: SourceFile, strict: bool) -> Result<Validated, Vec<Diagnostic>> {
    let parsed = match spec::parse(source) {
        Ok(p) => p,
        Err(mut d) => {
            if strict {
                check::make_strict(&mut d);
            }
            diag::sort(&mut d);
            return Err(d);
        }
    };
    let fleet = model::resolve(&parsed.spec);
    let mut diags = parsed.warnings.clone();
    diags.extend(check::run(&fleet, &parsed.spans, &parsed.source));
    if strict {
        check::make_strict(&mut diags);
    }
    diag::sort(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(Validated {
        parsed,
        fleet,
        warnings: diags,
    })
}
