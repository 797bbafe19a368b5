//! `manifest.json` and `SHA256SUMS` over every public artifact, and the
//! per-host closure hash an operator can compare with what a host runs.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::digest::{hex, sha256};

use super::ArtifactTree;

/// Paths that never enter the manifest: secrets are delivered separately.
pub fn is_public(path: &str) -> bool {
    !path.starts_with("secrets/")
}

#[derive(Serialize)]
struct Manifest<'a> {
    pgimg_version: &'a str,
    inputs: Inputs<'a>,
    hosts: BTreeMap<&'a str, HostEntry<'a>>,
    artifacts: BTreeMap<&'a str, ArtifactEntry<'a>>,
}

#[derive(Serialize)]
struct Inputs<'a> {
    spec_sha256: &'a str,
    roles_sha256: &'a str,
}

// Borrowed fields: a large fleet's manifest has tens of thousands of entries,
// and copies of their paths and sums would all be alive at the build's peak.
#[derive(Serialize)]
struct HostEntry<'a> {
    closure: String,
    artifacts: Vec<&'a str>,
}

#[derive(Serialize)]
struct ArtifactEntry<'a> {
    sha256: &'a str,
    size: usize,
}

/// A host's closure: sha256 over the `sha256  path` lines of its artifacts.
fn closure<'a>(sums: &BTreeMap<&'a str, String>, host: &str) -> (String, Vec<&'a str>) {
    let prefix = format!("hosts/{host}/");
    let mut h = Sha256::new();
    let mut paths = Vec::new();
    for (path, sum) in sums
        .range::<str, _>((
            std::ops::Bound::Included(prefix.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(p, _)| p.starts_with(&prefix))
    {
        h.update(format!("{sum}  {path}\n").as_bytes());
        paths.push(*path);
    }
    (hex(&h.finalize()), paths)
}

/// Adds `manifest.json` and `SHA256SUMS` to the tree and fills in the closures.
pub fn finish(tree: &mut ArtifactTree, hosts: &[String], spec_sha256: &str, roles_sha256: &str) {
    // Every artifact is hashed once, in parallel; closures, the manifest and
    // SHA256SUMS all read these sums.
    let sums: BTreeMap<&str, String> = {
        use rayon::prelude::*;
        let files: Vec<(&String, &super::Artifact)> = tree.files.iter().collect();
        files
            .par_iter()
            .map(|(p, a)| (p.as_str(), sha256(&a.bytes)))
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    };
    let mut host_entries = BTreeMap::new();
    let mut closures = BTreeMap::new();
    for h in hosts {
        let (c, paths) = closure(&sums, h);
        closures.insert(h.clone(), c.clone());
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
                    sha256: sums[p.as_str()].as_str(),
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
    // Sized up front: growing a multi-megabyte buffer by doubling would hold
    // two copies at once at the build's peak.
    let mut json = Vec::with_capacity(256 * tree.files.len() + 4096);
    let _ = serde_json::to_writer_pretty(&mut json, &manifest);
    json.push(b'\n');
    // SHA256SUMS lists manifest.json too, in its sorted place.
    let manifest_sum = sha256(&json);
    let mut manifest_line = Some(format!("{manifest_sum}  manifest.json\n"));
    let mut listing = String::with_capacity(112 * sums.len() + 112);
    for (p, sum) in sums.iter().filter(|(p, _)| is_public(p)) {
        if *p > "manifest.json"
            && let Some(line) = manifest_line.take()
        {
            listing.push_str(&line);
        }
        listing.push_str(&format!("{sum}  {p}\n"));
    }
    if let Some(line) = manifest_line {
        listing.push_str(&line);
    }
    tree.closures = closures;
    tree.add("manifest.json", json, 0o644);
    tree.add("SHA256SUMS", listing, 0o644);
}
