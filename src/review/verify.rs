//! `pgimg verify`: every artifact re-hashed against `manifest.json`, in an
//! output directory or as an HTTP server hands it out.
//!
//! `SHA256SUMS` is checked as a whole (it must be exactly what the manifest
//! implies, `manifest.json` included), so a change to any byte of any
//! artifact, the manifest and the sums themselves included, is found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::http::{self, Base};
use crate::Error;
use crate::digest::hex;
use crate::digest::sha256;
use crate::render::manifest::is_public;
use crate::write::MARKER;

#[derive(Deserialize)]
struct Manifest {
    hosts: BTreeMap<String, HostEntry>,
    artifacts: BTreeMap<String, ArtifactEntry>,
}

#[derive(Deserialize)]
struct HostEntry {
    closure: String,
    artifacts: Vec<String>,
}

#[derive(Deserialize)]
struct ArtifactEntry {
    sha256: String,
    size: usize,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `changed`, `added` or `removed`.
    pub kind: &'static str,
    pub path: String,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<8} {}", self.kind, self.path)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// What was checked and what was wrong.
#[derive(Debug, Default)]
pub struct Outcome {
    pub checked: usize,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

fn parse_manifest(bytes: &[u8], whence: &str) -> Result<Manifest, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Input(format!("{whence}: not a pgimg manifest.json: {e}")))
}

/// The `SHA256SUMS` a manifest implies: every artifact and `manifest.json`, sorted by path.
fn expected_sums(m: &Manifest, manifest_bytes: &[u8]) -> String {
    let mut lines: BTreeMap<&str, String> = m
        .artifacts
        .iter()
        .map(|(p, a)| (p.as_str(), a.sha256.clone()))
        .collect();
    let manifest_sum = sha256(manifest_bytes);
    lines.insert("manifest.json", manifest_sum);
    lines.iter().map(|(p, s)| format!("{s}  {p}\n")).collect()
}

/// Closures recomputed from the manifest's own sums (as `render::manifest` defines them).
fn closure_findings(m: &Manifest) -> Vec<Finding> {
    let mut out = Vec::new();
    for (host, entry) in &m.hosts {
        let mut h = Sha256::new();
        for p in &entry.artifacts {
            let sum = m.artifacts.get(p).map(|a| a.sha256.as_str()).unwrap_or("");
            h.update(format!("{sum}  {p}\n").as_bytes());
        }
        if hex(&h.finalize()) != entry.closure {
            out.push(Finding {
                kind: "changed",
                path: "manifest.json".into(),
                detail: format!("the closure of host {host} does not match its artifacts"),
            });
        }
    }
    out
}

fn check_bytes(path: &str, want: &ArtifactEntry, got: &[u8]) -> Option<Finding> {
    let sum = sha256(got);
    (sum != want.sha256 || got.len() != want.size).then(|| Finding {
        kind: "changed",
        path: path.to_string(),
        detail: format!(
            "sha256 {} ({} bytes), manifest says {} ({} bytes)",
            sum,
            got.len(),
            want.sha256,
            want.size
        ),
    })
}

fn sums_finding(expected: &str, got: Option<&[u8]>) -> Option<Finding> {
    match got {
        None => Some(Finding {
            kind: "removed",
            path: "SHA256SUMS".into(),
            detail: String::new(),
        }),
        Some(b) if b != expected.as_bytes() => Some(Finding {
            kind: "changed",
            path: "SHA256SUMS".into(),
            detail: "does not list exactly the manifest's sums".into(),
        }),
        _ => None,
    }
}

/// Files of the tree that are not artifacts: a pgimg output holds the
/// artifacts, `manifest.json`, `SHA256SUMS`, its marker, the state the
/// next build reads, and `secrets/`.
fn is_bookkeeping(rel: &str) -> bool {
    rel == "manifest.json"
        || rel == "SHA256SUMS"
        || rel == MARKER
        || rel == crate::state::STATE_FILE
        || !is_public(rel)
}

/// Verifies an output directory.
pub fn verify_dir(out: &Path) -> Result<Outcome, Error> {
    let manifest_path = out.join("manifest.json");
    let manifest_bytes =
        std::fs::read(&manifest_path).map_err(|e| Error::io("reading", &manifest_path, e))?;
    let m = parse_manifest(&manifest_bytes, &manifest_path.display().to_string())?;
    let mut o = Outcome::default();
    o.findings.extend(closure_findings(&m));
    for (rel, want) in &m.artifacts {
        let path = out.join(rel);
        o.checked += 1;
        match std::fs::read(&path) {
            Ok(got) => o.findings.extend(check_bytes(rel, want, &got)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => o.findings.push(Finding {
                kind: "removed",
                path: rel.clone(),
                detail: String::new(),
            }),
            Err(e) => return Err(Error::io("reading", &path, e)),
        }
    }
    let sums = out.join("SHA256SUMS");
    let got = match std::fs::read(&sums) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading", &sums, e)),
    };
    o.findings.extend(sums_finding(
        &expected_sums(&m, &manifest_bytes),
        got.as_deref(),
    ));
    for e in walkdir::WalkDir::new(out).sort_by_file_name() {
        let e = e.map_err(|e| Error::Input(format!("walking {}: {e}", out.display())))?;
        if e.file_type().is_dir() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(out)
            .unwrap_or(e.path())
            .to_string_lossy()
            .into_owned();
        if !is_bookkeeping(&rel) && !m.artifacts.contains_key(&rel) {
            o.findings.push(Finding {
                kind: "added",
                path: rel,
                detail: "not in manifest.json".into(),
            });
        }
    }
    o.findings.sort();
    Ok(o)
}

/// Verifies the artifacts as served under `base`, against the local output
/// `expected` when given, else against the served `manifest.json`.
pub fn verify_url(base: &str, expected: Option<&Path>) -> Result<Outcome, Error> {
    let base = Base::parse(base).map_err(Error::Input)?;
    let get = |rel: &str| -> Result<Option<Vec<u8>>, Error> {
        match base.get(rel).map_err(Error::Input)? {
            (200, body) => Ok(Some(body)),
            (404, _) => Ok(None),
            (code, _) => Err(Error::Input(format!("{}: HTTP {code}", base.url(rel)))),
        }
    };
    let mut o = Outcome::default();
    let served_manifest = get("manifest.json")?;
    let manifest_bytes = match expected {
        Some(dir) => {
            let p = dir.join("manifest.json");
            let local = std::fs::read(&p).map_err(|e| Error::io("reading", &p, e))?;
            match &served_manifest {
                None => o.findings.push(Finding {
                    kind: "removed",
                    path: "manifest.json".into(),
                    detail: String::new(),
                }),
                Some(s) if *s != local => o.findings.push(Finding {
                    kind: "changed",
                    path: "manifest.json".into(),
                    detail: format!("the served manifest is not the one in {}", dir.display()),
                }),
                _ => {}
            }
            local
        }
        None => served_manifest
            .ok_or_else(|| Error::Input(format!("{}: not found", base.url("manifest.json"))))?,
    };
    let m = parse_manifest(&manifest_bytes, "manifest.json")?;
    o.findings.extend(closure_findings(&m));
    for (rel, want) in &m.artifacts {
        o.checked += 1;
        match get(rel)? {
            Some(got) => o.findings.extend(check_bytes(rel, want, &got)),
            None => o.findings.push(Finding {
                kind: "removed",
                path: rel.clone(),
                detail: "HTTP 404".into(),
            }),
        }
    }
    o.findings.extend(sums_finding(
        &expected_sums(&m, &manifest_bytes),
        get("SHA256SUMS")?.as_deref(),
    ));
    // Stray files: HTTP has no listing of its own, but artifact servers
    // usually answer a directory with an index page; read those.
    let mut dirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    dirs.entry(String::new())
        .or_default()
        .extend(["manifest.json", "SHA256SUMS"].map(String::from));
    for rel in m.artifacts.keys() {
        let mut parent = String::new();
        for seg in rel.split('/') {
            dirs.entry(parent.clone())
                .or_default()
                .insert(seg.to_string());
            parent = if parent.is_empty() {
                seg.to_string()
            } else {
                format!("{parent}/{seg}")
            };
        }
    }
    let mut unlisted = 0;
    for (dir, names) in &dirs {
        let rel = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let page = match base.get(&rel) {
            Ok((200, body)) => String::from_utf8_lossy(&body).into_owned(),
            _ => {
                unlisted += 1;
                continue;
            }
        };
        if !page.contains("href=") {
            unlisted += 1;
            continue;
        }
        for name in http::listing_names(&page) {
            let path = format!("{rel}{name}");
            if !names.contains(&name) && !is_bookkeeping(&path) {
                o.findings.push(Finding {
                    kind: "added",
                    path,
                    detail: "served, not in manifest.json".into(),
                });
            }
        }
    }
    if unlisted > 0 {
        o.notes.push(format!(
            "{unlisted} director{} gave no index page: files that no manifest lists cannot be seen there over HTTP",
            if unlisted == 1 { "y" } else { "ies" }
        ));
    }
    o.findings.sort();
    Ok(o)
}
