//! The state a build leaves in its output for the next one
//! (`.pgimg-state`): the manifest's digest, each host's fingerprint and
//! closure, and the sum of every public artifact — what `manifest.json`
//! says, in a binary form that is read without parsing. At 1,000 hosts the
//! manifest is 7 MB of JSON whose parse was a tenth of a one-host rebuild;
//! at 30,000 it is 200 MB. Here the sums are not even read: each host's
//! entries are fetched from the file when the build asks for them.
//!
//! Layout, integers little-endian, a string being a `u32` length and its
//! UTF-8 bytes:
//!
//! ```text
//! "pgimg-state 1\n"
//! string  pgimg version
//! [32]    sha256 of manifest.json
//! string  digest of the embedded role tree the build planned ports from
//! u32     hosts whose ports had a warning, then each one's name
//! u32     hosts, then for each: string name, string fingerprint, string closure
//! u32     rests, then each one's string, in number order
//! u32     heads, then for each: string head, u32 entries
//! entries of every head in order: u32 rest, [32] sha256, u64 size
//! ```
//!
//! Written by the build into its staging directory, so that it is always
//! the state of the manifest beside it; private bookkeeping like the
//! marker, never an artifact.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::digest::{Digest32, Sums};

/// The state file's name in an output directory.
pub(crate) const STATE_FILE: &str = ".pgimg-state";

const MAGIC: &[u8] = b"pgimg-state 1\n";

/// The longest string the reader accepts: host names and paths are far
/// shorter; a corrupt length must not allocate gigabytes.
const MAX_STRING: u32 = 1 << 16;

/// What a state file holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub manifest_sha256: Digest32,
    /// The digest of the embedded role tree (`load::RoleTree::digest`) that
    /// the build's validation planned every host's ports from.
    pub ports_roles: String,
    /// The hosts whose planned ports drew a warning: their ports are
    /// planned again even when unchanged, for the warning to be repeated.
    pub port_warnings: Vec<String>,
    /// Host → fingerprint.
    pub fingerprints: BTreeMap<String, String>,
    /// Host → closure.
    pub closures: BTreeMap<String, String>,
    /// Every public artifact's sum, read from the file as needed.
    pub sums: Sums,
}

fn put_str(w: &mut dyn Write, s: &str) -> io::Result<()> {
    let len = u32::try_from(s.len()).map_err(io::Error::other)?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn put_u32(w: &mut dyn Write, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(io::Error::other)?;
    w.write_all(&n.to_le_bytes())
}

/// Writes the state of a build: `hosts` is each host's name, fingerprint
/// and closure; of `sums`, the heads (`hosts/<host>/`, see [`Sums`]) that
/// `public` takes, which are the manifest's.
pub(crate) fn write(
    w: &mut dyn Write,
    manifest_sha256: &Digest32,
    ports_roles: &str,
    port_warnings: &[&str],
    hosts: &[(&str, &str, &str)],
    sums: &Sums,
    public: &dyn Fn(&str) -> bool,
) -> io::Result<()> {
    w.write_all(MAGIC)?;
    put_str(w, env!("CARGO_PKG_VERSION"))?;
    w.write_all(&manifest_sha256.0)?;
    put_str(w, ports_roles)?;
    put_u32(w, port_warnings.len())?;
    for host in port_warnings {
        put_str(w, host)?;
    }
    put_u32(w, hosts.len())?;
    for (name, fingerprint, closure) in hosts {
        put_str(w, name)?;
        put_str(w, fingerprint)?;
        put_str(w, closure)?;
    }
    let table = sums.table(public);
    put_u32(w, table.rests.len())?;
    for rest in &table.rests {
        put_str(w, rest)?;
    }
    put_u32(w, table.heads.len())?;
    for (head, count) in &table.heads {
        put_str(w, head)?;
        w.write_all(&count.to_le_bytes())?;
    }
    sums.write_entries(&table, public, w)
}

/// A reader that counts what it has read: where the entries begin.
struct Counted<R> {
    inner: R,
    at: u64,
}

impl<R: Read> Counted<R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0; N];
        self.inner.read_exact(&mut b)?;
        self.at += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> io::Result<String> {
        let len = self.u32()?;
        if len > MAX_STRING {
            return Err(io::Error::other("a string longer than any name"));
        }
        let mut b = vec![0; len as usize];
        self.inner.read_exact(&mut b)?;
        self.at += u64::from(len);
        String::from_utf8(b).map_err(io::Error::other)
    }
}

/// Reads the state in `file`, if it is one written by this version of
/// pgimg and whole. Anything else is `None`: the build then renders
/// everything, which is always correct.
pub(crate) fn read(file: std::fs::File) -> Option<State> {
    read_holding(file, crate::digest::HELD_BYTES)
}

/// [`read`], the sums' entries read whole when they take at most
/// `held_bytes` in memory, else a host's group when it is asked for.
fn read_holding(file: std::fs::File, held_bytes: usize) -> Option<State> {
    use std::io::Seek as _;
    let len = file.metadata().ok()?.len();
    (&file).seek(io::SeekFrom::Start(0)).ok()?;
    let mut r = Counted {
        inner: io::BufReader::with_capacity(1 << 16, &file),
        at: 0,
    };
    let magic: [u8; MAGIC.len()] = r.bytes().ok()?;
    if magic != MAGIC || r.string().ok()? != env!("CARGO_PKG_VERSION") {
        return None;
    }
    let mut state = State {
        manifest_sha256: Digest32(r.bytes().ok()?),
        ports_roles: r.string().ok()?,
        ..State::default()
    };
    // Counts are bounded by what the file can hold, so that a corrupt one
    // fails at its end rather than looping for billions of entries.
    let bounded = |n: u32| (u64::from(n) <= len).then_some(n);
    for _ in 0..bounded(r.u32().ok()?)? {
        state.port_warnings.push(r.string().ok()?);
    }
    for _ in 0..bounded(r.u32().ok()?)? {
        let name = r.string().ok()?;
        state.fingerprints.insert(name.clone(), r.string().ok()?);
        state.closures.insert(name, r.string().ok()?);
    }
    let mut rests = Vec::new();
    for _ in 0..bounded(r.u32().ok()?)? {
        rests.push(r.string().ok()?);
    }
    let mut heads = Vec::new();
    for _ in 0..bounded(r.u32().ok()?)? {
        heads.push((r.string().ok()?, r.u32().ok()?));
    }
    let offset = r.at;
    drop(r);
    state.sums = Sums::in_file(file, offset, rests, heads, held_bytes)?;
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sum;

    fn scratch(name: &str) -> std::fs::File {
        // Tests run on threads of one process: the name tells them apart.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("pgimg-state-{name}-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("a scratch file");
        std::fs::remove_file(&path).expect("unlinking it");
        file
    }

    fn written(sums: &Sums) -> std::fs::File {
        let mut file = scratch("written");
        write(
            &mut file,
            &Digest32::of(b"manifest"),
            "roles",
            &["b"],
            &[("a", "fa", "ca"), ("b", "fb", "cb")],
            sums,
            &|head| !head.starts_with("secrets/"),
        )
        .expect("writing the state");
        file
    }

    #[test]
    fn reads_back_what_was_written_without_the_secrets() {
        let mut sums = Sums::default();
        sums.insert_all(vec![
            ("hosts/a/user-data", Sum::of(b"1")),
            ("hosts/a/rootfs/etc/hosts", Sum::of(b"22")),
        ]);
        sums.insert_all(vec![("hosts/b/user-data", Sum::of(b"333"))]);
        sums.insert("clusters/c/check", Sum::of(b"4"));
        sums.insert("secrets/a/etc/patroni/patroni.env", Sum::of(b"secret"));
        // Read whole, and a host's group when asked for.
        for held_bytes in [crate::digest::HELD_BYTES, 0] {
            let state = read_holding(written(&sums), held_bytes).expect("a whole state");
            check_read_back(&state, &sums);
        }
    }

    fn check_read_back(state: &State, sums: &Sums) {
        assert_eq!(state.manifest_sha256, Digest32::of(b"manifest"));
        assert_eq!(state.ports_roles, "roles");
        assert_eq!(state.port_warnings, ["b"]);
        assert_eq!(state.fingerprints["b"], "fb");
        assert_eq!(state.closures["a"], "ca");
        let public: Vec<(String, Sum)> = sums
            .iter()
            .filter(|(p, _)| !p.head.starts_with("secrets/"))
            .map(|(p, s)| (p.to_string(), s))
            .collect();
        let read: Vec<(String, Sum)> = state.sums.iter().map(|(p, s)| (p.to_string(), s)).collect();
        assert_eq!(read, public);
        assert_eq!(state.sums.len(), 4);
        assert_eq!(state.sums.get("hosts/b/user-data"), Some(Sum::of(b"333")));
        assert!(state.sums.read_error().is_none());
    }

    #[test]
    fn a_truncated_or_foreign_state_is_none() {
        let mut sums = Sums::default();
        sums.insert_all(vec![("hosts/a/user-data", Sum::of(b"1"))]);
        for held_bytes in [crate::digest::HELD_BYTES, 0] {
            let file = written(&sums);
            let len = file.metadata().expect("metadata").len();
            file.set_len(len - 1).expect("truncating");
            assert!(read_holding(file, held_bytes).is_none());
        }
        let mut other = scratch("foreign");
        other.write_all(b"pgimg-state 9\n").expect("writing");
        assert!(read(other).is_none());
    }
}
