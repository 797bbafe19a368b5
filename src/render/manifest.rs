//! `manifest.json` and `SHA256SUMS` over every public artifact, and the
//! per-host closure hash an operator can compare with what a host runs.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ArtifactTree;
use super::templates::hex;

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Paths that never enter the manifest: secrets are delivered separately.
pub fn is_public(path: &str) -> bool {
    !path.starts_with("secrets/")
}

#[derive(Serialize)]
struct Manifest<'a> {
    pgimg_version: &'a str,
    inputs: Inputs<'a>,
    hosts: BTreeMap<&'a str, HostEntry>,
    artifacts: BTreeMap<&'a str, ArtifactEntry>,
}

#[derive(Serialize)]
struct Inputs<'a> {
    spec_sha256: &'a str,
    roles_sha256: &'a str,
}

#[derive(Serialize)]
struct HostEntry {
    closure: String,
    artifacts: Vec<String>,
}

#[derive(Serialize)]
struct ArtifactEntry {
    sha256: String,
    size: usize,
}

/// A host's closure: sha256 over the `sha256  path` lines of its artifacts.
fn closure(tree: &ArtifactTree, host: &str) -> (String, Vec<String>) {
    let prefix = format!("hosts/{host}/");
    let mut h = Sha256::new();
    let mut paths = Vec::new();
    for (path, a) in tree
        .files
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
    {
        h.update(format!("{}  {path}\n", sha256(&a.bytes)).as_bytes());
        paths.push(path.clone());
    }
    (hex(&h.finalize()), paths)
}

/// Adds `manifest.json` and `SHA256SUMS` to the tree and fills in the closures.
pub fn finish(tree: &mut ArtifactTree, hosts: &[String], spec_sha256: &str, roles_sha256: &str) {
    let mut host_entries = BTreeMap::new();
    for h in hosts {
        let (c, paths) = closure(tree, h);
        tree.closures.insert(h.clone(), c.clone());
        host_entries.insert(
            h.as_str(),
            HostEntry {
                closure: c,
                artifacts: paths,
            },
        );
    }
    let artifacts = tree
        .files
        .iter()
        .filter(|(p, _)| is_public(p))
        .map(|(p, a)| {
            (
                p.as_str(),
                ArtifactEntry {
                    sha256: sha256(&a.bytes),
                    size: a.bytes.len(),
                },
            )
        })
        .collect();
    let manifest = Manifest {
        pgimg_version: env!("CARGO_PKG_VERSION"),
        inputs: Inputs {
            spec_sha256,
            roles_sha256,
        },
        hosts: host_entries,
        artifacts,
    };
    let mut json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    json.push('\n');
    tree.add("manifest.json", json, 0o644);
    let sums: String = tree
        .files
        .iter()
        .filter(|(p, _)| is_public(p))
        .map(|(p, a)| format!("{}  {p}\n", sha256(&a.bytes)))
        .collect();
    tree.add("SHA256SUMS", sums, 0o644);
}
