//! Regression tests for the holes an adversarial review found: each spec
//! value, secret, role tree or output path below once got through to a file
//! (or hung, or crashed pgimg); each must now be refused with a diagnostic or
//! an error, or be harmless.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgimg::diag::{Code, Diagnostic};

use crate::support;

const BASE: &str = "tests/errors/base.yml";

fn base() -> String {
    support::read(BASE)
}

fn replaced(from: &str, to: &str) -> String {
    let b = base();
    assert_eq!(
        b.matches(from).count(),
        1,
        "`{from}` must occur once in {BASE}"
    );
    b.replace(from, to)
}

/// The spec with `extra` added to the fleet's `defaults` (after `port: 5432`).
fn with_defaults(extra: &str) -> String {
    replaced("    port: 5432\n", &format!("    port: 5432\n{extra}"))
}

fn errors(text: &str) -> Vec<Diagnostic> {
    support::diagnostics(BASE, text, false)
        .into_iter()
        .filter(Diagnostic::is_error)
        .collect()
}

/// Exactly one error, with `code`, positioned, at a pointer ending in `field`.
fn assert_one(text: &str, code: Code, field: &str, what: &str) {
    let e = errors(text);
    assert!(
        e.len() == 1 && e[0].code == code,
        "{what}: expected one {}, got {e:#?}",
        code.as_str()
    );
    assert!(e[0].span.is_some(), "{what}: no position: {e:#?}");
    assert!(
        e[0].pointer.ends_with(field),
        "{what}: pointer {} does not end in {field}",
        e[0].pointer
    );
}

#[test]
fn base_is_valid() {
    assert!(errors(&base()).is_empty());
}

#[test]
fn urls_with_grub_kickstart_or_shell_syntax_are_refused() {
    for url in [
        "http://boot.example.com/x;reboot",
        "http://boot.example.com/$releasever/os",
        "http://boot.example.com/os#frag",
        "http://boot.example.com/a&b",
        "http://boot.example.com/a|b",
        "http://boot.example.com/{a}",
        "http://boot.example.com/%zz",
    ] {
        let text = replaced(
            "defaults:\n",
            &format!("defaults:\n  repos: {{ installer: '{url}' }}\n"),
        );
        assert_one(&text, Code::BadString, "/repos/installer", url);
    }
    let ok = replaced(
        "defaults:\n",
        "defaults:\n  repos: { installer: 'http://boot.example.com/rocky/9/BaseOS/x86_64/os/?a=b%20c' }\n",
    );
    assert!(errors(&ok).is_empty(), "{:#?}", errors(&ok));
}

#[test]
fn package_names_starting_with_a_dash_are_refused() {
    let text = with_defaults("    extra_packages: ['-nogpgcheck']\n");
    assert_one(&text, Code::BadString, "/extra_packages/0", "leading -");
}

#[test]
fn admin_user_is_a_plain_user_name() {
    for user in ["a$(reboot)", "adm$", "-x", "Admin", &"a".repeat(33)] {
        let text = replaced(
            "defaults:\n",
            &format!("defaults:\n  os: {{ admin_user: '{user}' }}\n"),
        );
        assert_one(&text, Code::BadString, "/os/admin_user", user);
    }
    let ok = replaced("defaults:\n", "defaults:\n  os: { admin_user: ops_1 }\n");
    assert!(errors(&ok).is_empty());
}

#[test]
fn data_directories_are_below_root_and_normal() {
    for dir in [
        "/",
        "//data",
        "/.",
        "/data/..",
        "/data//pg",
        "/data/./pg",
        "/.hidden",
    ] {
        let text = with_defaults(&format!("    data_dir: '{dir}'\n"));
        assert_one(&text, Code::BadString, "/data_dir", dir);
    }
    let ok = with_defaults("    data_dir: /data/pg-17\n");
    assert!(errors(&ok).is_empty());
}

#[test]
fn line_separators_are_refused_in_text_values() {
    for sep in ["\\u2028", "\\u2029", "\\x85", "\\ufeff"] {
        let text = with_defaults(&format!(
            "    parameters: {{ application_name: \"a{sep}b\" }}\n"
        ));
        assert_one(&text, Code::BadString, "/parameters/application_name", sep);
    }
}

#[test]
fn values_accepted_without_a_diagnostic_before() {
    let cases: &[(&str, &str, Code, &str)] = &[
        (
            "settings: { network: { gateway: 10.2.0.1, dns: [10.2.0.2] } }",
            "settings: { network: { gateway: 10.2.0.1, dns: [10.2.0.2], prefix: 128 } }",
            Code::PrefixFamily,
            "/network/prefix",
        ),
        (
            "settings: { network: { gateway: 10.2.0.1, dns: [10.2.0.2] } }",
            "settings: { network: { gateway: 10.2.0.1, dns: [10.2.0.2], domain: 'a..b' } }",
            Code::BadString,
            "/network/domain",
        ),
        (
            "{ name: w3,",
            "{ name: w3, member_name: 'x..',",
            Code::BadString,
            "/member_name",
        ),
        (
            "{ name: n3, address: 10.3.0.13, roles: [etcd] }",
            "{ name: n3, address: 10.3.0.13, roles: [etcd], boot: { interface: 'eth0:dhcp' } }",
            Code::BadString,
            "/boot/interface",
        ),
    ];
    for (from, to, code, field) in cases {
        assert_one(&replaced(from, to), *code, field, to);
    }
    let repo = |extra: &str| {
        replaced(
            "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]",
            &format!(
                "repos: [{{ type: s3, path: /repo, bucket: b-1, region: eu-west-1, key: {{ env: K }}, key_secret: {{ env: S }}, {extra} }}]"
            ),
        )
    };
    assert!(
        errors(&repo("endpoint: s3.example.com:9000")).is_empty(),
        "{:#?}",
        errors(&repo("endpoint: s3.example.com:9000"))
    );
    for (extra, field) in [
        ("endpoint: 's3.example.com:99999'", "/endpoint"),
        ("endpoint: 's3..example.com'", "/endpoint"),
        ("bucket: 'a..b'", "/bucket"),
        ("region: '-'", "/region"),
    ] {
        // The later key of a flow mapping wins only after a duplicate-key error; use distinct keys.
        let text = repo(extra)
            .replacen(
                "bucket: b-1, ",
                if extra.starts_with("bucket") {
                    ""
                } else {
                    "bucket: b-1, "
                },
                1,
            )
            .replacen(
                "region: eu-west-1, ",
                if extra.starts_with("region") {
                    ""
                } else {
                    "region: eu-west-1, "
                },
                1,
            );
        assert_one(&text, Code::BadString, field, extra);
    }
    for cron in [
        "61 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "5-1 * * * *",
        "*/0 * * * *",
        "1/5 * * * *",
    ] {
        let text = replaced(
            "        repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]\n",
            &format!(
                "        repos: [{{ type: posix, path: /var/lib/pgbackrest, mount: {{ server: nfs1, export: /pgbackrest }} }}]\n        schedule: {{ incr: '{cron}' }}\n"
            ),
        );
        assert_one(&text, Code::CronRange, "/schedule/incr", cron);
    }
}

#[test]
fn empty_spec_and_huge_source_date_epoch_have_positions() {
    for text in ["", "# only a comment\n"] {
        let e = errors(text);
        assert!(
            !e.is_empty() && e.iter().all(|d| d.span.is_some()),
            "{text:?}: {e:#?}"
        );
    }
    let text = replaced(
        "version: 1\n",
        "version: 1\nsource_date_epoch: 99999999999999999999\n",
    );
    assert_one(
        &text,
        Code::OutOfRange,
        "/source_date_epoch",
        "source_date_epoch",
    );
    let text = replaced(
        "version: 1\n",
        "version: 1\nsource_date_epoch: 8589934592\n",
    );
    assert_one(
        &text,
        Code::OutOfRange,
        "/source_date_epoch",
        "source_date_epoch",
    );
}

#[test]
fn a_utf8_byte_order_mark_is_ignored() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spec = dir.path().join("bom.yml");
    std::fs::write(&spec, format!("\u{feff}{}", base())).unwrap_or_else(|e| panic!("{e}"));
    let source = pgimg::load::spec(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert!(pgimg::validate(source, false).is_ok());
}

/// Runs the binary with a deadline; a process still running then is killed and the test fails.
fn run_bounded(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> std::process::Output {
    let mut cmd = Command::new(support::pgimg());
    cmd.args(args)
        .current_dir(support::root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap_or_else(|e| panic!("{e}")).is_some() {
            return child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pgimg {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spec_with_file_secret(dir: &Path, path: &str) -> String {
    let text = replaced(
        "secrets:\n",
        &format!("secrets:\n  superuser_password: {{ file: '{path}' }}\n"),
    );
    let spec = dir.join("spec.yml");
    std::fs::write(&spec, text).unwrap_or_else(|e| panic!("{e}"));
    spec.display().to_string()
}

#[test]
fn secret_files_are_bounded_regular_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(made.success());
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 2 << 20]).unwrap_or_else(|e| panic!("{e}"));
    // Each is refused at its reference's line, in bounded time: neither a
    // FIFO nobody writes to nor /dev/zero can block or exhaust the build.
    for secret in [
        fifo.display().to_string(),
        "/dev/zero".to_string(),
        dir.path().display().to_string(),
        big.display().to_string(),
    ] {
        let spec = spec_with_file_secret(dir.path(), &secret);
        let out_dir = dir.path().join("out");
        let out = run_bounded(
            &[
                "build",
                &spec,
                "-o",
                &out_dir.display().to_string(),
                "--require-secrets",
            ],
            &[],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{secret}: {stderr}");
        assert!(
            stderr.contains(&format!("file:{secret}")) && stderr.contains("PG040"),
            "{secret}: {stderr}"
        );
        assert!(!out_dir.exists(), "{secret}: wrote output");
    }
}

#[test]
fn secret_values_with_shell_syntax_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = replaced(
        "  backup_cipher_pass: { env: PGIMG_BACKUP_CIPHER_PASS }\n",
        "  backup_cipher_pass: { env: PGIMG_TEST_CIPHER }\n",
    );
    let spec = dir.path().join("spec.yml");
    std::fs::write(&spec, text).unwrap_or_else(|e| panic!("{e}"));
    let out_dir = dir.path().join("out");
    // Values no environment file, shell or config could carry as data;
    // others (`|`, `&`, `*`) are data to systemd's `EnvironmentFile=`, the
    // only reader of these files since no script sources them.
    for value in [
        "zq1;reboot",
        "zq2#x",
        "zq3$x",
        "zq4`x",
        "zq5'x",
        "zq6 x",
        "zq7\\x",
    ] {
        let out = run_bounded(
            &[
                "build",
                &spec.display().to_string(),
                "-o",
                &out_dir.display().to_string(),
            ],
            &[("PGIMG_TEST_CIPHER", value)],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {stderr}");
        assert!(
            stderr.contains("env:PGIMG_TEST_CIPHER") && stderr.contains("PG0403"),
            "{value}: {stderr}"
        );
        assert!(!stderr.contains(value), "{value} shown: {stderr}");
        assert!(!out_dir.exists());
    }
    let out = run_bounded(
        &[
            "build",
            &spec.display().to_string(),
            "-o",
            &out_dir.display().to_string(),
        ],
        &[("PGIMG_TEST_CIPHER", "c2VjcmV0K3Bhc3M9")],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The human diagnostics of `text` as the binary prints them.
fn human(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spec = dir.path().join("spec.yml");
    std::fs::write(&spec, text).unwrap_or_else(|e| panic!("{e}"));
    let out = run_bounded(
        &["validate", &spec.display().to_string()],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_secrets_are_masked_whatever_the_diagnostic_points_at() {
    let secret = "hunter2hunter2";
    let cases = [
        // The diagnostic points at the key.
        format!("secrets: {{ superuser_password: {secret}, superuser_pasword: {{ env: X }} }}\n"),
        // A tag on the value.
        format!("secrets: {{ superuser_password: !!binary {secret} }}\n"),
        // Another diagnostic on the same line.
        format!("secrets: {{ superuser_password: {secret}, replication_password: 3 }}\n"),
        // A block mapping, a bracket and a quoted value.
        format!("secrets:\n  superuser_password: [ '{secret}' ]\n"),
        // A syntax error on the line.
        format!("secrets: {{ superuser_password: {secret} ]\n"),
        format!("secrets:\n  superuser_password: \"{secret}\n"),
        // A repository key.
        format!("x: 1\nrepo: {{ key: {secret} }}\n"),
    ];
    for extra in cases {
        let text = replaced("clusters:\n", &format!("{extra}clusters:\n"));
        let shown = human(&text);
        assert!(
            !shown.contains(secret),
            "secret shown for {extra:?}:\n{shown}"
        );
        assert!(
            !shown.contains("hunter2"),
            "part of the secret shown for {extra:?}:\n{shown}"
        );
    }
}

#[test]
fn unknown_keys_cannot_drive_the_terminal_or_forge_lines() {
    let text = replaced(
        "clusters:\n",
        "\"evil\\e[2J\\nerror[PG0000]: forged\": 1\nclusters:\n",
    );
    let shown = human(&text);
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    assert!(
        !shown.lines().any(|l| l.starts_with("error[PG0000]")),
        "{shown}"
    );
    assert!(shown.contains("\\u{1b}"), "{shown}");
}

#[test]
fn denial_of_service_inputs_are_bounded() {
    // Generous for a loaded machine and a debug build; the quadratic
    // versions took minutes in a release build.
    let limit = Duration::from_secs(if cfg!(debug_assertions) { 120 } else { 20 });
    let time = |what: &str, text: String| {
        let start = Instant::now();
        let e = errors(&text);
        let took = start.elapsed();
        assert!(took < limit, "{what}: {took:?}");
        e
    };
    // 80,000 duplicate keys: at most 200 problems reported, in bounded time.
    let dups = format!("{}{}", base(), "x: 1\n".repeat(80_000));
    let e = time("duplicate keys", dups);
    assert!(
        e.len() <= 201 && e.iter().any(|d| d.code == Code::TooManyProblems),
        "{}",
        e.len()
    );
    // 200,000 anchors and one alias per anchor.
    let mut anchors = String::from("version: 1\nx:\n");
    for i in 0..200_000 {
        anchors.push_str(&format!("  - &a{i} {i}\n  - *a{i}\n"));
    }
    time("anchors", anchors);
    // Nested anchors around a large value: each level copies its subtree.
    let mut nested = String::from("version: 1\nx: ");
    for i in 0..60 {
        nested.push_str(&format!("&n{i} ["));
    }
    nested.push_str(&vec!["1"; 100_000].join(","));
    nested.push_str(&"]".repeat(60));
    nested.push('\n');
    let e = time("nested anchors", nested);
    assert!(
        e.iter().any(|d| d.message.contains("anchors hold more")),
        "{e:#?}"
    );
}

#[test]
fn a_role_template_that_includes_itself_is_refused() {
    let mut tree = pgimg::load::RoleTree::embedded();
    let name = "pg/backup.sh.hbs";
    let mut text = tree.files[name].clone();
    text.extend_from_slice(b"{{> pg/backup.sh.hbs}}\n");
    tree.files.insert(name.into(), text);
    let e = pgimg::render::templates::Templates::compile(&tree)
        .err()
        .unwrap_or_else(|| panic!("compiled a template that includes itself"));
    assert!(e.to_string().contains("loop"), "{e}");
    // Two that include each other, and one that includes what does not exist.
    let mut tree = pgimg::load::RoleTree::embedded();
    tree.files
        .insert("pg/a.hbs".into(), b"{{~> pg/b.hbs }}".to_vec());
    tree.files
        .insert("pg/b.hbs".into(), b"{{#> pg/a.hbs}}x{{/pg/a.hbs}}".to_vec());
    assert!(pgimg::render::templates::Templates::compile(&tree).is_err());
    let mut tree = pgimg::load::RoleTree::embedded();
    tree.files
        .insert("pg/c.hbs".into(), b"{{> nothere}}".to_vec());
    assert!(pgimg::render::templates::Templates::compile(&tree).is_err());
}

#[test]
fn overlay_entries_that_do_not_fit_the_archive_fail_the_build() {
    use std::collections::BTreeMap;
    let mut entries = BTreeMap::new();
    entries.insert(
        "/etc/x".to_string(),
        pgimg::render::RootfsEntry {
            content: Some(b"x".to_vec()),
            mode: 0o644,
            owner: "a".repeat(33),
            group: "root".into(),
        },
    );
    let e = pgimg::render::overlay::tar_gz(&entries, 0)
        .err()
        .unwrap_or_else(|| panic!("an owner name of 33 characters was archived"));
    assert!(e.contains("owner name"), "{e}");
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp.") || n.contains(".old."))
        .collect()
}

#[test]
fn output_directories_that_cannot_be_renamed_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spec = support::root()
        .join("examples/minimal.yml")
        .display()
        .to_string();
    let sub = dir.path().join("out");
    std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("{e}"));
    for (cwd, target) in [
        (dir.path(), "."),
        (dir.path(), "out/."),
        (dir.path(), "out/.."),
    ] {
        let out = Command::new(support::pgimg())
            .args(["build", &spec, "-o", target])
            .current_dir(cwd)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.status.code(),
            Some(2),
            "-o {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "-o {target}: {:?}",
            leftovers(dir.path())
        );
        assert!(
            leftovers(&sub).is_empty(),
            "-o {target}: {:?}",
            leftovers(&sub)
        );
    }
}

#[test]
fn a_killed_build_leaves_nothing_a_later_build_keeps() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A pid that no process has any more.
    let mut child = Command::new("true")
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let dead = child.id();
    child.wait().unwrap_or_else(|e| panic!("{e}"));
    // (A set-aside `.out.old.<pid>` is put back as the output instead.)
    let stale = dir.path().join(format!(".out.tmp.{dead}"));
    std::fs::create_dir_all(stale.join("secrets")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(stale.join("secrets/x"), "s").unwrap_or_else(|e| panic!("{e}"));
    // A live process's temporary tree is not touched.
    let live = dir.path().join(format!(".out.tmp.{}", std::process::id()));
    std::fs::create_dir(&live).unwrap_or_else(|e| panic!("{e}"));
    let spec = support::root()
        .join("examples/minimal.yml")
        .display()
        .to_string();
    let out = Command::new(support::pgimg())
        .args(["build", &spec, "-o", "out"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = leftovers(dir.path());
    assert_eq!(
        left,
        [format!(".out.tmp.{}", std::process::id())],
        "{left:?}"
    );
}

/// Every file of a tree: relative path → bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap_or_else(|e| panic!("{e}"));
            (
                rel.display().to_string(),
                std::fs::read(e.path()).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect()
}

/// The names in a directory.
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{e}"))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// What the tests of a killed build start from: the minimal example built
/// into `out` of a fresh directory, the command that builds it again there,
/// and the pid of a process that has ended, whose leftovers `recover` takes
/// as a killed build's.
fn killed_build() -> (tempfile::TempDir, std::path::PathBuf, impl Fn(), u32) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out");
    let spec = support::root()
        .join("examples/minimal.yml")
        .display()
        .to_string();
    let at = dir.path().to_path_buf();
    let build = move || {
        let o = Command::new(support::pgimg())
            .args(["build", &spec, "-o", "out"])
            .current_dir(&at)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    build();
    let mut child = Command::new("true")
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let dead = child.id();
    child.wait().unwrap_or_else(|e| panic!("{e}"));
    (dir, out, build, dead)
}

/// `recover` puts the previous output back whole and leaves nothing beside
/// it; a build over it then keeps what did not change.
fn recovered_whole(
    dir: &Path,
    out: &Path,
    before: &std::collections::BTreeMap<String, Vec<u8>>,
    build: impl Fn(),
) {
    pgimg::write::recover(out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&tree(out), before, "the previous output is whole again");
    let left: Vec<String> = names(dir).into_iter().filter(|n| n != "out").collect();
    assert!(left.is_empty(), "{left:?}");
    build();
    assert_eq!(&tree(out), before);
}

#[test]
fn a_build_killed_while_moving_kept_directories_gets_them_back() {
    let (dir, out, build, dead) = killed_build();
    let before = tree(&out);
    let hosts = names(&out.join("hosts"));
    assert!(hosts.len() >= 2, "{hosts:?}");
    // The state a build killed halfway through its swap leaves: the output
    // moved aside, its first kept directory already in the staging, the
    // second not yet, both in the journal.
    let old = dir.path().join(format!(".out.old.{dead}"));
    let tmp = dir.path().join(format!(".out.tmp.{dead}"));
    std::fs::rename(&out, &old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(tmp.join("hosts")).unwrap_or_else(|e| panic!("{e}"));
    let moved = format!("hosts/{}", hosts[0]);
    std::fs::rename(old.join(&moved), tmp.join(&moved)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join(format!(".out.moves.{dead}")),
        format!("{moved}\nhosts/{}\n../escape\n", hosts[1]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    recovered_whole(dir.path(), &out, &before, build);
}

#[test]
fn a_build_killed_while_patching_the_previous_output_gets_it_back() {
    let (dir, out, build, dead) = killed_build();
    let before = tree(&out);
    let hosts = names(&out.join("hosts"));
    // What a build killed halfway through patching leaves: the output
    // moved aside, its manifest replaced by the new one, a new host moved
    // in, a host's directory moved aside but its replacement not yet in.
    let old = dir.path().join(format!(".out.old.{dead}"));
    let tmp = dir.path().join(format!(".out.tmp.{dead}"));
    let replaced = tmp.join(".pgimg-replaced");
    std::fs::rename(&out, &old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(tmp.join("hosts/changed")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(&replaced).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(old.join("manifest.json"), replaced.join("0"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(old.join("manifest.json"), "{}\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(old.join("hosts/added")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(old.join("hosts/added/user-data"), "new\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(old.join("hosts").join(&hosts[0]), replaced.join("2"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join(format!(".out.moves.{dead}")),
        format!(
            "pgimg patch 1\nr manifest.json\na hosts/added\nr hosts/{}\nr hosts/{}\na ../escape\n",
            hosts[0], hosts[1]
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    recovered_whole(dir.path(), &out, &before, build);
}

/// What the fuzz target does with one input (fuzz/fuzz_targets/spec_pipeline.rs).
fn pipeline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source =
        pgimg::source::SourceFile::new("fuzz.yml", pgimg::load::without_bom(text.to_string()));
    let shown = pgimg::spec::redact::redacted(&source);
    assert_eq!(shown.text.lines().count(), source.text.lines().count());
    match pgimg::validate(source, false) {
        Err(diags) => {
            for d in &diags {
                let _ = pgimg::diag::render_human(d, Some(&shown));
                let _ = pgimg::diag::render_json(d);
            }
        }
        Ok(validated) => {
            let inputs = pgimg::BuildInputs {
                roles: pgimg::load::RoleTree::embedded(),
                secrets: Default::default(),
                mapping: Default::default(),
                overlays: Default::default(),
            };
            let _ = pgimg::build(&validated, &inputs);
        }
    }
}

/// Every input the fuzzer found (and the findings above) stays fixed:
/// `fuzz/regressions/` goes through the fuzz target's pipeline without a
/// panic, in bounded time.
#[test]
fn fuzz_regressions() {
    let dir = support::root().join("fuzz/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| pipeline(&data));
        assert!(r.is_ok(), "{} panics", f.display());
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} took {:?}",
            f.display(),
            start.elapsed()
        );
    }
}

/// The check stage is bounded like the parse: 300 hosts with one address
/// give at most 200 problems and PG0004.
#[test]
fn semantic_problems_are_bounded_too() {
    let hosts: String = (0..300)
        .map(|i| format!("          - {{ name: x{i}, address: 10.1.0.11, roles: [haproxy] }}\n"))
        .collect();
    let text = replaced(
        "          - { name: lb1, address: 10.1.0.10, roles: [haproxy] }\n",
        &format!("          - {{ name: lb1, address: 10.1.0.10, roles: [haproxy] }}\n{hosts}"),
    );
    let e = errors(&text);
    assert_eq!(e.len(), 201, "{}", e.len());
    assert_eq!(
        e.iter().filter(|d| d.code == Code::TooManyProblems).count(),
        1
    );
}
