//! The only reader: the spec, the role templates and the secrets the spec references.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

/// Secret values by reference; absent when the build was not given them.
#[derive(Debug, Clone, Default)]
pub struct SecretValues {
    pub values: std::collections::BTreeMap<String, String>,
}

/// Reads every secret the spec references: the values that are usable, and
/// what is wrong with the others (`crate::secrets::diagnose` reports them).
/// An `env:` reference is looked up in the environment, then in `env_file`
/// (`NAME=value` lines, as `pgimg secrets init` writes them). A `file:`
/// reference must be a regular file: a FIFO or a device would block or never end.
pub fn secret_values(
    refs: &[crate::secrets::Reference],
    spec_dir: &Path,
    env_file: Option<&Path>,
) -> Result<crate::secrets::Reading, Error> {
    use crate::secrets::{MAX_SECRET_BYTES, Problem, check_value};
    let file_env = match env_file {
        Some(p) => read_env_file(p)?,
        None => Default::default(),
    };
    let mut out = crate::secrets::Reading::default();
    for r in refs {
        let label = r.label();
        if out.values.values.contains_key(&label) || out.problems.contains_key(&label) {
            continue;
        }
        let value: Result<String, Problem> = match &r.secret {
            crate::spec::v1::SecretRef::Env(n) => match std::env::var_os(n.as_str()) {
                Some(v) => v
                    .into_string()
                    .map_err(|_| Problem::Unsafe("is not UTF-8 text")),
                None => file_env.get(n.as_str()).cloned().ok_or(Problem::Missing),
            },
            crate::spec::v1::SecretRef::File(f) => {
                read_secret_file(&secret_path(spec_dir, f.as_str()), MAX_SECRET_BYTES)
            }
        };
        match value.and_then(|v| check_value(&v).map(|()| v)) {
            Ok(v) => {
                out.values.values.insert(label, v);
            }
            Err(p) => {
                out.problems.insert(label, p);
            }
        }
    }
    Ok(out)
}

/// Where a `file:` reference points: relative to the spec's directory.
pub fn secret_path(spec_dir: &Path, f: &str) -> PathBuf {
    if f.starts_with('/') {
        PathBuf::from(f)
    } else {
        spec_dir.join(f)
    }
}

fn read_secret_file(path: &Path, limit: usize) -> Result<String, crate::secrets::Problem> {
    use crate::secrets::Problem;
    use std::io::Read;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Problem::Missing),
        Err(e) => return Err(Problem::Unreadable(e.kind().to_string())),
    };
    if !meta.is_file() {
        return Err(Problem::Unreadable("not a regular file".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| Problem::Unreadable(e.kind().to_string()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(|e| Problem::Unreadable(e.kind().to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| Problem::Unsafe("is not UTF-8 text"))?;
    // One trailing line break is the file's, not the secret's.
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(text.to_string())
}

/// Reads an environment file of `NAME=value` lines; `#` starts a comment line.
pub fn read_env_file(path: &Path) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading secrets file", path, e))?;
    let mut out = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line number only: the line itself holds a secret.
        let (k, v) = line.split_once('=').ok_or_else(|| {
            Error::Input(format!("{}:{}: expected NAME=value", path.display(), i + 1))
        })?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Reads a user's role tree (`--roles DIR`); the built-in kickstart templates stay.
pub fn roles(dir: &Path) -> Result<RoleTree, Error> {
    let mut tree = RoleTree::embedded();
    tree.files.retain(|p, _| p.starts_with("kickstart/"));
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry =
            entry.map_err(|e| Error::Input(format!("reading roles {}: {e}", dir.display())))?;
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(dir)
                .map_err(|_| Error::Input(format!("reading roles {}", dir.display())))?
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(entry.path())
                .map_err(|e| Error::io("reading role file", entry.path(), e))?;
            tree.files.insert(rel, bytes);
        }
    }
    Ok(tree)
}

// The role tree is an input like the spec: `build.rs` embeds `roles/` and
// `kickstart/`, and `roles` above reads a user's replacement.
include!(concat!(env!("OUT_DIR"), "/embedded_roles.rs"));

/// The role tree: relative path → bytes.
#[derive(Debug, Clone)]
pub struct RoleTree {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl RoleTree {
    /// The tree compiled into pgimg.
    pub fn embedded() -> Self {
        RoleTree {
            files: EMBEDDED_ROLES
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_vec()))
                .collect(),
        }
    }

    /// sha256 over every path and its bytes, for BUILDINFO.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (p, b) in &self.files {
            h.update(p.as_bytes());
            h.update([0]);
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        crate::digest::hex(&h.finalize())
    }
}

/// The file that marks a directory as pgimg's output, so pgimg may replace
/// it (written by `write`, read here).
pub const OUTPUT_MARKER: &str = ".pgimg-output";

/// What a build needs of the output it may replace: which hosts' inputs
/// are unchanged (their fingerprints), the sums of what is there, and the
/// secret files it holds, so that an unchanged host is kept unrendered and
/// an unchanged build writes nothing.
#[derive(Debug, Clone, Default)]
pub struct PreviousOutput {
    pub dir: PathBuf,
    pub manifest_sha256: String,
    /// Host → fingerprint.
    pub fingerprints: BTreeMap<String, String>,
    /// Host → its artifacts (`hosts/<host>/…`).
    pub host_artifacts: BTreeMap<String, Vec<String>>,
    /// Every public artifact's sum.
    pub sums: BTreeMap<String, crate::digest::Sum>,
    /// `secrets/…` → bytes.
    pub secrets: BTreeMap<String, Vec<u8>>,
}

#[derive(serde::Deserialize)]
struct ManifestFile {
    pgimg_version: String,
    hosts: BTreeMap<String, ManifestHost>,
    artifacts: BTreeMap<String, ManifestArtifact>,
}

#[derive(serde::Deserialize)]
struct ManifestHost {
    fingerprint: Option<String>,
    artifacts: Vec<String>,
}

#[derive(serde::Deserialize)]
struct ManifestArtifact {
    sha256: String,
    size: u64,
}

/// Reads the previous output at `out`, if it is a pgimg output of this
/// version with fingerprints. Anything unexpected means "no previous
/// output": the build then renders everything, which is always correct.
pub fn previous_output(out: &Path) -> Option<PreviousOutput> {
    if !out.join(OUTPUT_MARKER).is_file() {
        return None;
    }
    let bytes = std::fs::read(out.join("manifest.json")).ok()?;
    let m: ManifestFile = serde_json::from_slice(&bytes).ok()?;
    if m.pgimg_version != env!("CARGO_PKG_VERSION") {
        return None;
    }
    let mut prev = PreviousOutput {
        dir: out.to_path_buf(),
        manifest_sha256: crate::digest::sha256(&bytes),
        ..Default::default()
    };
    for (host, h) in m.hosts {
        prev.fingerprints.insert(host.clone(), h.fingerprint?);
        prev.host_artifacts.insert(host, h.artifacts);
    }
    prev.sums = m
        .artifacts
        .into_iter()
        .map(|(p, a)| {
            (
                p,
                crate::digest::Sum {
                    sha256: a.sha256,
                    size: a.size,
                },
            )
        })
        .collect();
    let secrets = out.join("secrets");
    if secrets.is_dir() {
        for e in walkdir::WalkDir::new(&secrets).sort_by_file_name() {
            let e = e.ok()?;
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(out).ok()?.to_str()?.to_string();
                prev.secrets.insert(rel, std::fs::read(e.path()).ok()?);
            }
        }
    }
    Some(prev)
}

/// Random bytes from the kernel, for `pgimg secrets init`.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut buf = vec![0u8; n];
    f.read_exact(&mut buf)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(buf)
}
