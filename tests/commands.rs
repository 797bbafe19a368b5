//! The commands people run besides validate and build: `init`, `show`,
//! `resolve`, `graph`, the generated completions and manual page, and the
//! conventions (colour, quiet, stdin, `--version`, `build --format json`).
//! Snapshots live in `tests/snapshots/`; `PGIMG_BLESS=1 cargo test --test
//! main commands` rewrites them (and the committed docs they mirror).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::support;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Compares `actual` with the committed file `rel` (rewrites it when blessing).
fn snapshot(rel: &str, actual: &str) {
    let path = support::root().join(rel);
    if support::bless() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("creating snapshot directory");
        }
        std::fs::write(&path, actual).expect("writing snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{rel} differs from the output:\n--- output ---\n{actual}\n(if intended: PGIMG_BLESS=1 cargo test --test main commands, then review the diff)"
    );
}

/// Runs pgimg from the repository root with `input` on its standard input.
fn run_with_stdin(args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(support::pgimg());
    cmd.args(args)
        .current_dir(support::root())
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("starting pgimg");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("running pgimg")
}

fn ok(args: &[&str]) -> String {
    let o = support::run_pgimg(args);
    assert_eq!(o.status.code(), Some(0), "pgimg {args:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn init_prints_the_starter_spec() {
    snapshot("tests/snapshots/init.yml", &ok(&["init", "-"]));
    snapshot(
        "tests/snapshots/init-dr-bare-metal.yml",
        &ok(&["init", "-", "--dr", "--bare-metal", "--hosts", "2"]),
    );
}

#[test]
fn every_starter_spec_validates_and_builds() {
    for dr in [false, true] {
        for bare_metal in [false, true] {
            for hosts in 1..=9 {
                let o = pgimg::cmd::init::Starter {
                    dr,
                    hosts,
                    bare_metal,
                };
                let text = pgimg::cmd::init::render(o, "pgimg.yml");
                let v = support::validate("pgimg.yml", &text)
                    .unwrap_or_else(|d| panic!("{o:?} is invalid: {d:#?}\n{text}"));
                // A single PostgreSQL host has a single etcd member, which pgimg warns about.
                let expected: Vec<&str> = if hosts == 1 { vec!["PG0112"] } else { vec![] };
                let mut codes: Vec<&str> = v.warnings.iter().map(|d| d.code.as_str()).collect();
                codes.dedup();
                assert_eq!(codes, expected, "{o:?}");
                let inputs = pgimg::BuildInputs {
                    roles: pgimg::load::RoleTree::embedded(),
                    secrets: Default::default(),
                    mapping: Default::default(),
                    overlays: Default::default(),
                };
                let tree = pgimg::build(&v, &inputs).unwrap_or_else(|e| panic!("{o:?}: {e}"));
                let sites = if dr { 2 } else { 1 };
                assert_eq!(tree.closures.len(), sites * (hosts as usize + 1), "{o:?}");
                let pxe = tree.files.keys().any(|p| p.starts_with("pxe/"));
                assert_eq!(pxe, bare_metal, "{o:?}: PXE entries only on bare metal");
            }
        }
    }
}

#[test]
fn init_writes_a_new_file_and_never_overwrites_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("spec.yml");
    let o = Command::new(support::pgimg())
        .arg("init")
        .arg(&path)
        .arg("--dr")
        .output()
        .expect("running pgimg");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let written = std::fs::read_to_string(&path).expect("the new spec");
    assert!(written.contains("standby_of: primary"), "{written}");
    std::fs::write(&path, "mine\n").expect("writing");
    let o = Command::new(support::pgimg())
        .arg("init")
        .arg(&path)
        .output()
        .expect("running pgimg");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).expect("reading"), "mine\n");
}

#[test]
fn show_prints_the_fleet_as_a_table() {
    snapshot(
        "tests/snapshots/show-reference-cluster.txt",
        &ok(&["show", "examples/reference-cluster.yml"]),
    );
    snapshot(
        "tests/snapshots/show-fleet.txt",
        &ok(&["show", "examples/fleet.yml"]),
    );
}

#[test]
fn resolve_names_the_layer_and_line_of_each_setting() {
    let out = ok(&["resolve", "examples/reference-cluster.yml", "dr-pg2"]);
    snapshot("tests/snapshots/resolve-dr-pg2.txt", &out);
    let row = |setting: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{setting} ")))
            .unwrap_or_else(|| panic!("no {setting} row:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // The site overrides the cluster's token; the defaults set the domain; nobody sets the ttl.
    assert_eq!(
        row("etcd/token"),
        "etcd/token dr-etcd-cluster-01 site dr examples/reference-cluster.yml:93"
    );
    let spec = support::read("examples/reference-cluster.yml");
    assert_eq!(
        spec.lines().nth(92).map(str::trim),
        Some("token: dr-etcd-cluster-01")
    );
    assert_eq!(
        row("network/domain"),
        "network/domain example.com defaults examples/reference-cluster.yml:16"
    );
    assert_eq!(row("patroni/ttl"), "patroni/ttl 30 built-in");
    // A field of a repository the site wrote, and one it left to the default.
    assert!(
        row("pgbackrest/repos/0/bucket").ends_with("site dr examples/reference-cluster.yml:99")
    );
    assert_eq!(
        row("pgbackrest/repos/0/retention_full"),
        "pgbackrest/repos/0/retention_full 4 built-in"
    );
}

#[test]
fn resolve_of_an_unknown_host_suggests_one() {
    let o = support::run_pgimg(&["resolve", "examples/reference-cluster.yml", "pg4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no host `pg4`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("did you mean `pg1`?"), "{}", stderr(&o));
}

#[test]
fn graph_draws_every_format() {
    for (format, ext) in [("svg", "svg"), ("mermaid", "mmd"), ("dot", "dot")] {
        let out = ok(&[
            "graph",
            "examples/reference-cluster.yml",
            "--format",
            format,
        ]);
        snapshot(
            &format!("tests/snapshots/graph-reference-cluster.{ext}"),
            &out,
        );
        for host in ["pg1", "dr-pg3", "dr-haproxy", "172.31.47.229"] {
            assert!(out.contains(host), "{format}: {host} missing");
        }
        assert!(
            out.contains("slot patroni_standby_leader"),
            "{format}: the DR link is missing"
        );
    }
    let svg = ok(&["graph", "examples/fleet.yml"]);
    snapshot("tests/snapshots/graph-fleet.svg", &svg);
}

#[test]
fn the_readme_picture_is_the_reference_example_graph() {
    snapshot(
        "docs/reference-cluster.svg",
        &ok(&["graph", "examples/reference-cluster.yml"]),
    );
    assert!(
        support::read("README.md").contains("](docs/reference-cluster.svg)"),
        "the README shows the picture"
    );
}

#[test]
fn the_svg_is_well_formed_and_its_boxes_do_not_overlap() {
    let svg = ok(&["graph", "examples/fleet.yml"]);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    // Host boxes: rx="4". None may overlap another.
    let boxes: Vec<(i64, i64, i64, i64)> = svg
        .lines()
        .filter(|l| l.starts_with("<rect") && l.contains("rx=\"4\""))
        .map(|l| {
            let attr = |name: &str| -> i64 {
                let start = l.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
                l[start..]
                    .split('"')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect(name)
            };
            (attr("x"), attr("y"), attr("width"), attr("height"))
        })
        .collect();
    assert_eq!(boxes.len(), 20, "one box per host of examples/fleet.yml");
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            assert!(apart, "{a:?} overlaps {b:?}");
        }
    }
}

#[test]
fn completions_and_the_manual_page_are_current() {
    use pgimg::cli::ManualFormat;
    for format in [
        ManualFormat::Bash,
        ManualFormat::Zsh,
        ManualFormat::Fish,
        ManualFormat::Man,
    ] {
        let rel = pgimg::cmd::manual::committed_path(format);
        let text = String::from_utf8(pgimg::cmd::manual::render(format)).expect("UTF-8");
        for command in ["init", "show", "resolve", "graph", "build", "validate"] {
            assert!(text.contains(command), "{rel} lacks {command}");
        }
        snapshot(rel, &text);
    }
}

#[test]
fn diagnostics_are_coloured_only_when_asked_or_on_a_terminal() {
    let spec = "tests/errors/ten-mistakes.yml";
    let plain = support::run_pgimg(&["validate", spec]);
    assert!(!stderr(&plain).contains('\x1b'), "no colour into a pipe");
    let coloured = support::run_pgimg(&["validate", "--color", "always", spec]);
    assert_eq!(coloured.status.code(), Some(1));
    snapshot(
        "tests/snapshots/ten-mistakes.coloured.stderr",
        &stderr(&coloured),
    );
    assert!(stderr(&coloured).contains("\x1b[1;31merror[PG0170]\x1b[0m"));
    // Without its escapes the coloured text is the plain text.
    let mut stripped = String::new();
    let mut in_escape = false;
    for c in stderr(&coloured).chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => stripped.push(c),
        }
    }
    assert_eq!(stripped, stderr(&plain));

    use pgimg::cli::{ColorChoice, Global};
    use pgimg::cmd::term::Term;
    let g = |color| Global {
        quiet: false,
        verbose: false,
        color,
    };
    let colour = |color, terminal, no_color: Option<&str>| {
        Term::new(&g(color), terminal, no_color.map(std::ffi::OsStr::new)).colour
    };
    assert!(colour(ColorChoice::Auto, true, None));
    assert!(!colour(ColorChoice::Auto, false, None));
    assert!(!colour(ColorChoice::Auto, true, Some("1")));
    assert!(
        colour(ColorChoice::Auto, true, Some("")),
        "an empty NO_COLOR does not count"
    );
    assert!(colour(ColorChoice::Always, false, Some("1")));
    assert!(!colour(ColorChoice::Never, true, None));
}

#[test]
fn validate_ends_with_a_one_line_summary() {
    let out = ok(&["validate", "examples/reference-cluster.yml"]);
    assert_eq!(
        out,
        "examples/reference-cluster.yml is valid: 1 cluster, 2 sites, 8 hosts\n"
    );
    assert_eq!(
        ok(&["-q", "validate", "examples/reference-cluster.yml"]),
        ""
    );
    let o = support::run_pgimg(&["validate", "tests/errors/warnings.yml"]);
    assert!(
        stdout(&o).ends_with("is valid: 1 cluster, 1 site, 2 hosts (3 warnings)\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_spec_on_stdin_reads_file_secrets_from_the_working_directory() {
    let spec = support::read("examples/minimal.yml").replace(
        "{ env: PGIMG_SUPERUSER_PASSWORD }",
        "{ file: superuser.secret }",
    );
    let o = run_with_stdin(&["validate", "-"], &spec, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "<stdin> is valid: 1 cluster, 1 site, 3 hosts\n");
    let bad = run_with_stdin(&["validate", "-"], "version: 2\n", &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--> <stdin>:1:10"),
        "{}",
        stderr(&bad)
    );

    let work = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        work.path().join("superuser.secret"),
        "from-the-working-dir\n",
    )
    .expect("secret");
    // Every other secret of the host comes from the environment: a host's
    // secret files are written only when all of them are there.
    let mut child = Command::new(support::pgimg())
        .args(["build", "-", "-o", "out", "--format", "json"])
        .env("PGIMG_REPLICATION_PASSWORD", "replication-secret")
        .env("PGIMG_REWIND_PASSWORD", "rewind-secret")
        .env("PGIMG_ETCD_PASSWORD", "etcd-secret")
        .env("PGIMG_RESTAPI_PASSWORD", "restapi-secret")
        .current_dir(work.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting pgimg");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.as_bytes())
        .expect("stdin");
    let o = child.wait_with_output().expect("running pgimg");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let missing = report["missing_secrets"].to_string();
    assert!(!missing.contains("superuser.secret"), "{missing}");
    let env = walkdir::WalkDir::new(work.path().join("out/secrets/app-db1"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name() == "patroni.env")
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .expect("the secret file");
    assert!(env.contains("PATRONI_SUPERUSER_PASSWORD=from-the-working-dir"));
}

#[test]
fn build_json_is_one_document_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("out");
    let out_s = out.to_str().expect("UTF-8 path");
    let o = support::run_pgimg(&[
        "build",
        "examples/reference-cluster.yml",
        "-o",
        out_s,
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "notes go into the document");
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(v["status"], "built");
    let hosts = v["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 8);
    assert_eq!(hosts[0]["name"], "pg1");
    assert_eq!(hosts[0]["site"], "primary");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    assert_eq!(
        hosts[0]["closure"],
        format!(
            "sha256:{}",
            manifest["hosts"]["pg1"]["closure"]
                .as_str()
                .expect("closure")
        )
    );
    assert_eq!(hosts[0]["artifacts"], manifest["hosts"]["pg1"]["artifacts"]);
    assert_eq!(
        hosts[0]["change"],
        serde_json::Value::Null,
        "nothing to compare with"
    );
    assert!(
        v["missing_secrets"]
            .as_array()
            .expect("missing secrets")
            .iter()
            .any(|m| m
                .as_str()
                .is_some_and(|m| m.starts_with("env:PGIMG_SUPERUSER_PASSWORD"))),
        "{}",
        v["missing_secrets"]
    );
    assert!(!v["notes"].as_array().expect("notes").is_empty());

    let bad = support::run_pgimg(&[
        "build",
        "tests/errors/ten-mistakes.yml",
        "-o",
        out_s,
        "--format",
        "json",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(stderr(&bad), "");
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("one JSON document");
    assert_eq!(v["status"], "invalid");
    assert_eq!(v["diagnostics"].as_array().map(Vec::len), Some(10));
}

#[test]
fn build_marks_the_hosts_that_changed_since_the_previous_output() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = dir.path().join("spec.yml");
    let text = support::read("examples/reference-cluster.yml");
    std::fs::write(&spec, &text).expect("spec");
    let build = || {
        let o = Command::new(support::pgimg())
            .args(["build", "spec.yml", "-o", "out"])
            .current_dir(dir.path())
            .output()
            .expect("running pgimg");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let first = build();
    assert!(
        first.starts_with("built 1 cluster, 8 hosts (8 rendered, 0 unchanged), "),
        "{first}"
    );
    assert!(
        first.contains("\n  host pg1         closure sha256:"),
        "{first}"
    );
    assert!(
        !first
            .lines()
            .any(|l| l.ends_with("changed") || l.ends_with("new")),
        "nothing to compare with:\n{first}"
    );
    let again = build();
    assert!(
        again.ends_with("0 of 8 hosts changed since the previous output\n"),
        "{again}"
    );
    let one_host = "{ name: dr-pg3, address: 172.32.39.118, roles: [pg, etcd] }";
    assert!(text.contains(one_host));
    std::fs::write(
        &spec,
        text.replace(
            one_host,
            "{ name: dr-pg3, address: 172.32.39.118, roles: [pg, etcd], settings: { postgresql: { parameters: { work_mem: 8MB } } } }",
        ),
    )
    .expect("spec");
    let third = build();
    let marked: Vec<&str> = third
        .lines()
        .filter(|l| l.ends_with("changed") || l.ends_with("new"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    // A setting of one host changes that host's closure only.
    assert_eq!(marked, ["dr-pg3"], "{third}");
    assert!(
        third.ends_with("1 of 8 hosts changed since the previous output\n"),
        "{third}"
    );
    let quiet = Command::new(support::pgimg())
        .args(["-q", "build", "spec.yml", "-o", "out"])
        .current_dir(dir.path())
        .output()
        .expect("running pgimg");
    assert_eq!(stdout(&quiet), "");
}

#[test]
fn version_names_the_commit_and_the_role_tree() {
    let out = ok(&["--version"]);
    let roles = pgimg::load::RoleTree::embedded().digest();
    assert_eq!(
        out,
        format!(
            "pgimg {} (commit {}, roles sha256:{roles})\n",
            env!("CARGO_PKG_VERSION"),
            pgimg::cmd::version::COMMIT
        )
    );
    assert_ne!(pgimg::cmd::version::COMMIT, "", "a commit or `unknown`");
    // The commit never reaches an artifact: the manifest records the release and the tree hash only.
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("out");
    ok(&[
        "-q",
        "build",
        "examples/minimal.yml",
        "-o",
        out.to_str().expect("UTF-8"),
    ]);
    if pgimg::cmd::version::COMMIT != "unknown" {
        for entry in walkdir::WalkDir::new(&out) {
            let entry = entry.expect("walking the output");
            if entry.file_type().is_file() {
                let bytes = std::fs::read(entry.path()).expect("reading");
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(pgimg::cmd::version::COMMIT),
                    "{} carries the commit",
                    entry.path().display()
                );
            }
        }
    }
}

/// Every setting the schema has, as `resolve` paths: objects are followed,
/// lists and maps are one path each (their rows are `path/<key>`).
fn schema_setting_paths() -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(&support::read("schema/pgimg.schema.json")).expect("the schema");
    let defs = &schema["$defs"];
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        let target = v["$ref"].as_str().or_else(|| {
            v["anyOf"]
                .as_array()
                .and_then(|a| a.iter().find_map(|x| x["$ref"].as_str()))
        });
        match target {
            Some(r) => defs[r.trim_start_matches("#/$defs/")].clone(),
            None => v.clone(),
        }
    };
    fn walk(
        def: &serde_json::Value,
        prefix: &str,
        resolve: &dyn Fn(&serde_json::Value) -> serde_json::Value,
        out: &mut Vec<String>,
    ) {
        for (k, v) in def["properties"].as_object().into_iter().flatten() {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}/{k}")
            };
            let target = resolve(v);
            let is_list = v["type"] == "array"
                || v["type"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "array"));
            if target["properties"].is_object() && !is_list {
                walk(&target, &path, resolve, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&defs["Settings"], "", &resolve, &mut out);
    out
}

#[test]
fn resolve_shows_every_setting_the_schema_has() {
    let v = support::validate(
        "examples/reference-cluster.yml",
        &support::read("examples/reference-cluster.yml"),
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let (_, _, host) = v
        .fleet
        .hosts()
        .find(|(_, _, h)| h.name == "dr-pg2")
        .expect("dr-pg2");
    let shown: Vec<String> = pgimg::cmd::show::settings(&host.config)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let paths = schema_setting_paths();
    assert!(paths.len() > 60, "the walk found the settings: {paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| {
            !shown
                .iter()
                .any(|s| s == *p || s.starts_with(&format!("{p}/")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "settings the schema has and `pgimg resolve` does not show (add them to cmd::show::settings): {missing:?}"
    );
}

#[test]
fn the_progress_bar_shows_only_for_many_hosts_on_a_terminal() {
    use pgimg::cmd::term::{Term, progress};
    let terminal = Term {
        stderr_terminal: true,
        ..Term::PLAIN
    };
    // A bar counts hosts; the hidden one counts nothing. (indicatif itself
    // also hides any bar whose stderr is not a terminal, as in this test.)
    assert_eq!(progress(&terminal, 500).length(), Some(500));
    assert_eq!(
        progress(&terminal, 12).length(),
        None,
        "a short build has no bar"
    );
    assert_eq!(
        progress(&Term::PLAIN, 500).length(),
        None,
        "no bar into a pipe"
    );
    let quiet = Term {
        quiet: true,
        ..terminal
    };
    assert_eq!(progress(&quiet, 500).length(), None, "-q has no bar");
}

#[test]
fn a_build_of_many_hosts_on_a_terminal_draws_its_bar_and_finishes() {
    // A fleet big enough for the bar, run under `script` (util-linux) so
    // that stderr is a terminal: the bar draws from the rendering threads.
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut spec = String::from(
        "version: 1\ndefaults:\n  pgbackrest:\n    repos: [{ type: s3, bucket: bench-backups, region: eu-central-1 }]\nclusters:\n",
    );
    for c in 0..20 {
        spec.push_str(&format!(
            "  - name: c{c}\n    sites:\n      - name: main\n        hosts:\n"
        ));
        for h in 0..3 {
            spec.push_str(&format!(
                "          - {{ name: c{c}-db{h}, address: 10.{c}.0.{}, roles: [pg, etcd] }}\n",
                10 + h
            ));
        }
    }
    std::fs::write(dir.path().join("many.yml"), spec).expect("spec");
    let log = dir.path().join("terminal.log");
    let command = format!(
        "{} build many.yml -o out",
        support::pgimg().to_str().expect("UTF-8 path")
    );
    let mut child = Command::new("script")
        .args(["-qec", &command])
        .arg(&log)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running script (util-linux)");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting") {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the build did not finish within 120 s on a terminal");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let shown = std::fs::read_to_string(&log).expect("the terminal log");
    assert!(shown.contains("/60 hosts"), "{shown}");
    assert!(shown.contains("built 20 clusters, 60 hosts"), "{shown}");
}
