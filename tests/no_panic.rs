//! No input can make pgimg panic: every spec under `tests/` and `examples/`,
//! systematically damaged variants of each, and hostile YAML go through
//! `pgimg::validate` (inside `catch_unwind`) and, for a sample, through the
//! binary, whose exit status must be 0, 1 or 2.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use pgimg::source::SourceFile;

use crate::support;

/// Every `.yml`/`.yaml` file under `tests/` and `examples/`, sorted.
fn corpus() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests", "examples"] {
        for entry in walkdir::WalkDir::new(support::root().join(dir))
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
        {
            let p = entry.path();
            if entry.file_type().is_file()
                && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
            {
                files.push(p.to_path_buf());
            }
        }
    }
    assert!(files.len() >= 8, "corpus too small: {files:?}");
    files
}

fn rel(p: &Path) -> String {
    p.strip_prefix(support::root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Characters that mean something to YAML, or to a column count.
const NASTY: &[&str] = &[
    ":", "-", " ", "\t", "\n", "\r\n", "[", "]", "{", "}", ",", "#", "&a", "*a", "!", "!!int ",
    "|", ">", "'", "\"", "%", "@", "`", "?", "~", "é", "→", "😀", "\u{feff}", "\0", "\\", "---\n",
    "...", "&", "*", "0x", "1e999", "yes", "on",
];

/// Damaged versions of one spec: every prefix ending at a line boundary, every
/// single line deleted, and seeded random edits.
fn variants(text: &str, seed: u64) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = Vec::new();
    for i in 0..=lines.len() {
        out.push((format!("first {i} lines"), lines[..i].concat()));
    }
    for i in 0..lines.len() {
        let mut v = lines.clone();
        v.remove(i);
        out.push((format!("line {} deleted", i + 1), v.concat()));
    }
    let mut rng = Rng(seed | 1);
    let chars: Vec<char> = text.chars().collect();
    for n in 0..60 {
        let mut c = chars.clone();
        let edits = 1 + rng.below(3);
        for _ in 0..edits {
            let at = rng.below(c.len() + 1);
            let with = NASTY[rng.below(NASTY.len())];
            match rng.below(3) {
                0 if at < c.len() => {
                    c.splice(at..at + 1, with.chars());
                }
                1 => {
                    c.splice(at..at, with.chars());
                }
                _ if at < c.len() => {
                    // Flip a bit of an ASCII character, staying ASCII.
                    c[at] = char::from((c[at] as u32 as u8 & 0x7f) ^ (1 << rng.below(7)));
                }
                _ => {}
            }
        }
        out.push((format!("random edit {n}"), c.into_iter().collect()));
    }
    out
}

/// Hostile YAML written for this test.
fn hostile() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("empty".into(), String::new()),
        ("only a comment".into(), "# nothing\n".into()),
        ("null root".into(), "~\n".into()),
        ("scalar root".into(), "42\n".into()),
        ("list root".into(), "- version: 1\n".into()),
        ("version only".into(), "version: 1\n".into()),
        (
            "version as text".into(),
            "version: '1'\nclusters: []\n".into(),
        ),
        (
            "version huge".into(),
            format!("version: {}\n", "9".repeat(400)),
        ),
        ("version float".into(), "version: 1.0\n".into()),
        ("version negative".into(), "version: -1\n".into()),
        ("version map".into(), "version: { a: 1 }\n".into()),
        (
            "two documents".into(),
            "version: 1\n---\nversion: 1\n".into(),
        ),
        ("directive".into(), "%YAML 1.2\n---\nversion: 1\n".into()),
        ("bom".into(), "\u{feff}version: 1\nclusters: []\n".into()),
        (
            "crlf".into(),
            "version: 1\r\nclusters:\r\n  - name: a\r\n".into(),
        ),
        ("tabs".into(), "version: 1\nclusters:\n\t- name: a\n".into()),
        (
            "tab after key".into(),
            "version:\t1\nclusters:\t[]\n".into(),
        ),
        (
            "undefined alias".into(),
            "version: 1\nclusters: *nope\n".into(),
        ),
        (
            "alias as key".into(),
            "a: &k x\n*k : 1\nversion: 1\n".into(),
        ),
        ("complex key".into(), "? [a, b]\n: 1\nversion: 1\n".into()),
        ("empty key".into(), ": 1\nversion: 1\n".into()),
        (
            "collection tag".into(),
            "version: 1\nclusters: !!seq []\n".into(),
        ),
        ("local tag".into(), "version: !foo 1\n".into()),
        (
            "unicode before quotes".into(),
            "# é → 😀\nversion: 1\nclusters: [{ name: \"é→\", sites: 'x' }]\n".into(),
        ),
        ("unicode key".into(), "version: 1\nclüsters: []\n".into()),
        ("nul byte".into(), "version: 1\nclusters: [\0]\n".into()),
        (
            "huge integer".into(),
            "version: 1\nsource_date_epoch: 99999999999999999999999999\nclusters: []\n".into(),
        ),
        (
            "huge negative".into(),
            "version: 1\nsource_date_epoch: -9223372036854775809\nclusters: []\n".into(),
        ),
        (
            "huge float".into(),
            "version: 1\nsource_date_epoch: 1e999\nclusters: []\n".into(),
        ),
        (
            "hex overflow".into(),
            "version: 1\nsource_date_epoch: 0xffffffffffffffffffff\nclusters: []\n".into(),
        ),
        (
            "octal".into(),
            "version: 1\nsource_date_epoch: 0o777\nclusters: []\n".into(),
        ),
        (
            "nan".into(),
            "version: 1\nsource_date_epoch: .nan\nclusters: []\n".into(),
        ),
        (
            "long line".into(),
            format!(
                "version: 1\nclusters: [{{ name: {} }}]\n",
                "a".repeat(100_000)
            ),
        ),
        (
            "many keys".into(),
            format!(
                "version: 1\n{}",
                (0..5000)
                    .map(|i| format!("k{i}: {i}\n"))
                    .collect::<String>()
            ),
        ),
    ];
    // Deep flow nesting, below and above the parser's limit.
    for depth in [100, 254, 255, 256, 1000] {
        v.push((
            format!("flow sequences {depth} deep"),
            format!(
                "version: 1\nclusters: {}{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        ));
        v.push((
            format!("flow mappings {depth} deep"),
            format!(
                "version: 1\nclusters: {}{}\n",
                "{a: ".repeat(depth),
                "}".repeat(depth)
            ),
        ));
    }
    // Deep block nesting.
    for depth in [100, 1000] {
        let mut s = String::from("version: 1\nclusters:\n");
        for i in 0..depth {
            s.push_str(&"  ".repeat(i + 1));
            s.push_str("-\n");
        }
        s.push_str(&"  ".repeat(depth + 1));
        s.push_str("x\n");
        v.push((format!("block sequences {depth} deep"), s));
    }
    // An alias bomb: ten to the ninth nodes if expanded.
    let mut bomb = String::from("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    bomb.push_str("clusters: [*a9]\n");
    v.push(("alias bomb".into(), bomb));
    // Aliases that a spec may legitimately use.
    let base = support::read("tests/errors/base.yml");
    v.push((
        "anchored settings".into(),
        base.replace("  patroni:\n", "  patroni: &p\n").replace(
            "    settings:\n      pgbackrest:",
            "    settings:\n      patroni: *p\n      pgbackrest:",
        ),
    ));
    v
}

fn validate_catching(name: &str, text: &str, strict: bool) -> Result<(), String> {
    let source = SourceFile::new(name, text);
    match catch_unwind(AssertUnwindSafe(|| {
        let r = pgimg::validate(source, strict);
        // Render whatever came out, as the binary would.
        if let Err(diags) = &r {
            for d in diags {
                let _ = pgimg::diag::render_human(d, Some(&SourceFile::new(name, text)));
                let _ = pgimg::diag::render_json(d);
            }
        }
    })) {
        Ok(()) => Ok(()),
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(msg)
        }
    }
}

#[test]
fn no_spec_file_nor_any_damaged_variant_panics() {
    let files = corpus();
    // One thread per file: the variants are many and independent.
    let results: Vec<(usize, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, path)| {
                scope.spawn(move || {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    let name = rel(path);
                    let mut cases = vec![("as is".to_string(), text.clone())];
                    cases.extend(variants(&text, 0x9E37_79B9_7F4A_7C15 ^ i as u64));
                    let mut panics = Vec::new();
                    for (n, (what, v)) in cases.iter().enumerate() {
                        if let Err(msg) = validate_catching(&name, v, n % 2 == 1) {
                            panics.push(format!("{name} ({what}): {msg}"));
                        }
                    }
                    (cases.len(), panics)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (0, vec!["a worker died".into()]))
            })
            .collect()
    });
    let count: usize = results.iter().map(|r| r.0).sum();
    let panics: Vec<String> = results.into_iter().flat_map(|r| r.1).collect();
    assert!(count > 500, "only {count} inputs");
    assert!(
        panics.is_empty(),
        "{} panics:\n{}",
        panics.len(),
        panics.join("\n")
    );
}

#[test]
fn no_hostile_yaml_panics() {
    let mut panics = Vec::new();
    for (what, text) in hostile() {
        if let Err(msg) = validate_catching("hostile.yml", &text, false) {
            panics.push(format!("{what}: {msg}"));
        }
    }
    assert!(
        panics.is_empty(),
        "{} panics:\n{}",
        panics.len(),
        panics.join("\n")
    );
}

#[test]
fn the_alias_bomb_is_refused_not_expanded() {
    let (_, bomb) = hostile()
        .into_iter()
        .find(|(w, _)| w == "alias bomb")
        .unwrap_or_else(|| unreachable!());
    let diags = support::diagnostics("bomb.yml", &bomb, false);
    assert!(
        diags.iter().any(|d| d.code.as_str() == "PG0003"),
        "{diags:?}"
    );
    // Aliases within reason still work.
    let (_, anchored) = hostile()
        .into_iter()
        .find(|(w, _)| w == "anchored settings")
        .unwrap_or_else(|| unreachable!());
    assert!(anchored.contains("*p"));
    let diags = support::diagnostics("anchored.yml", &anchored, false);
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn the_binary_never_panics_and_exits_0_1_or_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut inputs: Vec<(String, Vec<u8>)> = corpus()
        .iter()
        .map(|p| (rel(p), std::fs::read(p).unwrap_or_default()))
        .collect();
    inputs.extend(
        hostile()
            .into_iter()
            .map(|(what, text)| (what, text.into_bytes())),
    );
    // Bytes that are not UTF-8 can only reach pgimg through a file.
    inputs.push(("latin-1".into(), b"version: 1\n# caf\xe9\n".to_vec()));
    inputs.push((
        "lone continuation byte".into(),
        b"version: 1\nclusters: [\x80]\n".to_vec(),
    ));
    inputs.push(("utf-16".into(), b"\xff\xfev\0e\0r\0".to_vec()));
    inputs.push(("truncated utf-8".into(), b"version: 1\n# \xe2\x86".to_vec()));
    let mut children = Vec::new();
    for (i, (what, bytes)) in inputs.iter().enumerate() {
        let path = dir.path().join(format!("input-{i}.yml"));
        std::fs::write(&path, bytes).expect("writing input");
        let args: &[&str] = if i % 2 == 0 {
            &["validate"]
        } else {
            &["validate", "--format", "json", "--strict"]
        };
        let child = std::process::Command::new(support::pgimg())
            .args(args)
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running pgimg");
        children.push((what, args, child));
    }
    for (what, args, child) in children {
        let out = child.wait_with_output().expect("waiting for pgimg");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "{what}: pgimg {args:?} exited with {:?}:\n{stderr}",
            out.status
        );
        assert!(
            !stderr.contains("panicked"),
            "{what}: pgimg panicked:\n{stderr}"
        );
    }
}
