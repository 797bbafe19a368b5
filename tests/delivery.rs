//! Bootable delivery: kickstart, cloud-init user-data and PXE entries.
//!
//! Every host of every example gets a kickstart and a user-data that carry
//! its overlay byte for byte and exactly its packages; hosts with a MAC get
//! both PXE entries; user-data over EC2's limit is compressed when that
//! makes it fit and is a build error, naming the host, when it does not.

use std::collections::BTreeSet;
use std::io::Read;

use pgimg::diag::Code;
use pgimg::load::RoleTree;
use pgimg::render::ArtifactTree;

use crate::support;

/// Secret values the builds below are given, so that a leak would show.
const SECRET: &str = "s3cr3t-never-in-public-artifacts";

fn inputs(roles: RoleTree, v: &pgimg::Validated) -> pgimg::BuildInputs {
    let mut secrets = pgimg::load::SecretValues::default();
    for c in &v.fleet.clusters {
        for r in c.secrets.refs() {
            secrets.values.insert(r.label(), SECRET.to_string());
        }
    }
    pgimg::BuildInputs {
        roles,
        secrets,
        mapping: Default::default(),
        overlays: Default::default(),
    }
}

fn build_text(name: &str, text: &str, roles: RoleTree) -> Result<ArtifactTree, pgimg::Error> {
    let v = support::validate(name, text)
        .unwrap_or_else(|d| panic!("{name} does not validate: {d:#?}"));
    pgimg::build(&v, &inputs(roles, &v))
}

fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(support::root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            (
                format!("examples/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&p).expect("reading example"),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no example specs");
    out
}

fn decode_base64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => panic!("not base64: {:?}", c as char),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// The user-data as text, uncompressed if it was delivered gzip-compressed.
fn user_data_text(bytes: &[u8]) -> String {
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        gunzip(bytes)
    } else {
        bytes.to_vec()
    };
    String::from_utf8(raw).expect("user-data is UTF-8")
}

fn file<'a>(tree: &'a ArtifactTree, path: &str) -> &'a [u8] {
    &tree
        .files
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .bytes
}

fn kickstart_overlay(ks: &str) -> Vec<u8> {
    let start = ks
        .find("<<'PGIMG_OVERLAY'\n")
        .expect("kickstart embeds the overlay")
        + "<<'PGIMG_OVERLAY'\n".len();
    let end = start
        + ks[start..]
            .find("\nPGIMG_OVERLAY\n")
            .expect("end of overlay");
    decode_base64(&ks[start..end])
}

fn kickstart_packages(ks: &str) -> BTreeSet<String> {
    let start = ks.find("\n%packages\n").expect("%packages") + "\n%packages\n".len();
    let end = start + ks[start..].find("\n%end\n").expect("%end");
    ks[start..end]
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn user_data_overlay(doc: &serde_yaml::Value) -> Vec<u8> {
    let files = doc["write_files"].as_sequence().expect("write_files");
    let entry = files
        .iter()
        .find(|f| f["path"].as_str() == Some("/var/lib/pgimg/overlay.tar.gz"))
        .expect("the overlay is a write_files entry");
    assert_eq!(entry["encoding"].as_str(), Some("b64"));
    assert_eq!(entry["owner"].as_str(), Some("root:root"));
    // A string, not the integer an unquoted 0600 would be.
    assert_eq!(entry["permissions"].as_str(), Some("0600"));
    decode_base64(entry["content"].as_str().expect("content"))
}

#[test]
fn every_example_host_has_a_kickstart_and_a_user_data_with_its_overlay() {
    for (name, text) in examples() {
        let v = support::validate(&name, &text).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
        let tree = pgimg::build(&v, &inputs(RoleTree::embedded(), &v))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut without_mac = Vec::new();
        for (_, _, host) in v.fleet.hosts() {
            let base = format!("hosts/{}", host.name);
            let overlay = file(&tree, &format!("{base}/overlay.tar.gz"));
            let rpms: BTreeSet<String> =
                String::from_utf8_lossy(file(&tree, &format!("{base}/rpms.txt")))
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();

            let ks = String::from_utf8(file(&tree, &format!("{base}/kickstart.ks")).to_vec())
                .expect("kickstart is UTF-8");
            assert_eq!(
                kickstart_overlay(&ks),
                overlay,
                "{name}: {}: kickstart overlay differs from overlay.tar.gz",
                host.name
            );
            let mut expected: BTreeSet<String> = rpms.clone();
            expected.extend(["@core".to_string(), "tar".to_string()]);
            assert_eq!(kickstart_packages(&ks), expected, "{name}: {}", host.name);
            assert!(ks.contains("\nmodule --name=postgresql --disable\n"));
            assert!(ks.contains("\nrootpw --lock\n"));
            assert!(
                !ks.contains(SECRET),
                "{name}: {}: secret in kickstart",
                host.name
            );

            let ud_bytes = file(&tree, &format!("{base}/user-data"));
            assert!(
                ud_bytes.len() <= 16_384,
                "{name}: {}: user-data too big",
                host.name
            );
            let ud = user_data_text(ud_bytes);
            assert!(ud.starts_with("#cloud-config\n"), "{name}: {}", host.name);
            assert!(
                !ud.contains(SECRET),
                "{name}: {}: secret in user-data",
                host.name
            );
            let doc: serde_yaml::Value = serde_yaml::from_str(&ud).expect("user-data is YAML");
            assert_eq!(
                user_data_overlay(&doc),
                overlay,
                "{name}: {}: user-data overlay differs from overlay.tar.gz",
                host.name
            );
            let packages: BTreeSet<String> = doc["packages"]
                .as_sequence()
                .expect("packages")
                .iter()
                .map(|p| p.as_str().expect("package name").to_string())
                .collect();
            let mut expected = rpms.clone();
            expected.insert("tar".into());
            assert_eq!(packages, expected, "{name}: {}", host.name);

            let pip = host.has(pgimg::spec::v1::Role::Pg)
                && host.config.patroni.install == pgimg::spec::v1::PatroniInstall::Pip;
            let venv = "python3.12 -m venv /opt/patroni";
            assert_eq!(
                ks.contains(venv),
                pip,
                "{name}: {}: kickstart venv",
                host.name
            );
            assert_eq!(
                ud.contains(venv),
                pip,
                "{name}: {}: user-data venv",
                host.name
            );
            if host.has(pgimg::spec::v1::Role::Pg) {
                // The RPM pin is the RPM's own version, never the pip one.
                let rpm = format!("patroni-{}", host.config.patroni.rpm_version);
                assert_eq!(rpms.contains(&rpm), !pip, "{name}: {}: {rpm}", host.name);
                if !pip {
                    assert!(
                        pgimg::facts::catalog::knows("patroni", &host.config.patroni.rpm_version),
                        "{name}: {}: {rpm} is not a PGDG version",
                        host.name
                    );
                }
                assert_eq!(
                    rpms.contains("python3.12-pip"),
                    pip,
                    "{name}: {}",
                    host.name
                );
            }

            match &host.boot.mac {
                Some(mac) => {
                    let m = format!("01-{}", mac.replace(':', "-"));
                    for p in [format!("pxe/grub.cfg-{m}"), format!("pxe/pxelinux.cfg/{m}")] {
                        let entry = String::from_utf8_lossy(file(&tree, &p)).into_owned();
                        assert!(
                            entry.contains(&format!("/hosts/{}/kickstart.ks", host.name)),
                            "{name}: {p}: {entry}"
                        );
                        assert!(entry.contains("inst.repo="), "{name}: {p}");
                        assert!(
                            entry.contains(&format!("ip={}", host.address))
                                || entry.contains(&format!("ip=[{}]", host.address)),
                            "{name}: {p}"
                        );
                    }
                }
                None => without_mac.push(host.name.clone()),
            }
        }
        let pxe_files = tree.files.keys().filter(|p| p.starts_with("pxe/")).count();
        let with_mac = v
            .fleet
            .hosts()
            .filter(|(_, _, h)| h.boot.mac.is_some())
            .count();
        assert_eq!(
            pxe_files,
            2 * with_mac,
            "{name}: one GRUB and one PXELINUX entry per MAC"
        );
        let notes: Vec<&String> = tree
            .notes
            .iter()
            .filter(|n| n.contains("no PXE entries"))
            .collect();
        if without_mac.is_empty() {
            assert!(notes.is_empty(), "{name}: {notes:?}");
        } else {
            assert_eq!(notes.len(), 1, "{name}: said once: {:?}", tree.notes);
            let n = without_mac.len();
            assert!(
                notes[0].contains(&format!("for {n} host")),
                "{name}: the note counts {n} hosts: {}",
                notes[0]
            );
            // A long list is cut to a sample with the rest counted.
            for h in without_mac.iter().take(12) {
                assert!(notes[0].contains(h.as_str()), "{name}: {h} not listed");
            }
            if n > 12 {
                assert!(
                    notes[0].ends_with(&format!(" and {} more", n - 12)),
                    "{name}: {}",
                    notes[0]
                );
            }
        }
    }
}

#[test]
fn the_reference_example_has_bare_metal_hosts() {
    let text = support::read("examples/reference-cluster.yml");
    let tree = build_text("reference-cluster.yml", &text, RoleTree::embedded()).expect("build");
    assert!(tree.files.keys().any(|p| p.starts_with("pxe/grub.cfg-01-")));
    let ks = String::from_utf8_lossy(file(&tree, "hosts/pg1/kickstart.ks")).into_owned();
    // A dedicated data disk is mounted at the data directory's parent, and owned by postgres.
    assert!(
        ks.contains("logvol /var/lib/pgsql/17 --vgname=vg_pgdata"),
        "{ks}"
    );
    assert!(ks.contains("chown postgres:postgres /var/lib/pgsql/17\n"));
    // The installer's firewall command opens SSH only; %post opens each
    // role port to its sources, as the user-data does, never to everyone.
    assert!(ks.contains(
        "firewall --enabled --service=ssh --remove-service=cockpit --remove-service=dhcpv6-client\n"
    ));
    assert!(!ks.contains("--port="), "{ks}");
    assert!(ks.contains(
        "--add-rich-rule='rule family=\"ipv4\" source address=\"172.31.39.118/32\" port port=\"2380\" protocol=\"tcp\" accept'"
    ));
    let lb = String::from_utf8_lossy(file(&tree, "hosts/haproxy/kickstart.ks")).into_owned();
    assert!(lb.contains("\nsetsebool -P haproxy_connect_any 1\n"));
    assert!(!lb.contains("--port="));
    assert!(lb.contains("port port=\"5000\" protocol=\"tcp\" accept'"));
    assert!(lb.contains("\nautopart\n"));
}

#[test]
fn a_mac_without_an_artifacts_url_is_a_semantic_error() {
    let text = "version: 1
clusters:
  - name: c
    sites:
      - name: s
        hosts:
          - { name: h1, address: 10.0.0.1, roles: [pg, etcd], boot: { mac: '52:54:00:00:00:01' } }
";
    let Err(diags) = support::validate("spec.yml", text) else {
        panic!("a MAC without `repos.artifacts` validated");
    };
    let d = diags
        .iter()
        .find(|d| d.code == Code::PxeWithoutArtifacts)
        .unwrap_or_else(|| panic!("no PG0230 in {diags:#?}"));
    assert_eq!(d.pointer, "/clusters/0/sites/0/hosts/0/boot/mac");
    assert!(d.span.is_some(), "positioned");
}

/// A single-host spec whose common role carries an extra file of `size`
/// bytes that gzip cannot shrink much.
fn big_overlay_build(size: usize) -> Result<ArtifactTree, pgimg::Error> {
    let mut roles = RoleTree::embedded();
    // xorshift: deterministic, incompressible-looking text.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut big = String::with_capacity(size + size / 64);
    for i in 0..size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
        if i % 64 == 63 {
            big.push('\n');
        }
    }
    roles
        .files
        .insert("common/big.txt.hbs".into(), big.into_bytes());
    let role = roles
        .files
        .get_mut("common/role.yaml")
        .expect("common role");
    role.extend_from_slice(
        b"\n  - { template: big.txt.hbs, path: /etc/pgimg-big.txt, owner: root, group: root, mode: \"0644\" }\n",
    );
    let text = "version: 1
clusters:
  - name: c
    settings:
      pgbackrest: { repos: [ { type: posix } ] }
    sites:
      - name: s
        hosts:
          - { name: big1, address: 10.0.0.1, roles: [pg, etcd] }
";
    build_text("big.yml", text, roles)
}

#[test]
fn user_data_over_the_limit_is_compressed_when_that_fits_and_an_error_when_not() {
    // Grows the extra file until the plain user-data passes the limit.
    let mut compressed = None;
    for size in (4_000..40_000).step_by(1_000) {
        let tree = big_overlay_build(size).expect("fits");
        let ud = file(&tree, "hosts/big1/user-data");
        if ud.starts_with(&[0x1f, 0x8b]) {
            compressed = Some((size, tree));
            break;
        }
        assert!(ud.starts_with(b"#cloud-config\n"));
    }
    let (size, tree) = compressed.expect("some size compresses");
    let ud = file(&tree, "hosts/big1/user-data");
    assert!(ud.len() <= 16_384);
    let text = user_data_text(ud);
    assert!(text.len() > 16_384, "compressed only when needed");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    assert_eq!(
        user_data_overlay(&doc),
        file(&tree, "hosts/big1/overlay.tar.gz")
    );
    assert!(
        tree.notes
            .iter()
            .any(|n| n.contains("gzip") && n.contains("big1")),
        "{:?}",
        tree.notes
    );

    // Far bigger: no compression helps, and the build fails before anything is written.
    let err = big_overlay_build(size * 4).expect_err("too big is an error");
    assert!(matches!(err, pgimg::Error::Delivery(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("host big1"), "{msg}");
    assert!(msg.contains("16384"), "{msg}");
    assert!(msg.contains("bytes"), "{msg}");
    assert!(msg.contains("kickstart"), "says what to do: {msg}");
}

#[test]
fn too_big_user_data_fails_the_cli_build_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roles = dir.path().join("roles");
    for (rel, bytes) in RoleTree::embedded().files {
        if rel.starts_with("kickstart/") {
            continue;
        }
        let p = roles.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
    // 60 KB of text that compresses poorly: far over the limit even gzip-compressed.
    let mut big = String::new();
    let mut x: u64 = 88_172_645_463_325_252;
    for i in 0..60_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.push(char::from(b'a' + (x % 26) as u8));
        if i % 64 == 63 {
            big.push('\n');
        }
    }
    std::fs::write(roles.join("common/big.txt.hbs"), big).unwrap();
    let mut role = std::fs::read_to_string(roles.join("common/role.yaml")).unwrap();
    role.push_str("\n  - { template: big.txt.hbs, path: /etc/pgimg-big.txt, owner: root, group: root, mode: \"0644\" }\n");
    std::fs::write(roles.join("common/role.yaml"), role).unwrap();
    let spec = dir.path().join("spec.yml");
    std::fs::write(
        &spec,
        "version: 1
clusters:
  - name: c
    settings:
      pgbackrest: { repos: [ { type: posix } ] }
    sites:
      - name: s
        hosts:
          - { name: big1, address: 10.0.0.1, roles: [pg, etcd] }
",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = std::process::Command::new(support::pgimg())
        .arg("build")
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .arg("--roles")
        .arg(&roles)
        .output()
        .expect("running pgimg");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("host big1: user-data is"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}

/// The firewall lines of a kickstart's `%post` and of a user-data's `runcmd`.
fn firewall_lines(ks: &str, user_data: &str) -> (Vec<String>, Vec<String>) {
    let ks_lines = ks
        .lines()
        .filter(|l| l.starts_with("firewall-offline-cmd "))
        .map(String::from)
        .collect();
    let ud_lines = user_data
        .lines()
        .filter_map(|l| l.strip_prefix("- 'firewall-offline-cmd "))
        .map(|l| {
            let l = l.strip_suffix('\'').unwrap_or(l);
            format!("firewall-offline-cmd {}", l.replace("''", "'"))
        })
        .collect();
    (ks_lines, ud_lines)
}

#[test]
fn the_firewall_opens_each_port_to_its_sources_alike_in_both_install_paths() {
    let text = support::read("examples/reference-cluster.yml")
        .replace(
            "{ name: haproxy, address: 172.31.10.50, roles: [haproxy],",
            "{ name: haproxy, address: 172.31.10.50, roles: [haproxy], settings: { haproxy: { virtual_address: 172.31.10.49 } } }\n          - { name: haproxy2, address: 172.31.10.51, roles: [haproxy], settings: { haproxy: { virtual_address: 172.31.10.49 } },",
        )
        .replace("client_networks: [10.20.0.0/16]", "client_networks: [10.20.0.0/16, fd00:20::/64]");
    let tree = build_text("reference-cluster.yml", &text, RoleTree::embedded()).expect("build");
    let host = |h: &str| {
        let ks =
            String::from_utf8_lossy(file(&tree, &format!("hosts/{h}/kickstart.ks"))).into_owned();
        let ud = user_data_text(file(&tree, &format!("hosts/{h}/user-data")));
        let (k, u) = firewall_lines(&ks, &ud);
        assert_eq!(k, u, "{h}: the two install paths open the same");
        k.join("\n")
    };
    let rule = |src: &str, port: &str| {
        let family = if src.contains(':') { "ipv6" } else { "ipv4" };
        format!(
            "'rule family=\"{family}\" source address=\"{src}\" port port=\"{port}\" protocol=\"tcp\" accept'"
        )
    };
    let pg1 = host("pg1");
    assert!(
        pg1.starts_with("firewall-offline-cmd --add-service=ssh\n"),
        "{pg1}"
    );
    // No port is open to every source any more.
    assert!(!pg1.contains("--add-port"), "{pg1}");
    // etcd's peer port: the other etcd members only.
    let peer: Vec<&str> = pg1
        .lines()
        .filter(|l| l.contains("port=\"2380\""))
        .collect();
    assert_eq!(peer.len(), 1, "{pg1}");
    assert_eq!(peer[0].matches("--add-rich-rule").count(), 2, "{pg1}");
    assert!(
        !peer[0].contains("172.31.10.5"),
        "no HAProxy on etcd's peer port: {pg1}"
    );
    // PostgreSQL: members, both HAProxies, the DR site's members, the client networks.
    for src in [
        "172.31.10.50/32",
        "172.31.10.51/32",
        "10.20.0.0/16",
        "fd00:20::/64",
    ] {
        assert!(pg1.contains(&rule(src, "5432")), "{src} on 5432: {pg1}");
    }
    let dr_member = "172.32.34.169/32";
    assert!(pg1.contains(&rule(dr_member, "5432")), "{pg1}");
    // The REST API: the site's members and HAProxies, never the clients or the DR site.
    assert!(pg1.contains(&rule("172.31.10.51/32", "8008")), "{pg1}");
    assert!(!pg1.contains(&rule("10.20.0.0/16", "8008")), "{pg1}");
    assert!(!pg1.contains(&rule(dr_member, "8008")), "{pg1}");
    // HAProxy: clients on its listeners, the DR members on the write port only, VRRP from the peer.
    let lb = host("haproxy");
    assert!(lb.contains(&rule("10.20.0.0/16", "5000")), "{lb}");
    assert!(lb.contains(&rule(dr_member, "5000")), "{lb}");
    assert!(!lb.contains(&rule(dr_member, "5001")), "{lb}");
    assert!(
        lb.contains("--add-rich-rule='rule family=\"ipv4\" source address=\"172.31.10.51/32\" protocol value=\"vrrp\" accept'"),
        "{lb}"
    );
    assert!(
        !lb.contains("source address=\"172.31.10.50/32\""),
        "not itself: {lb}"
    );
    // Without the firewall, no rule at all.
    let off = text.replace(
        "  os:\n    timezone: UTC",
        "  os:\n    firewall: false\n    timezone: UTC",
    );
    let tree = build_text("reference-cluster.yml", &off, RoleTree::embedded()).expect("build");
    let ks = String::from_utf8_lossy(file(&tree, "hosts/pg1/kickstart.ks")).into_owned();
    assert!(ks.contains("\nfirewall --disabled\n"));
    assert!(!ks.contains("firewall-offline-cmd"));
}
