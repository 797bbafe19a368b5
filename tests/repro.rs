//! Reproducibility and the writer, through the real binary: the same spec
//! gives the same bytes and modes whatever the directory, umask, time zone,
//! locale or home; `SHA256SUMS` verifies the tree; a failed build, a foreign
//! directory and a replaced output behave as documented.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support;

/// Path → (mode, content; `None` for a directory).
type Snapshot = BTreeMap<String, (u32, Option<Vec<u8>>)>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name().min_depth(1) {
        let e = e.expect("walking output");
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
        let content = if e.file_type().is_dir() {
            None
        } else {
            Some(std::fs::read(e.path()).expect("reading output"))
        };
        out.insert(rel, (mode, content));
    }
    out
}

/// The environment one run sees.
struct Env<'a> {
    cwd: &'a Path,
    umask: &'a str,
    tz: &'a str,
    locale: &'a str,
    home: &'a Path,
}

/// Runs `pgimg <args>` through `sh` so the umask applies to pgimg itself.
fn run(env: &Env, args: &[&str]) -> Output {
    let mut script = format!("umask {}; exec \"$0\"", env.umask);
    for i in 0..args.len() {
        script.push_str(&format!(" \"${}\"", i + 1));
    }
    std::fs::create_dir_all(env.home).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(support::pgimg())
        .args(args)
        .current_dir(env.cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home)
        .env("TZ", env.tz)
        .env("LC_ALL", env.locale)
        .env("LANG", env.locale)
        // Same secrets in every run: the secrets/ tree must be reproducible too.
        .env("PGIMG_SUPERUSER_PASSWORD", "repro-superuser")
        .env("PGIMG_REPLICATION_PASSWORD", "repro-replication")
        .env("PGIMG_REWIND_PASSWORD", "repro-rewind")
        .output()
        .expect("running pgimg")
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn example(name: &str) -> String {
    support::root()
        .join("examples")
        .join(format!("{name}.yml"))
        .to_string_lossy()
        .into_owned()
}

fn first_difference(a: &Snapshot, b: &Snapshot) -> Option<String> {
    for (p, va) in a {
        match b.get(p) {
            None => return Some(format!("{p}: only in the first build")),
            Some(vb) if vb.0 != va.0 => {
                return Some(format!("{p}: mode {:04o} vs {:04o}", va.0, vb.0));
            }
            Some(vb) if vb.1 != va.1 => return Some(format!("{p}: content differs")),
            _ => {}
        }
    }
    b.keys()
        .find(|p| !a.contains_key(*p))
        .map(|p| format!("{p}: only in the second build"))
}

/// `sha256sum -c` accepts SHA256SUMS, which lists every public file and no secret.
fn check_sums(out: &Path, snap: &Snapshot) {
    let o = Command::new("sha256sum")
        .args(["--check", "--strict", "--quiet", "SHA256SUMS"])
        .current_dir(out)
        .output()
        .expect("running sha256sum");
    ok(&o, "sha256sum -c SHA256SUMS");
    let sums = String::from_utf8(std::fs::read(out.join("SHA256SUMS")).unwrap()).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("`sha256  path` lines").1)
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "SHA256SUMS is sorted by path");
    let public: Vec<&str> = snap
        .iter()
        .filter(|(p, (_, c))| {
            c.is_some()
                && !p.starts_with("secrets/")
                && *p != "SHA256SUMS"
                && *p != pgimg::write::MARKER
                && *p != ".pgimg-state"
        })
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(listed, public, "SHA256SUMS lists exactly the public files");
}

#[test]
fn repro_same_bytes_in_any_environment() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let env_a = Env {
        cwd: a.path(),
        umask: "077",
        tz: "UTC",
        locale: "C",
        home: &a.path().join("home"),
    };
    let env_b = Env {
        cwd: b.path(),
        umask: "022",
        tz: "Pacific/Auckland",
        locale: "en_US.UTF-8",
        home: &b.path().join("elsewhere/home"),
    };
    for name in ["minimal", "reference-cluster", "fleet"] {
        let spec = example(name);
        let out_a = format!("out-{name}");
        let out_b = format!("nested/build-of-{name}");
        std::fs::create_dir_all(b.path().join("nested")).unwrap();
        ok(&run(&env_a, &["build", &spec, "-o", &out_a]), name);
        ok(&run(&env_b, &["build", &spec, "-o", &out_b]), name);
        let dir_a = a.path().join(&out_a);
        let dir_b = b.path().join(&out_b);
        let snap_a = snapshot(&dir_a);
        let snap_b = snapshot(&dir_b);
        assert!(
            snap_a.keys().any(|p| p.starts_with("secrets/")),
            "{name}: the secrets were supplied"
        );
        if let Some(d) = first_difference(&snap_a, &snap_b) {
            panic!("examples/{name}.yml builds differently: {d}");
        }
        for (p, (mode, content)) in &snap_a {
            if p.starts_with("secrets/") {
                let want = if content.is_some() { 0o600 } else { 0o700 };
                assert_eq!(*mode, want, "{p}: mode {mode:04o}");
            }
        }
        check_sums(&dir_a, &snap_a);
        check_sums(&dir_b, &snap_b);
    }
}

fn default_env(dir: &Path) -> Env<'static> {
    let home: &'static Path = Box::leak(dir.join("home").into_boxed_path());
    let cwd: &'static Path = Box::leak(dir.to_path_buf().into_boxed_path());
    Env {
        cwd,
        umask: "022",
        tz: "UTC",
        locale: "C",
        home,
    }
}

fn no_leftovers(parent: &Path) {
    let stray: Vec<PathBuf> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with('.') && (n.contains(".tmp.") || n.contains(".old."))
        })
        .collect();
    assert!(
        stray.is_empty(),
        "temporary directories left behind: {stray:?}"
    );
}

#[test]
fn repro_failed_build_leaves_previous_output() {
    let t = tempfile::tempdir().unwrap();
    let env = default_env(t.path());
    ok(
        &run(&env, &["build", &example("minimal"), "-o", "out"]),
        "first build",
    );
    let before = snapshot(&t.path().join("out"));
    let bad = t.path().join("bad.yml");
    std::fs::write(&bad, "version: 1\nclusters:\n  - name: x\n    sites: []\n").unwrap();
    let o = run(&env, &["build", bad.to_str().unwrap(), "-o", "out"]);
    assert_eq!(o.status.code(), Some(1), "an invalid spec exits 1");
    assert!(
        first_difference(&before, &snapshot(&t.path().join("out"))).is_none(),
        "the previous output changed"
    );
    no_leftovers(t.path());
}

#[test]
fn repro_refuses_a_foreign_directory() {
    let t = tempfile::tempdir().unwrap();
    let env = default_env(t.path());
    let dir = t.path().join("important");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me\n").unwrap();
    std::fs::write(dir.join("sub/data"), "and me\n").unwrap();
    let before = snapshot(&dir);
    let o = run(&env, &["build", &example("minimal"), "-o", "important"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing"),
        "the error says why: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        first_difference(&before, &snapshot(&dir)).is_none(),
        "a foreign directory was modified"
    );
    no_leftovers(t.path());
}

#[test]
fn repro_replaces_a_previous_output_without_stale_files() {
    let t = tempfile::tempdir().unwrap();
    let env = default_env(t.path());
    ok(
        &run(&env, &["build", &example("fleet"), "-o", "out"]),
        "fleet",
    );
    ok(
        &run(&env, &["build", &example("minimal"), "-o", "out"]),
        "minimal over fleet",
    );
    ok(
        &run(&env, &["build", &example("minimal"), "-o", "fresh"]),
        "minimal",
    );
    if let Some(d) = first_difference(
        &snapshot(&t.path().join("fresh")),
        &snapshot(&t.path().join("out")),
    ) {
        panic!("a rebuild differs from a fresh build: {d}");
    }
    no_leftovers(t.path());
}
