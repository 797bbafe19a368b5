//! A second, independent validator: Ajv (JavaScript, installed by
//! scripts/install-test-deps from scripts/ajv/package-lock.json) compiles
//! `schema/pgimg.schema.json` in strict mode and gives its verdict on every
//! example, every `tests/errors` spec and one-mistake variants of the base
//! error spec; each verdict must be pgimg's own schema stage's.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::suite;

/// Every spec the comparison runs on: the examples and the error specs.
fn specs() -> Vec<PathBuf> {
    let mut all = suite::examples();
    let dir = suite::root().join("tests/errors");
    let mut errors: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/errors")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    errors.sort();
    all.extend(errors);
    all
}

/// One-mistake (or no-mistake) variants of `tests/errors/base.yml`: each
/// replaces a text of the base, so that every verdict is about one thing.
/// Each with the verdict both validators must give.
const VARIANTS: &[(&str, &str, &str, bool)] = &[
    (
        "sync-true",
        "synchronous_mode: 'off'",
        "synchronous_mode: true",
        true,
    ),
    (
        "sync-quorum",
        "synchronous_mode: 'off'",
        "synchronous_mode: quorum",
        true,
    ),
    (
        "sync-bad",
        "synchronous_mode: 'off'",
        "synchronous_mode: sometimes",
        false,
    ),
    ("major-19", "major: 17", "major: 19", false),
    ("port-0", "port: 5432", "port: 0", false),
    (
        "null-section",
        "  patroni:\n    ttl: 30\n    loop_wait: 10\n    retry_timeout: 10\n    synchronous_mode: 'off'\n",
        "  patroni:\n",
        false,
    ),
    ("unknown-key", "loop_wait: 10", "loop_wiat: 10", false),
    (
        "s3-no-region",
        "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]",
        "repos: [{ type: s3, bucket: backups }]",
        false,
    ),
    (
        "s3-complete",
        "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]",
        "repos: [{ type: s3, bucket: backups, region: eu-west-1 }]",
        true,
    ),
    (
        "retention-time",
        "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]",
        "repos: [{ type: posix, retention_full_type: time, retention_full: 30 }]",
        true,
    ),
    (
        "roles-scalar",
        "roles: [haproxy] }",
        "roles: haproxy }",
        false,
    ),
    ("bad-name", "- name: main", "- name: Main Cluster", false),
    ("version-2", "version: 1", "version: 2", false),
];

/// Runs `scripts/ajv/verdicts.js` on the schema and `docs`; one JSON verdict per document.
fn ajv(schema: &Path, docs: &[PathBuf]) -> Vec<serde_json::Value> {
    // Node.js with Ajv on its module path (a wrapper scripts/install-test-deps writes).
    let node = crate::tools::tool("node-ajv").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(node)
        .arg(suite::root().join("scripts/ajv/verdicts.js"))
        .arg(schema)
        .args(docs)
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "Ajv refused the schema (strict mode):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn ajv_compiles_the_schema_strictly_and_agrees_with_the_schema_stage() {
    let tmp = crate::tempdir();
    let mut docs = Vec::new();
    let mut ours = Vec::new();
    let mut yaml_rejected = Vec::new();
    for spec in specs() {
        let rel = spec.strip_prefix(suite::root()).unwrap_or(&spec);
        let text = std::fs::read_to_string(&spec).expect("spec");
        let source = pgimg::source::SourceFile::new(rel.display().to_string(), text);
        // A spec that is not YAML pgimg accepts never reaches the schema stage.
        let Ok(doc) = pgimg::spec::yaml::parse(&source) else {
            yaml_rejected.push(rel.display().to_string());
            continue;
        };
        let report = pgimg::schema::validate(&doc.value, &doc.spans, &source);
        let json = tmp.path().join(format!("{}.json", docs.len()));
        std::fs::write(&json, serde_json::to_vec(&doc.value).expect("JSON")).expect("write");
        docs.push(json);
        ours.push((
            rel.display().to_string(),
            report.errors.is_empty() && report.deferred.is_empty(),
            report
                .errors
                .iter()
                .chain(&report.deferred)
                .map(|d| format!("{} {}", d.pointer, d.code.as_str()))
                .collect::<Vec<_>>(),
        ));
    }
    let base = std::fs::read_to_string(suite::root().join("tests/errors/base.yml")).expect("base");
    for (name, from, to, valid) in VARIANTS {
        assert_eq!(base.matches(from).count(), 1, "variant {name}: `{from}`");
        let source = pgimg::source::SourceFile::new(
            format!("base.yml ({name})"),
            base.replacen(from, to, 1),
        );
        let doc = pgimg::spec::yaml::parse(&source)
            .unwrap_or_else(|d| panic!("variant {name} is not YAML: {d:?}"));
        let report = pgimg::schema::validate(&doc.value, &doc.spans, &source);
        assert_eq!(
            report.errors.is_empty() && report.deferred.is_empty(),
            *valid,
            "variant {name}: {:?} {:?}",
            report.errors,
            report.deferred
        );
        let json = tmp.path().join(format!("{}.json", docs.len()));
        std::fs::write(&json, serde_json::to_vec(&doc.value).expect("JSON")).expect("write");
        docs.push(json);
        ours.push((
            source.name.clone(),
            report.errors.is_empty() && report.deferred.is_empty(),
            report
                .errors
                .iter()
                .chain(&report.deferred)
                .map(|d| format!("{} {}", d.pointer, d.code.as_str()))
                .collect::<Vec<_>>(),
        ));
    }
    let verdicts = ajv(&suite::root().join("schema/pgimg.schema.json"), &docs);
    assert_eq!(verdicts.len(), ours.len(), "one verdict per document");
    let mut disagreements = Vec::new();
    for ((name, valid, diags), theirs) in ours.iter().zip(&verdicts) {
        if theirs["valid"].as_bool() != Some(*valid) {
            disagreements.push(format!(
                "{name}: pgimg says {}, Ajv says {}\n  pgimg: {diags:?}\n  Ajv:   {}",
                if *valid { "valid" } else { "invalid" },
                theirs["valid"],
                theirs["errors"]
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // The comparison covers both verdicts, and only the YAML-level error specs are left out.
    assert!(ours.iter().any(|(_, v, _)| *v) && ours.iter().any(|(_, v, _)| !*v));
    assert!(
        ours.len() >= 11 + VARIANTS.len(),
        "too few specs compared: {}",
        ours.len()
    );
    for name in &yaml_rejected {
        assert!(
            name.contains("yaml-"),
            "{name} is not YAML pgimg reads, yet it is no YAML error spec"
        );
    }
}
