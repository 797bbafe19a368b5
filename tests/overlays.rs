//! User files (`overlays/<scope>/<path as on the host>`): read by
//! `load::overlays`, merged per host by the plan stage, and then in the
//! host's rootfs, overlay.tar.gz, overlay.list, manifest and closure.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support;

fn put(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("creating directories");
    std::fs::write(&p, text).expect("writing");
}

fn build_with(dir: &Path) -> Result<pgimg::render::ArtifactTree, pgimg::Error> {
    let v = support::validate(
        "examples/reference-cluster.yml",
        &support::read("examples/reference-cluster.yml"),
    )
    .unwrap_or_else(|d| panic!("the reference example is valid: {d:?}"));
    let overlays = pgimg::load::overlays(&dir.join("overlays"))?;
    let inputs = pgimg::BuildInputs {
        roles: pgimg::load::RoleTree::embedded(),
        secrets: Default::default(),
        mapping: Default::default(),
        overlays,
    };
    pgimg::build(&v, &inputs)
}

fn text(tree: &pgimg::render::ArtifactTree, path: &str) -> Option<String> {
    tree.files
        .get(path)
        .map(|a| String::from_utf8_lossy(&a.bytes).into_owned())
}

fn error(dir: &Path) -> String {
    match build_with(dir) {
        Ok(_) => panic!("the build should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn scopes_layer_from_all_to_one_host() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let plain = build_with(d).expect("builds without overlays/");
    put(d, "overlays/all/etc/motd", "every host\n");
    put(d, "overlays/cluster/pg_cluster/etc/motd", "the cluster\n");
    put(d, "overlays/role/haproxy/etc/motd", "a load balancer\n");
    put(d, "overlays/site/pg_cluster/dr/etc/motd", "the DR site\n");
    put(d, "overlays/host/pg1/etc/motd", "pg1 alone\n");
    put(
        d,
        "overlays/host/pg2/usr/local/bin/hello",
        "#!/bin/sh\necho hello\n",
    );
    let exe = d.join("overlays/host/pg2/usr/local/bin/hello");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tree = build_with(d).expect("builds");
    for (host, motd) in [
        ("pg1", "pg1 alone\n"),
        ("pg2", "the cluster\n"),
        ("haproxy", "a load balancer\n"),
        ("dr-pg1", "the DR site\n"),
        ("dr-haproxy", "the DR site\n"),
    ] {
        assert_eq!(
            text(&tree, &format!("hosts/{host}/rootfs/etc/motd")).as_deref(),
            Some(motd),
            "{host}"
        );
        let list = text(&tree, &format!("hosts/{host}/overlay.list")).expect("overlay.list");
        assert!(
            list.contains(" root:root ") && list.contains(" /etc/motd\n"),
            "{host}:\n{list}"
        );
    }
    let list = text(&tree, "hosts/pg2/overlay.list").expect("overlay.list");
    assert!(
        list.lines()
            .any(|l| l.starts_with("-0755 root:root") && l.ends_with(" /usr/local/bin/hello")),
        "an executable file stays executable:\n{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("d0755 root:root") && l.ends_with(" /usr/local/bin/")),
        "parents are explicit"
    );
    // In the tarball, the manifest and the closure of every host.
    let manifest: serde_json::Value =
        serde_json::from_slice(&tree.files["manifest.json"].bytes).expect("manifest");
    let listed = manifest["hosts"]["pg1"]["artifacts"].to_string();
    assert!(listed.contains("hosts/pg1/rootfs/etc/motd"), "{listed}");
    for host in plain.closures.keys() {
        assert_ne!(
            plain.closures[host], tree.closures[host],
            "{host}: its closure covers the new file"
        );
        assert_ne!(
            plain.files[&format!("hosts/{host}/overlay.tar.gz")].bytes,
            tree.files[&format!("hosts/{host}/overlay.tar.gz")].bytes,
            "{host}: the archive carries it"
        );
    }
}

#[test]
fn the_sidecar_sets_owner_and_mode_and_declares_an_override() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    put(
        d,
        "overlays/role/haproxy/etc/haproxy/haproxy.cfg",
        "global\n",
    );
    let e = error(d);
    assert!(
        e.contains("overlays/role/haproxy/etc/haproxy/haproxy.cfg")
            && e.contains("haproxy/haproxy.cfg.hbs")
            && e.contains("replaces: true"),
        "the collision names both files and the way out: {e}"
    );
    put(
        d,
        "overlays/attributes.yaml",
        "role/haproxy/etc/haproxy/haproxy.cfg: { replaces: true, mode: \"0640\", group: haproxy }\n",
    );
    let tree = build_with(d).expect("an override declared builds");
    assert_eq!(
        text(&tree, "hosts/haproxy/rootfs/etc/haproxy/haproxy.cfg").as_deref(),
        Some("global\n")
    );
    let list = text(&tree, "hosts/haproxy/overlay.list").expect("overlay.list");
    assert!(
        list.lines().any(
            |l| l.starts_with("-0640 root:haproxy") && l.ends_with(" /etc/haproxy/haproxy.cfg")
        ),
        "{list}"
    );
}

/// What a case is, how to set it up in a fresh directory, and what the error must say.
type Case<'a> = (&'a str, &'a dyn Fn(&Path), &'a str);

#[test]
fn a_path_that_escapes_or_collides_is_an_error() {
    let cases: [Case; 7] = [
        (
            "absolute link",
            &|d| {
                std::fs::create_dir_all(d.join("overlays/all/etc")).expect("dirs");
                std::os::unix::fs::symlink("/etc/shadow", d.join("overlays/all/etc/pw"))
                    .expect("link");
            },
            "its target `/etc/shadow` is absolute",
        ),
        (
            "a link out of the root",
            &|d| {
                std::fs::create_dir_all(d.join("overlays/all/etc")).expect("dirs");
                std::os::unix::fs::symlink("../../x", d.join("overlays/all/etc/pw")).expect("link");
            },
            "points outside the host's root file system",
        ),
        (
            "`..` in the sidecar",
            &|d| {
                put(
                    d,
                    "overlays/attributes.yaml",
                    "../../etc/passwd: { mode: \"0600\" }\n",
                )
            },
            "escapes overlays/",
        ),
        (
            "a directory pgimg creates",
            &|d| put(d, "overlays/host/pg1/etc/patroni", "x\n"),
            "`/etc/patroni` on host pg1 is already a directory pgimg creates",
        ),
        (
            "inside a rendered file",
            &|d| put(d, "overlays/host/pg1/etc/patroni/patroni.yml/x", "x\n"),
            "would be inside `/etc/patroni/patroni.yml`",
        ),
        (
            "an unknown host",
            &|d| put(d, "overlays/host/pg9/etc/motd", "x\n"),
            "overlays/host/pg9/etc/motd: the spec has no host `pg9`",
        ),
        (
            "an unknown scope",
            &|d| put(d, "overlays/hosts/pg1/etc/motd", "x\n"),
            "unknown scope `hosts`",
        ),
    ];
    for (what, setup, expected) in cases {
        let dir = tempfile::tempdir().expect("temporary directory");
        setup(dir.path());
        let e = error(dir.path());
        assert!(e.contains(expected), "{what}: {e}");
    }
    // Two roles putting the same path on one host: neither wins silently.
    let dir = tempfile::tempdir().expect("temporary directory");
    put(dir.path(), "overlays/role/pg/etc/motd", "pg\n");
    put(dir.path(), "overlays/role/etcd/etc/motd", "etcd\n");
    let e = error(dir.path());
    assert!(
        e.contains("overlays/role/etcd/etc/motd and overlays/role/pg/etc/motd"),
        "{e}"
    );
}

#[test]
fn the_binary_reads_overlays_beside_the_spec() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    std::fs::write(d.join("spec.yml"), support::read("examples/minimal.yml")).expect("spec");
    put(d, "overlays/all/etc/motd", "hello\n");
    let out = std::process::Command::new(support::pgimg())
        .args(["-q", "build", "spec.yml", "-o", "out"])
        .current_dir(d)
        .output()
        .expect("running pgimg");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/hosts/app-db1/rootfs/etc/motd"))
            .expect("the user file"),
        "hello\n"
    );
    put(d, "overlays/all/etc/hosts", "127.0.0.1 localhost\n");
    let out = std::process::Command::new(support::pgimg())
        .args(["build", "spec.yml", "-o", "out"])
        .current_dir(d)
        .output()
        .expect("running pgimg");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("overlays/all/etc/hosts: `/etc/hosts`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/hosts/app-db1/rootfs/etc/motd")).expect("kept"),
        "hello\n",
        "a failed build leaves the previous output"
    );
}
