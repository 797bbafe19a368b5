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

/// Refuses an output path that names no directory entry of its own (`.`,
/// `..`, `out/.`, `/`): such a directory cannot be renamed, so it could never
/// be replaced atomically.
fn check_name(out: &Path) -> Result<(), Error> {
    let raw = out.as_os_str().as_encoded_bytes();
    let last = raw.rsplit(|b| *b == b'/').find(|c| !c.is_empty());
    match last {
        Some(b".") | Some(b"..") | None => Err(Error::Input(format!(
            "{}: the output directory must be named by its own name (such as `out` or `../out`), not `.`, `..` or `/`",
            out.display()
        ))),
        Some(_) => Ok(()),
    }
}

/// Removes the temporary and set-aside trees that a build of the same output
/// left when it was killed (`.out.tmp.<pid>`, `.out.old.<pid>` whose process
/// is gone): the temporary one can hold secrets. Only real directories with
/// exactly those names are touched, never what a symbolic link points to.
fn remove_stale_siblings(out: &Path) {
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let pid = ["tmp", "old"].iter().find_map(|tag| {
            file_name
                .strip_prefix(&format!(".{name}.{tag}."))
                .and_then(|pid| pid.parse::<u32>().ok())
        });
        let Some(pid) = pid else { continue };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !alive && is_dir {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Moves the finished tree `tmp` to `out`, setting a previous output aside
/// first and restoring it if the second rename fails.
fn swap_into_place(tmp: &Path, out: &Path) -> Result<(), Error> {
    let old = sibling(out, "old");
    let had_old = out.exists();
    if had_old {
        fs::rename(out, &old).map_err(|e| Error::io("moving aside", out, e))?;
    }
    if let Err(e) = fs::rename(tmp, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        return Err(Error::io("moving into place", out, e));
    }
    if had_old {
        fs::remove_dir_all(&old).map_err(|e| Error::io("removing previous output", &old, e))?;
    }
    Ok(())
}

/// Writes the tree to `out`, replacing a previous pgimg output atomically.
/// Whatever fails, the temporary tree (which holds the secrets) is removed.
pub fn write(tree: &ArtifactTree, out: &Path) -> Result<(), Error> {
    check_name(out)?;
    check_target(out)?;
    remove_stale_siblings(out);
    let tmp = sibling(out, "tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io("removing stale", &tmp, e))?;
    }
    let result = write_tree(&tmp, tree).and_then(|()| swap_into_place(&tmp, out));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}
