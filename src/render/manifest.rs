//! `manifest.json` and `SHA256SUMS` over every public artifact, and the
//! per-host closure hash an operator can compare with what a host runs.
//!
//! Both are streamed to a writer as they are serialized: a large fleet's
//! manifest is hundreds of megabytes, and no copy of it is ever held.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use sha2::{Digest, Sha256};

use crate::digest::{Digest32, HashWriter, SumPath, Sums, Tee};
pub use crate::digest::{hex, sha256};

use super::artifact::Sum;

/// Paths that never enter the manifest: secrets are delivered separately.
/// A `SumPath`'s head is enough to tell: it holds the path's first
/// directory whole.
pub fn is_public(path: &str) -> bool {
    !path.starts_with("secrets/")
}

/// A host's closure: sha256 over the `sha256  path` lines of its artifacts.
fn closure(sums: &Sums, host: &str) -> String {
    let prefix = format!("hosts/{host}/");
    let mut h = Sha256::new();
    for (path, sum) in sums.under(&prefix) {
        h.update(sum.sha256.hex_bytes());
        h.update(b"  ");
        h.update(path.head.as_bytes());
        h.update(path.rest.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

struct Manifest<'a> {
    sums: &'a Sums,
    /// Host → (fingerprint, closure), sorted by host.
    hosts: &'a BTreeMap<&'a str, (&'a str, &'a str)>,
    spec_sha256: &'a str,
    roles_sha256: &'a str,
}

struct Inputs<'a> {
    spec_sha256: &'a str,
    roles_sha256: &'a str,
}

struct Hosts<'a>(&'a Manifest<'a>);

struct HostEntry<'a> {
    sums: &'a Sums,
    host: &'a str,
    fingerprint: &'a str,
    closure: &'a str,
}

struct Paths<'a> {
    sums: &'a Sums,
    host: &'a str,
}

struct Artifacts<'a>(&'a Sums);

struct ArtifactEntry(Sum);

impl Serialize for Manifest<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Manifest", 4)?;
        m.serialize_field("pgimg_version", env!("CARGO_PKG_VERSION"))?;
        m.serialize_field(
            "inputs",
            &Inputs {
                spec_sha256: self.spec_sha256,
                roles_sha256: self.roles_sha256,
            },
        )?;
        m.serialize_field("hosts", &Hosts(self))?;
        m.serialize_field("artifacts", &Artifacts(self.sums))?;
        m.end()
    }
}

impl Serialize for Inputs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Inputs", 2)?;
        m.serialize_field("spec_sha256", self.spec_sha256)?;
        m.serialize_field("roles_sha256", self.roles_sha256)?;
        m.end()
    }
}

impl Serialize for Hosts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.hosts.len()))?;
        for (host, (fingerprint, closure)) in self.0.hosts {
            m.serialize_entry(
                host,
                &HostEntry {
                    sums: self.0.sums,
                    host,
                    fingerprint,
                    closure,
                },
            )?;
        }
        m.end()
    }
}

impl Serialize for HostEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("HostEntry", 3)?;
        m.serialize_field("closure", self.closure)?;
        // sha256 over everything the host's artifacts are computed from: an
        // unchanged fingerprint lets the next build keep them unrendered.
        m.serialize_field("fingerprint", self.fingerprint)?;
        m.serialize_field(
            "artifacts",
            &Paths {
                sums: self.sums,
                host: self.host,
            },
        )?;
        m.end()
    }
}

impl Serialize for Paths<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let prefix = format!("hosts/{}/", self.host);
        s.collect_seq(self.sums.under(&prefix).map(|(p, _)| p))
    }
}

impl Serialize for Artifacts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .iter()
                .filter(|(p, _)| is_public(p.head))
                .map(|(p, sum)| (p, ArtifactEntry(sum))),
        )
    }
}

impl Serialize for ArtifactEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("ArtifactEntry", 2)?;
        m.serialize_field("sha256", &self.0.sha256)?;
        m.serialize_field("size", &self.0.size)?;
        m.end()
    }
}

/// What closes a build besides the two files: each host's closure and the
/// manifest's digest (for `SHA256SUMS`, and to tell whether it changed).
pub struct Finished {
    pub manifest_sha256: Digest32,
    pub closures: BTreeMap<String, String>,
}

/// Streams `manifest.json` to `out` from the sums of every artifact
/// (secrets included: they are filtered out here) and each host's
/// fingerprint; `out` may be `None` when only its digest is wanted.
pub fn manifest(
    sums: &Sums,
    hosts: &[(String, String)],
    spec_sha256: &str,
    roles_sha256: &str,
    out: Option<&mut dyn Write>,
) -> io::Result<Finished> {
    let closures: BTreeMap<String, String> = hosts
        .iter()
        .map(|(h, _)| (h.clone(), closure(sums, h)))
        .collect();
    let entries: BTreeMap<&str, (&str, &str)> = hosts
        .iter()
        .map(|(h, fp)| (h.as_str(), (fp.as_str(), closures[h].as_str())))
        .collect();
    let m = Manifest {
        sums,
        hosts: &entries,
        spec_sha256,
        roles_sha256,
    };
    let mut sink = io::sink();
    // The serializer writes a few bytes at a time: they are gathered before
    // they are hashed, which costs per call.
    let mut tee = io::BufWriter::with_capacity(
        1 << 16,
        Tee {
            inner: match out {
                Some(w) => w,
                None => &mut sink,
            },
            hash: HashWriter::default(),
        },
    );
    serde_json::to_writer_pretty(&mut tee, &m).map_err(io::Error::other)?;
    tee.write_all(b"\n")?;
    tee.flush()?;
    let manifest_sha256 = tee.into_inner().map_err(|e| e.into_error())?.hash.finish();
    drop(entries);
    Ok(Finished {
        manifest_sha256,
        closures,
    })
}

/// Streams `SHA256SUMS` to `out`: every public artifact, and manifest.json
/// in its sorted place.
pub fn sha256sums(sums: &Sums, manifest_sha256: &Digest32, out: &mut dyn Write) -> io::Result<()> {
    let line = |out: &mut dyn Write, sha: &Digest32, path: SumPath| {
        out.write_all(&sha.hex_bytes())?;
        out.write_all(b"  ")?;
        out.write_all(path.head.as_bytes())?;
        out.write_all(path.rest.as_bytes())?;
        out.write_all(b"\n")
    };
    let manifest = SumPath {
        head: "manifest.json",
        rest: "",
    };
    let mut manifest_pending = true;
    for (p, sum) in sums.iter().filter(|(p, _)| is_public(p.head)) {
        if manifest_pending && p.cmp_str("manifest.json").is_gt() {
            line(out, manifest_sha256, manifest)?;
            manifest_pending = false;
        }
        line(out, &sum.sha256, p)?;
    }
    if manifest_pending {
        line(out, manifest_sha256, manifest)?;
    }
    out.flush()
}
