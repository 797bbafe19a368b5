//! The only writer: artifacts → an output directory, atomically.
//!
//! A build streams its artifacts into `Staging`, a temporary directory
//! beside the target, as hosts finish (an unchanged file is hard-linked
//! from the previous output instead of written again); `Staging::commit`
//! then swaps it into place, so a reader never sees a half-updated tree and
//! a failed or interrupted build leaves the previous output as it was.
//! Modes are set explicitly, so the umask plays no part.
//!
//! A directory kept whole (an unchanged host's) is not linked file by file
//! but renamed from the previous output into the staging directory during
//! the swap, after the previous output has left its place and before the
//! new one takes it: the output path names the old tree, nothing, or the
//! new tree, never a mix. The renames are listed first in a journal beside
//! the output (`.<out>.moves.<pid>`), so that `recover` can move them back
//! after a build killed halfway through them.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::collections::HashSet;
use std::sync::Mutex;

use crate::Error;
use crate::load::PreviousOutput;
use crate::render::ArtifactTree;
use crate::render::artifact::Sink;

pub use crate::load::OUTPUT_MARKER as MARKER;

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

/// Writes an in-memory tree to `out`, replacing a previous pgimg output atomically.
pub fn write(tree: &ArtifactTree, out: &Path) -> Result<(), Error> {
    let staging = Staging::new(out, None)?;
    {
        use rayon::prelude::*;
        let files: Vec<(&String, &crate::render::Artifact)> = tree.files.iter().collect();
        files
            .par_iter()
            .try_for_each(|(rel, a)| staging.put(rel, &a.bytes, a.mode))?;
    }
    staging.commit()
}

/// Cleans up after builds that were killed: their staging directories
/// (`.<out>.tmp.<pid>`) go, and a previous output that one of them had
/// moved aside (`.<out>.old.<pid>`) comes back when nothing replaced it,
/// with the directories its journal (`.<out>.moves.<pid>`) says were moved
/// out of it. Only what processes that no longer run left is touched.
pub fn recover(out: &Path) -> Result<(), Error> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&parent) else {
        return Ok(());
    };
    /// What one killed build left: its staging, the previous output it had
    /// moved aside, and its journal of directories moved between the two.
    #[derive(Default)]
    struct Left {
        tmp: Option<PathBuf>,
        old: Option<PathBuf>,
        moves: Option<PathBuf>,
    }
    let mut stale: std::collections::BTreeMap<String, Left> = Default::default();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let Some((tag, pid)) = rest.split_once('.') else {
            continue;
        };
        let running = pid
            .parse::<u32>()
            .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if running {
            continue;
        }
        let left = stale.entry(pid.to_string()).or_default();
        match tag {
            "tmp" => left.tmp = Some(e.path()),
            "old" => left.old = Some(e.path()),
            "moves" => left.moves = Some(e.path()),
            _ => {}
        }
    }
    for left in stale.into_values() {
        if let Some(old) = &left.old
            && !out.exists()
        {
            if let (Some(tmp), Some(journal)) = (&left.tmp, &left.moves) {
                let listed = fs::read_to_string(journal)
                    .map_err(|e| Error::io("reading the journal", journal, e))?;
                move_back(old, tmp, journal_dirs(&listed))?;
            }
            fs::rename(old, out).map_err(|e| Error::io("restoring the previous output", old, e))?;
        }
        for dir in [&left.tmp, &left.old].into_iter().flatten() {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(|e| Error::io("removing stale", dir, e))?;
            }
        }
        if let Some(journal) = &left.moves {
            remove_file_if_there(journal)?;
        }
    }
    Ok(())
}

fn remove_file_if_there(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", path, e)),
        _ => Ok(()),
    }
}

/// The directories a journal lists, one relative path per line; a line
/// that could leave the output (absolute, or with `..`) is not one.
fn journal_dirs(listed: &str) -> impl Iterator<Item = &str> {
    listed.lines().filter(|l| {
        !l.is_empty() && !l.starts_with('/') && !l.split('/').any(|c| c == ".." || c == ".")
    })
}

/// Moves directories that a swap had moved from the previous output `old`
/// into the staging `tmp` back where they were, those the swap got to.
fn move_back<'a>(old: &Path, tmp: &Path, dirs: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    for rel in dirs {
        let (from, to) = (tmp.join(rel), old.join(rel));
        if fs::symlink_metadata(&from).is_ok() && fs::symlink_metadata(&to).is_err() {
            fs::rename(&from, &to)
                .map_err(|e| Error::io("moving back into the previous output", &to, e))?;
        }
    }
    Ok(())
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

/// An output being written: a temporary directory beside the target that
/// artifacts stream into, swapped into place by `commit`. Dropped without
/// a commit, it removes itself.
pub struct Staging<'a> {
    out: PathBuf,
    tmp: PathBuf,
    previous: Option<&'a PreviousOutput>,
    /// The directories made so far, by a 128-bit digest of their relative
    /// path: every artifact looks its parents up here, and a fleet has
    /// hundreds of thousands of them, whose paths would weigh more than
    /// the digests. A collision would only skip a `mkdir`, which the file's
    /// creation then reports.
    created: Mutex<HashSet<u128>>,
    /// Directories of the previous output kept whole, moved in at `commit`.
    kept_dirs: Mutex<Vec<String>>,
    /// The process's umask, when it could be read: a mode it leaves whole
    /// is given at creation, and the chmod after it is skipped.
    umask: Option<u32>,
    committed: bool,
}

/// The key of a directory in `Staging::created`: two 64-bit SipHashes of
/// its path, told apart by a leading byte (a lookup per artifact: sha256
/// would cost more than the `mkdir` it saves).
fn dir_key(dir: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        dir.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// The process's file mode creation mask, from `/proc/self/status` (the
/// `Umask:` line); `None` where it is not there, and every mode is then set
/// with a chmod after creation.
fn umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(value.trim(), 8).ok()
}

impl<'a> Staging<'a> {
    /// Starts an output at `out`, refusing a directory that is not pgimg's.
    pub fn new(out: &Path, previous: Option<&'a PreviousOutput>) -> Result<Self, Error> {
        check_name(out)?;
        recover(out)?;
        check_target(out)?;
        let tmp = sibling(out, "tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io("removing stale", &tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        set_mode(&tmp, 0o755)?;
        Ok(Staging {
            out: out.to_path_buf(),
            tmp,
            previous,
            created: Mutex::new(HashSet::new()),
            kept_dirs: Mutex::new(Vec::new()),
            umask: umask(),
            committed: false,
        })
    }

    /// Creates the parents of `rel` once each: private under `secrets/`.
    fn parents(&self, rel: &str) -> Result<PathBuf, Error> {
        self.parents_in(rel, None)
    }

    /// As [`Staging::parents`], remembering the directories below a host's
    /// or cluster's own (`hosts/<host>/rootfs/…`) in `local`, the set of
    /// one [`Sink::put_all`], rather than for the whole build: a fleet has
    /// dozens of them a host, and no other batch puts files there.
    fn parents_in(
        &self,
        rel: &str,
        mut local: Option<&mut HashSet<u128>>,
    ) -> Result<PathBuf, Error> {
        let path = self.tmp.join(rel);
        let shared = |dir: &str| dir.matches('/').count() <= 1;
        let mut missing = Vec::new();
        {
            let created = self
                .created
                .lock()
                .map_err(|_| Error::Invariant("a writing thread panicked".into()))?;
            let mut p = rel.rsplit_once('/').map(|(dir, _)| dir);
            while let Some(dir) = p {
                let known = match local.as_deref() {
                    Some(set) if !shared(dir) => set.contains(&dir_key(dir)),
                    _ => created.contains(&dir_key(dir)),
                };
                if dir.is_empty() || known {
                    break;
                }
                missing.push(dir.to_string());
                p = dir.rsplit_once('/').map(|(parent, _)| parent);
            }
        }
        for dir in missing.into_iter().rev() {
            let full = self.tmp.join(&dir);
            let mode = if dir == "secrets" || dir.starts_with("secrets/") {
                0o700
            } else {
                0o755
            };
            match fs::DirBuilder::new().mode(mode).create(&full) {
                Ok(()) => {
                    if !self.exact(mode) {
                        set_mode(&full, mode)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("creating", &full, e)),
            }
            match local.as_deref_mut() {
                Some(set) if !shared(&dir) => {
                    set.insert(dir_key(&dir));
                }
                _ => {
                    self.created
                        .lock()
                        .map_err(|_| Error::Invariant("a writing thread panicked".into()))?
                        .insert(dir_key(&dir));
                }
            }
        }
        Ok(path)
    }

    /// Whether creating with `mode` gives exactly `mode`: the umask takes
    /// none of its bits.
    fn exact(&self, mode: u32) -> bool {
        self.umask.is_some_and(|m| m & mode == 0)
    }

    /// Creates a new file with `mode`, the umask notwithstanding.
    fn create(&self, path: &Path, mode: u32) -> Result<fs::File, Error> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| Error::io("creating", path, e))?;
        if !self.exact(mode) {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting mode of", path, e))?;
        }
        Ok(file)
    }

    /// Swaps the staged output into place and removes the previous one.
    pub fn commit(self) -> Result<(), Error> {
        self.commit_recorded(&mut |_| Ok(()))
    }

    /// [`Staging::commit`], the marker holding what `record` writes after
    /// its first line: what the build knew of its inputs
    /// (`load::recorded_build`). It is streamed: a large fleet's record is
    /// tens of megabytes.
    pub fn commit_recorded(
        mut self,
        record: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let marker = self.tmp.join(MARKER);
        let written = fs::File::create(&marker).and_then(|file| {
            use std::io::Write as _;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
            w.write_all(
                b"This directory is written by pgimg build and replaced as a whole on the next build.\n",
            )?;
            record(&mut w)?;
            w.into_inner().map(drop).map_err(|e| e.into_error())
        });
        written.map_err(|e| Error::io("writing", &marker, e))?;
        set_mode(&marker, 0o644)?;
        let mut kept = std::mem::take(
            &mut *self
                .kept_dirs
                .lock()
                .map_err(|_| Error::Invariant("a writing thread panicked".into()))?,
        );
        kept.sort();
        let old = sibling(&self.out, "old");
        let journal = sibling(&self.out, "moves");
        let had_old = self.out.exists();
        if !had_old && !kept.is_empty() {
            return Err(Error::Invariant(format!(
                "{}: directories kept from a previous output that is gone",
                self.out.display()
            )));
        }
        if !kept.is_empty() {
            let listed: String = kept.iter().map(|d| format!("{d}\n")).collect();
            fs::write(&journal, listed).map_err(|e| Error::io("writing", &journal, e))?;
        }
        if had_old {
            fs::rename(&self.out, &old).map_err(|e| Error::io("moving aside", &self.out, e))?;
        }
        let swapped = kept
            .iter()
            .try_for_each(|rel| {
                let to = self.tmp.join(rel);
                fs::rename(old.join(rel), &to).map_err(|e| Error::io("moving in", &to, e))
            })
            .and_then(|()| {
                fs::rename(&self.tmp, &self.out)
                    .map_err(|e| Error::io("moving into place", &self.out, e))
            });
        if let Err(e) = swapped {
            let restored = !had_old
                || move_back(&old, &self.tmp, kept.iter().map(String::as_str))
                    .and_then(|()| {
                        fs::rename(&old, &self.out)
                            .map_err(|e| Error::io("restoring the previous output", &old, e))
                    })
                    .is_ok();
            if restored {
                let _ = fs::remove_file(&journal);
            } else {
                // The staging may hold directories of the previous output:
                // it stays, with the journal, for the next build's `recover`.
                self.committed = true;
            }
            return Err(e);
        }
        self.committed = true;
        remove_file_if_there(&journal)?;
        if had_old {
            fs::remove_dir_all(&old).map_err(|e| Error::io("removing previous output", &old, e))?;
        }
        Ok(())
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

impl Staging<'_> {
    /// Puts one file, its new parents remembered in `local` when given
    /// (see [`Staging::parents_in`]).
    fn put_in(
        &self,
        rel: &str,
        bytes: &[u8],
        mode: u32,
        local: Option<&mut HashSet<u128>>,
        previous_sum: Option<Option<crate::digest::Sum>>,
    ) -> Result<(), Error> {
        let path = self.parents_in(rel, local)?;
        // Bytes the previous output already has are linked, not written: a
        // rebuild then writes only what changed.
        if let Some(prev) = self.previous
            && (prev
                .secrets
                .get(rel)
                .is_some_and(|old| *old == crate::digest::Digest32::of(bytes))
                // The index itself and the digest of the secret inputs,
                // which no index lists: small files, compared whole.
                || ([crate::load::SECRETS_INDEX, crate::load::SECRETS_DIGEST].contains(&rel)
                    && fs::read(prev.dir.join(rel)).is_ok_and(|old| old == bytes))
                || previous_sum
                    .unwrap_or_else(|| prev.sums.get(rel))
                    .is_some_and(|sum| {
                    sum.size == bytes.len() as u64
                        && sum.sha256 == crate::digest::Digest32::of(bytes)
                }))
        {
            let old = prev.dir.join(rel);
            if fs::metadata(&old).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode)
                && fs::hard_link(&old, &path).is_ok()
            {
                return Ok(());
            }
        }
        // One open with the mode and one write (an fchmod only when the
        // umask would take bits): tens of thousands of small files make
        // every system call per file count.
        let mut file = self.create(&path, mode)?;
        std::io::Write::write_all(&mut file, bytes).map_err(|e| Error::io("writing", &path, e))
    }
}

impl Sink for Staging<'_> {
    fn put(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
        self.put_in(rel, bytes, mode, None, None)
    }

    fn put_all(&self, files: &[(&str, &[u8], u32)]) -> Result<(), Error> {
        let mut local = HashSet::new();
        // The previous sums of a host's files, read once for the batch
        // rather than once a file (they may be in the state file).
        let previous: Vec<Option<Option<crate::digest::Sum>>> = match self.previous {
            Some(prev) => {
                let paths: Vec<&str> = files.iter().map(|(rel, _, _)| *rel).collect();
                prev.sums.get_all(&paths).into_iter().map(Some).collect()
            }
            None => vec![None; files.len()],
        };
        for ((rel, bytes, mode), previous_sum) in files.iter().zip(previous) {
            self.put_in(rel, bytes, *mode, Some(&mut local), previous_sum)?;
        }
        Ok(())
    }

    /// Created in the staging directory and unlinked at once: only the
    /// handle names it, so it goes with the build however the build ends.
    fn scratch(&self) -> Result<Option<fs::File>, Error> {
        let path = self.tmp.join(".sums.scratch");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        Ok(Some(file))
    }

    fn put_with(
        &self,
        rel: &str,
        mode: u32,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let path = self.parents(rel)?;
        let file = self.create(&path, mode)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        write(&mut w).map_err(|e| Error::io("writing", &path, e))?;
        w.into_inner()
            .map(drop)
            .map_err(|e| Error::io("writing", &path, e.into_error()))
    }

    fn keep(&self, rel: &str) -> Result<(), Error> {
        let prev = self
            .previous
            .ok_or_else(|| Error::Invariant(format!("{rel}: kept without a previous output")))?;
        let path = self.parents(rel)?;
        let old = prev.dir.join(rel);
        fs::hard_link(&old, &path).map_err(|e| Error::io("linking the previous", &old, e))
    }

    fn keep_dir(&self, dir: &str) -> Result<(), Error> {
        if self.previous.is_none() {
            return Err(Error::Invariant(format!(
                "{dir}/: kept without a previous output"
            )));
        }
        self.parents(dir)?;
        self.kept_dirs
            .lock()
            .map_err(|_| Error::Invariant("a writing thread panicked".into()))?
            .push(dir.to_string());
        Ok(())
    }
}

/// Writes a new file, mode 0644 under the umask; an existing file (or link) is never replaced.
pub fn new_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Input(format!(
                    "{} already exists; pgimg never overwrites it (choose another path, or move it away)",
                    path.display()
                ))
            } else {
                Error::io("creating", path, e)
            }
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("writing", path, e))
}

/// Creates a secret file with mode 0600 (its directory 0700 if it is new);
/// fails rather than replace an existing file.
pub fn create_secret_file(path: &Path, value: &str) -> Result<(), Error> {
    use std::io::Write as _;
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
