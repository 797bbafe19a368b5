//! The output of rendering: relative path → bytes and mode, plus what the
//! build tells the user. `write` is its only consumer that touches disk.

use std::collections::BTreeMap;

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// The whole build output: relative path → file. `secrets/` never enters the manifest.
#[derive(Debug, Clone, Default)]
pub struct ArtifactTree {
    pub files: BTreeMap<String, Artifact>,
    /// What the build should tell the user (never a secret value).
    pub notes: Vec<String>,
    /// The secret references the build had no value for (labels, never values).
    pub missing_secrets: Vec<String>,
    /// Host name → closure hash.
    pub closures: BTreeMap<String, String>,
}

impl ArtifactTree {
    pub fn add(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>, mode: u32) {
        self.files.insert(
            path.into(),
            Artifact {
                bytes: bytes.into(),
                mode,
            },
        );
    }
}
