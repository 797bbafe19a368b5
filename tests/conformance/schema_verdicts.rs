//! A second, independent validator: Ajv (JavaScript, installed by
//! scripts/install-test-deps from scripts/ajv/package-lock.json) compiles
//! `schema/pgimg.schema.json` in strict mode and gives its verdict on every
//! example and every `tests/errors` spec; each verdict must be pgimg's own
//! schema stage's.

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

/// Runs `scripts/ajv/verdicts.js` on the schema and `docs`; one JSON verdict per document.
fn ajv(schema: &Path, docs: &[PathBuf]) -> Vec<serde_json::Value> {
    let node = crate::tools::tool("node").unwrap_or_else(|e| panic!("{e}"));
    let modules = std::env::var_os("PGIMG_AJV_MODULES").unwrap_or_else(|| {
        panic!("PGIMG_AJV_MODULES is not set: source the env file scripts/install-test-deps writes")
    });
    let out = Command::new(node)
        .arg(suite::root().join("scripts/ajv/verdicts.js"))
        .arg(schema)
        .args(docs)
        .env("NODE_PATH", modules)
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
    assert!(ours.len() >= 11, "too few specs compared: {}", ours.len());
    for name in &yaml_rejected {
        assert!(
            name.contains("yaml-"),
            "{name} is not YAML pgimg reads, yet it is no YAML error spec"
        );
    }
}
