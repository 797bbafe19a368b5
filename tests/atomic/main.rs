//! A build killed at any moment leaves the previous output intact, and the
//! next build cleans up after it. Kills a 10,000-host build (`kill -9`) at
//! spread-out points of its run (three); run it with `--release`
//! (as `scripts/test` does): a debug build of 10,000 hosts is slow.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

const HOSTS: usize = 10_000;

fn spec(changed: bool) -> String {
    let mut s = String::from(
        "version: 1\n\
         secrets:\n\
         \x20 superuser_password: { env: KILL_SUPERUSER_PASSWORD }\n\
         \x20 replication_password: { env: KILL_REPLICATION_PASSWORD }\n\
         \x20 rewind_password: { env: KILL_REWIND_PASSWORD }\n\
         defaults:\n\
         \x20 network: { domain: kill.example.net }\n\
         \x20 pgbackrest:\n\
         \x20   repos: [{ type: s3, bucket: kill-backups, region: eu-central-1 }]\n\
         clusters:\n",
    );
    // Every cluster changes in the second spec, so a rebuild renders them all.
    let nofile = if changed { 70000 } else { 65536 };
    for c in 0..HOSTS / 4 {
        let net = format!("10.{}.{}", c / 250, c % 250);
        s.push_str(&format!(
            "  - name: c{c}\n    settings: {{ os: {{ limits: {{ nofile: {nofile} }} }} }}\n    sites:\n      - name: main\n        hosts:\n"
        ));
        for h in 1..=3 {
            s.push_str(&format!(
                "          - {{ name: c{c}-pg{h}, address: {net}.{}, roles: [pg, etcd] }}\n",
                10 + h
            ));
        }
        s.push_str(&format!(
            "          - {{ name: c{c}-lb, address: {net}.5, roles: [haproxy] }}\n"
        ));
    }
    s
}

fn pgimg(spec: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgimg"));
    cmd.arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .env("KILL_SUPERUSER_PASSWORD", "kill-superuser-secret")
        .env("KILL_REPLICATION_PASSWORD", "kill-replication-secret")
        .env("KILL_REWIND_PASSWORD", "kill-rewind-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Every file of the output with its sha256 (the `.pgimg-output` marker included).
fn snapshot(out: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(out).sort_by_file_name() {
        let e = e.expect("walking the output");
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(out)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(e.path()).expect("reading the output");
            let sum: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            m.insert(rel, sum);
        }
    }
    m
}

fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .expect("reading the parent")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out."))
        .collect()
}

#[test]
fn a_killed_build_leaves_the_previous_output_and_the_next_build_cleans_up() {
    // On a tmpfs when there is one: the renames that make the swap atomic
    // are the same on any file system, and 320,000 files written and hashed
    // several times cost minutes on a slow disk.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let (spec_a, spec_b) = (dir.path().join("a.yml"), dir.path().join("b.yml"));
    std::fs::write(&spec_a, spec(false)).unwrap();
    std::fs::write(&spec_b, spec(true)).unwrap();
    let out = dir.path().join("out");

    let t = Instant::now();
    assert!(
        pgimg(&spec_a, &out).status().unwrap().success(),
        "the first build"
    );
    let cold = t.elapsed();
    let before = snapshot(&out);
    println!(
        "cold build of {HOSTS} hosts: {:.2} s, {} files",
        cold.as_secs_f64(),
        before.len()
    );

    // Kill points spread over the whole run, from the first milliseconds
    // (parsing) to the end (the swap), each printed so a failure can be replayed.
    let kills = 3;
    for i in 0..kills {
        let at = cold.mul_f64((i as f64 + 0.5) / kills as f64 * 1.1);
        let mut child = pgimg(&spec_b, &out).spawn().expect("starting the build");
        std::thread::sleep(at);
        let finished = child.try_wait().expect("polling the build").is_some();
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "kill {i} after {:.2} s (build already done: {finished})",
            at.as_secs_f64()
        );
        if finished {
            // It won the race: the output is the new build, whole.
            let now = snapshot(&out);
            assert!(now.contains_key("manifest.json"));
            continue;
        }
        // Either untouched, or (killed between the two renames) moved aside:
        // the next build must bring it back. Check through a build of the
        // same spec as the original, which then has nothing to render.
        let o = pgimg(&spec_a, &out).output().expect("rebuilding");
        assert!(o.status.success(), "the build after kill {i} failed");
        assert_eq!(
            snapshot(&out),
            before,
            "kill {i} damaged the previous output"
        );
        assert_eq!(
            leftovers(dir.path()),
            Vec::<String>::new(),
            "kill {i} left staging behind"
        );
    }
    assert!(
        pgimg(&spec_b, &out).status().unwrap().success(),
        "the final build"
    );
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    let after = snapshot(&out);
    assert_ne!(after, before, "the final build changed nothing");
}
