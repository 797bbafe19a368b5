//! sha256 as the output prints it: lowercase hex, like `sha256sum`. Used by
//! every stage that names content by its digest (the role tree's input
//! hash, the manifest, the install formats' checks).

use sha2::{Digest, Sha256};

/// The sha256 of `bytes`, in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// A sha256 digest, 32 bytes: a fleet's manifest holds one per artifact,
/// and its 64 hex digits would take three times the memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    pub fn of(bytes: &[u8]) -> Digest32 {
        Digest32(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without allocating.
    pub fn hex_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(text: &str) -> Option<Digest32> {
        let raw = text.as_bytes();
        if raw.len() != 64 {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Digest32(out))
    }
}

impl std::fmt::Display for Digest32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.hex_bytes();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}

impl serde::Serialize for Digest32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex_bytes();
        s.serialize_str(std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> serde::Deserialize<'de> for Digest32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest32::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hexadecimal digits"))
    }
}

/// An artifact as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Sum {
    pub sha256: Digest32,
    pub size: u64,
}

impl Sum {
    pub fn of(bytes: &[u8]) -> Sum {
        Sum {
            sha256: Digest32::of(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// sha256, in lowercase hex, of the text `args` formats, without holding
/// that text: a resolved cluster's `Debug` text is tens of kilobytes, and a
/// fleet's fingerprints format every cluster.
pub(crate) fn sha256_fmt(args: std::fmt::Arguments<'_>) -> String {
    /// Gathers the formatter's many small pieces before hashing them.
    struct Gathered {
        hash: Sha256,
        buf: Vec<u8>,
    }
    impl std::fmt::Write for Gathered {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            if self.buf.len() + s.len() > self.buf.capacity() {
                self.hash.update(&self.buf);
                self.buf.clear();
            }
            if s.len() > self.buf.capacity() {
                self.hash.update(s.as_bytes());
            } else {
                self.buf.extend_from_slice(s.as_bytes());
            }
            Ok(())
        }
    }
    let mut g = Gathered {
        hash: Sha256::new(),
        buf: Vec::with_capacity(8 << 10),
    };
    // Only a `Display` or `Debug` implementation can fail, and ours do not;
    // `format!` would panic where this hashes what was written.
    let _ = std::fmt::Write::write_fmt(&mut g, args);
    g.hash.update(&g.buf);
    hex(&g.hash.finalize())
}

/// A writer that only hashes: the manifest's digest without its bytes.
#[derive(Default)]
pub(crate) struct HashWriter(Sha256);

impl HashWriter {
    pub(crate) fn finish(self) -> Digest32 {
        Digest32(self.0.finalize().into())
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `write` on a writer whose bytes another thread both hashes and
/// passes on to `inner`, and returns their digest: a large fleet's
/// manifest is megabytes, and this thread then only makes it while the
/// other hashes and writes it (at 1,000 hosts, 7 MB: about 4 ms of
/// hashing and 4 ms of writing into tmpfs). The bytes go over in pieces
/// of [`HANDED_PIECE`] bytes, at most a few of them at a time, and the
/// emptied pieces come back to be filled again. Hashes and writes as it
/// goes where no thread can be started.
pub(crate) fn write_hashed(
    inner: &mut (dyn std::io::Write + Send),
    write: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<Digest32> {
    use std::io::Write as _;
    use std::sync::mpsc;
    /// Gathers the bytes into the piece the other thread takes next.
    struct Handed {
        piece: Vec<u8>,
        full: mpsc::SyncSender<Vec<u8>>,
        emptied: mpsc::Receiver<Vec<u8>>,
    }
    impl Handed {
        fn hand_over(&mut self) -> std::io::Result<()> {
            if self.piece.is_empty() {
                return Ok(());
            }
            let next = self
                .emptied
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(2 * HANDED_PIECE));
            let piece = std::mem::replace(&mut self.piece, next);
            self.full
                .send(piece)
                .map_err(|_| std::io::Error::other("the writing thread ended early"))
        }
    }
    impl std::io::Write for Handed {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.piece.extend_from_slice(buf);
            if self.piece.len() >= HANDED_PIECE {
                self.hand_over()?;
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    std::thread::scope(|scope| {
        let (full, received) = mpsc::sync_channel::<Vec<u8>>(4);
        let (emptied_to, emptied) = mpsc::channel::<Vec<u8>>();
        // `inner` is lent to the thread and comes back with its result.
        let (lent_to, lent) = mpsc::sync_channel::<&mut (dyn std::io::Write + Send)>(1);
        let writer = std::thread::Builder::new().spawn_scoped(scope, move || {
            let inner = lent.recv().map_err(std::io::Error::other)?;
            let mut hash = HashWriter::default();
            for mut piece in received {
                hash.0.update(&piece);
                inner.write_all(&piece)?;
                piece.clear();
                let _ = emptied_to.send(piece);
            }
            inner.flush()?;
            Ok::<_, std::io::Error>(hash.finish())
        });
        let Ok(writer) = writer else {
            let mut tee = Tee {
                inner,
                hash: HashWriter::default(),
            };
            write(&mut tee)?;
            tee.flush()?;
            return Ok(tee.hash.finish());
        };
        lent_to
            .send(inner)
            .map_err(|_| std::io::Error::other("the writing thread ended early"))?;
        let mut handed = Handed {
            piece: Vec::with_capacity(2 * HANDED_PIECE),
            full,
            emptied,
        };
        let made = write(&mut handed).and_then(|()| handed.hand_over());
        drop(handed);
        let written = writer
            .join()
            .map_err(|_| std::io::Error::other("the writing thread panicked"))?;
        // The writer's own failure says more than "ended early" does.
        let digest = written?;
        made.map(|()| digest)
    })
}

/// The bytes [`write_hashed`] hands over at a time.
const HANDED_PIECE: usize = 256 << 10;

/// Passes bytes on to `inner` and hashes them on the way.
struct Tee<'a> {
    inner: &'a mut (dyn std::io::Write + Send),
    hash: HashWriter,
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.0.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A path of [`Sums`], in its two stored parts.
#[derive(Debug, Clone, Copy)]
pub struct SumPath<'a> {
    pub head: &'a str,
    pub rest: &'a str,
}

impl SumPath<'_> {
    /// Compares the whole path with `other`, byte by byte.
    pub fn cmp_str(&self, other: &str) -> std::cmp::Ordering {
        self.head
            .bytes()
            .chain(self.rest.bytes())
            .cmp(other.bytes())
    }
}

impl std::fmt::Display for SumPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.head)?;
        f.write_str(self.rest)
    }
}

/// Every artifact's [`Sum`] by path, iterated in path order.
///
/// A fleet has hundreds of thousands of artifacts whose paths repeat the
/// same few dozen names under each host: a path is stored as its head (up
/// to and including its second `/`, as in `hosts/<host>/`, or the whole
/// path when it has fewer) and its rest, interned across heads as a 32-bit
/// number. Heads in order, then rests in order, is whole paths in order: a
/// head that is a proper prefix of another has no second `/`, so it is a
/// whole path. A host's artifacts come as one batch ([`Sums::insert_all`]),
/// so that its group is allocated once at its size; given a scratch file
/// ([`Sums::spilling_to`]), such a group is written there instead and read
/// back when the manifest is made: at 30,000 hosts the sums are 50 MB, the
/// largest thing a build would hold.
#[derive(Debug, Clone, Default)]
pub struct Sums {
    heads: std::collections::BTreeMap<Box<str>, Group>,
    rests: Rests,
    len: usize,
    spill: Option<std::sync::Arc<Spill>>,
}

#[derive(Debug, Clone)]
enum Group {
    Held(Vec<(u32, Sum)>),
    /// `count` entries of [`SPILLED_ENTRY`] bytes at `offset` of the scratch file.
    Spilled {
        offset: u64,
        count: u32,
    },
}

/// A rest's number, the sha256 and the size (little-endian).
const SPILLED_ENTRY: usize = 4 + 32 + 8;

/// How many bytes of entries [`Sums`] keeps in memory before it spills
/// groups to its file: a thousand hosts' sums are about 1.5 MB, read back
/// a group at a time five times a build (closures, manifest, `SHA256SUMS`,
/// state) at some ten thousand reads; 30,000 hosts' are 50 MB, which is
/// what the file is for, and whose peak each MiB held here adds to.
pub(crate) const HELD_BYTES: usize = 2 << 20;

/// The scratch file of [`Sums`], written at its end and read anywhere.
#[derive(Debug)]
struct Spill {
    file: std::fs::File,
    end: std::sync::Mutex<u64>,
    /// Bytes of groups kept in memory so far, up to `budget`.
    held: std::sync::atomic::AtomicUsize,
    budget: usize,
    /// The first failed read, for [`Sums::read_error`]: the readers are
    /// iterators, which end early rather than fail.
    error: std::sync::Mutex<Option<std::io::Error>>,
}

impl Spill {
    fn new(file: std::fs::File, end: u64, budget: usize) -> Spill {
        Spill {
            file,
            end: std::sync::Mutex::new(end),
            held: std::sync::atomic::AtomicUsize::new(0),
            budget,
            error: std::sync::Mutex::new(None),
        }
    }

    /// Whether a group of `count` entries still fits in memory; if so, it
    /// is counted as held.
    fn hold(&self, count: usize) -> bool {
        use std::sync::atomic::Ordering;
        let bytes = count * std::mem::size_of::<(u32, Sum)>();
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held + bytes <= self.budget).then_some(held + bytes)
            })
            .is_ok()
    }

    fn write(&self, group: &[(u32, Sum)]) -> std::io::Result<Group> {
        use std::os::unix::fs::FileExt as _;
        let mut bytes = Vec::with_capacity(group.len() * SPILLED_ENTRY);
        for (rest, sum) in group {
            bytes.extend_from_slice(&rest.to_le_bytes());
            bytes.extend_from_slice(&sum.sha256.0);
            bytes.extend_from_slice(&sum.size.to_le_bytes());
        }
        let count = u32::try_from(group.len()).map_err(std::io::Error::other)?;
        let offset = {
            let mut end = self
                .end
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            let offset = *end;
            *end += bytes.len() as u64;
            offset
        };
        self.file.write_all_at(&bytes, offset)?;
        Ok(Group::Spilled { offset, count })
    }

    fn read(&self, offset: u64, count: u32) -> Vec<(u32, Sum)> {
        use std::os::unix::fs::FileExt as _;
        let mut bytes = vec![0; count as usize * SPILLED_ENTRY];
        if let Err(e) = self.file.read_exact_at(&mut bytes, offset) {
            if let Ok(mut first) = self.error.lock() {
                first.get_or_insert(e);
            }
            return Vec::new();
        }
        bytes
            .chunks_exact(SPILLED_ENTRY)
            .map(|e| {
                let (rest, e) = e.split_at(4);
                let (sha, size) = e.split_at(32);
                let mut r = [0; 4];
                r.copy_from_slice(rest);
                let mut d = [0; 32];
                d.copy_from_slice(sha);
                let mut n = [0; 8];
                n.copy_from_slice(size);
                (
                    u32::from_le_bytes(r),
                    Sum {
                        sha256: Digest32(d),
                        size: u64::from_le_bytes(n),
                    },
                )
            })
            .collect()
    }
}

/// The interned rests of [`Sums`]: each one once, numbered in order of
/// first appearance.
#[derive(Debug, Clone, Default)]
struct Rests {
    names: Vec<std::sync::Arc<str>>,
    ids: std::collections::HashMap<std::sync::Arc<str>, u32>,
}

impl Rests {
    fn id(&mut self, rest: &str) -> u32 {
        if let Some(&id) = self.ids.get(rest) {
            return id;
        }
        // Four billion distinct rests would be far beyond any memory a
        // build has; saturating keeps this total.
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: std::sync::Arc<str> = rest.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    /// Whether every rest of `other` has the same number here: true once
    /// these rests were taken from it ([`Sums::number_rests_as`]).
    fn extend(&self, other: &Rests) -> bool {
        other.names.len() <= self.names.len()
            && other
                .names
                .iter()
                .zip(&self.names)
                .all(|(theirs, mine)| std::sync::Arc::ptr_eq(theirs, mine))
    }
}

fn split_path(path: &str) -> (&str, &str) {
    let mut slashes = path.match_indices('/').map(|(i, _)| i);
    match (slashes.next(), slashes.next()) {
        (Some(_), Some(i)) => path.split_at(i + 1),
        _ => (path, ""),
    }
}

impl Sums {
    /// Sums that keep each batch's group in `scratch` (a file open for
    /// reading and writing, nothing else's) rather than in memory, once
    /// [`HELD_BYTES`] of them are.
    pub fn spilling_to(scratch: std::fs::File) -> Sums {
        Sums::spilling_beyond(scratch, HELD_BYTES)
    }

    fn spilling_beyond(scratch: std::fs::File, held_bytes: usize) -> Sums {
        Sums {
            spill: Some(std::sync::Arc::new(Spill::new(scratch, 0, held_bytes))),
            ..Sums::default()
        }
    }

    /// The first read of the scratch file that failed, if any: the sums
    /// iterated since then may have ended early.
    pub fn read_error(&self) -> Option<std::io::Error> {
        let spill = self.spill.as_ref()?;
        spill.error.lock().ok()?.take()
    }

    /// A group's entries, read back when it was spilled.
    /// A group's entries one by one: a held group's are not copied first.
    fn each<'a>(&'a self, group: &'a Group) -> impl Iterator<Item = (u32, Sum)> + 'a {
        let entries = self.entries(group);
        (0..entries.len()).map(move |i| entries[i].clone())
    }

    fn entries<'a>(&'a self, group: &'a Group) -> std::borrow::Cow<'a, [(u32, Sum)]> {
        match (group, &self.spill) {
            (Group::Held(g), _) => std::borrow::Cow::Borrowed(g),
            (Group::Spilled { offset, count }, Some(spill)) => {
                std::borrow::Cow::Owned(spill.read(*offset, *count))
            }
            (Group::Spilled { .. }, None) => std::borrow::Cow::Owned(Vec::new()),
        }
    }

    /// Stores a new head's whole group: in the scratch file when there is
    /// one (in memory if writing there fails).
    fn put_group(&mut self, head: &str, group: Vec<(u32, Sum)>) {
        self.len += group.len();
        let stored = match &self.spill {
            Some(spill) if !group.is_empty() && !spill.hold(group.len()) => {
                spill.write(&group).unwrap_or(Group::Held(group))
            }
            _ => Group::Held(group),
        };
        self.heads.insert(head.into(), stored);
    }

    /// Records `sum` for `path`, replacing an earlier one.
    pub fn insert(&mut self, path: &str, sum: Sum) {
        let (head, rest) = split_path(path);
        let id = self.rests.id(rest);
        // A group read back to change it stays in memory: that is rare
        // (a path put on its own under a host's directory).
        if let Some(g @ Group::Spilled { .. }) = self.heads.get(head) {
            let held = self.entries(g).into_owned();
            self.heads.insert(head.into(), Group::Held(held));
        }
        let rests = &self.rests;
        let group = match self.heads.get_mut(head) {
            Some(Group::Held(g)) => g,
            _ => match self
                .heads
                .entry(head.into())
                .or_insert_with(|| Group::Held(Vec::new()))
            {
                Group::Held(g) => g,
                Group::Spilled { .. } => return,
            },
        };
        match group.binary_search_by(|(r, _)| rests.name(*r).cmp(rest)) {
            Ok(i) => group[i].1 = sum,
            Err(i) => {
                group.insert(i, (id, sum));
                self.len += 1;
            }
        }
    }

    /// Records every `(path, sum)` of `batch`, as [`Sums::insert`] would one
    /// by one; a head the sums do not have yet gets its group whole, sized
    /// to its paths.
    pub fn insert_all(&mut self, mut batch: Vec<(&str, Sum)>) {
        batch.sort_by(|(a, _), (b, _)| split_path(a).0.cmp(split_path(b).0));
        let mut rest = batch.as_slice();
        while let Some(((first, _), _)) = rest.split_first() {
            let head = split_path(first).0;
            let n = rest
                .iter()
                .take_while(|(p, _)| split_path(p).0 == head)
                .count();
            let (same, after) = rest.split_at(n);
            rest = after;
            if self.heads.contains_key(head) {
                for (path, sum) in same {
                    self.insert(path, sum.clone());
                }
                continue;
            }
            // Later entries replace earlier ones, as inserting would.
            let mut group: Vec<(u32, Sum)> = Vec::with_capacity(same.len());
            for (path, sum) in same.iter().rev() {
                group.push((self.rests.id(split_path(path).1), sum.clone()));
            }
            let rests = &self.rests;
            group.sort_by(|(a, _), (b, _)| rests.name(*a).cmp(rests.name(*b)));
            group.dedup_by_key(|(r, _)| *r);
            group.shrink_to_fit();
            self.put_group(head, group);
        }
    }

    pub fn get(&self, path: &str) -> Option<Sum> {
        let (head, rest) = split_path(path);
        self.find(&self.entries(self.heads.get(head)?), rest)
    }

    /// [`Sums::get`] of each of `paths`, reading a head's group once for a
    /// run of paths under it.
    pub fn get_all(&self, paths: &[&str]) -> Vec<Option<Sum>> {
        let mut last_head = None;
        let mut last_group = None;
        paths
            .iter()
            .map(|path| {
                let (head, rest) = split_path(path);
                if last_head != Some(head) {
                    last_head = Some(head);
                    last_group = self.heads.get(head).map(|g| self.entries(g));
                }
                self.find(last_group.as_ref()?, rest)
            })
            .collect()
    }

    /// The sum of `rest` in a head's group (sorted by the rests' names).
    fn find(&self, group: &[(u32, Sum)], rest: &str) -> Option<Sum> {
        group
            .binary_search_by(|(r, _)| self.rests.name(*r).cmp(rest))
            .ok()
            .map(|i| group[i].1.clone())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every path and its sum, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (SumPath<'_>, Sum)> {
        let rests = &self.rests;
        self.heads.iter().flat_map(move |(head, group)| {
            self.each(group).map(move |(rest, sum)| {
                (
                    SumPath {
                        head,
                        rest: rests.name(rest),
                    },
                    sum,
                )
            })
        })
    }

    /// Numbers the rests as `from` does, before anything is recorded here,
    /// so that [`Sums::copy_under`] takes `from`'s groups as they are
    /// instead of looking up each rest's number: a rebuild copies the
    /// previous build's sums of every kept host. Rests that end up unused
    /// are never written (the state lists only those its heads use).
    pub fn number_rests_as(&mut self, from: &Sums) {
        if self.rests.names.is_empty() {
            self.rests = from.rests.clone();
        }
    }

    /// Records every path under `dir` of `from` with its sum there, and
    /// returns how many. A `dir` that is one whole head (`hosts/<host>/`,
    /// `clusters/<cluster>/`) takes its group whole: a kept host is dozens
    /// of paths, a fleet's rebuild thousands of hosts.
    pub fn copy_under(&mut self, from: &Sums, dir: &str) -> usize {
        let (head, rest) = split_path(dir);
        if rest.is_empty()
            && head.ends_with('/')
            && !self.heads.contains_key(head)
            && let Some(group) = from.heads.get(head)
        {
            // Both are in the order of their rests' names; only the numbers
            // may differ, unless these were numbered as `from`'s.
            let theirs = from.entries(group);
            let mine = if self.rests.extend(&from.rests) {
                theirs.into_owned()
            } else {
                theirs
                    .iter()
                    .map(|(r, sum)| (self.rests.id(from.rests.name(*r)), sum.clone()))
                    .collect()
            };
            let n = mine.len();
            self.put_group(head, mine);
            return n;
        }
        let mut n = 0;
        for (path, sum) in from.under(dir) {
            self.insert(&path.to_string(), sum);
            n += 1;
        }
        n
    }

    /// The paths under `dir` (such as `hosts/<host>/`; it ends with its
    /// `/`) and their sums, in path order. A `dir` of two or more
    /// directories is one head, or a prefix of its rests; one of one
    /// directory is a prefix of the heads under it.
    pub fn under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (SumPath<'a>, Sum)> {
        let (head, rest) = split_path(dir);
        let rests = &self.rests;
        self.heads
            .range::<str, _>((std::ops::Bound::Included(head), std::ops::Bound::Unbounded))
            .take_while(move |(h, _)| h.starts_with(head))
            .flat_map(move |(h, group)| {
                self.each(group)
                    .map(move |(r, sum)| (rests.name(r), sum))
                    .filter(move |(r, _)| r.starts_with(rest))
                    .map(move |(r, sum)| (SumPath { head: h, rest: r }, sum))
            })
    }
}

/// The parts of [`Sums`] that the build's state file holds
/// (the `state` module): the rests its heads use, in name order, so that the
/// file is the same whatever order the build recorded them in; and each
/// head kept with its group's length.
pub(crate) struct SumsTable<'a> {
    pub rests: Vec<&'a str>,
    pub heads: Vec<(&'a str, u32)>,
    /// A rest's number in the sums → its number in `rests`.
    renumber: Vec<u32>,
}

impl Sums {
    /// The table of the heads that `keep` takes, for the state file; their
    /// entries follow in [`Sums::write_entries`].
    pub(crate) fn table(&self, keep: &dyn Fn(&str) -> bool) -> SumsTable<'_> {
        let mut used = vec![false; self.rests.names.len()];
        let mut heads = Vec::new();
        for (head, group) in self.heads.iter().filter(|(h, _)| keep(h)) {
            let entries = self.entries(group);
            for (rest, _) in entries.iter() {
                if let Some(u) = used.get_mut(*rest as usize) {
                    *u = true;
                }
            }
            heads.push((&**head, u32::try_from(entries.len()).unwrap_or(u32::MAX)));
        }
        let mut rests: Vec<(&str, usize)> = used
            .iter()
            .enumerate()
            .filter(|(_, u)| **u)
            .map(|(id, _)| (&*self.rests.names[id], id))
            .collect();
        rests.sort_unstable();
        let mut renumber = vec![u32::MAX; self.rests.names.len()];
        for (new, (_, old)) in rests.iter().enumerate() {
            renumber[*old] = u32::try_from(new).unwrap_or(u32::MAX);
        }
        SumsTable {
            rests: rests.into_iter().map(|(name, _)| name).collect(),
            heads,
            renumber,
        }
    }

    /// Writes the entries of the heads that `keep` takes, in head order,
    /// in the scratch file's layout ([`SPILLED_ENTRY`] bytes each) and
    /// numbered as in `table`.
    pub(crate) fn write_entries(
        &self,
        table: &SumsTable,
        keep: &dyn Fn(&str) -> bool,
        w: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        for (_, group) in self.heads.iter().filter(|(h, _)| keep(h)) {
            for (rest, sum) in self.entries(group).iter() {
                let rest = table
                    .renumber
                    .get(*rest as usize)
                    .copied()
                    .unwrap_or(u32::MAX);
                w.write_all(&rest.to_le_bytes())?;
                w.write_all(&sum.sha256.0)?;
                w.write_all(&sum.size.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Sums whose entries are in `file` (a state file, opened for
    /// reading): `heads` in order, with the number of entries of each,
    /// which are laid out from `offset` in that order. They are read at
    /// once when they take at most `held_bytes` in memory, else a group
    /// when it is needed. `None` when the table does not fit the file
    /// exactly or numbers a rest it does not name.
    pub(crate) fn in_file(
        file: std::fs::File,
        offset: u64,
        rests: Vec<String>,
        heads: Vec<(String, u32)>,
        held_bytes: usize,
    ) -> Option<Sums> {
        let len = file.metadata().ok()?.len();
        let spill = Spill::new(file, len, held_bytes);
        // Entries that fit in memory are read at once, not a group at a time.
        let whole = usize::try_from(len.checked_sub(offset)?)
            .ok()
            .filter(|bytes| {
                *bytes / SPILLED_ENTRY * std::mem::size_of::<(u32, Sum)>() <= held_bytes
            })
            .map(|bytes| spill.read(offset, u32::try_from(bytes / SPILLED_ENTRY).unwrap_or(0)));
        let mut sums = Sums {
            spill: Some(std::sync::Arc::new(spill)),
            ..Sums::default()
        };
        for rest in rests {
            let id = sums.rests.id(&rest);
            if id as usize + 1 != sums.rests.names.len() {
                return None;
            }
        }
        let mut at = offset;
        let mut previous: Option<&str> = None;
        let mut whole = whole.map(Vec::into_iter);
        for (head, count) in &heads {
            if previous.is_some_and(|p| p >= head.as_str()) {
                return None;
            }
            previous = Some(head);
            let group = match whole.as_mut() {
                Some(entries) => {
                    let group: Vec<(u32, Sum)> = entries.by_ref().take(*count as usize).collect();
                    if group.len() != *count as usize
                        || group
                            .iter()
                            .any(|(r, _)| *r as usize >= sums.rests.names.len())
                    {
                        return None;
                    }
                    Group::Held(group)
                }
                None => Group::Spilled {
                    offset: at,
                    count: *count,
                },
            };
            sums.heads.insert(head.as_str().into(), group);
            at = at.checked_add(u64::from(*count) * SPILLED_ENTRY as u64)?;
            sums.len += *count as usize;
        }
        (at == len).then_some(sums)
    }
}

#[cfg(test)]
mod sums_tests {
    use super::{Sum, Sums};

    #[test]
    fn a_formatted_text_hashes_as_the_text_does() {
        let long = "x".repeat(20_000);
        let parts: Vec<String> = (0..3000).map(|i| format!("{i:?}")).collect();
        assert_eq!(
            super::sha256_fmt(format_args!("short")),
            super::sha256(b"short")
        );
        assert_eq!(
            super::sha256_fmt(format_args!("{long}\n{parts:?}")),
            super::sha256(format!("{long}\n{parts:?}").as_bytes())
        );
    }

    #[test]
    fn bytes_hashed_aside_are_passed_on_and_hashed_whole() {
        let mut out = Vec::new();
        let digest = super::write_hashed(&mut out, &mut |w| {
            for i in 0..1000u32 {
                w.write_all(format!("line {i}\n").repeat(50).as_bytes())?;
            }
            Ok(())
        })
        .expect("writing");
        assert!(out.len() > 1 << 18);
        assert_eq!(digest, super::Digest32::of(&out));
        let failed =
            super::write_hashed(&mut Vec::new(), &mut |_| Err(std::io::Error::other("no")));
        assert!(failed.is_err());
    }

    /// A writer that takes `room` bytes, then fails like a full disk.
    struct Full {
        room: usize,
    }

    impl std::io::Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.room {
                return Err(std::io::Error::other("no space left"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_destination_fails_the_writing_with_its_own_error() {
        for room in [0, 1 << 20] {
            let failed = super::write_hashed(&mut Full { room }, &mut |w| {
                for _ in 0..64 {
                    w.write_all(&[b'x'; 64 << 10])?;
                }
                Ok(())
            })
            .expect_err("the destination is full");
            assert_eq!(failed.to_string(), "no space left", "room {room}");
        }
    }

    const PATHS: &[&str] = &[
        "SHA256SUMS",
        "clusters/c1/check",
        "clusters/c1/etcd-runbook.md",
        "clusters/c10/check",
        "hosts/a/kickstart.ks",
        "hosts/a/rootfs/etc/hosts",
        "hosts/a/rootfs/etc/patroni/patroni.yml",
        "hosts/a-b/user-data",
        "hosts/a.b/user-data",
        "hosts/a0/overlay.tar.gz",
        "hosts/ab/rootfs/etc/hosts",
        "manifest.json",
        "pxe",
        "pxe/grub.cfg",
        "pxe/pxelinux.cfg/01-aa-bb",
        "pxe/pxelinux.cfg/01-aa-bc",
        "secrets/a/patroni.env",
        "secrets/a0",
    ];

    fn sums(order: impl Iterator<Item = usize>) -> Sums {
        let mut s = Sums::default();
        for i in order {
            s.insert(PATHS[i], Sum::of(PATHS[i].as_bytes()));
        }
        s
    }

    #[test]
    fn iterates_whole_paths_in_byte_order_whatever_the_insertion_order() {
        let mut want: Vec<&str> = PATHS.to_vec();
        want.sort();
        for s in [sums(0..PATHS.len()), sums((0..PATHS.len()).rev())] {
            let got: Vec<String> = s.iter().map(|(p, _)| p.to_string()).collect();
            assert_eq!(got, want);
            assert_eq!(s.len(), PATHS.len());
            for p in PATHS {
                assert_eq!(s.get(p), Some(Sum::of(p.as_bytes())), "{p}");
            }
            assert_eq!(s.get("hosts/a/rootfs"), None);
            assert_eq!(s.get("hosts/b/kickstart.ks"), None);
        }
    }

    #[test]
    fn lists_a_directory_and_nothing_beside_it() {
        let s = sums(0..PATHS.len());
        let under =
            |dir: &str| -> Vec<String> { s.under(dir).map(|(p, _)| p.to_string()).collect() };
        assert_eq!(
            under("hosts/a/"),
            [
                "hosts/a/kickstart.ks",
                "hosts/a/rootfs/etc/hosts",
                "hosts/a/rootfs/etc/patroni/patroni.yml"
            ]
        );
        assert_eq!(
            under("clusters/c1/"),
            ["clusters/c1/check", "clusters/c1/etcd-runbook.md"]
        );
        assert_eq!(
            under("pxe/"),
            [
                "pxe/grub.cfg",
                "pxe/pxelinux.cfg/01-aa-bb",
                "pxe/pxelinux.cfg/01-aa-bc"
            ]
        );
        assert_eq!(
            under("hosts/a/rootfs/etc/patroni/"),
            ["hosts/a/rootfs/etc/patroni/patroni.yml"]
        );
    }

    #[test]
    fn copies_a_directory_whole_or_by_path_as_inserting_would() {
        let from = sums(0..PATHS.len());
        for dirs in [
            &["hosts/a/", "clusters/c1/", "pxe/"][..],
            &["hosts/a/rootfs/", "secrets/a/"][..],
        ] {
            let mut copied = Sums::default();
            copied.insert("hosts/b/kickstart.ks", Sum::of(b"b"));
            let mut inserted = copied.clone();
            for dir in dirs {
                let n = copied.copy_under(&from, dir);
                let mut m = 0;
                for (p, sum) in from.under(dir) {
                    inserted.insert(&p.to_string(), sum);
                    m += 1;
                }
                assert_eq!(n, m, "{dir}");
                assert!(n > 0, "{dir}");
            }
            let list = |s: &Sums| -> Vec<(String, Sum)> {
                s.iter().map(|(p, sum)| (p.to_string(), sum)).collect()
            };
            assert_eq!(list(&copied), list(&inserted));
            assert_eq!(copied.len(), inserted.len());
        }
        assert_eq!(Sums::default().copy_under(&from, "hosts/none/"), 0);
    }

    #[test]
    fn rests_numbered_as_the_previous_sums_copy_their_groups_as_they_are() {
        let from = sums(0..PATHS.len());
        let list = |s: &Sums| -> Vec<(String, Sum)> {
            s.iter().map(|(p, sum)| (p.to_string(), sum)).collect()
        };
        let mut looked_up = Sums::default();
        let mut numbered = Sums::default();
        numbered.number_rests_as(&from);
        assert!(numbered.rests.extend(&from.rests));
        for s in [&mut looked_up, &mut numbered] {
            s.insert("hosts/new/only-here", Sum::of(b"new"));
            assert!(s.copy_under(&from, "hosts/a/") > 0);
            s.insert("hosts/b/kickstart.ks", Sum::of(b"b"));
        }
        assert!(!looked_up.rests.extend(&from.rests));
        assert_eq!(list(&numbered), list(&looked_up));
        // Rests already there are not renumbered.
        let mut started = Sums::default();
        started.insert("hosts/x/y", Sum::of(b"x"));
        started.number_rests_as(&from);
        assert!(!started.rests.extend(&from.rests));
    }

    #[test]
    fn a_batch_is_recorded_as_inserting_one_by_one_would() {
        let mut batch: Vec<(&str, Sum)> = PATHS.iter().map(|p| (*p, Sum::of(b"first"))).collect();
        batch.push(("hosts/a/kickstart.ks", Sum::of(b"second")));
        batch.push(("hosts/new/user-data", Sum::of(b"new")));
        for start in [Sums::default(), sums(0..3)] {
            let mut one_by_one = start.clone();
            for (p, sum) in &batch {
                one_by_one.insert(p, sum.clone());
            }
            let mut all = start;
            all.insert_all(batch.clone());
            let list = |s: &Sums| -> Vec<(String, Sum)> {
                s.iter().map(|(p, sum)| (p.to_string(), sum)).collect()
            };
            assert_eq!(list(&all), list(&one_by_one));
            assert_eq!(all.len(), one_by_one.len());
            assert_eq!(all.get("hosts/a/kickstart.ks"), Some(Sum::of(b"second")));
        }
    }

    /// A scratch file of the system's temporary directory, unlinked at once.
    fn scratch(name: &str) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("pgimg-sums-{name}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("a scratch file");
        std::fs::remove_file(&path).expect("unlinking the scratch file");
        file
    }

    #[test]
    fn spilled_sums_read_back_as_held_ones() {
        let batches: Vec<Vec<(&str, Sum)>> = PATHS
            .chunks(3)
            .map(|c| c.iter().map(|p| (*p, Sum::of(p.as_bytes()))).collect())
            .collect();
        let mut held = Sums::default();
        let mut spilled = Sums::spilling_beyond(scratch("spill"), 0);
        for b in &batches {
            held.insert_all(b.clone());
            spilled.insert_all(b.clone());
        }
        // A later insert into a spilled group, and a group copied from it.
        for s in [&mut held, &mut spilled] {
            s.insert("hosts/a/kickstart.ks", Sum::of(b"again"));
        }
        let mut copied_held = Sums::default();
        let mut copied_spilled = Sums::spilling_beyond(scratch("copy"), 0);
        assert_eq!(copied_held.copy_under(&held, "hosts/a0/"), 1);
        assert_eq!(copied_spilled.copy_under(&spilled, "hosts/a0/"), 1);
        let list = |s: &Sums| -> Vec<(String, Sum)> {
            s.iter().map(|(p, sum)| (p.to_string(), sum)).collect()
        };
        assert_eq!(list(&spilled), list(&held));
        assert_eq!(list(&copied_spilled), list(&copied_held));
        assert_eq!(spilled.len(), held.len());
        assert!(
            spilled
                .heads
                .values()
                .any(|g| matches!(g, super::Group::Spilled { .. }))
        );
        for p in PATHS {
            assert_eq!(spilled.get(p), held.get(p), "{p}");
        }
        let under =
            |s: &Sums| -> Vec<String> { s.under("pxe/").map(|(p, _)| p.to_string()).collect() };
        assert_eq!(under(&spilled), under(&held));
        assert!(spilled.read_error().is_none());
    }

    #[test]
    fn getting_many_is_getting_each() {
        let s = sums(0..PATHS.len());
        let asked: Vec<&str> = PATHS
            .iter()
            .copied()
            .chain(["hosts/a/missing", "nowhere/at/all", "hosts/a/kickstart.ks"])
            .collect();
        let each: Vec<Option<Sum>> = asked.iter().map(|p| s.get(p)).collect();
        assert_eq!(s.get_all(&asked), each);
        assert!(each.iter().any(Option::is_none) && each.iter().any(Option::is_some));
    }

    #[test]
    fn a_second_insert_replaces_the_sum() {
        let mut s = sums(0..PATHS.len());
        s.insert("hosts/a/kickstart.ks", Sum::of(b"new"));
        assert_eq!(s.len(), PATHS.len());
        assert_eq!(s.get("hosts/a/kickstart.ks"), Some(Sum::of(b"new")));
    }
}
