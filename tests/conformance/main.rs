//! Conformance: every artifact of every example spec is accepted by the real
//! program that consumes it (ksvalidator, cloud-init, HAProxy, Patroni,
//! systemd, pgBackRest, etcd, PyYAML). Needs the programs that
//! scripts/install-test-deps installs; a missing one fails, never skips.
//!
//! Patroni and etcd connect and listen: they only ever see loopback-mapped
//! copies, and each check refuses to start on a file that still names
//! another address. Every wait is bounded, and every process started here
//! is stopped by a guard, also when a check fails.
//!
//! The negative controls feed a deliberately broken artifact to the same
//! check function the suite uses, and require it to fail.

mod checks;
mod embedded;
mod schema_verdicts;
mod secrets_delivery;
mod suite;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use suite::Consumer;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pgimg-conformance-")
        .tempdir()
        .expect("temporary directory")
}

fn broken(name: &str) -> PathBuf {
    suite::root().join("tests/conformance/broken").join(name)
}

fn reference() -> PathBuf {
    suite::root().join("examples/reference-cluster.yml")
}

/// The reference example built for a negative control, on loopback
/// addresses of its own so that it never collides with the suite's.
fn control_build(tmp: &Path) -> suite::Built {
    tools::versions();
    suite::build_example(&reference(), 30, tmp).unwrap_or_else(|e| panic!("{e}"))
}

fn host_file(dir: &Path, host: &str, rel: &str) -> PathBuf {
    dir.join("hosts").join(host).join("rootfs").join(rel)
}

/// Writes a copy of `src` with `from` replaced by `to` (which must occur).
fn mutate(src: &Path, dst: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(src).expect("rendered file");
    assert!(
        text.contains(from),
        "{} no longer contains {from:?}",
        src.display()
    );
    std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
    std::fs::write(dst, text.replacen(from, to, 1)).expect("write");
    dst.to_path_buf()
}

fn must_fail(what: &str, r: Result<(), String>, needle: &str) {
    match r {
        Ok(()) => panic!("negative control {what}: the check accepted a broken artifact"),
        Err(e) => {
            assert!(
                e.contains(needle),
                "negative control {what}: failed, but without {needle:?} in:\n{e}"
            );
            eprintln!("negative control {what}: rejected as expected:\n{e}\n");
        }
    }
}

#[test]
fn consumers_are_installed() {
    if let Err(e) = tools::require_all() {
        panic!("consumers missing:\n{e}");
    }
}

#[test]
fn every_artifact_of_every_example_is_accepted_by_its_consumer() {
    tools::versions();
    let started = std::time::Instant::now();
    let tmp = tempdir();
    let examples = suite::examples();
    assert!(!examples.is_empty(), "no examples/*.yml");
    let built: Vec<Result<suite::Built, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = examples
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let dir = tmp.path().join(format!("example-{i}"));
                s.spawn(move || suite::build_example(spec, i, &dir))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("build panicked".into())))
            .collect()
    });
    let mut failures = Vec::new();
    let mut jobs = Vec::new();
    for (i, b) in built.iter().enumerate() {
        match b {
            Ok(b) => {
                let work = tmp.path().join(format!("checks-{i}"));
                jobs.extend(suite::jobs(b, suite::ALL, &work));
            }
            Err(e) => failures.push(format!("{}: {e}", examples[i].display())),
        }
    }
    let n = jobs.len();
    let mut per_consumer = std::collections::BTreeMap::<String, usize>::new();
    for j in &jobs {
        let consumer = j.label.rsplit(": ").next().unwrap_or_default();
        *per_consumer.entry(consumer.to_string()).or_default() += 1;
    }
    failures.extend(suite::run_jobs(jobs, suite::workers()));
    // Straight to stderr: the log shows what was covered even when the harness captures a pass.
    let summary = format!(
        "conformance: {} examples ({}), {n} checks ({}), {} failed, {:.1} s\n",
        examples.len(),
        examples
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", "),
        per_consumer
            .iter()
            .map(|(c, k)| format!("{c}: {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.as_bytes());
    if !failures.is_empty() {
        panic!(
            "{} of {n} conformance checks failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

#[test]
fn done_when_a_broken_template_fails_the_haproxy_check_naming_host_file_and_message() {
    tools::versions();
    let tmp = tempdir();
    let roles = tmp.path().join("roles");
    let out = tmp.path().join("out");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(suite::root().join("roles"))
        .arg(&roles)
        .status()
        .expect("cp");
    assert!(copy.success());
    let tpl = roles.join("haproxy/haproxy.cfg.hbs");
    mutate(&tpl, &tpl, "balance leastconn", "balanse leastconn");
    let st = Command::new(env!("CARGO_BIN_EXE_pgimg"))
        .arg("build")
        .arg(reference())
        .arg("--roles")
        .arg(&roles)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("pgimg build");
    assert!(
        st.status.success(),
        "pgimg build --roles failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let hosts: Vec<String> = std::fs::read_dir(out.join("hosts"))
        .expect("hosts/")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let b = suite::Built {
        example: "reference-cluster.yml".into(),
        real: out,
        lo_patroni: None,
        lo_etcd: None,
        hosts,
        patroni_meant: Default::default(),
        pgdg_bases: Vec::new(),
        repo_overrides: Vec::new(),
    };
    let failures = suite::run_jobs(
        suite::jobs(&b, &[Consumer::Haproxy], &tmp.path().join("checks")),
        2,
    );
    let text = failures.join("\n\n");
    for needle in [
        "host haproxy: hosts/haproxy/rootfs/etc/haproxy/haproxy.cfg",
        "host dr-haproxy: hosts/dr-haproxy/rootfs/etc/haproxy/haproxy.cfg",
        "unknown keyword 'balanse'",
    ] {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
    assert_eq!(failures.len(), 2, "{text}");
    eprintln!("broken template: the suite reports\n{text}\n");
}

#[test]
fn negative_haproxy_misspelled_keyword() {
    let tmp = tempdir();
    let b = control_build(tmp.path());
    let cfg = host_file(&b.real, "haproxy", "etc/haproxy/haproxy.cfg");
    let bad = mutate(
        &cfg,
        &tmp.path().join("bad/haproxy.cfg"),
        "option httpchk",
        "option htpchk",
    );
    must_fail(
        "haproxy (misspelled keyword)",
        checks::haproxy(&bad),
        "htpchk",
    );
    let dns = mutate(
        &cfg,
        &tmp.path().join("dns/haproxy.cfg"),
        "172.31.47.229:5432",
        "pg1.example.com:5432",
    );
    must_fail(
        "haproxy (host name in a server line)",
        checks::haproxy(&dns),
        "DNS",
    );
}

#[test]
fn negative_patroni_ttl_below_minimum_and_non_loopback_refused() {
    let tmp = tempdir();
    let b = control_build(tmp.path());
    let lo = b.lo_patroni.as_ref().expect("loopback build");
    let yml = host_file(lo, "pg1", "etc/patroni/patroni.yml");
    let bad = mutate(
        &yml,
        &tmp.path().join("bad/patroni.yml"),
        "ttl: 30",
        "ttl: 5",
    );
    let work = tmp.path().join("work-ttl");
    std::fs::create_dir_all(&work).unwrap();
    must_fail("patroni (ttl 5)", checks::patroni(&bad, &work), "ttl");
    let real = host_file(&b.real, "pg1", "etc/patroni/patroni.yml");
    let work = tmp.path().join("work-real");
    std::fs::create_dir_all(&work).unwrap();
    must_fail(
        "patroni (real addresses)",
        checks::patroni(&real, &work),
        "refusing to start",
    );
}

#[test]
fn negative_systemd_unknown_key() {
    let tmp = tempdir();
    let b = control_build(tmp.path());
    let rootfs = tmp.path().join("rootfs");
    let unit = "etc/systemd/system/patroni.service";
    mutate(
        &host_file(&b.real, "pg1", unit),
        &rootfs.join(unit),
        "Restart=on-failure",
        "Restrat=on-failure",
    );
    let work = tmp.path().join("work");
    let r = checks::systemd_units(&rootfs, &[unit.to_string()], &work);
    must_fail(
        "systemd (unknown key)",
        r[0].1.clone(),
        "Unknown key 'Restrat'",
    );
}

#[test]
fn negative_pgbackrest_misspelled_option() {
    let tmp = tempdir();
    let b = control_build(tmp.path());
    let conf = host_file(&b.real, "pg1", "etc/pgbackrest/pgbackrest.conf");
    let bad = mutate(
        &conf,
        &tmp.path().join("bad/pgbackrest.conf"),
        "start-fast=",
        "strat-fast=",
    );
    must_fail(
        "pgbackrest (misspelled option)",
        checks::pgbackrest(&bad),
        "strat-fast",
    );
}

#[test]
fn negative_etcd_unknown_variable() {
    let tmp = tempdir();
    let b = control_build(tmp.path());
    let lo = b.lo_etcd.as_ref().expect("loopback build");
    let conf = host_file(lo, "pg1", "etc/etcd/etcd.conf");
    let bad = mutate(
        &conf,
        &tmp.path().join("bad/etcd.conf"),
        "ETCD_INITIAL_CLUSTER_TOKEN=",
        "ETCD_INITIAL_CLUSTER_TOKN=",
    );
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    must_fail(
        "etcd (unknown variable)",
        checks::etcd(&bad, &work),
        "ETCD_INITIAL_CLUSTER_TOKN",
    );
}

#[test]
fn negative_kickstart_invalid_command_and_broken_post() {
    let tmp = tempdir();
    tools::versions();
    must_fail(
        "kickstart (invalid command)",
        checks::kickstart(&broken("invalid-command.ks"), tmp.path()),
        "Unknown command: selinuxmode",
    );
    must_fail(
        "kickstart (%post syntax)",
        checks::kickstart(&broken("post-syntax.ks"), tmp.path()),
        "bash -n",
    );
}

#[test]
fn negative_cloud_init_permissions_as_integer() {
    let tmp = tempdir();
    tools::versions();
    let r = checks::user_data(&broken("permissions-integer.user-data"), tmp.path()).map(|_| ());
    must_fail("cloud-init (permissions as an integer)", r, "permissions");
    let plain = tmp.path().join("not-cloud-config");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let r = checks::user_data(&plain, tmp.path()).map(|_| ());
    must_fail("cloud-init (no #cloud-config)", r, "#cloud-config");
}

#[test]
fn negative_pyyaml_unquoted_on_becomes_a_boolean() {
    tools::versions();
    let file = broken("yaml11-boolean.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let meant = checks::yaml12(&text).expect("pgimg reads it");
    let py = checks::pyyaml_load(std::slice::from_ref(&file)).expect("PyYAML runs");
    let py = py.into_iter().next().unwrap().expect("PyYAML loads it");
    let d = checks::yaml_differences(&meant, &py);
    let r = if d.is_empty() {
        Ok(())
    } else {
        Err(d.join("\n"))
    };
    must_fail(
        "PyYAML (unquoted on)",
        r,
        "archive_mode: pgimg meant \"on\" (string), PyYAML read true (boolean)",
    );
}

#[test]
fn the_loopback_guard_sees_every_address_form() {
    let bad = checks::non_loopback_addresses(
        "a: '10.1.2.3:8008'\nb: http://172.31.0.1:2379\nc: '[2001:db8::5]:5432'\nd: 'host all all 0.0.0.0/0 x'\ne: ::/0\nf: 127.100.0.2:2379\ng: fd00::1\n",
    );
    assert_eq!(bad, ["10.1.2.3", "172.31.0.1", "2001:db8::5", "fd00::1"]);
    for ok in ["127.100.0.2:2379", "http://127.100.0.2:2380", "[::1]:8008"] {
        assert!(checks::require_loopback_literal("x", ok).is_ok(), "{ok}");
    }
    for bad in [
        "pg1.example.com:2379",
        "http://localhost:2379",
        "10.0.0.1:8008",
        "http://[fd00::1]:2379",
    ] {
        assert!(checks::require_loopback_literal("x", bad).is_err(), "{bad}");
    }
}

#[test]
fn the_cloud_config_is_found_inside_gzip_and_mime_user_data() {
    use std::io::Write;
    let cfg = "#cloud-config\nruncmd:\n- ['true']\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(cfg.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(checks::cloud_config_of(&gz).unwrap(), cfg);
    let mime = format!(
        "Content-Type: multipart/mixed; boundary=\"XYZ\"\nMIME-Version: 1.0\n\n--XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--XYZ\nContent-Type: text/cloud-config; charset=\"us-ascii\"\nContent-Transfer-Encoding: base64\n\n{}\n--XYZ--\n",
        "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6Ci0gWyd0cnVlJ10K"
    );
    assert_eq!(checks::cloud_config_of(mime.as_bytes()).unwrap(), cfg);
}

#[test]
fn negative_repositories_dead_extras_url_and_pip_version_as_rpm_pin() {
    let tmp = tempdir();
    let b = control_build(tmp.path());
    let facts = checks::RepoFacts::load(&suite::root(), &b.pgdg_bases, &b.repo_overrides)
        .unwrap_or_else(|e| panic!("{e}"));
    let hdir = b.real.join("hosts/pg1");
    let ks = std::fs::read_to_string(hdir.join("kickstart.ks")).expect("kickstart");
    let cfg = checks::cloud_config_of(&std::fs::read(hdir.join("user-data")).expect("user-data"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rpms = std::fs::read_to_string(hdir.join("rpms.txt")).expect("rpms.txt");
    // The control: the real artifacts pass.
    checks::repositories(&facts, &ks, &cfg, &rpms).unwrap_or_else(|e| panic!("{e}"));
    let new = "/pub/repos/yum/extras/redhat/";
    assert!(
        ks.contains(new),
        "the kickstart no longer names the extras repository"
    );
    let dead = ks.replace(new, "/pub/repos/yum/common/pgdg-rhel9-extras/redhat/");
    must_fail(
        "kickstart with the pre-2025-11 extras URL",
        checks::repositories(&facts, &dead, &cfg, &rpms),
        "pgdg-rhel9-extras",
    );
    let dead_cfg = cfg.replace(new, "/pub/repos/yum/common/pgdg-rhel9-extras/redhat/");
    must_fail(
        "user-data with the pre-2025-11 extras URL",
        checks::repositories(&facts, &ks, &dead_cfg, &rpms),
        "data/repos.yaml",
    );
    must_fail(
        "rpms.txt pinning Patroni's pip version as an RPM",
        checks::repositories(&facts, &ks, &cfg, &format!("{rpms}patroni-4.1.5\n")),
        "patroni-4.1.5",
    );
}
