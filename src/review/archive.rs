//! Archives as a reviewer reads them: a tarball by its entries, and the
//! overlay that kickstarts and user-data embed as base64 by a one-line
//! placeholder plus the archive itself, never as base64 text.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use serde::Serialize;

use crate::digest::sha256;

/// One entry of a tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub owner: String,
    pub size: u64,
    pub sha256: String,
    pub content: Vec<u8>,
}

impl Entry {
    /// The entry's listing line, as in `tests/cases/*/expected/**/*.tar.gz.list`.
    pub(crate) fn line(&self, path: &str) -> String {
        format!(
            "{:<4} {:04o} {} size={} sha256={} {path}",
            self.kind, self.mode, self.owner, self.size, self.sha256
        )
    }
}

/// Reads a `.tar.gz`; `None` when it is not one.
pub(crate) fn entries(gz: &[u8]) -> Option<BTreeMap<String, Entry>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = BTreeMap::new();
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "link",
            _ => "other",
        };
        let mut content = Vec::new();
        entry.read_to_end(&mut content).ok()?;
        let path = String::from_utf8_lossy(&h.path_bytes()).into_owned();
        out.insert(
            path,
            Entry {
                kind,
                mode: h.mode().ok()?,
                owner: format!(
                    "{}:{}",
                    h.username().ok().flatten().unwrap_or("?"),
                    h.groupname().ok().flatten().unwrap_or("?")
                ),
                size: h.size().ok()?,
                sha256: sha256(&content),
                content,
            },
        );
    }
    Some(out)
}

/// What changed inside an archive.
#[derive(Debug, Clone, Serialize)]
pub struct EntryChange {
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// Unified diff of a changed text entry that is not shown elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Where the same content is shown instead (the host's `rootfs/` copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub see: Option<String>,
}

/// Compares two archives entry by entry. `mirrored(path)` names the file
/// that already shows an entry's content (so its diff is not repeated).
pub(crate) fn compare(
    old: &BTreeMap<String, Entry>,
    new: &BTreeMap<String, Entry>,
    mirrored: &dyn Fn(&str) -> Option<String>,
) -> Vec<EntryChange> {
    let mut out = Vec::new();
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for path in paths {
        let (o, n) = (old.get(path), new.get(path));
        let status = match (o, n) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => "changed",
            (None, _) => "added",
            (_, None) => "removed",
        };
        let see = mirrored(path);
        let diff = match (o, n, &see) {
            (Some(a), Some(b), None) if a.content != b.content => {
                super::diff::text_diff(path, &a.content, &b.content)
            }
            _ => None,
        };
        out.push(EntryChange {
            path: path.clone(),
            status,
            old: o.map(|e| e.line(path)),
            new: n.map(|e| e.line(path)),
            diff,
            see,
        });
    }
    out
}

/// A base64 run this long or longer that decodes to gzip is an embedded
/// archive; nothing else in a kickstart or user-data comes close.
const MIN_EMBEDDED: usize = 256;

/// Text with every embedded gzip archive replaced by a one-line placeholder,
/// and the archives found, in order.
pub(crate) struct Redacted {
    pub text: String,
    pub archives: Vec<Vec<u8>>,
}

pub(crate) fn placeholder(bytes: &[u8]) -> String {
    format!(
        "<embedded archive: {} bytes, sha256 {}>",
        bytes.len(),
        sha256(bytes)
    )
}

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'='
}

/// Finds base64 runs (kickstart wraps them at 76 columns, user-data keeps
/// one line) that decode to gzip, and replaces each by [`placeholder`].
pub(crate) fn redact(text: &str) -> Redacted {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len().min(1 << 16));
    let mut archives = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if !is_b64(b[i]) {
            i += 1;
            continue;
        }
        // A run: base64 characters, possibly across line breaks.
        let start = i;
        let mut end = i;
        let mut j = i;
        while j < b.len() && (is_b64(b[j]) || b[j] == b'\n') {
            if is_b64(b[j]) {
                end = j + 1;
            }
            j += 1;
        }
        if end - start >= MIN_EMBEDDED
            && let Some((s, e, bytes)) = decode_run(b, start, end)
        {
            out.push_str(&text[copied..s]);
            out.push_str(&placeholder(&bytes));
            archives.push(bytes);
            copied = e;
        }
        i = j.max(i + 1);
    }
    out.push_str(&text[copied..]);
    Redacted {
        text: out,
        archives,
    }
}

/// Decodes a run as gzip. A word on the line before or after the block
/// (a heredoc's terminator, say) may have joined the run: without it, the
/// run's whole lines are tried too.
fn decode_run(b: &[u8], start: usize, end: usize) -> Option<(usize, usize, Vec<u8>)> {
    let run = &b[start..end];
    let first_break = run.iter().position(|c| *c == b'\n').map(|i| start + i + 1);
    let last_break = run.iter().rposition(|c| *c == b'\n').map(|i| start + i);
    let mut candidates = vec![(start, end)];
    if let Some(l) = last_break {
        candidates.push((start, l));
    }
    if let Some(f) = first_break {
        candidates.push((f, end));
        if let Some(l) = last_break.filter(|l| *l > f) {
            candidates.push((f, l));
        }
    }
    candidates.into_iter().find_map(|(s, e)| {
        let compact: Vec<u8> = b[s..e].iter().copied().filter(|c| *c != b'\n').collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .ok()?;
        bytes.starts_with(&[0x1f, 0x8b]).then_some((s, e, bytes))
    })
}

/// Gunzips `bytes` when they are gzip (EC2-sized user-data may be).
pub(crate) fn maybe_gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_finds_a_wrapped_and_a_one_line_archive() {
        // Incompressible bytes, so the base64 is long enough to count.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let gz = crate::render::overlay::gzip(&noise);
        let one = base64::engine::general_purpose::STANDARD.encode(&gz);
        assert!(one.len() >= MIN_EMBEDDED, "{}", one.len());
        let wrapped: Vec<&str> = one
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let text = format!(
            "a <<'X'\n{}\nXYZ_END\ncontent: '{one}'\nshort: 'aGVsbG8='\n",
            wrapped.join("\n")
        );
        let r = redact(&text);
        assert_eq!(r.archives, vec![gz.clone(), gz.clone()]);
        let p = placeholder(&gz);
        assert_eq!(
            r.text,
            format!("a <<'X'\n{p}\nXYZ_END\ncontent: '{p}'\nshort: 'aGVsbG8='\n")
        );
    }
}
