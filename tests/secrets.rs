//! Secrets: one case per secret code (reference position, all at once), the
//! contract listing, and `secrets init` → `build --require-secrets` through
//! the binary on every example, with no value in any public artifact or log.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use pgimg::diag::Diagnostic;
use pgimg::source::SourceFile;

use crate::support;

/// The codes whose cases live here rather than in tests/rules.rs.
pub const CODES: &[&str] = &["PG0212", "PG0400", "PG0401", "PG0402", "PG0403", "PG0404"];

const BASE: &str = "tests/errors/base.yml";

/// The base spec with a secrets section of file references appended.
fn base_with_secrets() -> String {
    support::read(BASE).replace(
        "secrets:\n  restapi_password: { env: PGIMG_RESTAPI_PASSWORD }\n  etcd_root_password: { env: PGIMG_ETCD_ROOT_PASSWORD }\n  etcd_password: { env: PGIMG_ETCD_PASSWORD }\n  haproxy_stats_password: { env: PGIMG_HAPROXY_STATS_PASSWORD }\n  backup_cipher_pass: { env: PGIMG_BACKUP_CIPHER_PASS }\n",
        // The password cases: TLS (and with it the etcd and stats passwords) off.
        "secrets:\n  superuser_password: { file: s/superuser }\n  replication_password: { file: s/replication }\n  rewind_password: { file: s/rewind }\n  tls: { enabled: false }\n",
    )
}

/// Line (1-based) and column of the `{` of the reference on the line holding `key`.
fn position(text: &str, key: &str) -> (usize, usize) {
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line"));
    (i + 1, line.find('{').map(|c| c + 1).unwrap_or(0))
}

/// A temporary directory with `s/<name>` secret files.
fn secret_dir(files: &[(&str, Option<&str>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("s")).unwrap();
    for (name, content) in files {
        let p = dir.path().join("s").join(name);
        match content {
            Some(c) => std::fs::write(p, c).unwrap(),
            // A directory where a file belongs: unreadable as a secret.
            None => std::fs::create_dir(p).unwrap(),
        }
    }
    dir
}

fn secret_diags(text: &str, dir: &Path) -> Vec<Diagnostic> {
    let v = pgimg::validate(SourceFile::new(BASE, text.to_string()), false)
        .unwrap_or_else(|d| panic!("the spec does not validate: {d:#?}"));
    let (_, _, diags) =
        pgimg::secret_ops::read_and_check(&v, &dir.join("base.yml"), None, true).unwrap();
    diags
}

fn assert_one(diags: &[Diagnostic], code: &str, at: (usize, usize)) {
    assert_eq!(diags.len(), 1, "expected one {code}, got {diags:#?}");
    let d = &diags[0];
    assert_eq!(d.code.as_str(), code, "{d:#?}");
    let span = d.span.unwrap_or_else(|| panic!("{code} has no position"));
    assert_eq!(
        (span.line, span.col),
        at,
        "{code} at the wrong place: {d:#?}"
    );
    assert_eq!(d.file.as_deref(), Some(BASE));
    assert!(d.is_error());
    assert!(d.expected.as_deref().is_some_and(|e| !e.is_empty()));
}

const GOOD: &str = "Abcdefgh12345678";

#[test]
fn all_secrets_present_gives_no_diagnostic() {
    let dir = secret_dir(&[
        ("superuser", Some("Abcdefgh12345678\n")),
        ("replication", Some(GOOD)),
        ("rewind", Some(GOOD)),
    ]);
    assert!(secret_diags(&base_with_secrets(), dir.path()).is_empty());
}

#[test]
fn pg0300_missing_secret_file() {
    let dir = secret_dir(&[("replication", Some(GOOD)), ("rewind", Some(GOOD))]);
    let text = base_with_secrets();
    let diags = secret_diags(&text, dir.path());
    assert_one(&diags, "PG0400", position(&text, "superuser_password:"));
    assert!(diags[0].message.contains("s/superuser"));
}

#[test]
fn pg0300_unset_environment_variable() {
    let dir = secret_dir(&[("replication", Some(GOOD)), ("rewind", Some(GOOD))]);
    let text = base_with_secrets().replace(
        "{ file: s/superuser }",
        "{ env: PGIMG_TEST_SURELY_UNSET_SECRET }",
    );
    let diags = secret_diags(&text, dir.path());
    assert_one(&diags, "PG0400", position(&text, "superuser_password:"));
    assert!(diags[0].message.contains("PGIMG_TEST_SURELY_UNSET_SECRET"));
}

#[test]
fn pg0301_empty_secret() {
    let dir = secret_dir(&[
        ("superuser", Some(GOOD)),
        ("replication", Some("\n")),
        ("rewind", Some(GOOD)),
    ]);
    let text = base_with_secrets();
    assert_one(
        &secret_diags(&text, dir.path()),
        "PG0401",
        position(&text, "replication_password:"),
    );
}

#[test]
fn pg0302_unreadable_secret() {
    let dir = secret_dir(&[
        ("superuser", Some(GOOD)),
        ("replication", Some(GOOD)),
        ("rewind", None),
    ]);
    let text = base_with_secrets();
    assert_one(
        &secret_diags(&text, dir.path()),
        "PG0402",
        position(&text, "rewind_password:"),
    );
}

#[test]
fn pg0303_unsafe_value_never_shown() {
    const BAD: &str = "pass;rm -rf /";
    let dir = secret_dir(&[
        ("superuser", Some(BAD)),
        ("replication", Some(GOOD)),
        ("rewind", Some(GOOD)),
    ]);
    let text = base_with_secrets();
    let diags = secret_diags(&text, dir.path());
    assert_one(&diags, "PG0403", position(&text, "superuser_password:"));
    let shown = pgimg::diag::render_human(&diags[0], Some(&SourceFile::new(BASE, text)));
    assert!(!shown.contains("pass;rm"), "{shown}");
}

#[test]
fn pg0304_cluster_without_a_required_reference() {
    let dir = secret_dir(&[("replication", Some(GOOD)), ("rewind", Some(GOOD))]);
    let text = base_with_secrets().replace("  superuser_password: { file: s/superuser }\n", "");
    let diags = secret_diags(&text, dir.path());
    let (line, _) = position(&text, "- name: main");
    assert_one(&diags, "PG0404", (line, 5));
}

#[test]
fn every_bad_secret_is_reported_at_once() {
    let dir = secret_dir(&[("superuser", Some("a b")), ("rewind", Some(""))]);
    let text = base_with_secrets();
    let codes: Vec<&str> = secret_diags(&text, dir.path())
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert_eq!(codes, ["PG0403", "PG0400", "PG0401"]);
}

#[test]
fn the_contract_lists_every_secret_file_with_owner_mode_and_reader() {
    let text = support::read("examples/reference-cluster.yml");
    let v = support::validate("examples/reference-cluster.yml", &text).unwrap();
    let tree = pgimg::build(
        &v,
        &pgimg::BuildInputs {
            roles: pgimg::load::RoleTree::embedded(),
            secrets: Default::default(),
            mapping: Default::default(),
            overlays: Default::default(),
        },
    )
    .unwrap();
    let list = String::from_utf8(tree.files["hosts/pg1/secrets.list"].bytes.clone()).unwrap();
    for want in [
        "file /etc/patroni/patroni.env root:root 0600",
        "patroni.service (EnvironmentFile=",
        "PATRONI_SUPERUSER_PASSWORD",
        "env:PGIMG_SUPERUSER_PASSWORD",
        "file /var/lib/pgsql/.pgpass postgres:postgres 0600",
    ] {
        assert!(list.contains(want), "secrets.list lacks `{want}`:\n{list}");
    }
    let haproxy =
        String::from_utf8(tree.files["hosts/haproxy/secrets.list"].bytes.clone()).unwrap();
    // HAProxy's secrets: the CA it checks Patroni's REST API against, and the stats password.
    for want in [
        "file /etc/pgimg/tls/ca.crt root:root 0644",
        "file /etc/haproxy/pgimg-stats.env root:root 0600",
        "PGIMG_STATS_PASSWORD",
    ] {
        assert!(haproxy.contains(want), "{haproxy}");
    }
    for want in [
        "file /etc/pgimg/tls/postgres.key postgres:postgres 0600",
        "file /etc/pgimg/tls/etcd.key etcd:etcd 0600",
        "file:tls/pg_cluster/pg1.key",
        "PATRONI_ETCD3_PASSWORD",
    ] {
        assert!(list.contains(want), "secrets.list lacks `{want}`:\n{list}");
    }
    // Patroni is skipped, not crash-looped, until its secrets are there.
    let unit = String::from_utf8(
        tree.files["hosts/pg1/rootfs/etc/systemd/system/patroni.service"]
            .bytes
            .clone(),
    )
    .unwrap();
    assert!(unit.contains("ConditionPathExists=/etc/patroni/patroni.env"));
    assert!(
        tree.files
            .contains_key("hosts/pg1/rootfs/etc/systemd/system/patroni-secrets.path")
    );
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(support::pgimg());
    cmd.args(args).current_dir(dir).env_remove("RUST_BACKTRACE");
    for (k, _) in std::env::vars() {
        if k.starts_with("PGIMG_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

fn contents(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    if path.to_string_lossy().ends_with(".gz") {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[test]
fn init_then_require_secrets_builds_every_example_and_leaks_nothing() {
    // S3 keys are issued by the object store: the user supplies them.
    const S3: &[(&str, &str)] = &[
        ("PGIMG_S3_KEY", "AKIDEXAMPLEKEY0001"),
        ("PGIMG_S3_KEY_SECRET", "s3SecretExampleValue0002"),
    ];
    for example in ["minimal", "reference-cluster", "fleet"] {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yml");
        std::fs::copy(
            support::root().join(format!("examples/{example}.yml")),
            &spec,
        )
        .unwrap();

        let check = run(dir.path(), &["secrets", "check", "spec.yml"], &[]);
        assert_eq!(check.status.code(), Some(1), "{example}: check before init");
        assert!(String::from_utf8_lossy(&check.stdout).contains("missing"));

        let init = run(dir.path(), &["secrets", "init", "spec.yml"], S3);
        assert!(init.status.success(), "{example}: init: {init:?}");
        let env_file = dir.path().join("secrets.env");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&env_file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{example}: secrets.env mode");
        let values: BTreeMap<String, String> = std::fs::read_to_string(&env_file)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(values.len() >= 3, "{example}: {values:?}");
        assert!(values.values().all(|v| v.len() == 32), "{example}");

        // A second init changes nothing: never overwrites.
        let before = std::fs::read(&env_file).unwrap();
        let again = run(dir.path(), &["secrets", "init", "spec.yml"], S3);
        assert!(again.status.success());
        assert_eq!(
            std::fs::read(&env_file).unwrap(),
            before,
            "{example}: init overwrote"
        );

        let check = run(
            dir.path(),
            &[
                "secrets",
                "check",
                "spec.yml",
                "--secrets-env",
                "secrets.env",
            ],
            S3,
        );
        assert!(
            check.status.success(),
            "{example}: check after init: {check:?}"
        );

        let build = run(
            dir.path(),
            &[
                "build",
                "spec.yml",
                "-o",
                "out",
                "--require-secrets",
                "--secrets-env",
                "secrets.env",
            ],
            S3,
        );
        assert!(build.status.success(), "{example}: build: {build:?}");

        // A second build whose every secret differs, then `pgimg diff` of the
        // two outputs in each format and `pgimg verify` of each: neither the
        // diffs nor any log may show a value of either side.
        let other: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.chars().rev().collect::<String>() + "Zz"))
            .collect();
        let other_env: String = other.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(dir.path().join("other.env"), other_env).unwrap();
        let other_s3: Vec<(String, String)> = S3
            .iter()
            .map(|(k, v)| (k.to_string(), format!("{v}Other")))
            .collect();
        let other_s3_ref: Vec<(&str, &str)> = other_s3
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let build_b = run(
            dir.path(),
            &[
                "build",
                "spec.yml",
                "-o",
                "out-b",
                "--require-secrets",
                "--secrets-env",
                "other.env",
            ],
            &other_s3_ref,
        );
        assert!(build_b.status.success(), "{example}: build b: {build_b:?}");
        let mut review = Vec::new();
        for format in ["text", "markdown", "json"] {
            let diff = run(
                dir.path(),
                &[
                    "diff", "out", "out-b", "--format", format, "--color", "never",
                ],
                &[],
            );
            // 0 (same) or 1 (different): never an error.
            assert!(
                matches!(diff.status.code(), Some(0 | 1)),
                "{example}: diff --format {format}: {diff:?}"
            );
            review.push(diff);
        }
        for side in ["out", "out-b"] {
            let verify = run(dir.path(), &["verify", side], &[]);
            assert!(
                verify.status.success(),
                "{example}: verify {side}: {verify:?}"
            );
            review.push(verify);
        }
        let review_logs: String = review
            .iter()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .collect();
        assert!(!review_logs.is_empty());
        let both_sides = values
            .iter()
            .chain(other.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(S3.iter().copied())
            .chain(other_s3_ref.iter().copied());
        for (name, v) in both_sides {
            assert!(
                !review_logs.contains(v),
                "{example}: diff or verify output holds {name}"
            );
            assert!(
                !String::from_utf8_lossy(&build_b.stdout).contains(v)
                    && !String::from_utf8_lossy(&build_b.stderr).contains(v),
                "{example}: the second build's log holds {name}"
            );
        }

        let logs = [&init, &again, &check, &build]
            .iter()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .collect::<String>();
        let mut every: BTreeMap<String, String> = values.clone();
        every.extend(S3.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let out = dir.path().join("out");
        let mut delivered = 0;
        for path in all_files(&out) {
            let rel = path
                .strip_prefix(&out)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = contents(&path);
            if rel.starts_with("secrets/") {
                delivered += values
                    .values()
                    .filter(|v| text.contains(v.as_str()))
                    .count();
                continue;
            }
            for (name, v) in &every {
                assert!(!text.contains(v.as_str()), "{example}: {rel} holds {name}");
            }
        }
        assert!(delivered > 0, "{example}: the secrets reached secrets/");
        for (name, v) in &every {
            assert!(!logs.contains(v.as_str()), "{example}: a log holds {name}");
        }

        // One secret gone: the build fails at the line of its reference, writing nothing new.
        let (gone, _) = values.iter().next().unwrap();
        let rest: String = values
            .iter()
            .filter(|(k, _)| *k != gone)
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        std::fs::write(&env_file, rest).unwrap();
        let text = std::fs::read_to_string(&spec).unwrap();
        let line = text
            .lines()
            .position(|l| l.contains(&format!("env: {gone} ")))
            .unwrap()
            + 1;
        for flag in ["--require-secrets", "--strict"] {
            let failed = run(
                dir.path(),
                &[
                    "build",
                    "spec.yml",
                    "-o",
                    "out2",
                    flag,
                    "--secrets-env",
                    "secrets.env",
                ],
                &[],
            );
            let stderr = String::from_utf8_lossy(&failed.stderr);
            assert_eq!(failed.status.code(), Some(1), "{example} {flag}: {stderr}");
            assert!(stderr.contains("PG0400"), "{stderr}");
            assert!(
                stderr.contains(&format!("spec.yml:{line}:")),
                "{example}: {stderr}"
            );
            assert!(!dir.path().join("out2").exists());
        }
    }
}

/// PG0212 needs two edits of the base (an S3 repository, no cipher), so its
/// case is here rather than among the one-mutation cases of tests/rules.rs.
#[test]
fn pg0212_s3_without_cipher() {
    let text = support::read(BASE)
        .replace("  backup_cipher_pass: { env: PGIMG_BACKUP_CIPHER_PASS }\n", "")
        .replace(
            "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]",
            "repos: [{ type: s3, bucket: backups, region: eu-west-1, key: { env: K }, key_secret: { env: S } }]",
        );
    let diags = support::diagnostics(BASE, &text, false);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(d.code.as_str(), "PG0212");
    let span = d.span.expect("a position");
    assert_eq!((span.line, span.col), (19, 17));
    assert!(!d.is_error());
}

/// A repository set once for the fleet is one warning at its line, naming
/// the hosts of every cluster it leaves unencrypted, not one per cluster.
#[test]
fn pg0212_once_for_a_fleet_wide_repository() {
    // Three clusters, their S3 repository set once in the fleet's defaults.
    let text = crate::incremental::spec("");
    let diags = support::diagnostics("fleet.yml", &text, false);
    let found: Vec<_> = diags
        .iter()
        .filter(|d| d.code.as_str() == "PG0212")
        .collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    let d = found[0];
    assert_eq!(d.pointer, "/defaults/pgbackrest/repos/0");
    let span = d.span.expect("a position");
    assert_eq!(span.line, 9);
    assert_eq!(d.hosts.len(), 9, "{:?}", d.hosts);
    assert!(d.hosts.iter().any(|h| h == "c2-pg3"), "{:?}", d.hosts);
}

/// `secrets init` makes the cluster CA and a certificate per pg or etcd host
/// (mode 0600, verified by openssl against the CA, with the host's names),
/// never overwrites them, and `secrets check` then finds everything.
#[test]
fn secrets_init_creates_the_cluster_ca_and_host_certificates() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = dir.path().join("spec.yml");
    std::fs::write(&spec, support::read("examples/minimal.yml")).expect("spec");
    let run = |args: &[&str]| {
        std::process::Command::new(support::pgimg())
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("running pgimg")
    };
    let first = run(&["secrets", "init", "spec.yml"]);
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let tls = dir.path().join("tls/app");
    let mut certs = Vec::new();
    for e in std::fs::read_dir(&tls).expect("tls/app") {
        let p = e.expect("entry").path();
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
        if p.extension().is_some_and(|x| x == "crt") && !p.ends_with("ca.crt") {
            certs.push(p);
        }
    }
    assert!(
        tls.join("ca.key").exists() && tls.join("ca.crt").exists(),
        "{out}"
    );
    assert!(!certs.is_empty(), "{out}");
    for c in &certs {
        let v = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(tls.join("ca.crt"))
            .arg(c)
            .output()
            .expect("running openssl");
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        let text = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(c)
            .output()
            .expect("running openssl");
        let host = c.file_stem().unwrap().to_string_lossy().into_owned();
        let sans = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(sans.contains(&format!("DNS:{host}")), "{sans}");
        assert!(sans.contains("IP Address:"), "{sans}");
    }
    let before = std::fs::read(tls.join("ca.key")).expect("ca.key");
    let second = run(&["secrets", "init", "spec.yml"]);
    let out2 = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(!out2.contains("created"), "{out2}");
    assert_eq!(std::fs::read(tls.join("ca.key")).expect("ca.key"), before);
    let check = run(&[
        "secrets",
        "check",
        "spec.yml",
        "--secrets-env",
        "secrets.env",
    ]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The here-document payloads of an embedded kickstart, by path.
fn kickstart_payloads(ks: &str) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in ks.lines() {
        if let Some((path, b64)) = current.as_mut() {
            if line == "PGIMG_SECRET" {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .unwrap();
                out.insert(std::mem::take(path), bytes);
                current = None;
            } else {
                b64.push_str(line);
            }
        } else if let Some(rest) = line.strip_prefix("pgimg_secret /")
            && line.ends_with("<<'PGIMG_SECRET'")
        {
            let path = format!("/{}", rest.split_whitespace().next().unwrap());
            current = Some((path, String::new()));
        }
    }
    out
}

/// The deferred `write_files` of an embedded user-data, by path.
fn user_data_payloads(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .unwrap();
        String::from_utf8(raw).unwrap()
    } else {
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["write_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|f| f["defer"].as_bool() == Some(true))
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                base64::engine::general_purpose::STANDARD
                    .decode(f["content"].as_str().unwrap())
                    .unwrap(),
            )
        })
        .collect()
}

/// The S3 keys the embedding tests pass in the environment.
const EMBED_S3: [(&str, &str); 2] = [
    ("PGIMG_S3_KEY", "AKIDEMBEDTEST0001"),
    ("PGIMG_S3_KEY_SECRET", "EmbedTestSecret0002"),
];

/// An example copied to a temporary directory as `spec.yml`, with every
/// secret it references made by `secrets init` (the S3 keys from the environment).
fn example_with_secrets(example: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::root().join("examples").join(example),
        dir.path().join("spec.yml"),
    )
    .unwrap();
    assert!(
        run(dir.path(), &["secrets", "init", "spec.yml"], &EMBED_S3)
            .status
            .success()
    );
    dir
}

#[test]
fn embed_secrets_adds_install_files_under_secrets_only_and_leaves_the_rest_alone() {
    let dir = example_with_secrets("small.yml");
    let s3 = EMBED_S3;
    let build = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "build",
            "spec.yml",
            "-o",
            out,
            "--secrets-env",
            "secrets.env",
        ];
        args.extend_from_slice(extra);
        let o = run(dir.path(), &args, &s3);
        assert!(o.status.success(), "{out}: {o:?}");
        o
    };
    let plain = build("plain", &[]);
    let embedded = build("embedded", &["--embed-secrets"]);
    let rel = |root: &Path| -> BTreeMap<String, Vec<u8>> {
        all_files(root)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let a = rel(&dir.path().join("plain"));
    let b = rel(&dir.path().join("embedded"));
    // The reviewable tree, manifest and sums included, is byte-identical;
    // the output's record of its inputs (the flag among them) is not reviewed.
    let public = |t: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        t.iter()
            .filter(|(p, _)| {
                !p.starts_with("secrets/")
                    && !matches!(p.as_str(), ".pgimg-output" | ".pgimg-state")
            })
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    };
    assert_eq!(public(&a), public(&b));
    let install = |p: &str| p.ends_with("/kickstart.ks") || p.ends_with("/user-data");
    assert!(!a.keys().any(|p| p.starts_with("secrets/") && install(p)));
    let added: Vec<&String> = b.keys().filter(|p| !a.contains_key(*p)).collect();
    assert_eq!(
        added,
        [
            "secrets/small-db1/kickstart.ks",
            "secrets/small-db2/kickstart.ks",
            "secrets/small-db3/user-data"
        ]
    );
    for p in &added {
        let mode = std::fs::metadata(dir.path().join("embedded").join(p))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600,
            "{p}"
        );
    }
    // Each embedded file carries exactly the host's secrets/<host>/ files.
    let values: Vec<String> = std::fs::read_to_string(dir.path().join("secrets.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.to_string()))
        .chain(s3.iter().map(|(_, v)| v.to_string()))
        .collect();
    let mut carried = String::new();
    for p in &added {
        let host = p.split('/').nth(1).unwrap();
        let got = if p.ends_with("kickstart.ks") {
            kickstart_payloads(&String::from_utf8(b[*p].clone()).unwrap())
        } else {
            user_data_payloads(&b[*p])
        };
        let prefix = format!("secrets/{host}/");
        let want: BTreeMap<String, Vec<u8>> = b
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !install(k))
            .map(|(k, v)| (format!("/{}", &k[prefix.len()..]), v.clone()))
            .collect();
        assert!(want.len() >= 5, "{host}: {want:?}");
        assert_eq!(got, want, "{host}");
        for v in got.values() {
            carried.push_str(&String::from_utf8_lossy(v));
        }
    }
    for v in &values {
        assert!(carried.contains(v.as_str()), "a value is not embedded");
    }
    for (p, bytes) in public(&b) {
        let text = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut raw)
                .unwrap();
            String::from_utf8_lossy(&raw).into_owned()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        for v in &values {
            assert!(!text.contains(v.as_str()), "{p} holds a secret value");
        }
    }
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&embedded.stdout),
        String::from_utf8_lossy(&embedded.stderr)
    );
    assert!(logs.contains("secrets/small-db3/user-data"), "{logs}");
    for v in &values {
        assert!(!logs.contains(v.as_str()));
    }
    drop(plain);
}

#[test]
fn an_embedded_user_data_over_ec2s_limit_fails_the_build_naming_host_and_sizes() {
    let dir = example_with_secrets("reference-cluster.yml");
    let s3 = EMBED_S3;
    let args = [
        "build",
        "spec.yml",
        "-o",
        "out",
        "--secrets-env",
        "secrets.env",
        "--embed-secrets",
    ];
    let o = run(dir.path(), &args, &s3);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    // The DR site's hosts are cloud hosts whose certificates and keys do not fit.
    for needle in [
        "host dr-pg1: the user-data with its secrets embedded (--embed-secrets) is ",
        "over EC2's limit of 16384 bytes",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    assert!(!dir.path().join("out").exists());
    // Without the flag the same build succeeds.
    assert!(run(dir.path(), &args[..6], &s3).status.success());
}
