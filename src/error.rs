//! `Error`: the tool could not do its job (I/O, a broken template, a format
//! that cannot carry a host). A wrong spec is a `Diagnostic`, never an `Error`.

use std::path::Path;

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
    /// A delivery format cannot carry a host (such as user-data over EC2's size limit).
    #[error("{0}")]
    Delivery(String),
    /// Something pgimg itself got wrong: a bug, never the user's input.
    #[error("internal error (a bug in pgimg): {0}")]
    Invariant(String),
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
