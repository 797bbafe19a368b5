//! The output of rendering: relative path → bytes and mode, plus what the
//! build tells the user. `write` is its only consumer that touches disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::Error;

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

/// Where a build puts each artifact as soon as it is rendered: the whole
/// tree in memory (`Mutex<ArtifactTree>`, for tests and comparisons), or
/// files in the output's staging directory (`write::Staging`), so that a
/// large fleet's output never has to be held at once.
pub(crate) trait Sink: Sync {
    fn put(&self, path: &str, bytes: &[u8], mode: u32) -> Result<(), Error>;

    /// Puts a file whose bytes `write` produces, such as the manifest, which
    /// is streamed so that it is never held whole; this default collects them.
    fn put_with(
        &self,
        path: &str,
        mode: u32,
        write: &mut dyn FnMut(&mut (dyn std::io::Write + Send)) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let mut bytes = Vec::new();
        write(&mut bytes).map_err(|e| Error::io("rendering", std::path::Path::new(path), e))?;
        self.put(path, &bytes, mode)
    }

    /// Puts every `(path, bytes, mode)` of one host or cluster: a sink may
    /// share the work between them (the directories they have in common).
    fn put_all(&self, files: &[(&str, &[u8], u32)]) -> Result<(), Error> {
        for (path, bytes, mode) in files {
            self.put(path, bytes, *mode)?;
        }
        Ok(())
    }

    /// A private file the build may keep working data in (the artifacts'
    /// sums), gone when the build ends; `None` keeps it in memory.
    fn scratch(&self) -> Result<Option<std::fs::File>, Error> {
        Ok(None)
    }

    /// Takes `path` as the previous output has it, without rendering it
    /// again. Only a sink that was given a previous output is asked to.
    fn keep(&self, path: &str) -> Result<(), Error> {
        Err(Error::Invariant(format!(
            "{path}: this sink has no previous output to keep from"
        )))
    }

    /// Takes the directory `dir` whole as the previous output has it: every
    /// file under it is kept, and nothing else may be put there.
    fn keep_dir(&self, dir: &str) -> Result<(), Error> {
        Err(Error::Invariant(format!(
            "{dir}/: this sink has no previous output to keep from"
        )))
    }
}

impl Sink for Mutex<ArtifactTree> {
    fn put(&self, path: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
        self.lock()
            .map_err(|_| Error::Invariant("a rendering thread panicked".into()))?
            .add(path, bytes, mode);
        Ok(())
    }
}
