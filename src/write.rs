//! The only writer: an artifact tree → an output directory, atomically.
//!
//! The tree is written to a temporary directory beside the target and then
//! renamed into place, so a failed or interrupted build leaves the previous
//! output as it was. Modes are set explicitly, so the umask plays no part.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::render::ArtifactTree;

/// The file that marks a directory as pgimg's output, so pgimg may replace it.
pub const MARKER: &str = ".pgimg-output";

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting mode of", path, e))
}

/// Refuses to replace a directory that holds anything but a previous pgimg output.
fn check_target(out: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspecting", out, e)),
        Ok(m) if !m.is_dir() => Err(Error::Input(format!(
            "{}: exists and is not a directory",
            out.display()
        ))),
        Ok(_) => {
            let mut entries = fs::read_dir(out).map_err(|e| Error::io("reading", out, e))?;
            if entries.next().is_none() || out.join(MARKER).is_file() {
                Ok(())
            } else {
                Err(Error::Input(format!(
                    "{}: not empty and not a previous pgimg output; refusing to replace it (choose another directory with -o)",
                    out.display()
                )))
            }
        }
    }
}

fn sibling(out: &Path, tag: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.{tag}.{}", std::process::id()))
}

fn write_tree(dir: &Path, tree: &ArtifactTree) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    set_mode(dir, 0o755)?;
    // Directories first, parents before children (sorted order), then the
    // files in parallel: a large fleet is tens of thousands of small files.
    let mut dirs = std::collections::BTreeSet::new();
    for rel in tree.files.keys() {
        let mut p = Path::new(rel.as_str());
        while let Some(parent) = p.parent() {
            if parent.as_os_str().is_empty() || !dirs.insert(parent) {
                break;
            }
            p = parent;
        }
    }
    for rel in &dirs {
        let path = dir.join(rel);
        fs::create_dir(&path).map_err(|e| Error::io("creating", &path, e))?;
        // Directories under secrets/ are private; everything else is public output.
        let mode = if rel.starts_with("secrets") {
            0o700
        } else {
            0o755
        };
        set_mode(&path, mode)?;
    }
    {
        use rayon::prelude::*;
        let files: Vec<(&String, &crate::render::Artifact)> = tree.files.iter().collect();
        files.par_iter().try_for_each(|(rel, artifact)| {
            let path = dir.join(rel);
            fs::write(&path, &artifact.bytes).map_err(|e| Error::io("writing", &path, e))?;
            set_mode(&path, artifact.mode)
        })?;
    }
    let marker = dir.join(MARKER);
    fs::write(
        &marker,
        "This directory is written by pgimg build and replaced as a whole on the next build.\n",
    )
    .map_err(|e| Error::io("writing", &marker, e))?;
    set_mode(&marker, 0o644)
}

/// Writes the tree to `out`, replacing a previous pgimg output atomically.
pub fn write(tree: &ArtifactTree, out: &Path) -> Result<(), Error> {
    check_target(out)?;
    let tmp = sibling(out, "tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io("removing stale", &tmp, e))?;
    }
    if let Err(e) = write_tree(&tmp, tree) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = sibling(out, "old");
    let had_old = out.exists();
    if had_old {
        fs::rename(out, &old).map_err(|e| Error::io("moving aside", out, e))?;
    }
    if let Err(e) = fs::rename(&tmp, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::io("moving into place", out, e));
    }
    if had_old {
        fs::remove_dir_all(&old).map_err(|e| Error::io("removing previous output", &old, e))?;
    }
    Ok(())
}

/// Creates a secret file with mode 0600 (its directory 0700 if it is new);
/// fails rather than replace an existing file.
pub fn create_secret_file(path: &Path, value: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("creating secrets directory", dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("creating secret file", path, e))?;
    writeln!(f, "{value}").map_err(|e| Error::io("writing secret file", path, e))
}

/// Appends `NAME=value` lines to an environment file, creating it with mode
/// 0600; lines already there are never changed.
pub fn append_env_file(path: &Path, lines: &[(String, String)]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("opening secrets file", path, e))?;
    let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io("writing secrets file", path, e))
}
