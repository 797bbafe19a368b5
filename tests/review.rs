//! `pgimg diff`, `pgimg verify` and `pgimg build --check`.
//!
//! Goldens: `tests/review/base.yml` against each `tests/review/cases/<case>/spec.yml`,
//! rendered as text, Markdown and JSON into `expected.{txt,md,json}` beside it
//! (`PGIMG_BLESS=1` rewrites them). Verify: every artifact of a real build
//! altered by one byte, a stray file, locally and through a loopback HTTP server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgimg::review::classify::ActionKind;
use pgimg::review::diff::{Report, compare};
use pgimg::review::{format, spec_tree, verify};

use crate::support;

fn review_dir() -> PathBuf {
    support::root().join("tests/review")
}

fn case_report(case: &str) -> Report {
    let base = spec_tree(&review_dir().join("base.yml"), "base.yml", None).expect("base.yml");
    let spec = review_dir().join("cases").join(case).join("spec.yml");
    let new = spec_tree(&spec, &format!("cases/{case}/spec.yml"), None).expect("case spec");
    compare(&base, &new)
}

fn check_golden(case: &str, report: &Report) {
    let dir = review_dir().join("cases").join(case);
    for (ext, text) in [
        ("txt", format::text(report, true)),
        ("md", format::markdown(report)),
        ("json", format::json(report)),
    ] {
        let path = dir.join(format!("expected.{ext}"));
        if support::bless() {
            std::fs::write(&path, &text).expect("writing golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing; run `PGIMG_BLESS=1 cargo test --test main review` and review it",
                path.display()
            )
        });
        assert!(
            want == text,
            "{} differs from the report (bless with PGIMG_BLESS=1 if intended):\n{}",
            path.display(),
            crate::golden::diff(want.as_bytes(), text.as_bytes())
        );
    }
}

fn site<'a>(r: &'a Report, cluster: &str, site: &str) -> &'a pgimg::review::diff::SiteReport {
    r.clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .and_then(|c| c.sites.iter().find(|s| s.site == site))
        .unwrap_or_else(|| panic!("no site {cluster}/{site} in the report"))
}

fn host_kinds(r: &Report, host: &str) -> Vec<ActionKind> {
    r.hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap_or_else(|| panic!("no host {host} in the report"))
        .actions
        .iter()
        .map(|a| a.kind)
        .collect()
}

#[test]
fn review_one_host() {
    let r = case_report("one-host");
    let hosts: Vec<&str> = r.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, ["orders-3"]);
    let h = &r.hosts[0];
    let reinstall = h
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::Reinstall)
        .expect("reinstall");
    assert!(reinstall.summary.contains("disk layout"), "{reinstall:?}");
    assert!(h.actions.iter().any(|a| a.kind == ActionKind::Reload
        && a.command.as_deref() == Some("systemctl reload patroni.service")
        && a.why.contains("tags.nofailover")));
    assert!(
        r.clusters
            .iter()
            .flat_map(|c| &c.sites)
            .all(|s| s.dcs.is_none()),
        "tags are local, not DCS"
    );
    check_golden("one-host", &r);
}

#[test]
fn review_one_cluster() {
    let r = case_report("one-cluster");
    assert!(!r.hosts.is_empty());
    assert!(
        r.hosts.iter().all(|h| h.cluster == "billing"),
        "only billing's hosts change"
    );
    let kinds = host_kinds(&r, "billing-1");
    assert!(
        kinds.contains(&ActionKind::Run),
        "sysctl --system: {kinds:?}"
    );
    assert!(
        !kinds.contains(&ActionKind::Reinstall) && !kinds.contains(&ActionKind::Restart),
        "{kinds:?}"
    );
    check_golden("one-cluster", &r);
}

#[test]
fn review_dcs_setting_shows_the_patch() {
    let r = case_report("dcs-setting");
    let dcs = site(&r, "orders", "east")
        .dcs
        .as_ref()
        .expect("a DCS change");
    assert_eq!(dcs.scope, "orders");
    assert_eq!(dcs.patch, "ttl: 40\nmaximum_lag_on_failover: 2097152\n");
    assert!(dcs.command.starts_with("/opt/patroni/bin/patronictl -c /etc/patroni/patroni.yml edit-config orders --apply - --force <<'EOF'\nttl: 40\n"), "{}", dcs.command);
    // The hosts' patroni.yml changed only in bootstrap.dcs: nothing to reload.
    let kinds = host_kinds(&r, "orders-1");
    assert!(!kinds.contains(&ActionKind::Reload), "{kinds:?}");
    check_golden("dcs-setting", &r);
}

#[test]
fn review_restart_parameter() {
    let r = case_report("restart-parameter");
    let s = site(&r, "orders", "east");
    let dcs = s.dcs.as_ref().expect("parameters live in bootstrap.dcs");
    let by: BTreeMap<&str, (&str, Option<&str>)> = dcs
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), (p.applies_on, p.context.as_deref())))
        .collect();
    assert_eq!(by["shared_buffers"], ("restart", Some("postmaster")));
    assert_eq!(by["work_mem"], ("reload", Some("user")));
    let restart = s
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::PostgresRestart)
        .expect("a restart");
    assert_eq!(
        restart.command.as_deref(),
        Some(
            "/opt/patroni/bin/patronictl -c /etc/patroni/patroni.yml restart orders --pending --force"
        )
    );
    assert!(restart.summary.contains("shared_buffers") && !restart.summary.contains("work_mem"));
    check_golden("restart-parameter", &r);
}

#[test]
fn review_dr_site_added() {
    let r = case_report("dr-site-added");
    let source = site(&r, "orders", "east")
        .dcs
        .as_ref()
        .expect("the source's DCS gains the slot");
    assert!(source.patch.contains("standby_west"), "{}", source.patch);
    let west = site(&r, "orders", "west");
    let topo = west
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::Topology)
        .expect("topology");
    assert!(
        topo.summary.contains("standby_west") && topo.summary.contains("orders"),
        "{topo:?}"
    );
    assert!(
        topo.command
            .as_deref()
            .unwrap_or("")
            .contains("pg_replication_slots")
    );
    let added: Vec<&str> = r
        .hosts
        .iter()
        .filter(|h| h.status == pgimg::review::diff::Status::Added)
        .map(|h| h.host.as_str())
        .collect();
    assert_eq!(added, ["orders-w1", "orders-w2", "orders-w3"]);
    // The source's members admit the DR hosts in pg_hba: a reload.
    assert!(host_kinds(&r, "orders-1").contains(&ActionKind::Reload));
    check_golden("dr-site-added", &r);
}

#[test]
fn review_cases_all_have_a_test() {
    let mut cases: Vec<String> = std::fs::read_dir(review_dir().join("cases"))
        .expect("tests/review/cases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert_eq!(
        cases,
        [
            "dcs-setting",
            "dr-site-added",
            "one-cluster",
            "one-host",
            "restart-parameter"
        ]
    );
}

#[test]
fn review_diff_never_shows_a_secret() {
    // A build with secret values supplied, against one without: secrets/
    // is not part of the compared tree, so the report is empty.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let status = Command::new(support::pgimg())
        .args(["build", "tests/review/base.yml", "-o"])
        .arg(&out)
        .current_dir(support::root())
        .env("PGIMG_SUPERUSER_PASSWORD", "sekrit-superuser-value")
        .env("PGIMG_REPLICATION_PASSWORD", "sekrit-replication-value")
        .env("PGIMG_REWIND_PASSWORD", "sekrit-rewind-value")
        .output()
        .expect("pgimg build");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(out.join("secrets").is_dir(), "the build wrote its secrets");
    let o = support::run_pgimg(&[
        "diff",
        "tests/review/base.yml",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(!text.contains("sekrit"), "{text}");
}

#[test]
fn review_diff_exit_codes() {
    let same = support::run_pgimg(&["diff", "tests/review/base.yml", "tests/review/base.yml"]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).contains("no differences"));
    let differs = support::run_pgimg(&[
        "diff",
        "tests/review/base.yml",
        "tests/review/cases/dcs-setting/spec.yml",
        "--format",
        "markdown",
    ]);
    assert_eq!(differs.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&differs.stdout).contains("edit-config orders --apply"));
    let missing =
        support::run_pgimg(&["diff", "tests/review/base.yml", "tests/review/no-such.yml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such.yml"));
    let invalid = support::run_pgimg(&[
        "diff",
        "tests/review/base.yml",
        "tests/errors/schema-mistakes.yml",
    ]);
    assert_eq!(
        invalid.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&invalid.stderr)
    );
}

/// Builds `spec` with the binary into `dir`.
fn build(spec: &str, out: &Path) {
    let o = Command::new(support::pgimg())
        .args(["build", spec, "-o"])
        .arg(out)
        .current_dir(support::root())
        .output()
        .expect("pgimg build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn flip(path: &Path) -> Vec<u8> {
    let before = std::fs::read(path).expect("reading artifact");
    let mut after = before.clone();
    let i = after.len() / 2;
    after[i] ^= 0x01;
    std::fs::write(path, &after).expect("writing artifact");
    before
}

fn artifacts(out: &Path) -> Vec<String> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let mut paths: Vec<String> = m["artifacts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    paths.push("SHA256SUMS".into());
    paths
}

#[test]
fn verify_catches_one_byte_in_any_artifact_and_a_stray_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    build("examples/reference-cluster.yml", &out);
    let clean = verify::verify_dir(&out).expect("verify");
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    let all = artifacts(&out);
    assert!(all.len() > 50, "{}", all.len());
    for rel in &all {
        let before = flip(&out.join(rel));
        let o = verify::verify_dir(&out).expect("verify");
        assert!(
            o.findings
                .iter()
                .any(|f| f.path == *rel && f.kind == "changed"),
            "a flipped byte in {rel} went unnoticed: {:?}",
            o.findings
        );
        std::fs::write(out.join(rel), before).unwrap();
    }
    // manifest.json itself: a digit of a sum, so it still parses.
    let manifest = out.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let at = text.find("\"sha256\": \"").unwrap() + 11;
    let mut bad = text.clone().into_bytes();
    bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&manifest, &bad).unwrap();
    let o = verify::verify_dir(&out).expect("verify");
    assert!(
        o.findings.iter().any(|f| f.path == "SHA256SUMS"),
        "{:?}",
        o.findings
    );
    std::fs::write(&manifest, text).unwrap();
    // A stray file and a removed one, through the binary.
    std::fs::write(out.join("hosts/pg1/stray.conf"), "x\n").unwrap();
    let o = support::run_pgimg(&["verify", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("added    hosts/pg1/stray.conf"), "{stdout}");
    std::fs::remove_file(out.join("hosts/pg1/stray.conf")).unwrap();
    std::fs::remove_file(out.join("hosts/pg2/rpms.txt")).unwrap();
    let o = support::run_pgimg(&["verify", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("removed  hosts/pg2/rpms.txt"), "{stdout}");
    let o = support::run_pgimg(&["verify", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// A static file server on 127.0.0.1 for one test: directory index pages
/// like Python's `http.server`, one connection at a time, stopped on drop.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Bounded: a test that forgets to stop the server still ends it.
            let deadline = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(&root, stream),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/pgimg", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `%XX` escapes decoded, as a web server maps a request path to a file.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(root: &Path, stream: std::net::TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let rel = target
        .strip_prefix("/pgimg/")
        .or_else(|| target.strip_prefix("/pgimg"));
    let (code, body) = match rel {
        Some(rel) if !rel.contains("..") => {
            let path = root.join(percent_decoded(rel));
            if path.is_dir() {
                let mut names: Vec<String> = std::fs::read_dir(&path)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        let n = e.file_name().to_string_lossy().into_owned();
                        if e.path().is_dir() {
                            format!("{n}/")
                        } else {
                            n
                        }
                    })
                    .collect();
                names.sort();
                let items: String = names
                    .iter()
                    .map(|n| format!("<li><a href=\"{n}\">{n}</a></li>\n"))
                    .collect();
                (
                    200,
                    format!("<html><body><ul>\n{items}</ul></body></html>\n").into_bytes(),
                )
            } else {
                match std::fs::read(&path) {
                    Ok(b) => (200, b),
                    Err(_) => (404, b"not found\n".to_vec()),
                }
            }
        }
        _ => (404, b"not found\n".to_vec()),
    };
    let mut s = &stream;
    let _ = write!(
        s,
        "HTTP/1.0 {code} X\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(&body);
}

#[test]
fn verify_over_http_catches_one_byte_and_a_stray_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local");
    let served = dir.path().join("served");
    build("examples/reference-cluster.yml", &local);
    build("examples/reference-cluster.yml", &served);
    let server = Server::start(served.clone());
    let url = server.url();
    let clean = verify::verify_url(&url, Some(&local)).expect("verify --url");
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    assert!(
        clean.notes.is_empty(),
        "every directory has an index: {:?}",
        clean.notes
    );
    // One artifact of each kind, served with one byte changed.
    for rel in [
        "hosts/pg1/kickstart.ks",
        "hosts/pg1/overlay.tar.gz",
        "hosts/dr-pg1/user-data",
        "hosts/pg2/rootfs/etc/patroni/patroni.yml",
        "pxe/grub.cfg-01-52-54-00-1f-47-e5",
        "clusters/pg_cluster/check",
        "SHA256SUMS",
    ] {
        let before = flip(&served.join(rel));
        let o = verify::verify_url(&url, Some(&local)).expect("verify --url");
        assert!(
            o.findings
                .iter()
                .any(|f| f.path == rel && f.kind == "changed"),
            "served {rel} with a flipped byte went unnoticed: {:?}",
            o.findings
        );
        std::fs::write(served.join(rel), before).unwrap();
    }
    // Without a local copy, the served manifest is the reference.
    let before = flip(&served.join("hosts/haproxy/rpms.txt"));
    let o = verify::verify_url(&url, None).expect("verify --url");
    assert!(
        o.findings
            .iter()
            .any(|f| f.path == "hosts/haproxy/rpms.txt"),
        "{:?}",
        o.findings
    );
    std::fs::write(served.join("hosts/haproxy/rpms.txt"), before).unwrap();
    // A stray file, through the binary.
    std::fs::write(served.join("hosts/pg3/stray.ks"), "x\n").unwrap();
    let o = support::run_pgimg(&["verify", "--url", &url, local.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("added    hosts/pg3/stray.ks"), "{stdout}");
    std::fs::remove_file(served.join("hosts/pg3/stray.ks")).unwrap();
    let o = support::run_pgimg(&["verify", "--url", &url, local.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    drop(server);
}

#[test]
fn build_check_compares_without_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    build("tests/review/base.yml", &out);
    let out_s = out.to_str().unwrap();
    let o = support::run_pgimg(&["build", "--check", "tests/review/base.yml", "-o", out_s]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = support::run_pgimg(&[
        "build",
        "--check",
        "tests/review/cases/dcs-setting/spec.yml",
        "-o",
        out_s,
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("changed hosts/orders-1/rootfs/etc/patroni/patroni.yml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("patronictl"),
        "the summary names the action: {stdout}"
    );
    assert!(!stdout.contains("@@"), "a summary, not the diffs: {stdout}");
    // Nothing was written: the output is still the base's.
    let o = support::run_pgimg(&["build", "--check", "tests/review/base.yml", "-o", out_s]);
    assert_eq!(o.status.code(), Some(0));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=pgimg test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A temporary repository: `spec.yml` (the review base) on main, and a
/// feature branch checked out that changes the DCS.
fn spec_repo(dir: &Path) -> String {
    git(dir, &["init", "-q"]);
    std::fs::copy(review_dir().join("base.yml"), dir.join("spec.yml")).unwrap();
    git(dir, &["add", "spec.yml"]);
    git(dir, &["commit", "-qm", "base"]);
    let base = git(dir, &["rev-parse", "HEAD"]);
    git(dir, &["checkout", "-qb", "feature"]);
    std::fs::copy(
        review_dir().join("cases/dcs-setting/spec.yml"),
        dir.join("spec.yml"),
    )
    .unwrap();
    git(dir, &["commit", "-qam", "ttl 40"]);
    base
}

#[test]
fn diff_base_defaults_to_the_merge_base_with_main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = spec_repo(dir.path());
    let run = |args: &[&str]| {
        Command::new(support::pgimg())
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("pgimg")
    };
    let o = run(&["diff", "spec.yml"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.starts_with(&format!("pgimg diff {base}:spec.yml -> spec.yml")),
        "{stdout}"
    );
    assert!(stdout.contains("ttl: 40"), "{stdout}");
    let o = run(&["diff", "--base", "HEAD", "spec.yml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = run(&[
        "diff",
        "main:spec.yml",
        "feature:spec.yml",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&["diff", "--base", "no-such-rev", "spec.yml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-rev"));
}

#[test]
fn ci_recipe_runs_on_a_git_repository() {
    let workflow: serde_yaml::Value =
        serde_yaml::from_str(&support::read("docs/ci/pgimg-review.yml")).expect("workflow YAML");
    let steps = workflow["jobs"]["review"]["steps"]
        .as_sequence()
        .expect("steps")
        .clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let temp = dir.path().join("runner-temp");
    let bin = dir.path().join("bin");
    for d in [&repo, &temp, &bin] {
        std::fs::create_dir(d).unwrap();
    }
    std::os::unix::fs::symlink(support::pgimg(), bin.join("pgimg")).unwrap();
    let base = spec_repo(&repo);
    let output = dir.path().join("github-output");
    let summary = dir.path().join("step-summary");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for step in &steps {
        let id = step["id"].as_str().unwrap_or("");
        if !["build-base", "build-head", "diff", "verify"].contains(&id) {
            continue;
        }
        let script = step["run"].as_str().expect("a run step");
        // GitHub runs `run:` with `bash --noprofile --norc -eo pipefail`.
        let o = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(&repo)
            .env("PATH", &path)
            .env("SPEC", "spec.yml")
            .env("BASE_SHA", &base)
            .env("RUNNER_TEMP", &temp)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .expect("bash");
        assert!(
            o.status.success(),
            "step {id} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ran.push(id.to_string());
    }
    assert_eq!(ran, ["build-base", "build-head", "diff", "verify"]);
    let review = std::fs::read_to_string(temp.join("review.md")).expect("review.md");
    assert!(review.starts_with("### pgimg diff"), "{review}");
    assert!(
        review.contains("| orders-1 | orders / east | changed |"),
        "{review}"
    );
    assert!(review.contains("edit-config orders --apply"), "{review}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "changed=true\n");
    let comment = steps
        .iter()
        .find(|s| s["name"].as_str() == Some("Comment"))
        .expect("a comment step");
    assert_eq!(
        comment["with"]["path"].as_str(),
        Some("${{ runner.temp }}/review.md")
    );
}

#[test]
fn readme_shows_a_real_review_comment() {
    let readme = support::read("README.md");
    let marker = "<!-- review-sample: tests/review/cases/restart-parameter/expected.md, up to \"#### Hosts\" -->\n````markdown\n";
    let start = readme.find(marker).expect("the README's review sample") + marker.len();
    let sample = &readme[start..start + readme[start..].find("````\n").expect("its end")];
    let golden =
        std::fs::read_to_string(review_dir().join("cases/restart-parameter/expected.md")).unwrap();
    let prefix = golden[..golden.find("#### Hosts").expect("hosts")].trim_end_matches('\n');
    assert_eq!(
        sample,
        format!("{prefix}\n"),
        "README's sample is not the current output; copy it from the golden"
    );
}

#[test]
fn review_etcd_member_added_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grown = dir.path().join("grown.yml");
    let base_text = support::read("tests/review/base.yml");
    let line = "          - { name: orders-lb, address: 10.20.0.10, roles: [haproxy] }\n";
    assert!(base_text.contains(line));
    std::fs::write(
        &grown,
        base_text.replace(
            line,
            &format!(
                // Two, so that etcd keeps an odd number of members.
                "          - {{ name: orders-4, address: 10.20.0.14, roles: [pg, etcd] }}\n          - {{ name: orders-5, address: 10.20.0.15, roles: [pg, etcd] }}\n{line}"
            ),
        ),
    )
    .unwrap();
    let base = spec_tree(&review_dir().join("base.yml"), "base.yml", None).unwrap();
    let grown = spec_tree(&grown, "grown.yml", None).unwrap();
    let added = compare(&base, &grown);
    let east = site(&added, "orders", "east");
    let join = east
        .actions
        .iter()
        .find(|a| a.summary == "etcd member orders-4 added")
        .unwrap_or_else(|| panic!("{:#?}", east.actions));
    let cmd = join.command.as_deref().unwrap();
    assert!(
        cmd.starts_with("etcdctl --endpoints=https://10.20.0.11:2379 member add orders-4 --peer-urls=https://10.20.0.14:2380\n"),
        "{cmd}"
    );
    assert!(cmd.contains("ETCD_INITIAL_CLUSTER_STATE=existing"), "{cmd}");
    assert!(
        east.actions
            .iter()
            .any(|a| a.summary == "Patroni member orders-4 added")
    );
    // The others' etcd.conf changes only in ETCD_INITIAL_CLUSTER: no restart.
    let o1 = added.hosts.iter().find(|h| h.host == "orders-1").unwrap();
    assert!(
        o1.actions
            .iter()
            .any(|a| a.summary == "etcd.conf: bootstrap keys only"),
        "{:#?}",
        o1.actions
    );
    assert!(
        !o1.actions.iter().any(|a| a.kind == ActionKind::Restart),
        "{:#?}",
        o1.actions
    );
    let removed = compare(&grown, &base);
    let east = site(&removed, "orders", "east");
    let leave = east
        .actions
        .iter()
        .find(|a| a.summary == "etcd member orders-4 removed")
        .unwrap_or_else(|| panic!("{:#?}", east.actions));
    assert!(
        leave
            .command
            .as_deref()
            .unwrap()
            .contains("member remove <ID>")
    );
    let stop = east
        .actions
        .iter()
        .find(|a| a.summary == "Patroni member orders-4 removed")
        .unwrap();
    assert!(
        stop.command
            .as_deref()
            .unwrap()
            .starts_with("/opt/patroni/bin/patronictl -c /etc/patroni/patroni.yml list"),
        "{stop:?}"
    );
}
