//! Two artifact trees → what changed, per host and per cluster, each file in
//! the form a reviewer reads: unified diffs of text, archives by their
//! entries, `rpms.txt` as packages, embedded overlays as one line.
//!
//! What the changes mean for a running cluster is `classify`'s business;
//! this module only says what differs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::archive;
use super::classify::{self, Action};
use crate::digest::sha256;
use crate::render::Artifact;

/// One side of a comparison: the public artifacts of a build, by relative path.
pub struct Tree {
    pub label: String,
    pub files: BTreeMap<String, Artifact>,
}

/// Whether a file, a host or a site is new, gone or different.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
        }
    }
}

/// How a changed file is shown.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A unified diff (against nothing for an added or removed file).
    Text { diff: String },
    /// `rpms.txt`: the package set.
    Packages {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// A tarball (or an embedded overlay) entry by entry.
    Archive { entries: Vec<archive::EntryChange> },
    /// Neither text nor an archive.
    Binary {
        old_sha256: Option<String>,
        new_sha256: Option<String>,
    },
    /// A kickstart or user-data whose only change is the overlay it embeds
    /// (and that overlay's checksum): the overlay is compared on its own.
    OverlayOnly,
    /// `manifest.json` and `SHA256SUMS`: they follow the artifacts above.
    Derived,
    /// Shown no further (a file of an added or removed host).
    Listed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub status: Status,
    /// Old and new mode, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<(String, String)>,
    pub detail: Detail,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub cluster: String,
    pub site: String,
    pub status: Status,
    pub files: Vec<FileChange>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteReport {
    pub site: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcs: Option<classify::DcsChange>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    pub files: Vec<FileChange>,
    pub sites: Vec<SiteReport>,
}

/// Everything that differs between two trees.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub old: String,
    pub new: String,
    pub clusters: Vec<ClusterReport>,
    pub hosts: Vec<HostReport>,
    /// Fleet-wide files (`manifest.json`, `SHA256SUMS`) and anything no host or cluster owns.
    pub other: Vec<FileChange>,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty() && self.hosts.is_empty() && self.other.is_empty()
    }
}

pub fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// A unified diff with three lines of context; `None` when the texts are equal.
pub fn text_diff(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
    if old == new {
        return None;
    }
    let (o, n) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let diff = similar::TextDiff::from_lines(o.as_ref(), n.as_ref());
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    if out.is_empty() {
        out = format!("--- a/{path}\n+++ b/{path}\n(the texts differ only in line endings)\n");
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

/// Who owns a path: a host, a cluster, or the fleet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Host(String),
    Cluster(String),
    Fleet,
}

fn owner_of(path: &str, old: &Tree, new: &Tree) -> Owner {
    let mut parts = path.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("hosts"), Some(h), Some(_)) => Owner::Host(h.to_string()),
        (Some("clusters"), Some(c), Some(_)) => Owner::Cluster(c.to_string()),
        // PXE entries are named by MAC; each points at its host's kickstart.
        (Some("pxe"), _, _) => [new, old]
            .iter()
            .filter_map(|t| t.files.get(path))
            .find_map(|a| kickstart_host(&a.bytes))
            .map(Owner::Host)
            .unwrap_or(Owner::Fleet),
        _ => Owner::Fleet,
    }
}

fn kickstart_host(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let at = text.find("/hosts/")? + "/hosts/".len();
    let rest = &text[at..];
    let end = rest.find("/kickstart.ks")?;
    let name = &rest[..end];
    (!name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '/'))
        .then(|| name.to_string())
}

/// The cluster and site a host belongs to, from the header line pgimg
/// writes into its kickstart and user-data: `(cluster C, site S)`.
pub fn host_meta(tree: &Tree, host: &str) -> Option<(String, String)> {
    for name in ["kickstart.ks", "user-data"] {
        let Some(a) = tree.files.get(&format!("hosts/{host}/{name}")) else {
            continue;
        };
        let bytes = archive::maybe_gunzip(&a.bytes).unwrap_or_else(|| a.bytes.clone());
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines().take(5) {
            if let Some(at) = line.find("(cluster ") {
                let rest = &line[at + "(cluster ".len()..];
                let (cluster, rest) = rest.split_once(", site ")?;
                let site = rest.split(')').next()?;
                return Some((cluster.to_string(), site.to_string()));
            }
        }
    }
    None
}

/// How a changed (or added, or removed) file is shown.
fn detail(
    path: &str,
    old: Option<&Artifact>,
    new: Option<&Artifact>,
    trees: (&Tree, &Tree),
) -> Detail {
    if path == "manifest.json" || path == "SHA256SUMS" {
        return Detail::Derived;
    }
    let (ob, nb) = (
        old.map(|a| a.bytes.as_slice()),
        new.map(|a| a.bytes.as_slice()),
    );
    if path.ends_with("/rpms.txt") {
        let set = |b: Option<&[u8]>| -> BTreeSet<String> {
            b.map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        let (o, n) = (set(ob), set(nb));
        return Detail::Packages {
            added: n.difference(&o).cloned().collect(),
            removed: o.difference(&n).cloned().collect(),
        };
    }
    if path.ends_with(".tar.gz") {
        let empty = BTreeMap::new();
        let oe = ob.map(archive::entries);
        let ne = nb.map(archive::entries);
        if !matches!(oe, Some(None)) && !matches!(ne, Some(None)) {
            let host_dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let (old_tree, new_tree) = trees;
            let mirrored = |entry: &str| -> Option<String> {
                let rootfs = format!("{host_dir}/rootfs/{}", entry.trim_end_matches('/'));
                (new_tree.files.contains_key(&rootfs) || old_tree.files.contains_key(&rootfs))
                    .then_some(rootfs)
            };
            return Detail::Archive {
                entries: archive::compare(
                    oe.flatten().as_ref().unwrap_or(&empty),
                    ne.flatten().as_ref().unwrap_or(&empty),
                    &mirrored,
                ),
            };
        }
    }
    let text_of = |b: Option<&[u8]>| -> Option<Option<String>> {
        match b {
            None => Some(None),
            Some(b) => {
                let plain = archive::maybe_gunzip(b).unwrap_or_else(|| b.to_vec());
                is_text(&plain)
                    .then(|| Some(archive::redact(&String::from_utf8_lossy(&plain)).text))
            }
        }
    };
    match (text_of(ob), text_of(nb)) {
        (Some(Some(o)), Some(Some(n)))
            if (path.ends_with("/kickstart.ks") || path.ends_with("/user-data"))
                && only_overlay_changed(path, &o, &n, trees) =>
        {
            Detail::OverlayOnly
        }
        (Some(o), Some(n)) => Detail::Text {
            diff: text_diff(
                path,
                o.unwrap_or_default().as_bytes(),
                n.unwrap_or_default().as_bytes(),
            )
            .unwrap_or_default(),
        },
        _ => Detail::Binary {
            old_sha256: ob.map(sha256),
            new_sha256: nb.map(sha256),
        },
    }
}

/// The digests by which a delivery format names its host's overlay: the
/// host's `overlay.tar.gz` and the archives embedded in the file, both sides.
pub fn overlay_digests(path: &str, trees: (&Tree, &Tree)) -> BTreeSet<String> {
    let host_dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let mut digests = BTreeSet::new();
    for tree in [trees.0, trees.1] {
        if let Some(o) = tree.files.get(&format!("{host_dir}/overlay.tar.gz")) {
            digests.insert(sha256(&o.bytes));
        }
        if let Some(a) = tree.files.get(path) {
            let plain = archive::maybe_gunzip(&a.bytes).unwrap_or_else(|| a.bytes.clone());
            for e in archive::redact(&String::from_utf8_lossy(&plain)).archives {
                digests.insert(sha256(&e));
            }
        }
    }
    digests
}

fn only_overlay_changed(path: &str, old: &str, new: &str, trees: (&Tree, &Tree)) -> bool {
    let digests = overlay_digests(path, trees);
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .all(|c| digests.iter().any(|d| c.value().contains(d.as_str())))
}

/// The overlay embedded in a kickstart or user-data, when it is not simply
/// the host's own `overlay.tar.gz` (which is compared in its own right).
fn embedded_change(
    path: &str,
    old: Option<&Artifact>,
    new: Option<&Artifact>,
    trees: (&Tree, &Tree),
) -> Option<FileChange> {
    if !(path.ends_with("/kickstart.ks") || path.ends_with("/user-data")) {
        return None;
    }
    let host_dir = path.rsplit_once('/')?.0;
    let overlay_path = format!("{host_dir}/overlay.tar.gz");
    let embedded = |a: Option<&Artifact>, tree: &Tree| -> (Option<Vec<u8>>, bool) {
        let Some(a) = a else { return (None, true) };
        let plain = archive::maybe_gunzip(&a.bytes).unwrap_or_else(|| a.bytes.clone());
        let found = archive::redact(&String::from_utf8_lossy(&plain))
            .archives
            .into_iter()
            .next();
        let same = match (&found, tree.files.get(&overlay_path)) {
            (Some(e), Some(o)) => *e == o.bytes,
            (None, None) => true,
            _ => false,
        };
        (found, same)
    };
    let (oe, o_same) = embedded(old, trees.0);
    let (ne, n_same) = embedded(new, trees.1);
    if (o_same && n_same) || oe == ne {
        return None;
    }
    let empty = BTreeMap::new();
    let oe = oe.as_deref().and_then(archive::entries);
    let ne = ne.as_deref().and_then(archive::entries);
    Some(FileChange {
        path: format!("{path} (embedded overlay)"),
        status: Status::Changed,
        mode: None,
        detail: Detail::Archive {
            entries: archive::compare(
                oe.as_ref().unwrap_or(&empty),
                ne.as_ref().unwrap_or(&empty),
                &|_| None,
            ),
        },
    })
}

fn mode_str(m: u32) -> String {
    format!("{m:04o}")
}

/// Compares two trees and classifies every change.
pub fn compare(old: &Tree, new: &Tree) -> Report {
    let paths: BTreeSet<&String> = old.files.keys().chain(new.files.keys()).collect();
    let mut by_owner: BTreeMap<Owner, Vec<FileChange>> = BTreeMap::new();
    let old_hosts: BTreeSet<String> = hosts_of(old);
    let new_hosts: BTreeSet<String> = hosts_of(new);
    for path in paths {
        let (o, n) = (old.files.get(path), new.files.get(path));
        let status = match (o, n) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => Status::Changed,
            (None, _) => Status::Added,
            (_, None) => Status::Removed,
        };
        let owner = owner_of(path, old, new);
        let whole_host = match &owner {
            Owner::Host(h) => old_hosts.contains(h) != new_hosts.contains(h),
            _ => false,
        };
        let mode = match (o, n) {
            (Some(a), Some(b)) if a.mode != b.mode => Some((mode_str(a.mode), mode_str(b.mode))),
            _ => None,
        };
        let content_same = matches!((o, n), (Some(a), Some(b)) if a.bytes == b.bytes);
        let detail = if whole_host {
            Detail::Listed
        } else if content_same {
            Detail::Text {
                diff: String::new(),
            }
        } else {
            detail(path, o, n, (old, new))
        };
        let list = by_owner.entry(owner).or_default();
        list.push(FileChange {
            path: path.clone(),
            status,
            mode,
            detail,
        });
        if !whole_host
            && !content_same
            && let Some(e) = embedded_change(path, o, n, (old, new))
        {
            list.push(e);
        }
    }
    let mut hosts = Vec::new();
    let mut cluster_files: BTreeMap<String, Vec<FileChange>> = BTreeMap::new();
    let mut other = Vec::new();
    for (owner, files) in by_owner {
        match owner {
            Owner::Host(h) => {
                let (cluster, site) = host_meta(new, &h)
                    .or_else(|| host_meta(old, &h))
                    .unwrap_or_else(|| ("?".into(), "?".into()));
                let status = match (old_hosts.contains(&h), new_hosts.contains(&h)) {
                    (false, true) => Status::Added,
                    (true, false) => Status::Removed,
                    _ => Status::Changed,
                };
                hosts.push(HostReport {
                    host: h,
                    cluster,
                    site,
                    status,
                    files,
                    actions: Vec::new(),
                });
            }
            Owner::Cluster(c) => {
                cluster_files.insert(c, files);
            }
            Owner::Fleet => other.extend(files),
        }
    }
    hosts.sort_by(|a, b| (&a.cluster, &a.site, &a.host).cmp(&(&b.cluster, &b.site, &b.host)));
    let mut report = Report {
        old: old.label.clone(),
        new: new.label.clone(),
        clusters: Vec::new(),
        hosts,
        other,
    };
    classify::classify(&mut report, old, new, cluster_files);
    report
}

/// The hosts a tree has (those with a directory under `hosts/`).
pub fn hosts_of(tree: &Tree) -> BTreeSet<String> {
    tree.files
        .keys()
        .filter_map(|p| p.strip_prefix("hosts/"))
        .filter_map(|p| p.split_once('/').map(|(h, _)| h.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_diff_is_unified_with_context() {
        let d = text_diff(
            "f",
            b"a\nb\nc\nd\ne\nf\ng\nh\n",
            b"a\nb\nc\nd\nX\nf\ng\nh\n",
        )
        .unwrap();
        assert!(d.starts_with("--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n"), "{d}");
        assert!(d.contains("\n-e\n+X\n"), "{d}");
        assert_eq!(text_diff("f", b"same", b"same"), None);
    }

    #[test]
    fn pxe_entries_belong_to_the_host_they_boot() {
        assert_eq!(
            kickstart_host(
                b"linux vmlinuz inst.ks=http://boot/pgimg/hosts/pg1/kickstart.ks ip=..."
            ),
            Some("pg1".into())
        );
        assert_eq!(kickstart_host(b"no kickstart here"), None);
    }
}
