//! Rebuilds: an unchanged spec writes nothing, a change rewrites only what
//! it changes, and the result always equals a cold build.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::support;

/// Three clusters of three PostgreSQL + etcd hosts and an HAProxy;
/// `extra` is spliced into the settings of host `c1-pg2`.
pub(crate) fn spec(extra: &str) -> String {
    let mut s = String::from(
        "version: 1\n\
         secrets:\n\
         \x20 superuser_password: { env: INCR_SUPERUSER_PASSWORD }\n\
         \x20 replication_password: { env: INCR_REPLICATION_PASSWORD }\n\
         \x20 rewind_password: { env: INCR_REWIND_PASSWORD }\n\
         defaults:\n\
         \x20 network: { domain: incr.example.net }\n\
         \x20 pgbackrest:\n\
         \x20   repos: [{ type: s3, bucket: incr-backups, region: eu-central-1 }]\n\
         clusters:\n",
    );
    for c in 0..3 {
        s.push_str(&format!(
            "  - name: c{c}\n    sites:\n      - name: main\n        hosts:\n"
        ));
        for h in 1..=3 {
            let settings = if c == 1 && h == 2 { extra } else { "" };
            s.push_str(&format!(
                "          - {{ name: c{c}-pg{h}, address: 10.9.{c}.{}, roles: [pg, etcd]{settings} }}\n",
                10 + h
            ));
        }
        s.push_str(&format!(
            "          - {{ name: c{c}-lb, address: 10.9.{c}.5, roles: [haproxy] }}\n"
        ));
    }
    s
}

/// Every file of a tree: (inode, bytes).
fn files(dir: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.expect("walking the output");
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ino = e.metadata().expect("stat").ino();
            out.insert(rel, (ino, std::fs::read(e.path()).expect("reading")));
        }
    }
    out
}

fn build(spec: &Path, out: &Path) -> String {
    let o = Command::new(support::pgimg())
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .env("INCR_SUPERUSER_PASSWORD", "incr-superuser-secret")
        .env("INCR_REPLICATION_PASSWORD", "incr-replication-secret")
        .env("INCR_REWIND_PASSWORD", "incr-rewind-secret")
        .output()
        .expect("running pgimg");
    assert!(
        o.status.success(),
        "pgimg build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A first build of `spec("")` in a new directory: the directory (removed
/// when dropped), the spec's path, the output and the build's report.
fn built_once() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
) {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.yml");
    std::fs::write(&spec_path, spec("")).unwrap();
    let out = dir.path().join("out");
    let report = build(&spec_path, &out);
    (dir, spec_path, out, report)
}

/// A rebuild of changed inputs tells so from the record's first bytes
/// (`load::recorded_inputs`) instead of reading it whole; that needs the
/// record to begin with its inputs key.
#[test]
fn the_record_begins_with_its_inputs_key() {
    let (_dir, _, out, _) = built_once();
    let (text, _) = pgimg::load::recorded_build(&out).expect("the output's record");
    let record: serde_json::Value = serde_json::from_str(&text).expect("the record is JSON");
    let key = record["inputs"].as_str().expect("the record's inputs key");
    assert_eq!(key.len(), 64, "{key}");
    assert_eq!(pgimg::load::recorded_inputs(&out).as_deref(), Some(key));
    // A marker that is not a record gives no key, and no error.
    std::fs::write(out.join(".pgimg-output"), "pgimg output\n{\"secrets\":[]}").unwrap();
    assert_eq!(pgimg::load::recorded_inputs(&out), None);
}

#[test]
fn an_unchanged_rebuild_writes_nothing() {
    let (_dir, spec_path, out, first) = built_once();
    assert!(first.starts_with("built 3 clusters, 12 hosts"), "{first}");
    let before = files(&out);
    let dir_ino = std::fs::metadata(&out).unwrap().ino();
    let second = build(&spec_path, &out);
    assert!(
        second.starts_with("up to date: 3 clusters, 12 hosts (0 rendered, 12 unchanged)"),
        "{second}"
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().ino(),
        dir_ino,
        "the output was replaced"
    );
    assert_eq!(files(&out), before, "a file was rewritten");
    // The closures it prints are the output's.
    assert_eq!(
        first
            .lines()
            .filter(|l| l.starts_with("  host "))
            .collect::<Vec<_>>(),
        second
            .lines()
            .filter(|l| l.starts_with("  host "))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_changed_host_rewrites_only_what_changed_and_equals_a_cold_build() {
    let (dir, spec_path, out, _) = built_once();
    let before = files(&out);
    let changed = ", settings: { os: { limits: { nofile: 200000 } } }";
    std::fs::write(&spec_path, spec(changed)).unwrap();
    let report = build(&spec_path, &out);
    assert!(
        report.starts_with("rebuilt 3 clusters, 12 hosts (4 rendered, 8 unchanged)"),
        "{report}"
    );
    let after = files(&out);
    let cold_dir = dir.path().join("cold");
    build(&spec_path, &cold_dir);
    let cold = files(&cold_dir);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        cold.keys().collect::<Vec<_>>()
    );
    for (path, (_, bytes)) in &cold {
        assert!(&after[path].1 == bytes, "{path} differs from a cold build");
    }
    let rewritten: Vec<&String> = after
        .iter()
        .filter(|(p, (ino, _))| before.get(*p).is_none_or(|(old, _)| old != ino))
        .map(|(p, _)| p)
        .collect();
    assert!(!rewritten.is_empty());
    for p in &rewritten {
        assert!(
            p.starts_with("hosts/c1-pg2/")
                || matches!(
                    p.as_str(),
                    "manifest.json" | "SHA256SUMS" | ".pgimg-output" | ".pgimg-state"
                ),
            "{p} was rewritten though only c1-pg2 changed (rewritten: {rewritten:?})"
        );
    }
    assert!(
        rewritten
            .iter()
            .any(|p| p.ends_with("limits.d/90-postgres.conf"))
    );
}

#[test]
fn a_rebuild_repeats_the_port_warnings_of_clusters_it_keeps() {
    // `north` is left with one PostgreSQL host and no HAProxy: its client
    // port is open to no source (PG0131), a warning the build succeeds with.
    let spec = support::read("tests/errors/base.yml").replace(
        "{ name: n2, address: 10.3.0.12, roles: [pg, etcd] }",
        "{ name: n2, address: 10.3.0.12, roles: [etcd] }",
    );
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.yml");
    std::fs::write(&spec_path, &spec).unwrap();
    let out = dir.path().join("out");
    let run = || {
        let o = Command::new(support::pgimg())
            .arg("build")
            .arg(&spec_path)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("running pgimg");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (built, first) = run();
    assert!(built.starts_with("built "), "{built}");
    assert!(first.contains("warning[PG0131]"), "{first}");
    // A comment: a new spec, but every cluster's inputs are the same, so
    // the rebuild keeps them all and plans none of their ports but those
    // that drew the warning.
    std::fs::write(&spec_path, format!("# reviewed\n{spec}")).unwrap();
    let (rebuilt, second) = run();
    assert!(rebuilt.starts_with("rebuilt "), "{rebuilt}");
    assert!(rebuilt.contains("(0 rendered, "), "{rebuilt}");
    assert!(second.contains("warning[PG0131]"), "{second}");
}
