//! `pgimg build --embed-secrets`, run for real: the embedded kickstart
//! through ksvalidator and the embedded user-data through cloud-init's
//! schema; then the kickstart's secrets block run by bash, and the
//! user-data's deferred `write_files` by cloud-init's own module, each
//! chrooted into a scratch root (a private mount namespace with the
//! machine's /usr bound read-only, and `postgres` and `etcd` in its
//! /etc/passwd), where every file must land with the contract's bytes,
//! owner, group and mode. Needs root (chroot, mount).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgimg::plan::secrets::{Format, SecretFile};
use pgimg::render::install::embed::{self, Secret};

use crate::checks;
use crate::tools::{self, tool};

const SPEC: &str = "examples/small.yml";
const S3: &[(&str, &str)] = &[
    ("PGIMG_S3_KEY", "AKIDEMBEDDED0001"),
    ("PGIMG_S3_KEY_SECRET", "EmbeddedSecretKey0002"),
];
/// The stand-in accounts of the scratch root (EL9's ids for postgres).
const USERS: &[(&str, u32)] = &[("root", 0), ("postgres", 26), ("etcd", 990)];

fn pgimg(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgimg"))
        .args(args)
        .current_dir(dir)
        .envs(S3.iter().copied())
        .output()
        .expect("pgimg");
    assert!(out.status.success(), "pgimg {args:?}: {out:?}");
}

/// small.yml (two kickstart hosts, one cloud host) built with its secrets
/// and `--embed-secrets`; the output directory.
fn embedded_build(dir: &Path) -> PathBuf {
    std::fs::copy(crate::suite::root().join(SPEC), dir.join("spec.yml")).unwrap();
    pgimg(dir, &["secrets", "init", "spec.yml"]);
    pgimg(
        dir,
        &[
            "build",
            "spec.yml",
            "-o",
            "out",
            "--secrets-env",
            "secrets.env",
            "--embed-secrets",
            "-q",
        ],
    );
    dir.join("out")
}

/// `file PATH OWNER:GROUP MODE` of a host's public secrets.list.
fn contract(out: &Path, host: &str) -> Vec<(String, String, String, u32)> {
    std::fs::read_to_string(out.join(format!("hosts/{host}/secrets.list")))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("file "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (o, g) = w[1].split_once(':').unwrap();
            (
                w[0].to_string(),
                o.to_string(),
                g.to_string(),
                u32::from_str_radix(w[2], 8).unwrap(),
            )
        })
        .collect()
}

fn id(name: &str) -> u32 {
    USERS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// A scratch root: /usr (bound at run time), the merged-/usr links, an
/// /etc with the stand-in accounts, /tmp and /root.
fn scratch_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in ["usr", "etc", "tmp", "root", "var/lib/pgsql"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    for l in ["bin", "sbin", "lib", "lib64"] {
        if Path::new("/usr").join(l).exists() {
            std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).unwrap();
        }
    }
    let passwd: String = USERS
        .iter()
        .map(|(n, i)| format!("{n}:x:{i}:{i}::/:/bin/sh\n"))
        .collect();
    let group: String = USERS.iter().map(|(n, i)| format!("{n}:x:{i}:\n")).collect();
    std::fs::write(root.join("etc/passwd"), passwd).unwrap();
    std::fs::write(root.join("etc/group"), group).unwrap();
    std::fs::write(
        root.join("etc/nsswitch.conf"),
        "passwd: files\ngroup: files\n",
    )
    .unwrap();
    if Path::new("/etc/ld.so.cache").exists() {
        std::fs::copy("/etc/ld.so.cache", root.join("etc/ld.so.cache")).unwrap();
    }
    root
}

/// Runs `argv` chrooted into `root`, /usr bound read-only in a mount
/// namespace of its own (gone with the process).
fn in_root(root: &Path, argv: &[&str]) -> tools::Output {
    let script = "set -e; mount --bind /usr \"$1/usr\"; mount -o remount,bind,ro \"$1/usr\"; \
                  r=$1; shift; exec chroot \"$r\" \"$@\"";
    let out = tools::run(
        Command::new(tool("unshare").unwrap())
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(root)
            .args(argv),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.success(),
        "{argv:?} in the scratch root {}",
        out.report()
    );
    out
}

/// The kickstart's secrets block, BEGIN to END.
fn block(ks: &str) -> String {
    let start = ks.find(embed::BEGIN).expect("the secrets block");
    let end = ks.find(embed::END).expect("its end") + embed::END.len();
    format!("{}\n", &ks[start..end])
}

fn assert_landed(root: &Path, path: &str, bytes: &[u8], owner: &str, group: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(&p).unwrap_or_else(|e| panic!("{path}: {e}")),
        bytes,
        "{path}: content"
    );
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!(m.mode() & 0o7777, mode, "{path}: mode");
    assert_eq!((m.uid(), m.gid()), (id(owner), id(group)), "{path}: owner");
    let leftover = p.with_file_name(format!(
        "{}.pgimg-new",
        p.file_name().unwrap().to_string_lossy()
    ));
    assert!(!leftover.exists(), "{path}: temporary file left");
}

#[test]
fn embedded_install_files_pass_ksvalidator_and_cloud_init_schema() {
    tools::versions();
    let tmp = crate::tempdir();
    let out = embedded_build(tmp.path());
    for host in ["small-db1", "small-db2"] {
        let work = tmp.path().join(format!("ks-{host}"));
        std::fs::create_dir_all(&work).unwrap();
        checks::kickstart(&out.join(format!("secrets/{host}/kickstart.ks")), &work)
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    let work = tmp.path().join("ud");
    std::fs::create_dir_all(&work).unwrap();
    let cfg = checks::user_data(&out.join("secrets/small-db3/user-data"), &work)
        .unwrap_or_else(|e| panic!("small-db3: {e}"));
    assert!(cfg.contains("defer: true"), "{cfg}");
}

#[test]
fn the_embedded_kickstart_block_installs_the_contract_and_scrubs_the_copies() {
    tools::versions();
    let tmp = crate::tempdir();
    let out = embedded_build(tmp.path());
    let host = "small-db1";
    let ks = std::fs::read_to_string(out.join(format!("secrets/{host}/kickstart.ks"))).unwrap();
    let root = scratch_root(tmp.path());
    // anaconda's copies of the kickstart, as it leaves them before %post.
    for copy in ["root/anaconda-ks.cfg", "root/original-ks.cfg"] {
        std::fs::write(root.join(copy), &ks).unwrap();
    }
    let script = root.join("tmp/ks-script-embedded");
    std::fs::write(
        &script,
        format!("set -euo pipefail\numask 022\n{}", block(&ks)),
    )
    .unwrap();
    in_root(&root, &["/bin/bash", "/tmp/ks-script-embedded"]);
    let files = contract(&out, host);
    assert!(files.len() >= 5, "{files:?}");
    for (path, owner, group, mode) in &files {
        let want = std::fs::read(out.join(format!("secrets/{host}{path}"))).unwrap();
        assert_landed(&root, path, &want, owner, group, *mode);
    }
    assert!(
        !script.exists(),
        "the script with the secrets stayed in /tmp"
    );
    // Every line of every here-document: base64, 76 characters but the last.
    let payload: Vec<&str> = ks
        .lines()
        .scan(false, |inside, l| {
            let was = *inside;
            if l.ends_with(&format!("<<'{}'", embed::DELIMITER)) {
                *inside = true;
            } else if l == embed::DELIMITER {
                *inside = false;
            }
            Some((was && *inside).then_some(l))
        })
        .flatten()
        .filter(|l| l.len() >= 8)
        .collect();
    assert!(payload.len() > 10, "{payload:?}");
    for copy in ["root/anaconda-ks.cfg", "root/original-ks.cfg"] {
        let text = std::fs::read_to_string(root.join(copy)).unwrap();
        assert!(text.contains("pgimg_secret /etc/patroni/patroni.env root root 0600"));
        let kept: Vec<&&str> = payload.iter().filter(|l| text.contains(**l)).collect();
        assert!(kept.is_empty(), "{copy} keeps {} payload lines", kept.len());
        for (path, ..) in &files {
            let value = std::fs::read_to_string(out.join(format!("secrets/{host}{path}"))).unwrap();
            for line in value
                .lines()
                .filter(|l| l.len() > 12 && !l.starts_with("-----"))
            {
                assert!(!text.contains(line), "{copy} still holds a line of {path}");
            }
        }
    }
}

#[test]
fn hostile_values_round_trip_byte_for_byte_through_the_kickstart_block() {
    tools::versions();
    let tmp = crate::tempdir();
    let root = scratch_root(tmp.path());
    let file = |path: &'static str, owner: &'static str, mode: u32| SecretFile {
        path,
        owner,
        group: owner,
        mode,
        readers: "test",
        format: Format::Env,
        entries: Vec::new(),
    };
    let hostile: Vec<(SecretFile, Vec<u8>)> = vec![
        (
            file("/etc/patroni/patroni.env", "root", 0o600),
            b"A='quoted' \"double\" $(touch /tmp/pwned) `touch /tmp/pwned2` ${HOME}\nPGIMG_SECRET\n'PGIMG_SECRET'\nEOF\n\\n \x01\xff".to_vec(),
        ),
        (
            file("/var/lib/pgsql/.pgpass", "postgres", 0o600),
            b"-n -e --help\n- leading dash\nno trailing newline".to_vec(),
        ),
        (file("/etc/pgimg/tls/etcd.key", "etcd", 0o640), Vec::new()),
        (file("/etc/pgimg/tls/ca.crt", "root", 0o644), b"PGIMG_SECRET".to_vec()),
    ];
    let secrets: Vec<Secret> = hostile
        .iter()
        .map(|(f, b)| Secret {
            file: f.clone(),
            bytes: b.clone(),
        })
        .collect();
    let script = root.join("tmp/ks-script-hostile");
    std::fs::write(
        &script,
        format!(
            "set -euo pipefail\numask 022\n{}\n",
            embed::kickstart_block(&secrets)
        ),
    )
    .unwrap();
    in_root(&root, &["/bin/bash", "/tmp/ks-script-hostile"]);
    for (f, bytes) in &hostile {
        assert_landed(&root, f.path, bytes, f.owner, f.group, f.mode);
    }
    for pwned in ["tmp/pwned", "tmp/pwned2"] {
        assert!(!root.join(pwned).exists() && !Path::new("/").join(pwned).exists());
    }
}

#[test]
fn cloud_init_writes_the_embedded_user_data_files_with_the_contract() {
    tools::versions();
    let tmp = crate::tempdir();
    let out = embedded_build(tmp.path());
    let host = "small-db3";
    let cfg = checks::cloud_config_of(
        &std::fs::read(out.join(format!("secrets/{host}/user-data"))).unwrap(),
    )
    .unwrap();
    let root = scratch_root(tmp.path());
    std::fs::write(root.join("tmp/cloud-config.yaml"), &cfg).unwrap();
    // cloud-init's own module, as its final stage runs the deferred entries
    // (cc_write_files_deferred: the entries with `defer: true`).
    let py = tools::interpreter_of(&tool("cloud-init").unwrap()).unwrap();
    let program = "import yaml\n\
                   from cloudinit.config.cc_write_files import write_files\n\
                   cfg = yaml.safe_load(open('/tmp/cloud-config.yaml'))\n\
                   deferred = [f for f in cfg['write_files'] if f.get('defer')]\n\
                   assert deferred\n\
                   write_files('write_files_deferred', deferred, 'root:root')\n";
    in_root(&root, &[py.to_str().unwrap(), "-c", program]);
    let files = contract(&out, host);
    assert!(files.len() >= 5, "{files:?}");
    let mut seen = BTreeMap::new();
    for (path, owner, group, mode) in &files {
        let want = std::fs::read(out.join(format!("secrets/{host}{path}"))).unwrap();
        assert_landed(&root, path, &want, owner, group, *mode);
        seen.insert(path.clone(), ());
    }
    assert_eq!(seen.len(), files.len());
}
