//! The only reader: the spec, the role templates and the secrets the spec references.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Error;
use crate::source::SourceFile;

/// The spec path that means standard input.
pub const STDIN: &str = "-";

/// Reads a spec file, or standard input for `-`. The name in diagnostics is the path as given (`<stdin>`).
pub fn spec(path: &Path) -> Result<SourceFile, Error> {
    if path.as_os_str() == STDIN {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| Error::io("reading spec", Path::new("<stdin>"), e))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Input("<stdin>: the spec is not UTF-8 text".into()))?;
        return Ok(SourceFile::new("<stdin>", text));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading spec", path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Input(format!("{}: the spec is not UTF-8 text", path.display())))?;
    Ok(SourceFile::new(
        path.display().to_string(),
        without_bom(text),
    ))
}

/// The text without a leading UTF-8 byte order mark, which some Windows
/// editors write: YAML allows it there (YAML 1.2, 5.2 "Character
/// Encodings"), and yaml-rust2 would otherwise make it part of the first key.
pub fn without_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// The directories found not to be there while reading secret files. A
/// fleet's TLS references name a file per host under one directory per
/// cluster; when that tree is not there (certificates delivered later),
/// each file would cost a failing lookup, twice (reading and digesting).
#[derive(Default)]
struct MissingDirs(std::collections::HashMap<PathBuf, bool>);

impl MissingDirs {
    /// Whether `path`'s parent directory is known or found to be missing:
    /// then `path` is not there either, as a lookup would say.
    fn holds_no(&mut self, path: &Path) -> bool {
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => self.is_missing(dir),
            _ => false,
        }
    }

    fn is_missing(&mut self, dir: &Path) -> bool {
        if let Some(&missing) = self.0.get(dir) {
            return missing;
        }
        let missing = self.holds_no(dir)
            || std::fs::metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        self.0.insert(dir.to_path_buf(), missing);
        missing
    }

    /// The error a lookup of a path under a missing directory gets.
    fn not_found() -> std::io::Error {
        std::io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error())
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

/// True for a character a secret value may hold. Secret values are written
/// into environment files that systemd reads and that shell scripts may
/// still source, and into configs; only characters that neither systemd's
/// `EnvironmentFile=` nor a POSIX shell treats as syntax (no whitespace,
/// quote, `$`, backtick, `;`, `&`, `|`, `<`, `>`, `(`, `)`, `#`, `*`, `?`,
/// `[`, `~`, `{`, `}`, `!`, backslash) are allowed. Base64 and hex values fit.
pub fn is_safe_secret_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '.' | '_' | '+' | '/' | '=' | ':' | '@' | ',' | '%' | '^' | '-'
        )
}

/// The directory secret file references are relative to: the spec's, or the working directory for standard input.
pub fn spec_dir(path: &Path) -> PathBuf {
    if path.as_os_str() == STDIN {
        return PathBuf::from(".");
    }
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
    use crate::secrets::{MAX_PEM_BYTES, MAX_SECRET_BYTES, Problem, ValueKind, check_kind};
    let file_env = match env_file {
        Some(p) => read_env_file(p)?,
        None => Default::default(),
    };
    let mut out = crate::secrets::Reading::default();
    let mut missing_dirs = MissingDirs::default();
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
                let max = match r.kind {
                    ValueKind::Text => MAX_SECRET_BYTES,
                    ValueKind::Pem => MAX_PEM_BYTES,
                };
                let path = secret_path(spec_dir, f.as_str());
                if missing_dirs.holds_no(&path) {
                    Err(Problem::Missing)
                } else {
                    read_secret_file(&path, max)
                }
            }
        };
        match value.and_then(|v| check_kind(r.kind, &v).map(|()| v)) {
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

/// Reads a PEM file `secrets init` needs (the CA key), or says why not.
pub fn pem_file(path: &Path) -> Result<String, crate::secrets::Problem> {
    let v = read_secret_file(path, crate::secrets::MAX_PEM_BYTES)?;
    crate::secrets::check_pem(&v).map(|()| v)
}

/// Where a `file:` reference points: relative to the spec's directory.
pub fn secret_path(spec_dir: &Path, f: &str) -> PathBuf {
    if f.starts_with('/') {
        PathBuf::from(f)
    } else {
        spec_dir.join(f)
    }
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

/// Each host's closure hash in a previous build's `manifest.json` under `out`;
/// empty when there is none or it cannot be read (the build then marks nothing).
pub fn previous_closures(out: &Path) -> std::collections::BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        hosts: BTreeMap<String, Host>,
    }
    #[derive(serde::Deserialize)]
    struct Host {
        closure: Option<String>,
    }
    // Typed, so that the rest of a large manifest is skipped, not held.
    let Ok(file) = std::fs::File::open(out.join("manifest.json")) else {
        return Default::default();
    };
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    let Ok(manifest) = serde_json::from_reader::<_, Manifest>(reader) else {
        return Default::default();
    };
    manifest
        .hosts
        .into_iter()
        .filter_map(|(h, e)| Some((h, e.closure?)))
        .collect()
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
/// are unchanged (their fingerprints), the sums of what is there (a host's
/// artifacts are those under `hosts/<host>/`), and the secret files it
/// holds, so that an unchanged host is kept unrendered and an unchanged
/// build writes nothing.
#[derive(Debug, Clone, Default)]
pub struct PreviousOutput {
    pub dir: PathBuf,
    pub manifest_sha256: crate::digest::Digest32,
    /// The embedded role tree's digest when that build planned its ports.
    pub ports_roles: String,
    /// The hosts whose ports drew a warning in that build.
    pub port_warnings: BTreeSet<String>,
    /// Host → fingerprint.
    pub fingerprints: BTreeMap<String, String>,
    /// Host → closure, as the previous build reported it.
    pub closures: BTreeMap<String, String>,
    /// Every public artifact's sum.
    pub sums: crate::digest::Sums,
    /// `secrets/…` → the sha256 of the file the previous build wrote there,
    /// from its private index (`SECRETS_INDEX`); empty without one.
    pub secrets: BTreeMap<String, crate::digest::Digest32>,
}

/// Reads the previous output at `out`, if it is a pgimg output of this
/// version with its state (`state::STATE_FILE`, written with its manifest
/// by the same build). Anything unexpected means "no previous output": the
/// build then renders everything, which is always correct.
pub fn previous_output(out: &Path) -> Option<PreviousOutput> {
    if !out.join(OUTPUT_MARKER).is_file() {
        return None;
    }
    let state = crate::state::read(std::fs::File::open(out.join(crate::state::STATE_FILE)).ok()?)?;
    let mut prev = PreviousOutput {
        dir: out.to_path_buf(),
        manifest_sha256: state.manifest_sha256,
        ports_roles: state.ports_roles,
        port_warnings: state.port_warnings.into_iter().collect(),
        fingerprints: state.fingerprints,
        closures: state.closures,
        sums: state.sums,
        secrets: BTreeMap::new(),
    };
    // One small file instead of a walk of the whole secrets tree (a fleet's
    // secret files are thousands, each three directories deep). An output
    // whose secrets directory has no readable index is not one this build
    // can keep secret files from.
    if out.join("secrets").is_dir() {
        prev.secrets =
            parse_secrets_index(&std::fs::read_to_string(out.join(SECRETS_INDEX)).ok()?)?;
    }
    Some(prev)
}

/// Where a build lists the sha256 of every secret file it wrote, so that
/// the next build can tell an unchanged one without reading it. Private
/// like the files it describes.
pub const SECRETS_INDEX: &str = "secrets/.files";

/// The index's text: `<sha256>  <path>` lines, like `SHA256SUMS`.
pub fn secrets_index(
    files: impl Iterator<Item = (impl std::fmt::Display, crate::digest::Digest32)>,
) -> String {
    let mut index = String::new();
    for (path, sum) in files {
        use std::fmt::Write as _;
        let _ = writeln!(index, "{sum}  {path}");
    }
    index
}

/// The index read back; `None` when any line is not one the build writes.
fn parse_secrets_index(text: &str) -> Option<BTreeMap<String, crate::digest::Digest32>> {
    text.lines()
        .map(|line| {
            let (sum, path) = line.split_once("  ")?;
            path.starts_with("secrets/")
                .then(|| Some((path.to_string(), crate::digest::Digest32::parse(sum)?)))?
        })
        .collect()
}

/// Where a build keeps the digest of the secret values it was given
/// (`secret_digest`): private like the secret files beside it.
pub const SECRETS_DIGEST: &str = "secrets/.inputs";

/// What the previous build under `out` recorded of its inputs: the text its
/// marker holds after the first line, and the digest of its secret values.
pub fn recorded_build(out: &Path) -> Option<(String, Option<String>)> {
    let marker = std::fs::read_to_string(out.join(OUTPUT_MARKER)).ok()?;
    let (_, record) = marker.split_once('\n')?;
    let secrets = std::fs::read_to_string(out.join(SECRETS_DIGEST)).ok();
    Some((record.to_string(), secrets))
}

/// The inputs key the marker's record under `out` begins with, read from
/// the record's first bytes: the record is written with `inputs` as its
/// first field, and a large fleet's record is tens of megabytes that a
/// build whose inputs changed need not read. `None` when the record does
/// not begin that way.
pub fn recorded_inputs(out: &Path) -> Option<String> {
    use std::io::Read;
    const PREFIX: &str = "{\"inputs\":\"";
    let file = std::fs::File::open(out.join(OUTPUT_MARKER)).ok()?;
    let mut head = Vec::with_capacity(1024);
    file.take(1024).read_to_end(&mut head).ok()?;
    // The first kilobyte may end inside a character; the key is before it.
    let head = match std::str::from_utf8(&head) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    let (_, record) = head.split_once('\n')?;
    let key = record.strip_prefix(PREFIX)?;
    let (key, _) = key.split_once('"')?;
    key.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| key.to_string())
}

/// The record in the marker of the output under `out`, parsed as it is
/// read into `T`, which takes only the fields it needs (a large fleet's
/// record is tens of megabytes).
pub fn recorded_part<T: serde::de::DeserializeOwned>(out: &Path) -> Option<T> {
    use std::io::BufRead;
    let file = std::fs::File::open(out.join(OUTPUT_MARKER)).ok()?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    serde_json::from_reader(reader).ok()
}

/// sha256 over the raw values behind secret references (`env:NAME`,
/// `file:PATH` labels), as they are now: a change of any of them, or of
/// whether it is there at all, changes the digest. Only compared, never
/// shown. The flag tells whether any value was there: a digest of nothing
/// but absences reveals no secret and may be kept in the open.
pub fn secret_digest(
    labels: &[String],
    spec_dir: &Path,
    env_file: Option<&Path>,
) -> (String, bool) {
    use std::io::Read;
    let file_env = env_file.map(read_env_file);
    let mut h = Sha256::new();
    let mut present = false;
    let mut feed = |tag: &str, bytes: &[u8]| {
        h.update(tag.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    if let Some(Err(e)) = &file_env {
        feed("env-file-error", e.to_string().as_bytes());
    }
    let mut missing_dirs = MissingDirs::default();
    for label in labels {
        feed("label", label.as_bytes());
        if let Some(name) = label.strip_prefix("env:") {
            let from_file = || match &file_env {
                Some(Ok(m)) => m.get(name).map(|v| v.as_bytes().to_vec()),
                _ => None,
            };
            match std::env::var_os(name) {
                Some(v) => {
                    present = true;
                    feed("value", v.as_encoded_bytes());
                }
                None => match from_file() {
                    Some(v) => {
                        present = true;
                        feed("env-file-value", &v);
                    }
                    None => feed("unset", b""),
                },
            }
        } else if let Some(path) = label.strip_prefix("file:") {
            let path = secret_path(spec_dir, path);
            let limit =
                crate::secrets::MAX_PEM_BYTES.max(crate::secrets::MAX_SECRET_BYTES) as u64 + 2;
            let looked_up = if missing_dirs.holds_no(&path) {
                Err(MissingDirs::not_found())
            } else {
                std::fs::metadata(&path)
            };
            let read = looked_up.and_then(|m| {
                if !m.is_file() {
                    return Err(std::io::Error::other("not a regular file"));
                }
                let mut bytes = Vec::new();
                std::fs::File::open(&path)?
                    .take(limit)
                    .read_to_end(&mut bytes)?;
                Ok(bytes)
            });
            match read {
                Ok(bytes) => {
                    present = true;
                    feed("value", &bytes);
                }
                Err(e) => feed("error", e.to_string().as_bytes()),
            }
        } else {
            feed("unknown", b"");
        }
    }
    (crate::digest::hex(&h.finalize()), present)
}

/// Each host's artifact paths in the `manifest.json` under `out` (empty when unreadable).
pub fn host_artifacts(out: &Path) -> BTreeMap<String, Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        hosts: BTreeMap<String, Host>,
    }
    #[derive(serde::Deserialize)]
    struct Host {
        #[serde(default)]
        artifacts: Vec<String>,
    }
    let Ok(file) = std::fs::File::open(out.join("manifest.json")) else {
        return BTreeMap::new();
    };
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    let Ok(manifest) = serde_json::from_reader::<_, Manifest>(reader) else {
        return BTreeMap::new();
    };
    manifest
        .hosts
        .into_iter()
        .map(|(h, e)| (h, e.artifacts))
        .collect()
}

/// The directory of user files, beside the spec (`overlays/`).
pub const OVERLAYS: &str = "overlays";

/// The sidecar of `overlays/`: owner, group, mode and declared overrides.
pub const OVERLAY_ATTRIBUTES: &str = "attributes.yaml";

/// Which hosts an overlay file is for: `overlays/<scope>/<path as on the host>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum OverlayScope {
    /// `all/`: every host.
    All,
    /// `cluster/<name>/`.
    Cluster(String),
    /// `role/<role>/`: every host that gets the role.
    Role(String),
    /// `site/<cluster>/<site>/`.
    Site { cluster: String, site: String },
    /// `host/<name>/`.
    Host(String),
}

impl OverlayScope {
    /// How specific the scope is: a more specific file replaces a less specific one at the same path.
    pub fn rank(&self) -> u8 {
        match self {
            OverlayScope::All => 0,
            OverlayScope::Cluster(_) => 1,
            OverlayScope::Role(_) => 2,
            OverlayScope::Site { .. } => 3,
            OverlayScope::Host(_) => 4,
        }
    }
}

/// What `overlays/attributes.yaml` says about one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayAttributes {
    /// Octal, such as `"0600"` (default `0644`, or `0755` for an executable file).
    pub mode: Option<String>,
    /// Default `root`.
    pub owner: Option<String>,
    /// Default `root`.
    pub group: Option<String>,
    /// The file may replace one pgimg renders at the same path.
    #[serde(default)]
    pub replaces: bool,
}

/// One user file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayFile {
    /// Where it was found, relative to the spec's directory: `overlays/host/pg1/etc/motd`.
    pub source: String,
    pub scope: OverlayScope,
    /// Absolute path on the host: `/etc/motd`.
    pub path: String,
    pub bytes: Vec<u8>,
    /// The file had an execute bit.
    pub executable: bool,
    pub attributes: OverlayAttributes,
}

/// Every user file under `overlays/`, sorted by source path; empty when there is no such directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlays {
    pub files: Vec<OverlayFile>,
}

/// A path component pgimg carries into archives, listings and kickstarts unchanged.
fn plain_component(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && c.chars().all(|ch| {
            ch.is_ascii_alphanumeric()
                || matches!(ch, '.' | '_' | '-' | '+' | '@' | ',' | '=' | ':')
        })
}

/// Where a symbolic link at `host_path` pointing at `target` lands, if it stays inside the root file system.
fn link_destination(host_path: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = host_path.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Reads `overlays/` (the directory `dir`): every file with its scope and its
/// path on the host, and the sidecar's attributes. A symbolic link, a path
/// pgimg cannot carry, an unknown scope or a sidecar entry for no file is an error.
pub fn overlays(dir: &Path) -> Result<Overlays, Error> {
    if !dir.is_dir() {
        return Ok(Overlays::default());
    }
    let shown = |rel: &str| format!("{OVERLAYS}/{rel}");
    let sidecar = dir.join(OVERLAY_ATTRIBUTES);
    let mut attributes: BTreeMap<String, OverlayAttributes> = if sidecar.is_file() {
        let text =
            std::fs::read_to_string(&sidecar).map_err(|e| Error::io("reading", &sidecar, e))?;
        serde_yaml::from_str::<Option<BTreeMap<String, OverlayAttributes>>>(&text)
            .map_err(|e| {
                Error::Input(format!(
                    "{}: {e}; expected `<scope>/<path>: {{ mode: \"0640\", owner: root, group: root, replaces: false }}` entries",
                    shown(OVERLAY_ATTRIBUTES)
                ))
            })?
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    for key in attributes.keys() {
        if key.starts_with('/') || key.split('/').any(|c| c == "..") {
            return Err(Error::Input(format!(
                "{}: `{key}` escapes {OVERLAYS}/; name files as `<scope>/<path as on the host>`, such as `host/pg1/etc/motd`",
                shown(OVERLAY_ATTRIBUTES)
            )));
        }
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Input(format!("reading {}: {e}", dir.display())))?;
        let rel = entry
            .path()
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.to_str())
            .ok_or_else(|| {
                Error::Input(format!(
                    "{}: a path pgimg cannot read as UTF-8",
                    entry.path().display()
                ))
            })?
            .to_string();
        if rel == OVERLAY_ATTRIBUTES {
            continue;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let (scope, rest): (OverlayScope, &[&str]) = match parts.as_slice() {
            ["all", rest @ ..] => (OverlayScope::All, rest),
            ["cluster", name, rest @ ..] => (OverlayScope::Cluster(name.to_string()), rest),
            ["role", name, rest @ ..] => (OverlayScope::Role(name.to_string()), rest),
            ["site", cluster, site, rest @ ..] => (
                OverlayScope::Site {
                    cluster: cluster.to_string(),
                    site: site.to_string(),
                },
                rest,
            ),
            ["host", name, rest @ ..] => (OverlayScope::Host(name.to_string()), rest),
            // The scope's own directories (`host/`, `site/<cluster>/`).
            ["cluster" | "role" | "site" | "host", ..] if entry.file_type().is_dir() => {
                continue;
            }
            ["cluster" | "role" | "site" | "host", ..] => {
                return Err(Error::Input(format!(
                    "{}: expected a directory: all/, cluster/<cluster>/, site/<cluster>/<site>/, role/<role>/ or host/<host>/",
                    shown(&rel)
                )));
            }
            [other, ..] => {
                return Err(Error::Input(format!(
                    "{}: unknown scope `{other}`; expected all/, cluster/<cluster>/, site/<cluster>/<site>/, role/<role>/ or host/<host>/",
                    shown(&rel)
                )));
            }
            [] => continue,
        };
        let file_type = entry.path_is_symlink();
        if rest.is_empty() {
            if !entry.file_type().is_dir() {
                return Err(Error::Input(format!(
                    "{}: expected a directory of files as they land on the host",
                    shown(&rel)
                )));
            }
            continue;
        }
        if let Some(bad) = rest.iter().find(|c| !plain_component(c)) {
            return Err(Error::Input(format!(
                "{}: `{bad}` is not a name pgimg carries onto hosts (letters, digits and . _ - + @ , = : only)",
                shown(&rel)
            )));
        }
        let path = format!("/{}", rest.join("/"));
        if file_type {
            let target = std::fs::read_link(entry.path())
                .map_err(|e| Error::io("reading link", entry.path(), e))?;
            let target = target.to_string_lossy();
            let why = if target.starts_with('/') {
                format!(
                    "its target `{target}` is absolute, so it would point outside the host's root file system as pgimg ships it"
                )
            } else {
                match link_destination(&path, &target) {
                    None => {
                        format!("its target `{target}` points outside the host's root file system")
                    }
                    Some(dest) => format!(
                        "symbolic links are not carried into the overlay (it points at `{dest}`); put a copy of the file there instead"
                    ),
                }
            };
            return Err(Error::Input(format!(
                "{}: a symbolic link for `{path}`: {why}",
                shown(&rel)
            )));
        }
        if entry.file_type().is_dir() {
            continue;
        }
        if !entry.file_type().is_file() {
            return Err(Error::Input(format!(
                "{}: only regular files and directories are carried onto hosts",
                shown(&rel)
            )));
        }
        let meta = entry
            .metadata()
            .map_err(|e| Error::Input(format!("{}: {e}", shown(&rel))))?;
        let bytes =
            std::fs::read(entry.path()).map_err(|e| Error::io("reading", entry.path(), e))?;
        use std::os::unix::fs::PermissionsExt;
        files.push(OverlayFile {
            source: shown(&rel),
            scope,
            path,
            bytes,
            executable: meta.permissions().mode() & 0o111 != 0,
            attributes: attributes.remove(&rel).unwrap_or_default(),
        });
    }
    if let Some(key) = attributes.keys().next() {
        return Err(Error::Input(format!(
            "{}: `{key}` names no file under {OVERLAYS}/",
            shown(OVERLAY_ATTRIBUTES)
        )));
    }
    Ok(Overlays { files })
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

/// Seconds since the Unix epoch: the first day of the certificates
/// `secrets init` makes (secrets, never a reviewable artifact).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files of one test: `present` holds a secret, `plain` is a file
    /// (so a path under it is not a directory's), `nodir/` is not there.
    fn secret_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("present"), "s3cret\n").expect("writing");
        std::fs::write(dir.path().join("plain"), "x").expect("writing");
        dir
    }

    const FILES: [&str; 5] = [
        "nodir/tls/a.key",
        "nodir/tls/b.key",
        "nodir/other.key",
        "present",
        "plain/under",
    ];

    #[test]
    fn files_under_a_missing_directory_digest_as_their_lookups_would() {
        let dir = secret_files();
        let labels: Vec<String> = FILES.iter().map(|f| format!("file:{f}")).collect();
        let (digest, present) = secret_digest(&labels, dir.path(), None);
        assert!(present);
        // Each file's own lookup, as a build that looked each one up fed it.
        let mut h = Sha256::new();
        let mut feed = |tag: &str, bytes: &[u8]| {
            h.update(tag.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        for (label, f) in labels.iter().zip(FILES) {
            feed("label", label.as_bytes());
            match std::fs::read(dir.path().join(f)) {
                Ok(bytes) => feed("value", &bytes),
                Err(e) => feed("error", e.to_string().as_bytes()),
            }
        }
        assert_eq!(digest, crate::digest::hex(&h.finalize()));
    }

    #[test]
    fn files_under_a_missing_directory_read_as_missing() {
        use crate::secrets::{Problem, Reference, ValueKind};
        let dir = secret_files();
        let refs: Vec<Reference> = FILES
            .iter()
            .map(|f| Reference {
                pointer: format!("/secrets/{f}"),
                secret: crate::spec::v1::SecretRef::File(crate::spec::scalar::FilePath(
                    f.to_string(),
                )),
                what: "a test secret",
                generate: None,
                kind: ValueKind::Text,
            })
            .collect();
        let read = secret_values(&refs, dir.path(), None).expect("reading");
        assert_eq!(
            read.values.values.get("file:present").map(String::as_str),
            Some("s3cret")
        );
        for f in &FILES[..3] {
            assert_eq!(
                read.problems.get(&format!("file:{f}")),
                Some(&Problem::Missing),
                "{f}"
            );
        }
        // A path under a file is not missing but unreadable, as before.
        assert!(
            matches!(
                read.problems.get("file:plain/under"),
                Some(Problem::Unreadable(_))
            ),
            "{:?}",
            read.problems
        );
    }
}
