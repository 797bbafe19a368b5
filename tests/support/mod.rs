//! Test harness shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pgimg::diag::Diagnostic;
use pgimg::source::SourceFile;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pgimg binary built for these tests.
pub fn pgimg() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgimg"))
}

/// True when the goldens should be rewritten instead of compared (`PGIMG_BLESS=1`).
pub fn bless() -> bool {
    std::env::var_os("PGIMG_BLESS").is_some_and(|v| v == "1")
}

/// Validates spec text given a file name for diagnostics.
pub fn validate(name: &str, text: &str) -> Result<pgimg::Validated, Vec<Diagnostic>> {
    pgimg::validate(SourceFile::new(name, text), false)
}

/// Reads a file of the repository as text.
pub fn read(rel: impl AsRef<Path>) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Every diagnostic of spec text, warnings included, whether or not it validates.
pub fn diagnostics(name: &str, text: &str, strict: bool) -> Vec<Diagnostic> {
    match pgimg::validate(SourceFile::new(name, text), strict) {
        Ok(v) => v.warnings,
        Err(d) => d,
    }
}

/// Runs the pgimg binary from the repository root, so that paths in its
/// output are the relative ones given here.
pub fn run_pgimg(args: &[&str]) -> std::process::Output {
    std::process::Command::new(pgimg())
        .args(args)
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("running pgimg {args:?}: {e}"))
}
