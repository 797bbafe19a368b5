//! The only writer: artifacts → an output directory, atomically.
//!
//! A build streams its artifacts into `Staging`, a temporary directory
//! beside the target, as hosts finish (an unchanged file is hard-linked
//! from the previous output instead of written again); `Staging::commit`
//! then puts it in place, so a reader never sees a half-updated tree and
//! a failed or interrupted build leaves the previous output as it was.
//! Modes are set explicitly, so the umask plays no part.
//!
//! Over a previous output, the commit patches it rather than replacing it
//! whole: what a build keeps (an unchanged host's directory) stays where
//! it is, and only the other entries are moved, the previous ones into the
//! staging and the new ones out of it. The previous output leaves its
//! place first and comes back patched, so the output path names the old
//! tree, nothing, or the new tree, never a mix; a one-host rebuild of a
//! large fleet then moves a few entries instead of every kept directory.
//! The moves are listed first in a journal beside the output
//! (`.<out>.moves.<pid>`), so that `recover` can undo those a killed build
//! got to.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::collections::{BTreeSet, HashSet};
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
                if listed.lines().next() == Some(PATCH_JOURNAL) {
                    undo_patch(old, tmp, &journal_moves(&listed))?;
                } else {
                    move_back(old, tmp, journal_dirs(&listed))?;
                }
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
    /// Paths of the previous output kept as they are (an unchanged host's
    /// directory): `commit` leaves them where they are and moves the rest.
    kept: Mutex<Vec<String>>,
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
            kept: Mutex::new(Vec::new()),
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
        self.put_marker(&mut |_| Ok(()))?;
        let prepared = self.prepare_commit()?;
        self.commit_prepared(prepared)?.wait()
    }

    /// Writes the output's marker, holding what `record` writes after its
    /// first line: what the build knew of its inputs
    /// (`load::recorded_build`). It is streamed: a large fleet's record is
    /// tens of megabytes. A build that writes none has the first line alone.
    pub fn put_marker(
        &self,
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
        set_mode(&marker, 0o644)
    }

    /// What the commit needs of the previous output, read while the last
    /// files are still being put (on another thread: `&self` is enough):
    /// the paths kept, and the previous output's names in the directories
    /// above them. Every path is kept by now.
    pub fn prepare_commit(&self) -> Result<PreparedCommit, Error> {
        let mut kept = std::mem::take(
            &mut *self
                .kept
                .lock()
                .map_err(|_| Error::Invariant("a writing thread panicked".into()))?,
        );
        kept.sort();
        if !self.out.exists() {
            if !kept.is_empty() {
                return Err(Error::Invariant(format!(
                    "{}: paths kept from a previous output that is gone",
                    self.out.display()
                )));
            }
            return Ok(PreparedCommit { patch: None });
        }
        // Read before anything moves: a previous output that lost a path
        // this build keeps is refused while it is still whole.
        Ok(PreparedCommit {
            patch: Some(PatchPlan::read_old(&self.out, kept)?),
        })
    }

    /// Puts the staging in place (see the module's documentation). What
    /// it replaced is left in the staging, which [`Leftover`] removes.
    pub fn commit_prepared(mut self, prepared: PreparedCommit) -> Result<Leftover, Error> {
        let Some(plan) = prepared.patch else {
            fs::rename(&self.tmp, &self.out)
                .map_err(|e| Error::io("moving into place", &self.out, e))?;
            self.committed = true;
            return Ok(Leftover::none());
        };
        let moves = plan.moves(&self.tmp)?;
        let replaced = self.tmp.join(REPLACED);
        fs::create_dir(&replaced).map_err(|e| Error::io("creating", &replaced, e))?;
        let old = sibling(&self.out, "old");
        let journal = sibling(&self.out, "moves");
        fs::write(&journal, patch_journal(&moves))
            .map_err(|e| Error::io("writing", &journal, e))?;
        fs::rename(&self.out, &old).map_err(|e| Error::io("moving aside", &self.out, e))?;
        let patched = apply_patch(&old, &self.tmp, &moves).and_then(|()| {
            fs::rename(&old, &self.out).map_err(|e| Error::io("moving into place", &self.out, e))
        });
        if let Err(e) = patched {
            let listed: Vec<(usize, bool, &str)> = moves
                .iter()
                .enumerate()
                .map(|(i, m)| (i, m.had_old, m.path.as_str()))
                .collect();
            let restored = undo_patch(&old, &self.tmp, &listed)
                .and_then(|()| {
                    fs::rename(&old, &self.out)
                        .map_err(|e| Error::io("restoring the previous output", &old, e))
                })
                .is_ok();
            if restored {
                let _ = fs::remove_file(&journal);
            } else {
                // The staging holds entries of the previous output: it
                // stays, with the journal, for the next build's `recover`.
                self.committed = true;
            }
            return Err(e);
        }
        self.committed = true;
        remove_file_if_there(&journal)?;
        Leftover::removing(&self.tmp)
    }
}

/// [`Staging::prepare_commit`]'s reading of the previous output.
pub struct PreparedCommit {
    patch: Option<PatchPlan>,
}

/// The staging of a committed patch, holding what it replaced, being
/// removed on a thread of its own: freeing a large fleet's previous
/// manifest and sums is milliseconds the report can be printed in. Waited
/// for by [`Leftover::wait`], or when dropped. A build killed before it is
/// gone leaves a staging without a journal, which the next build's
/// `recover` removes.
pub struct Leftover {
    removing: Option<std::thread::JoinHandle<Result<(), Error>>>,
}

impl Leftover {
    /// Nothing to remove: the output was moved into place whole, or not
    /// written at all.
    pub fn none() -> Leftover {
        Leftover { removing: None }
    }

    fn removing(tmp: &Path) -> Result<Leftover, Error> {
        let remove = |tmp: &Path| {
            fs::remove_dir_all(tmp)
                .map_err(|e| Error::io("removing what the build replaced", tmp, e))
        };
        let path = tmp.to_path_buf();
        match std::thread::Builder::new()
            .name("leftover".into())
            .spawn(move || remove(&path))
        {
            Ok(thread) => Ok(Leftover {
                removing: Some(thread),
            }),
            // No thread to be had: removed here, now.
            Err(_) => remove(tmp).map(|()| Leftover::none()),
        }
    }

    /// Waits until what the commit replaced is gone.
    pub fn wait(mut self) -> Result<(), Error> {
        match self.removing.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::Invariant(
                    "the thread removing what the build replaced panicked".into(),
                ))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some(thread) = self.removing.take() {
            let _ = thread.join();
        }
    }
}

/// The first line of a patch's journal. A journal without it lists the
/// directories that builds before the patch moved from the previous output
/// into the staging, and is undone by `move_back`.
const PATCH_JOURNAL: &str = "pgimg patch 1";

/// The staging's directory of the previous output's entries a patch
/// replaced or removed, each named by its line in the journal.
const REPLACED: &str = ".pgimg-replaced";

/// One entry of the output that a commit replaces, adds or removes: the
/// previous output's (`had_old`) goes into the staging's [`REPLACED`]
/// directory, then the staging's (`has_new`) takes its place.
#[derive(Debug, PartialEq)]
struct Move {
    path: String,
    had_old: bool,
    has_new: bool,
}

/// The moves that turn the previous output `old` into the new one: the
/// staging `tmp` with the `kept` paths (sorted) of `old`.
#[cfg(test)]
fn plan_patch(old: &Path, tmp: &Path, kept: &[String]) -> Result<Vec<Move>, Error> {
    PatchPlan::read_old(old, kept.to_vec())?.moves(tmp)
}

/// A patch as far as the previous output tells it: only the directories
/// above a kept path are read and stay; every other entry of either tree
/// is moved whole, so a rebuild that keeps all but one host of a fleet
/// moves that host and the top-level files, not the fleet. The previous
/// output is read first, the staging (a few names) when it is complete.
struct PatchPlan {
    /// The kept paths not under another kept path, sorted.
    outer: Vec<String>,
    /// Each directory above a kept path (`""` the output itself), with
    /// the names the previous output has in it besides the kept ones:
    /// over a large fleet's output, a few names rather than tens of
    /// thousands.
    above: std::collections::BTreeMap<String, BTreeSet<String>>,
}

/// The names in `dir`: none when it is not there and need not be.
fn names_in(dir: &Path, must: bool) -> Result<BTreeSet<String>, Error> {
    let entries = match fs::read_dir(dir) {
        Err(e) if !must && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BTreeSet::new());
        }
        r => r.map_err(|e| Error::io("reading", dir, e))?,
    };
    entries
        .map(|e| {
            let name = e.map_err(|e| Error::io("reading", dir, e))?.file_name();
            name.into_string().map_err(|n| {
                Error::Input(format!(
                    "{}: a name pgimg does not write (not UTF-8); remove it and build again",
                    dir.join(n).display()
                ))
            })
        })
        .collect()
}

/// Whether the sorted `paths` hold `path`.
fn holds(paths: &[String], path: &str) -> bool {
    paths.binary_search_by(|p| p.as_str().cmp(path)).is_ok()
}

/// `name` in `dir` as a path of the output.
fn joined(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl PatchPlan {
    fn read_old(old: &Path, mut kept: Vec<String>) -> Result<PatchPlan, Error> {
        // A path under another kept path is kept with it (`kept` is sorted,
        // so it follows the path that holds it).
        kept.dedup_by(|k, outer| {
            k.strip_prefix(outer.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        });
        let outer = kept;
        let mut above: BTreeSet<&str> = BTreeSet::from([""]);
        for k in &outer {
            let mut p = k.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !above.insert(parent) {
                    break;
                }
                p = parent;
            }
        }
        let mut found = 0;
        let mut listed = std::collections::BTreeMap::new();
        for dir in above {
            let mut names = names_in(&old.join(dir), true)?;
            names.retain(|name| {
                let kept = holds(&outer, &joined(dir, name));
                found += usize::from(kept);
                !kept
            });
            listed.insert(dir.to_string(), names);
        }
        if found != outer.len() {
            let gone = outer
                .iter()
                .find(|k| fs::symlink_metadata(old.join(k)).is_err())
                .map_or("", String::as_str);
            return Err(Error::Input(format!(
                "{}: the previous output has no `{gone}`, which this build keeps from it; remove the output directory and build again",
                old.display()
            )));
        }
        Ok(PatchPlan {
            outer,
            above: listed,
        })
    }

    /// The moves, the staging `tmp` being complete.
    fn moves(&self, tmp: &Path) -> Result<Vec<Move>, Error> {
        let mut moves = Vec::new();
        for (dir, in_old) in &self.above {
            let in_new = names_in(&tmp.join(dir), false)?;
            for name in in_old.union(&in_new) {
                let path = joined(dir, name);
                let (had_old, has_new) = (in_old.contains(name), in_new.contains(name));
                if holds(&self.outer, &path) {
                    return Err(Error::Invariant(format!("{path}: kept and written again")));
                } else if !self.above.contains_key(&path) {
                    moves.push(Move {
                        path,
                        had_old,
                        has_new,
                    });
                }
            }
        }
        Ok(moves)
    }
}

/// The journal of a patch: [`PATCH_JOURNAL`], then a line a move, `r
/// <path>` for an entry the previous output had and `a <path>` for one it
/// did not.
fn patch_journal(moves: &[Move]) -> String {
    let mut s = format!("{PATCH_JOURNAL}\n");
    for m in moves {
        s.push_str(if m.had_old { "r " } else { "a " });
        s.push_str(&m.path);
        s.push('\n');
    }
    s
}

/// A patch journal's moves: (line, had_old, path), without the lines that
/// could leave the output or that no patch writes.
fn journal_moves(listed: &str) -> Vec<(usize, bool, &str)> {
    listed
        .lines()
        .skip(1)
        .enumerate()
        .filter_map(|(i, line)| {
            let (kind, path) = line.split_once(' ')?;
            let had_old = match kind {
                "r" => true,
                "a" => false,
                _ => return None,
            };
            journal_dirs(path).next().map(|path| (i, had_old, path))
        })
        .collect()
}

/// The renames of a patch, in order: for each move, the previous
/// output's entry aside, then the new one in.
fn patch_steps(old: &Path, tmp: &Path, moves: &[Move]) -> Vec<(PathBuf, PathBuf)> {
    let replaced = tmp.join(REPLACED);
    let mut steps = Vec::with_capacity(moves.len() * 2);
    for (i, m) in moves.iter().enumerate() {
        if m.had_old {
            steps.push((old.join(&m.path), replaced.join(i.to_string())));
        }
        if m.has_new {
            steps.push((tmp.join(&m.path), old.join(&m.path)));
        }
    }
    steps
}

fn apply_patch(old: &Path, tmp: &Path, moves: &[Move]) -> Result<(), Error> {
    patch_steps(old, tmp, moves)
        .into_iter()
        .try_for_each(|(from, to)| {
            fs::rename(&from, &to).map_err(|e| Error::io("moving", &from, e))
        })
}

/// Undoes the moves of a patch that the commit got to, last first: an
/// entry it moved in is removed, one it moved aside comes back. Which of
/// them happened is read off the trees: an entry the previous output had
/// was moved aside before its replacement came in.
fn undo_patch(old: &Path, tmp: &Path, moves: &[(usize, bool, &str)]) -> Result<(), Error> {
    let replaced = tmp.join(REPLACED);
    for (i, had_old, path) in moves.iter().rev() {
        let there = old.join(path);
        let aside = replaced.join(i.to_string());
        let moved_aside = *had_old && fs::symlink_metadata(&aside).is_ok();
        if (moved_aside || !had_old)
            && let Ok(m) = fs::symlink_metadata(&there)
        {
            let removed = if m.is_dir() {
                fs::remove_dir_all(&there)
            } else {
                fs::remove_file(&there)
            };
            removed.map_err(|e| Error::io("removing the new", &there, e))?;
        }
        if moved_aside {
            fs::rename(&aside, &there)
                .map_err(|e| Error::io("moving back into the previous output", &there, e))?;
        }
    }
    Ok(())
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
        write: &mut dyn FnMut(&mut (dyn std::io::Write + Send)) -> std::io::Result<()>,
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
        if prev.dir != self.out {
            return Err(Error::Invariant(format!(
                "{rel}: kept from a previous output that is not the one replaced"
            )));
        }
        self.kept
            .lock()
            .map_err(|_| Error::Invariant("a writing thread panicked".into()))?
            .push(rel.to_string());
        Ok(())
    }

    fn keep_dir(&self, dir: &str) -> Result<(), Error> {
        self.keep(dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every file under `dir`, relative, with its text.
    fn files(dir: &Path) -> BTreeMap<String, String> {
        walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.expect("walking"))
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(dir).expect("under dir");
                (
                    rel.display().to_string(),
                    fs::read_to_string(e.path()).expect("reading"),
                )
            })
            .collect()
    }

    fn put(dir: &Path, tree: &[(&str, &str)]) {
        for (rel, text) in tree {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            fs::write(path, text).expect("writing");
        }
    }

    const OLD: &[(&str, &str)] = &[
        ("manifest.json", "old manifest"),
        ("stale.txt", "left by an older build"),
        ("clusters/c/check", "c"),
        ("hosts/a/user-data", "a"),
        ("hosts/b/user-data", "b"),
        ("hosts/gone/user-data", "gone"),
    ];
    const NEW: &[(&str, &str)] = &[
        ("manifest.json", "new manifest"),
        ("hosts/b/user-data", "b, changed"),
        ("hosts/new/user-data", "new"),
    ];
    const KEPT: &[&str] = &["clusters/c", "hosts/a"];

    /// The previous output and a staging, in a fresh directory.
    fn trees() -> (tempfile::TempDir, PathBuf, PathBuf, Vec<String>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (old, tmp) = (dir.path().join("old"), dir.path().join("tmp"));
        put(&old, OLD);
        put(&tmp, NEW);
        fs::create_dir(tmp.join(REPLACED)).expect("mkdir");
        let kept = KEPT.iter().map(|k| k.to_string()).collect();
        (dir, old, tmp, kept)
    }

    #[test]
    fn a_patch_moves_what_changed_and_leaves_what_is_kept() {
        let (_dir, old, tmp, kept) = trees();
        // The staging's own bookkeeping is created after the plan.
        fs::remove_dir(tmp.join(REPLACED)).expect("rmdir");
        let moves = plan_patch(&old, &tmp, &kept).expect("planning");
        fs::create_dir(tmp.join(REPLACED)).expect("mkdir");
        let listed: Vec<(&str, bool, bool)> = moves
            .iter()
            .map(|m| (m.path.as_str(), m.had_old, m.has_new))
            .collect();
        assert_eq!(
            listed,
            [
                ("manifest.json", true, true),
                ("stale.txt", true, false),
                ("hosts/b", true, true),
                ("hosts/gone", true, false),
                ("hosts/new", false, true),
            ]
        );
        apply_patch(&old, &tmp, &moves).expect("applying");
        let want: BTreeMap<String, String> = [
            ("clusters/c/check", "c"),
            ("hosts/a/user-data", "a"),
            ("hosts/b/user-data", "b, changed"),
            ("hosts/new/user-data", "new"),
            ("manifest.json", "new manifest"),
        ]
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
        assert_eq!(files(&old), want);
    }

    /// Killed after any number of its renames, a patch is undone from its
    /// journal alone, and the previous output is whole again.
    #[test]
    fn a_patch_stopped_after_any_rename_is_undone_from_its_journal() {
        let (_dir, old, tmp, kept) = trees();
        let before = files(&old);
        fs::remove_dir(tmp.join(REPLACED)).expect("rmdir");
        let moves = plan_patch(&old, &tmp, &kept).expect("planning");
        let steps = patch_steps(&old, &tmp, &moves).len();
        assert_eq!(steps, 7);
        for done in 0..=steps {
            let (_dir, old, tmp, _) = trees();
            for (from, to) in patch_steps(&old, &tmp, &moves).into_iter().take(done) {
                fs::rename(from, to).expect("renaming");
            }
            let journal = patch_journal(&moves);
            assert_eq!(journal.lines().next(), Some(PATCH_JOURNAL));
            undo_patch(&old, &tmp, &journal_moves(&journal)).expect("undoing");
            assert_eq!(files(&old), before, "after {done} of {steps} renames");
        }
    }

    #[test]
    fn a_journal_line_that_could_leave_the_output_is_not_followed() {
        let listed =
            format!("{PATCH_JOURNAL}\nr hosts/a\na ../escape\nr /etc\nx hosts/b\na hosts/c\n");
        assert_eq!(
            journal_moves(&listed),
            [(0, true, "hosts/a"), (4, false, "hosts/c")]
        );
    }

    #[test]
    fn a_kept_path_the_previous_output_lost_is_refused_before_anything_moves() {
        let (_dir, old, tmp, mut kept) = trees();
        fs::remove_dir(tmp.join(REPLACED)).expect("rmdir");
        kept.push("hosts/vanished".into());
        kept.sort();
        let before = files(&old);
        match plan_patch(&old, &tmp, &kept) {
            Err(Error::Input(m)) => assert!(m.contains("`hosts/vanished`"), "{m}"),
            other => panic!("expected an input error, got {other:?}"),
        }
        assert_eq!(files(&old), before);
    }

    #[test]
    fn a_path_under_a_kept_directory_is_kept_with_it() {
        let (_dir, old, tmp, _) = trees();
        fs::remove_dir(tmp.join(REPLACED)).expect("rmdir");
        let kept = vec!["hosts/a".to_string(), "hosts/a/user-data".to_string()];
        let moves = plan_patch(&old, &tmp, &kept).expect("planning");
        assert!(
            moves.iter().all(|m| !m.path.starts_with("hosts/a")),
            "{moves:?}"
        );
    }
}
