//! The only reader: the spec, the role templates and the secrets the spec references.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::source::SourceFile;

/// Reads a spec file. The name in diagnostics is the path as given.
pub fn spec(path: &Path) -> Result<SourceFile, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading spec", path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Input(format!("{}: the spec is not UTF-8 text", path.display())))?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

/// The directory secret file references are relative to.
pub fn spec_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
