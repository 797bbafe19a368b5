//! The command line: exit codes, `explain`, `schema`, and the spec with ten
//! mistakes reported all at once by the real binary.

use crate::support;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_valid_spec_exits_0_silently() {
    let out = support::run_pgimg(&["validate", "examples/reference-cluster.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a clean spec prints nothing");
    let out = support::run_pgimg(&["validate", "tests/errors/base.yml", "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn an_invalid_spec_exits_1() {
    let out = support::run_pgimg(&["validate", "tests/errors/version.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error[PG0020]"), "{}", stderr(&out));
}

#[test]
fn warnings_exit_0_and_strict_makes_them_fail() {
    let out = support::run_pgimg(&["validate", "tests/errors/warnings.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with("0 errors, 3 warnings\n"),
        "{}",
        stderr(&out)
    );
    let out = support::run_pgimg(&["validate", "--strict", "tests/errors/warnings.yml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with("3 errors, 0 warnings\n"),
        "{}",
        stderr(&out)
    );
    for code in ["PG0030", "PG0112", "PG0181"] {
        assert!(stderr(&out).contains(&format!("error[{code}]")), "{code}");
    }
}

#[test]
fn a_missing_file_exits_2() {
    let out = support::run_pgimg(&["validate", "tests/errors/no-such-spec.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: reading spec tests/errors/no-such-spec.yml"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &[][..],
        &["validate"][..],
        &["frobnicate"][..],
        &["validate", "--format", "xml", "tests/errors/base.yml"][..],
        &["validate", "--no-such-flag", "tests/errors/base.yml"][..],
        &["explain", "PG9999"][..],
    ] {
        let out = support::run_pgimg(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "pgimg {args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).is_empty(), "pgimg {args:?} says nothing");
    }
}

#[test]
fn a_spec_that_is_not_utf8_exits_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("latin1.yml");
    std::fs::write(&path, b"version: 1\n# caf\xe9\n").expect("writing spec");
    let out = std::process::Command::new(support::pgimg())
        .arg("validate")
        .arg(&path)
        .output()
        .expect("running pgimg");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
}

#[test]
fn explain_prints_one_code() {
    let out = support::run_pgimg(&["explain", "PG0120"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        support::read("docs/explain/PG0120.md"),
        "`pgimg explain` prints the code's long explanation"
    );
    let lower = support::run_pgimg(&["explain", "pg0120"]);
    assert_eq!(stdout(&lower), stdout(&out), "codes are case-insensitive");
}

#[test]
fn explain_without_a_code_lists_them_all() {
    let out = support::run_pgimg(&["explain"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), pgimg::diag::code_table());
    for code in pgimg::diag::Code::ALL {
        assert!(stdout(&out).contains(code.as_str()), "{}", code.as_str());
    }
}

#[test]
fn schema_prints_the_committed_schema() {
    let out = support::run_pgimg(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), support::read("schema/pgimg.schema.json"));
}

/// The ten mistakes of `tests/errors/ten-mistakes.yml`: code, line, column.
const TEN_MISTAKES: [(&str, usize, usize); 10] = [
    ("PG0170", 13, 12),
    ("PG0160", 14, 48),
    ("PG0190", 16, 78),
    ("PG0120", 18, 10),
    ("PG0111", 26, 9),
    ("PG0103", 28, 35),
    ("PG0104", 29, 21),
    ("PG0130", 34, 35),
    ("PG0101", 35, 21),
    ("PG0140", 37, 21),
];

#[test]
fn ten_mistakes_are_all_reported_at_their_line_and_column() {
    let spec = "tests/errors/ten-mistakes.yml";
    let out = support::run_pgimg(&["validate", "--format", "json", spec]);
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<(String, u64, u64)> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["code"].as_str().unwrap_or_default().to_string(),
                v["line"].as_u64().unwrap_or_default(),
                v["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, u64)> = TEN_MISTAKES
        .iter()
        .map(|(c, l, col)| (c.to_string(), *l as u64, *col as u64))
        .collect();
    assert_eq!(found, expected);
    let codes: std::collections::BTreeSet<&str> = TEN_MISTAKES.iter().map(|m| m.0).collect();
    assert_eq!(codes.len(), 10, "ten different mistakes");

    // The human format: every one at file:line:column, and the count.
    let out = support::run_pgimg(&["validate", spec]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for (code, line, col) in TEN_MISTAKES {
        assert!(
            err.contains(&format!("error[{code}]")),
            "{code} missing:\n{err}"
        );
        assert!(
            err.contains(&format!("--> {spec}:{line}:{col}\n")),
            "{code} not at {line}:{col}:\n{err}"
        );
    }
    assert!(err.ends_with("10 errors, 0 warnings\n"), "{err}");
}

#[test]
fn each_of_the_ten_mistakes_points_at_the_text_it_is_about() {
    // The caret of each mistake sits on the offending text, not merely on its line.
    let text = support::read("tests/errors/ten-mistakes.yml");
    let at = |line: usize, col: usize| -> String {
        text.lines()
            .nth(line - 1)
            .map(|l| l.chars().skip(col - 1).collect())
            .unwrap_or_default()
    };
    let starts = [
        "13",
        "Replicator",
        "trust",
        "25",
        "hosts:",
        "10.0.1.300",
        "db-",
        "8008",
        "db1",
        "primray",
    ];
    for ((code, line, col), start) in TEN_MISTAKES.iter().zip(starts) {
        assert!(
            at(*line, *col).starts_with(start),
            "{code} at {line}:{col} points at `{}`, not `{start}`",
            at(*line, *col)
        );
    }
}
