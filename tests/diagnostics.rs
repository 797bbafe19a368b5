//! Snapshots of the rendered diagnostics: for every `tests/errors/<name>.yml`,
//! what `pgimg validate` prints is `tests/errors/<name>.stderr` (and, for a
//! few, `--format json` is `<name>.jsonl`). `PGIMG_BLESS=1 cargo test`
//! rewrites them; review the diff like code.

use std::path::{Path, PathBuf};

use crate::support;

/// The spec files under `tests/errors/`, by name without extension.
fn specs() -> Vec<String> {
    let dir = support::root().join("tests/errors");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yml").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 5, "too few specs in tests/errors: {names:?}");
    names
}

/// Compares `actual` with the snapshot at `rel`, or rewrites it when blessing.
/// Returns a description of the difference.
fn compare(rel: &str, actual: &str) -> Option<String> {
    let path: PathBuf = support::root().join(rel);
    if support::bless() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {rel}: {e}"));
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let mut first = None;
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            first = Some(format!("line {}:\n  snapshot: {e}\n  actual:   {a}", i + 1));
            break;
        }
    }
    let first = first.unwrap_or_else(|| {
        format!(
            "snapshot has {} lines, output has {}",
            expected.lines().count(),
            actual.lines().count()
        )
    });
    Some(format!(
        "{rel} differs at {first}\n--- actual output ---\n{actual}"
    ))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("pgimg prints UTF-8")
}

#[test]
fn human_diagnostics_match_their_snapshots() {
    let mut problems = Vec::new();
    for name in specs() {
        let spec = format!("tests/errors/{name}.yml");
        let out = support::run_pgimg(&["validate", &spec]);
        let stderr = text(&out.stderr);
        // Diagnostics go to stderr; stdout has only the one-line verdict of a valid spec.
        let stdout = text(&out.stdout);
        assert!(
            stdout.is_empty()
                || (out.status.success()
                    && stdout.starts_with(&format!("{spec} is valid: "))
                    && stdout.lines().count() == 1),
            "{spec}: human diagnostics go to stderr only, got on stdout:\n{stdout}"
        );
        let has_error = stderr.lines().any(|l| l.starts_with("error["));
        assert_eq!(
            out.status.code(),
            Some(if has_error { 1 } else { 0 }),
            "{spec}: exit status does not match the diagnostics:\n{stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "{spec}: diagnostics contain terminal escapes"
        );
        problems.extend(compare(&format!("tests/errors/{name}.stderr"), &stderr));
    }
    assert!(
        problems.is_empty(),
        "{}\n(if the change is intended: PGIMG_BLESS=1 cargo test --test main diagnostics)",
        problems.join("\n\n")
    );
}

#[test]
fn strict_diagnostics_match_their_snapshot() {
    let out = support::run_pgimg(&["validate", "--strict", "tests/errors/warnings.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("warning["),
        "--strict left a warning:\n{stderr}"
    );
    if let Some(p) = compare("tests/errors/warnings.strict.stderr", &stderr) {
        panic!("{p}");
    }
}

/// Specs whose `--format json` output is snapshotted too.
const JSON_SNAPSHOTS: &[&str] = &["ten-mistakes", "schema-mistakes", "plain-secrets"];

#[test]
fn json_diagnostics_match_their_snapshots_and_carry_every_field() {
    let mut problems = Vec::new();
    for name in JSON_SNAPSHOTS {
        let spec = format!("tests/errors/{name}.yml");
        let out = support::run_pgimg(&["validate", "--format", "json", &spec]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        assert!(
            out.stderr.is_empty(),
            "{spec}: JSON diagnostics go to stdout only"
        );
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(!lines.is_empty(), "{spec}: no JSON diagnostics");
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{spec}: not a JSON line ({e}): {line}"));
            assert_eq!(
                v["file"].as_str(),
                Some(spec.as_str()),
                "{spec}: file in {line}"
            );
            for key in ["line", "column", "end_column"] {
                assert!(
                    v[key].as_u64().is_some_and(|n| n >= 1),
                    "{spec}: `{key}` missing in {line}"
                );
            }
            assert!(
                v["pointer"].as_str().is_some_and(|p| p.starts_with('/')),
                "{line}"
            );
            assert!(
                v["code"]
                    .as_str()
                    .is_some_and(|c| pgimg::diag::Code::parse(c).is_some()),
                "{line}"
            );
            assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{line}"
            );
            assert!(
                v["expected"].as_str().is_some_and(|m| !m.is_empty()),
                "{line}"
            );
            assert!(
                matches!(v["severity"].as_str(), Some("error" | "warning")),
                "{line}"
            );
        }
        // The same diagnostics, at the same places, as the human format.
        let human = text(&support::run_pgimg(&["validate", &spec]).stderr);
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let at = format!("--> {spec}:{}:{}", v["line"], v["column"]);
            assert!(
                human.contains(&at),
                "{spec}: `{at}` is not in the human output"
            );
        }
        problems.extend(compare(&format!("tests/errors/{name}.jsonl"), &stdout));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_snapshot_belongs_to_a_spec() {
    let dir = support::root().join("tests/errors");
    let specs = specs();
    for entry in std::fs::read_dir(&dir).expect("tests/errors").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = Path::new(&name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = stem.trim_end_matches(".strict").to_string();
        if name.ends_with(".stderr") || name.ends_with(".jsonl") {
            assert!(specs.contains(&stem), "stale snapshot tests/errors/{name}");
        }
    }
}

#[test]
fn no_diagnostic_shows_a_secret_value() {
    let spec = "tests/errors/plain-secrets.yml";
    let human = text(&support::run_pgimg(&["validate", spec]).stderr);
    let json = text(&support::run_pgimg(&["validate", "--format", "json", spec]).stdout);
    let secrets = [
        "hunter2-Secret",
        "s3cr3t value",
        "12345678",
        "AKIAEXAMPLEKEY",
    ];
    for s in secrets {
        assert!(!human.contains(s), "the human output shows `{s}`:\n{human}");
        assert!(!json.contains(s), "the JSON output shows `{s}`:\n{json}");
    }
    // Each of them is still reported, at its line.
    for line in [4, 5, 9, 13] {
        assert!(
            human.contains(&format!("--> {spec}:{line}:")),
            "no diagnostic at line {line}:\n{human}"
        );
    }
}

#[test]
fn container_problems_point_at_the_key_line() {
    // An even etcd member count is a property of the `hosts:` list, not of its first item.
    let base = support::read("tests/errors/base.yml");
    let text = base.replace(
        "          - { name: pg1, address: 10.1.0.11, roles: [pg, etcd] }\n",
        "          - name: pg1\n            address: 10.1.0.11\n            roles: [pg, etcd]\n          - name: pg4\n            address: 10.1.0.14\n            roles:\n              - etcd\n",
    );
    let diags = support::diagnostics("spec.yml", &text, false);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d.code.as_str(), "PG0111");
    let span = d.span.expect("a position");
    assert_eq!(text.lines().nth(span.line - 1), Some("        hosts:"));
    assert_eq!((span.col, span.len), (9, 5));
    // A problem with one item of a block mapping points at the mapping's first key.
    let text = text.replace("address: 10.1.0.14", "address: 10.1.0.11");
    let diags = support::diagnostics("spec.yml", &text, false);
    let dup = diags
        .iter()
        .find(|d| d.code.as_str() == "PG0102")
        .expect("a duplicate address");
    let span = dup.span.expect("a position");
    assert_eq!(
        text.lines().nth(span.line - 1),
        Some("            address: 10.1.0.11"),
        "{dup:?}"
    );
    assert_eq!(span.line, 28);
    assert_eq!(span.col, 22);
}

#[test]
fn the_code_table_in_the_docs_is_current() {
    const START: &str = "<!-- codes:start -->\n";
    const END: &str = "<!-- codes:end -->";
    let path = support::root().join("docs/diagnostics.md");
    let doc = std::fs::read_to_string(&path).expect("reading docs/diagnostics.md");
    let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
        panic!("docs/diagnostics.md lacks the `{START}`…`{END}` markers");
    };
    let a = a + START.len();
    let table = pgimg::diag::code_table();
    if support::bless() {
        let updated = format!("{}{table}{}", &doc[..a], &doc[b..]);
        std::fs::write(&path, updated).expect("writing docs/diagnostics.md");
        return;
    }
    assert!(
        doc[a..b] == table,
        "the code table in docs/diagnostics.md is stale; run `PGIMG_BLESS=1 cargo test --test main diagnostics` (or paste `pgimg explain`)"
    );
    for code in pgimg::diag::Code::ALL {
        assert!(doc.contains(&format!("| {} |", code.as_str())));
    }
}

#[test]
fn every_code_has_a_long_explanation_with_prose_and_an_example() {
    let dir = support::root().join("docs/explain");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("docs/explain")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let embedded: Vec<String> = pgimg::explain::codes().map(|c| format!("{c}.md")).collect();
    assert_eq!(
        files, embedded,
        "docs/explain/ and the list in src/explain.rs differ"
    );
    for code in pgimg::diag::Code::ALL {
        let text = pgimg::explain::text(*code).unwrap_or_else(|| {
            panic!("{} has no docs/explain/{}.md", code.as_str(), code.as_str())
        });
        assert!(
            text.starts_with(&format!("# {}: ", code.as_str())),
            "{}: the text starts with `# CODE: title`",
            code.as_str()
        );
        assert!(
            text.contains("```yaml\n"),
            "{}: the text has an example",
            code.as_str()
        );
        let prose = text.split("```").next().unwrap_or_default();
        assert!(
            prose.split_whitespace().count() >= 25,
            "{}: the explanation is too short to explain anything",
            code.as_str()
        );
    }
}

#[test]
fn range_errors_do_not_hide_the_semantic_checks() {
    let base = support::read("tests/errors/base.yml");
    // A range error and a rule about the same value: the rule's says more and stays alone.
    let text = base.replace("    ttl: 30", "    ttl: 0");
    let codes: Vec<&str> = support::diagnostics("spec.yml", &text, false)
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert_eq!(codes, ["PG0120", "PG0121"]);
    // A range error beside a semantic error elsewhere: both are reported.
    let text = base
        .replace("    port: 5432", "    port: 5432\n    major: 13")
        .replace("    major: 17\n", "")
        .replace(
            "    retry_timeout: 10",
            "    retry_timeout: 10\n    synchronous_node_count: 0",
        );
    let codes: Vec<&str> = support::diagnostics("spec.yml", &text, false)
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert_eq!(codes, ["PG0170", "PG0014"]);
    // A number too large for its type is the range error, not an internal one.
    let text = base.replace(
        "  patroni:",
        "  pgbackrest: { compress_level: 300 }\n  patroni:",
    );
    let d = support::diagnostics("spec.yml", &text, false);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code.as_str(), "PG0014");
}
