//! `manifest.json` and `SHA256SUMS` over every public artifact, and the
//! per-host closure hash an operator can compare with what a host runs.
//!
//! Both are streamed to a writer as they are serialized: a large fleet's
//! manifest is hundreds of megabytes, and no copy of it is ever held.

use std::collections::BTreeMap;
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::digest::{Digest32, SumPath, Sums};
pub use crate::digest::{hex, sha256};

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

/// `manifest.json` as it is written: serde_json's pretty layout (two
/// spaces a level), produced directly. At 1,000 hosts the manifest is
/// 30,000 entries whose serialization through serde was a sixth of a
/// one-host rebuild; its bytes are exactly what `to_writer_pretty` gives,
/// which a unit test pins.
struct JsonOut<'a> {
    buf: Vec<u8>,
    out: &'a mut dyn Write,
}

impl JsonOut<'_> {
    /// Hands the gathered bytes on once there are enough of them.
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// `parts` joined, as one JSON string.
    fn string(&mut self, parts: &[&str]) -> io::Result<()> {
        // Folded without an early exit, so that it is vectorized: a path
        // needing an escape is rare, and each is a few dozen bytes.
        let plain = |p: &&str| {
            !p.bytes().fold(false, |any, b| {
                any | (b < 0x20) | (b == b'"') | (b == b'\\')
            })
        };
        if parts.iter().all(plain) {
            self.buf.push(b'"');
            for p in parts {
                self.buf.extend_from_slice(p.as_bytes());
            }
            self.buf.push(b'"');
            Ok(())
        } else {
            serde_json::to_writer(&mut self.buf, &parts.concat()).map_err(io::Error::other)
        }
    }

    /// In decimal, without the `String` that `to_string` would allocate
    /// for each of a fleet's artifacts.
    fn u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[at..]);
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Writes the manifest: `hosts` is host → (fingerprint, closure), sorted.
fn write_manifest(
    out: &mut dyn Write,
    sums: &Sums,
    hosts: &BTreeMap<&str, (&str, &str)>,
    spec_sha256: &str,
    roles_sha256: &str,
) -> io::Result<()> {
    let mut j = JsonOut {
        buf: Vec::with_capacity(1 << 17),
        out,
    };
    j.raw(b"{\n  \"pgimg_version\": ");
    j.string(&[env!("CARGO_PKG_VERSION")])?;
    j.raw(b",\n  \"inputs\": {\n    \"spec_sha256\": ");
    j.string(&[spec_sha256])?;
    j.raw(b",\n    \"roles_sha256\": ");
    j.string(&[roles_sha256])?;
    j.raw(b"\n  },\n  \"hosts\": ");
    if hosts.is_empty() {
        j.raw(b"{}");
    } else {
        j.raw(b"{");
        for (i, (host, (fingerprint, closure))) in hosts.iter().enumerate() {
            j.raw(if i == 0 { b"\n    " } else { b",\n    " });
            j.string(&[host])?;
            j.raw(b": {\n      \"closure\": ");
            j.string(&[closure])?;
            // sha256 over everything the host's artifacts are computed
            // from: an unchanged fingerprint lets the next build keep
            // them unrendered.
            j.raw(b",\n      \"fingerprint\": ");
            j.string(&[fingerprint])?;
            j.raw(b",\n      \"artifacts\": ");
            let prefix = format!("hosts/{host}/");
            let mut paths = sums.under(&prefix).peekable();
            if paths.peek().is_none() {
                j.raw(b"[]");
            } else {
                j.raw(b"[");
                for (n, (path, _)) in paths.enumerate() {
                    j.raw(if n == 0 {
                        b"\n        "
                    } else {
                        b",\n        "
                    });
                    j.string(&[path.head, path.rest])?;
                }
                j.raw(b"\n      ]");
            }
            j.raw(b"\n    }");
            j.spill()?;
        }
        j.raw(b"\n  }");
    }
    j.raw(b",\n  \"artifacts\": ");
    let mut artifacts = sums.iter().filter(|(p, _)| is_public(p.head)).peekable();
    if artifacts.peek().is_none() {
        j.raw(b"{}");
    } else {
        j.raw(b"{");
        for (n, (path, sum)) in artifacts.enumerate() {
            j.raw(if n == 0 { b"\n    " } else { b",\n    " });
            j.string(&[path.head, path.rest])?;
            j.raw(b": {\n      \"sha256\": \"");
            j.raw(&sum.sha256.hex_bytes());
            j.raw(b"\",\n      \"size\": ");
            j.u64(sum.size);
            j.raw(b"\n    }");
            j.spill()?;
        }
        j.raw(b"\n  }");
    }
    j.raw(b"\n}\n");
    j.finish()
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
/// `hosts` is host → fingerprint; `known` gives the closure of a host whose
/// artifacts are the previous build's, as that build computed it: a
/// rebuild hashes only the others.
pub fn manifest(
    sums: &Sums,
    hosts: &BTreeMap<String, String>,
    known: &(dyn Fn(&str) -> Option<String> + Sync),
    spec_sha256: &str,
    roles_sha256: &str,
    out: Option<&mut (dyn Write + Send)>,
) -> io::Result<Finished> {
    let closures: BTreeMap<String, String> = {
        use rayon::prelude::*;
        hosts
            .par_iter()
            .map(|(h, _)| {
                let c = known(h).unwrap_or_else(|| closure(sums, h));
                (h.clone(), c)
            })
            .collect()
    };
    let entries: BTreeMap<&str, (&str, &str)> = hosts
        .iter()
        .map(|(h, fp)| (h.as_str(), (fp.as_str(), closures[h].as_str())))
        .collect();
    let mut sink = io::sink();
    let manifest_sha256 = crate::digest::write_hashed(
        match out {
            Some(w) => w,
            None => &mut sink,
        },
        &mut |w| write_manifest(w, sums, &entries, spec_sha256, roles_sha256),
    )?;
    drop(entries);
    Ok(Finished {
        manifest_sha256,
        closures,
    })
}

/// Streams `SHA256SUMS` to `out`: every public artifact, and manifest.json
/// in its sorted place, with the digest `manifest_sha256` gives when its
/// line is reached (the manifest may still be being written till then).
pub fn sha256sums(
    sums: &Sums,
    manifest_sha256: &mut dyn FnMut() -> io::Result<Digest32>,
    out: &mut dyn Write,
) -> io::Result<()> {
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
            line(out, &manifest_sha256()?, manifest)?;
            manifest_pending = false;
        }
        line(out, &sum.sha256, p)?;
    }
    if manifest_pending {
        line(out, &manifest_sha256()?, manifest)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sum;

    /// The manifest as serde_json's pretty printer lays it out.
    fn by_serde(sums: &Sums, hosts: &BTreeMap<&str, (&str, &str)>) -> Vec<u8> {
        let mut host_map = serde_json::Map::new();
        for (host, (fingerprint, closure)) in hosts {
            let paths: Vec<String> = sums
                .under(&format!("hosts/{host}/"))
                .map(|(p, _)| p.to_string())
                .collect();
            host_map.insert(
                host.to_string(),
                serde_json::json!({
                    "closure": closure,
                    "fingerprint": fingerprint,
                    "artifacts": paths,
                }),
            );
        }
        let mut artifacts = serde_json::Map::new();
        for (p, sum) in sums.iter().filter(|(p, _)| is_public(p.head)) {
            artifacts.insert(
                p.to_string(),
                serde_json::json!({ "sha256": sum.sha256.to_string(), "size": sum.size }),
            );
        }
        let doc = serde_json::json!({
            "pgimg_version": env!("CARGO_PKG_VERSION"),
            "inputs": { "spec_sha256": "s", "roles_sha256": "r" },
            "hosts": host_map,
            "artifacts": artifacts,
        });
        let mut out = serde_json::to_vec_pretty(&doc).expect("serializing");
        out.push(b'\n');
        out
    }

    fn written(sums: &Sums, hosts: &BTreeMap<&str, (&str, &str)>) -> Vec<u8> {
        let mut out = Vec::new();
        write_manifest(&mut out, sums, hosts, "s", "r").expect("writing");
        out
    }

    #[test]
    fn sizes_are_written_as_to_string_writes_them() {
        for n in [0, 7, 9, 10, 99, 100, 16_384, 1 << 40, u64::MAX] {
            let mut out = Vec::new();
            let mut j = JsonOut {
                buf: Vec::new(),
                out: &mut out,
            };
            j.u64(n);
            j.finish().expect("finishing");
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn the_manifest_is_laid_out_as_serde_json_would() {
        let mut sums = Sums::default();
        sums.insert_all(vec![
            ("hosts/a/user-data", Sum::of(b"1")),
            ("hosts/a/rootfs/etc/\"quoted\"\\name\t", Sum::of(b"22")),
        ]);
        sums.insert("clusters/c/check", Sum::of(b"333"));
        sums.insert("secrets/a/patroni.env", Sum::of(b"secret"));
        let hosts: BTreeMap<&str, (&str, &str)> = [("a", ("fa", "ca")), ("empty", ("fe", "ce"))]
            .into_iter()
            .collect();
        assert_eq!(
            String::from_utf8(written(&sums, &hosts)).unwrap(),
            String::from_utf8(by_serde(&sums, &hosts)).unwrap()
        );
        let none = BTreeMap::new();
        assert_eq!(
            written(&Sums::default(), &none),
            by_serde(&Sums::default(), &none)
        );
    }

    #[test]
    fn known_closures_are_taken_and_the_others_computed() {
        let mut sums = Sums::default();
        sums.insert_all(vec![
            ("hosts/a/user-data", Sum::of(b"a")),
            ("hosts/b/user-data", Sum::of(b"b")),
        ]);
        let hosts: BTreeMap<String, String> = [
            ("a".to_string(), "fa".to_string()),
            ("b".to_string(), "fb".to_string()),
        ]
        .into();
        let digest = |known: &BTreeMap<String, String>| {
            let mut out = Vec::new();
            let f = manifest(
                &sums,
                &hosts,
                &|h| known.get(h).cloned(),
                "s",
                "r",
                Some(&mut out),
            )
            .expect("writing");
            assert_eq!(f.manifest_sha256, Digest32::of(&out));
            f
        };
        let computed = digest(&BTreeMap::new());
        assert_eq!(computed.closures["a"], closure(&sums, "a"));
        // The previous build's closures give the same manifest.
        let same = digest(&computed.closures);
        assert_eq!(same.manifest_sha256, computed.manifest_sha256);
        // A known closure is used as given; the other host's is computed.
        let known: BTreeMap<String, String> = [("a".to_string(), "kept".to_string())].into();
        let taken = digest(&known);
        assert_eq!(taken.closures["a"], "kept");
        assert_eq!(taken.closures["b"], computed.closures["b"]);
        assert_ne!(taken.manifest_sha256, computed.manifest_sha256);
    }
}
