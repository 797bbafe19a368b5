//! `manifest.json` and `SHA256SUMS` over every public artifact, and the
//! per-host closure hash an operator can compare with what a host runs.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::digest::{hex, sha256};

use super::artifact::Sum;

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
    /// sha256 over everything the host's artifacts are computed from: an
    /// unchanged fingerprint lets the next build keep them unrendered.
    fingerprint: &'a str,
    artifacts: Vec<&'a str>,
}

#[derive(Serialize)]
struct ArtifactEntry<'a> {
    sha256: &'a str,
    size: u64,
}

/// A host's closure: sha256 over the `sha256  path` lines of its artifacts.
fn closure<'a>(sums: &'a BTreeMap<String, Sum>, host: &str) -> (String, Vec<&'a str>) {
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
        h.update(format!("{}  {path}\n", sum.sha256).as_bytes());
        paths.push(path.as_str());
    }
    (hex(&h.finalize()), paths)
}

/// What closes a build: `manifest.json`, `SHA256SUMS` and the hosts' closures.
pub struct Finished {
    pub manifest: Vec<u8>,
    pub sha256sums: Vec<u8>,
    pub closures: BTreeMap<String, String>,
}

/// Computes `manifest.json` and `SHA256SUMS` from the sums of every artifact
/// (secrets included: they are filtered out here) and each host's fingerprint.
pub fn finish(
    sums: &BTreeMap<String, Sum>,
    hosts: &[(String, String)],
    spec_sha256: &str,
    roles_sha256: &str,
) -> Finished {
    let mut host_entries = BTreeMap::new();
    let mut closures = BTreeMap::new();
    for (h, fingerprint) in hosts {
        let (c, paths) = closure(sums, h);
        closures.insert(h.clone(), c.clone());
        host_entries.insert(
            h.as_str(),
            HostEntry {
                closure: c,
                fingerprint,
                artifacts: paths,
            },
        );
    }
    let artifacts = sums
        .iter()
        .filter(|(p, _)| is_public(p))
        .map(|(p, s)| {
            (
                p.as_str(),
                ArtifactEntry {
                    sha256: s.sha256.as_str(),
                    size: s.size,
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
    let mut json = Vec::with_capacity(256 * sums.len() + 4096);
    serde_json::to_writer_pretty(&mut json, &manifest).expect("the manifest serializes");
    json.push(b'\n');
    // SHA256SUMS lists manifest.json too, in its sorted place.
    let manifest_sum = sha256(&json);
    let mut manifest_line = Some(format!("{manifest_sum}  manifest.json\n"));
    let mut listing = String::with_capacity(112 * sums.len() + 112);
    for (p, sum) in sums.iter().filter(|(p, _)| is_public(p)) {
        if p.as_str() > "manifest.json"
            && let Some(line) = manifest_line.take()
        {
            listing.push_str(&line);
        }
        listing.push_str(&format!("{}  {p}\n", sum.sha256));
    }
    if let Some(line) = manifest_line {
        listing.push_str(&line);
    }
    Finished {
        manifest: json,
        sha256sums: listing.into_bytes(),
        closures,
    }
}
