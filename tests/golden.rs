//! Golden trees: every example spec, built in-process without secrets, must
//! render exactly the files committed under `tests/cases/<example>/expected/`.
//!
//! The comparison runs in both directions, so a file that disappears and a
//! file that appears both fail. A tarball is compared through a listing read
//! back from the archive itself plus its sha256, so a reviewer reads text.
//! The executable bit of each file is part of the fixture (git keeps it).
//! The overlay a kickstart or user-data embeds, and the digest that checks
//! it, are placeholders (the archive has its own fixtures); `manifest.json`
//! keeps its shape with its sums checked against the build, and `SHA256SUMS`
//! is checked rather than stored: a one-line change of a rendered file is a
//! one-line change of its fixture, plus its host's overlay listing.
//! `PGIMG_BLESS=1 cargo test --test main golden` rewrites the fixtures.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::support;

/// A fixture file: its bytes and whether it is executable.
type Tree = BTreeMap<String, (Vec<u8>, bool)>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The example specs, by name (file stem).
fn examples() -> BTreeMap<String, PathBuf> {
    let dir = support::root().join("examples");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).expect("reading examples/") {
        let path = e.expect("reading examples/").path();
        if path.extension().is_some_and(|x| x == "yml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, path);
        }
    }
    out
}

fn case_dir(name: &str) -> PathBuf {
    support::root().join("tests/cases").join(name)
}

/// Builds an example in memory: embedded roles, no secrets, no mapping.
pub fn build_example(name: &str) -> pgimg::render::ArtifactTree {
    let rel = format!("examples/{name}.yml");
    let text = support::read(&rel);
    let validated = match support::validate(&rel, &text) {
        Ok(v) => v,
        Err(d) => panic!("{rel} is invalid: {d:#?}"),
    };
    assert!(
        validated.warnings.is_empty(),
        "{rel} has warnings: {:#?}",
        validated.warnings
    );
    let inputs = pgimg::BuildInputs {
        roles: pgimg::load::RoleTree::embedded(),
        secrets: Default::default(),
        mapping: Default::default(),
        overlays: Default::default(),
    };
    pgimg::build(&validated, &inputs).unwrap_or_else(|e| panic!("building {rel}: {e}"))
}

/// One line per archive entry, read back from the bytes that were written.
pub fn tar_listing(gz: &[u8]) -> String {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut out = String::new();
    for entry in archive.entries().expect("reading tar.gz") {
        let mut entry = entry.expect("reading tar entry");
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "link",
            other => panic!("unexpected tar entry type {other:?}"),
        };
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("reading tar entry");
        let path = String::from_utf8_lossy(&h.path_bytes()).into_owned();
        out.push_str(&format!(
            "{kind:<4} {:04o} {}/{} {}/{} mtime={} size={} sha256={} {path}\n",
            h.mode().expect("mode"),
            h.uid().expect("uid"),
            h.gid().expect("gid"),
            h.username().ok().flatten().unwrap_or("?"),
            h.groupname().ok().flatten().unwrap_or("?"),
            h.mtime().expect("mtime"),
            h.size().expect("size"),
            hex(&Sha256::digest(&content)),
        ));
    }
    out
}

/// The line that stands in a fixture for the host's overlay embedded in a
/// kickstart or user-data: the archive itself is pinned by
/// `overlay.tar.gz.{list,sha256}`, so a template change reads as the one
/// line it changed instead of a rewritten base64 block.
/// The placeholder names no digest: the format's own sha256 check line and
/// `overlay.tar.gz.sha256` already change when the archive does.
const OVERLAY_PLACEHOLDER: &str = "<overlay.tar.gz, embedded: see overlay.tar.gz.list>";

/// A delivery format's text with its embedded overlay replaced by
/// [`OVERLAY_PLACEHOLDER`]. The overlay must be embedded exactly once, in
/// one of the two encodings the formats use (wrapped at 76 in kickstart
/// `%post`, one line in user-data's `write_files`).
fn redact_overlay(path: &str, text: &str, overlay: &[u8]) -> String {
    use base64::Engine;
    let one_line = base64::engine::general_purpose::STANDARD.encode(overlay);
    let wrapped: String = one_line
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\n");
    for encoded in [wrapped.as_str(), one_line.as_str()] {
        if text.matches(encoded).count() == 1 {
            let text = text.replacen(encoded, OVERLAY_PLACEHOLDER, 1);
            // The format checks the overlay against its digest, once.
            let digest = hex(&Sha256::digest(overlay));
            assert_eq!(
                text.matches(&digest).count(),
                1,
                "{path} does not check its overlay's sha256 exactly once"
            );
            return text.replacen(&digest, OVERLAY_DIGEST_PLACEHOLDER, 1);
        }
    }
    panic!("{path} does not embed its host's overlay.tar.gz exactly once");
}

/// Stands for the overlay's sha256 where a delivery format checks it.
const OVERLAY_DIGEST_PLACEHOLDER: &str = "<sha256 of overlay.tar.gz: see overlay.tar.gz.sha256>";

/// Stands for a sum or size in the fixture of `manifest.json`.
const CHECKED: &str = "<checked against the build>";

/// `manifest.json` and `SHA256SUMS` restate every artifact's sha256, so a
/// one-line change of one file would rewrite dozens of their lines. The
/// fixture keeps the manifest's shape (its inputs and every host's artifact
/// list) with sums, sizes and closures as [`CHECKED`], and this checks them
/// against the build itself: each sum and size, each closure, and
/// `SHA256SUMS` byte for byte.
fn check_manifest(tree: &pgimg::render::ArtifactTree) -> Vec<u8> {
    let manifest_bytes = &tree.files["manifest.json"].bytes;
    let mut m: serde_json::Value = serde_json::from_slice(manifest_bytes).expect("manifest.json");
    let sum = |b: &[u8]| hex(&Sha256::digest(b));
    let public: BTreeMap<&str, &pgimg::render::Artifact> = tree
        .files
        .iter()
        .filter(|(p, _)| {
            pgimg::render::manifest::is_public(p) && *p != "manifest.json" && *p != "SHA256SUMS"
        })
        .map(|(p, a)| (p.as_str(), a))
        .collect();
    let artifacts = m["artifacts"].as_object_mut().expect("artifacts");
    let listed: Vec<&str> = artifacts.keys().map(String::as_str).collect();
    assert_eq!(
        listed,
        public.keys().copied().collect::<Vec<_>>(),
        "manifest.json lists exactly the public artifacts"
    );
    let mut sums = String::new();
    let mut lines = BTreeMap::new();
    for (path, entry) in artifacts.iter_mut() {
        let a = public[path.as_str()];
        assert_eq!(
            entry["sha256"],
            sum(&a.bytes),
            "manifest.json: sha256 of {path}"
        );
        assert_eq!(
            entry["size"],
            a.bytes.len(),
            "manifest.json: size of {path}"
        );
        lines.insert(path.clone(), sum(&a.bytes));
        *entry = serde_json::json!({ "sha256": CHECKED, "size": CHECKED });
    }
    for (host, entry) in m["hosts"].as_object_mut().expect("hosts") {
        let mut closure = Sha256::new();
        for p in entry["artifacts"].as_array().expect("host artifacts") {
            let p = p.as_str().expect("a path");
            closure.update(format!("{}  {p}\n", lines[p]).as_bytes());
        }
        assert_eq!(
            entry["closure"],
            hex(&closure.finalize()),
            "manifest.json: closure of {host}"
        );
        entry["closure"] = CHECKED.into();
    }
    lines.insert("manifest.json".into(), sum(manifest_bytes));
    for (p, s) in &lines {
        sums.push_str(&format!("{s}  {p}\n"));
    }
    assert_eq!(
        String::from_utf8_lossy(&tree.files["SHA256SUMS"].bytes),
        sums,
        "SHA256SUMS lists every artifact and manifest.json with their sums, sorted"
    );
    let mut out = serde_json::to_vec_pretty(&m).expect("manifest fixture");
    out.push(b'\n');
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// What the fixture of a build looks like.
fn fixture_of(tree: &pgimg::render::ArtifactTree) -> Tree {
    let mut out = Tree::new();
    for (path, a) in &tree.files {
        let exec = a.mode & 0o111 != 0;
        let embeds_overlay = path.starts_with("hosts/")
            && (path.ends_with("/kickstart.ks") || path.ends_with("/user-data"));
        if embeds_overlay {
            let host_dir = &path[..path.rfind('/').expect("a host file")];
            let overlay = &tree
                .files
                .get(&format!("{host_dir}/overlay.tar.gz"))
                .unwrap_or_else(|| panic!("{path}: no overlay.tar.gz beside it"))
                .bytes;
            // EC2-sized user-data may be gzipped: the fixture shows its text.
            let (name, text) = if a.bytes.starts_with(&[0x1f, 0x8b]) {
                (format!("{path}.gunzipped"), gunzip(&a.bytes))
            } else {
                (path.clone(), a.bytes.clone())
            };
            let text = String::from_utf8(text).unwrap_or_else(|_| panic!("{path} is not UTF-8"));
            out.insert(
                name,
                (redact_overlay(path, &text, overlay).into_bytes(), exec),
            );
        } else if path == "manifest.json" {
            out.insert(path.clone(), (check_manifest(tree), exec));
        } else if path == "SHA256SUMS" {
            // Checked in full by `check_manifest`.
        } else if path.ends_with(".tar.gz") {
            out.insert(
                format!("{path}.list"),
                (tar_listing(&a.bytes).into_bytes(), false),
            );
            out.insert(
                format!("{path}.sha256"),
                (
                    format!("{}\n", hex(&Sha256::digest(&a.bytes))).into_bytes(),
                    false,
                ),
            );
        } else {
            out.insert(path.clone(), (a.bytes.clone(), exec));
        }
    }
    out
}

fn read_tree(dir: &Path) -> Tree {
    let mut out = Tree::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.expect("walking expected/");
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(e.path()).expect("reading fixture");
        let exec = e.metadata().expect("stat fixture").permissions().mode() & 0o111 != 0;
        out.insert(rel, (bytes, exec));
    }
    out
}

fn write_tree(dir: &Path, tree: &Tree) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("removing old fixtures");
    }
    for (rel, (bytes, exec)) in tree {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).expect("creating fixture dir");
        std::fs::write(&path, bytes).expect("writing fixture");
        let mode = if *exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("setting fixture mode");
    }
}

/// The first differing region of two texts, `-` expected and `+` actual, with context.
pub fn diff(expected: &[u8], actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    let el: Vec<&str> = e.lines().collect();
    let al: Vec<&str> = a.lines().collect();
    let prefix = el.iter().zip(&al).take_while(|(x, y)| x == y).count();
    let suffix = el[prefix..]
        .iter()
        .rev()
        .zip(al[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (e_mid, a_mid) = (
        &el[prefix..el.len() - suffix],
        &al[prefix..al.len() - suffix],
    );
    const MAX: usize = 12;
    let mut out = format!(
        "@@ -{},{} +{},{} @@\n",
        prefix + 1,
        e_mid.len(),
        prefix + 1,
        a_mid.len()
    );
    for l in &el[prefix.saturating_sub(3)..prefix] {
        out.push_str(&format!(" {l}\n"));
    }
    for l in e_mid.iter().take(MAX) {
        out.push_str(&format!("-{l}\n"));
    }
    for l in a_mid.iter().take(MAX) {
        out.push_str(&format!("+{l}\n"));
    }
    if e_mid.len() > MAX || a_mid.len() > MAX {
        out.push_str("… (more differing lines)\n");
    }
    if e_mid.is_empty() && a_mid.is_empty() {
        out.push_str("(the texts differ only in their final newline or in bytes)\n");
    }
    out
}

fn check(name: &str) {
    let actual = fixture_of(&build_example(name));
    let dir = case_dir(name).join("expected");
    if support::bless() {
        write_tree(&dir, &actual);
        return;
    }
    let expected = read_tree(&dir);
    assert!(
        !expected.is_empty(),
        "no fixtures for examples/{name}.yml under tests/cases/{name}/expected/; \
         run `PGIMG_BLESS=1 cargo test --test main golden` and review them"
    );
    let mut problems = Vec::new();
    for (path, (bytes, exec)) in &actual {
        match expected.get(path) {
            None => problems.push(format!("extra file (not in expected/): {path}")),
            Some((want, want_exec)) => {
                if want != bytes {
                    problems.push(format!("{path} differs:\n{}", diff(want, bytes)));
                } else if want_exec != exec {
                    problems.push(format!(
                        "{path}: executable is {exec}, expected {want_exec}"
                    ));
                }
            }
        }
    }
    for path in expected.keys().filter(|p| !actual.contains_key(*p)) {
        problems.push(format!("missing file (in expected/, not built): {path}"));
    }
    assert!(
        problems.is_empty(),
        "examples/{name}.yml no longer renders tests/cases/{name}/expected/ \
         ({} problem{}); if the change is intended, run \
         `PGIMG_BLESS=1 cargo test --test main golden` and review the diff\n\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("\n")
    );
}

#[test]
fn golden_minimal() {
    check("minimal");
}

#[test]
fn golden_reference_cluster() {
    check("reference-cluster");
}

#[test]
fn golden_fleet() {
    check("fleet");
}

#[test]
fn golden_small() {
    check("small");
}

#[test]
fn golden_cases_match_the_examples() {
    let examples: Vec<String> = examples().into_keys().collect();
    let cases_dir = support::root().join("tests/cases");
    let mut cases = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&cases_dir) {
        for e in rd {
            let e = e.expect("reading tests/cases");
            if e.path().join("expected").is_dir() {
                cases.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    cases.sort();
    if support::bless() {
        for stale in cases.iter().filter(|c| !examples.contains(c)) {
            std::fs::remove_dir_all(cases_dir.join(stale)).expect("removing stale case");
        }
        return;
    }
    assert_eq!(
        cases, examples,
        "every examples/<name>.yml needs a golden case tests/cases/<name>/ (and a `check` test here), and nothing else"
    );
}

#[test]
fn golden_diff_shows_the_first_difference() {
    let d = diff(b"a\nb\nc\nd\n", b"a\nb\nX\nd\n");
    assert!(d.contains("-c\n+X\n"), "{d}");
    assert!(d.starts_with("@@ -3,1 +3,1 @@"), "{d}");
}
