//! First boot with no hand step: one test (or more) per defect of the
//! December 2026 artifact review that pgimg fixes at its root — the
//! repositories and versions a host installs, its backup credentials and
//! storage, boot safety, etcd member replacement, settings at the right
//! layer, and what the install paths do to the overlay's directories.
//! Each builds a spec in memory and reads the artifacts back.

use pgimg::load::RoleTree;
use pgimg::render::ArtifactTree;

use crate::support;

/// A small valid spec: one bare-metal site of three pg+etcd hosts and an
/// HAProxy, on a shared NFS repository. `{extra}` lands under `defaults:`,
/// `{host}` in pg1's own settings, `{boot}` in pg1's `boot`.
fn spec(defaults: &str, host: &str, boot: &str) -> String {
    format!(
        "version: 1
defaults:
  network: {{ gateway: 10.1.0.1, dns: [10.1.0.2] }}
  repos: {{ artifacts: 'http://boot.example.com/pgimg' }}
{defaults}
clusters:
  - name: main
    settings:
      pgbackrest:
        repos: [{{ type: posix, path: /srv/backup, mount: {{ server: nfs1.example.com, export: /exports/main }} }}]
    sites:
      - name: east
        hosts:
          - {{ name: pg1, address: 10.1.0.11, roles: [pg, etcd], boot: {{ mac: '52:54:00:00:00:11'{boot} }}, settings: {{ {host} }} }}
          - {{ name: pg2, address: 10.1.0.12, roles: [pg, etcd] }}
          - {{ name: pg3, address: 10.1.0.13, roles: [pg, etcd] }}
          - {{ name: lb1, address: 10.1.0.10, roles: [haproxy] }}
secrets:
  restapi_password: {{ env: PGIMG_RESTAPI_PASSWORD }}
  etcd_root_password: {{ env: PGIMG_ETCD_ROOT_PASSWORD }}
  etcd_password: {{ env: PGIMG_ETCD_PASSWORD }}
  haproxy_stats_password: {{ env: PGIMG_HAPROXY_STATS_PASSWORD }}
  backup_cipher_pass: {{ env: PGIMG_BACKUP_CIPHER_PASS }}
"
    )
}

fn build(text: &str) -> ArtifactTree {
    let v = support::validate("firstboot.yml", text)
        .unwrap_or_else(|d| panic!("spec does not validate: {d:#?}\n{text}"));
    assert!(
        v.warnings.is_empty(),
        "unexpected warnings: {:#?}",
        v.warnings
    );
    pgimg::build(
        &v,
        &pgimg::BuildInputs {
            roles: RoleTree::embedded(),
            secrets: Default::default(),
            mapping: Default::default(),
            overlays: Default::default(),
        },
    )
    .expect("build")
}

fn file(tree: &ArtifactTree, path: &str) -> String {
    let a = tree
        .files
        .get(path)
        .unwrap_or_else(|| panic!("no {path} in the build"));
    // User-data over EC2's 16 KB is delivered gzip-compressed.
    if a.bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read as _;
        let mut s = String::new();
        flate2::read::GzDecoder::new(&a.bytes[..])
            .read_to_string(&mut s)
            .expect("gzip UTF-8");
        return s;
    }
    String::from_utf8(a.bytes.clone()).expect("UTF-8")
}

fn codes(text: &str) -> Vec<String> {
    support::diagnostics("firstboot.yml", text, false)
        .iter()
        .map(|d| d.code.as_str().to_string())
        .collect()
}

const OLD_EXTRAS: &str = "/common/pgdg-rhel9-extras/";
const EXTRAS: &str = "https://download.postgresql.org/pub/repos/yum/extras/redhat/rhel-9-$basearch";

// Item 1: repositories.

#[test]
fn extras_is_the_current_location_on_etcd_hosts_only_and_limited_to_etcd() {
    let t = build(&spec("", "", ""));
    let ks = file(&t, "hosts/pg1/kickstart.ks");
    let ud = file(&t, "hosts/pg1/user-data");
    for text in [&ks, &ud] {
        assert!(
            !text.contains(OLD_EXTRAS),
            "the dead extras URL is rendered"
        );
        assert!(text.contains(EXTRAS));
    }
    assert!(ks.contains(&format!(
        "repo --name=pgdg-rhel9-extras --baseurl={EXTRAS} --includepkgs=etcd*"
    )));
    assert!(
        ks.contains("includepkgs=etcd*\nPGIMG_REPOS"),
        "the .repo file limits extras"
    );
    assert!(ud.contains("includepkgs: 'etcd*'"));
    // HAProxy comes from AppStream: its host has no PGDG repository at all.
    for f in ["kickstart.ks", "user-data"] {
        let lb = file(&t, &format!("hosts/lb1/{f}"));
        assert!(!lb.contains("pgdg"), "lb1 {f} has a PGDG repository");
    }
}

#[test]
fn every_repository_url_can_be_overridden_in_all_three_formats() {
    let repos = "  repos:
    artifacts: 'http://boot.example.com/pgimg'
    baseos: 'http://mirror.example.com/rocky/9/BaseOS/x86_64/os/'
    appstream: 'http://mirror.example.com/rocky/9/AppStream/x86_64/os/'
    pgdg: 'http://mirror.example.com/pgdg'
    pgdg_extras: 'http://mirror.example.com/pgdg-extras/el9'
    pypi: 'http://mirror.example.com/pypi/simple'";
    let t = build(&spec(repos, "", "").replace(
        "  repos: { artifacts: 'http://boot.example.com/pgimg' }\n",
        "",
    ));
    let ks = file(&t, "hosts/pg1/kickstart.ks");
    let ud = file(&t, "hosts/pg1/user-data");
    assert!(ks.contains("url --url=http://mirror.example.com/rocky/9/BaseOS/x86_64/os/\n"));
    for text in [&ks, &ud] {
        assert!(text.contains("http://mirror.example.com/rocky/9/AppStream/x86_64/os/"));
        assert!(text.contains("http://mirror.example.com/pgdg/17/redhat/rhel-9-$basearch"));
        assert!(text.contains("http://mirror.example.com/pgdg/common/redhat/rhel-9-$basearch"));
        assert!(text.contains("http://mirror.example.com/pgdg-extras/el9"));
        assert!(text.contains("--index-url http://mirror.example.com/pypi/simple"));
        assert!(
            !text.contains("download.postgresql.org/pub/repos/yum/1"),
            "a PGDG URL ignores the mirror"
        );
        assert!(!text.contains("pypi.org"));
        assert!(!text.contains("dl.rockylinux.org"));
    }
}

#[test]
fn the_kickstart_installs_from_the_installer_tree_when_given() {
    let installer = "  repos: { artifacts: 'http://boot.example.com/pgimg', installer: 'http://boot.example.com/rocky/9/BaseOS/x86_64/os/' }";
    let text = spec("", "", "").replace(
        "  repos: { artifacts: 'http://boot.example.com/pgimg' }",
        installer,
    );
    let t = build(&text);
    let ks = file(&t, "hosts/pg1/kickstart.ks");
    assert!(ks.contains("url --url=http://boot.example.com/rocky/9/BaseOS/x86_64/os/\n"));
}

// Item 2: versions that exist.

#[test]
fn the_patroni_rpm_pin_is_pgdgs_never_the_pip_version() {
    let t = build(&spec(
        "  patroni: { version: 4.1.5, install: rpm }\n  etcd: { version: 3.6.8 }",
        "",
        "",
    ));
    let rpms = file(&t, "hosts/pg1/rpms.txt");
    let rpm = pgimg::facts::catalog::pins::patroni_rpm();
    assert!(rpms.contains(&format!("patroni-{rpm}\n")), "{rpms}");
    assert!(rpms.contains(&format!("patroni-etcd-{rpm}\n")));
    assert!(
        !rpms.contains("4.1.5"),
        "the pip version became an RPM pin:\n{rpms}"
    );
    assert!(pgimg::facts::catalog::knows("patroni", &rpm));
}

#[test]
fn default_pins_come_from_the_catalog_and_unknown_pins_warn_with_the_list() {
    let t = build(&spec("", "", ""));
    let rpms = file(&t, "hosts/pg1/rpms.txt");
    for package in ["etcd", "pgbackrest"] {
        let v = pgimg::facts::catalog::newest(package).expect("listed");
        assert!(rpms.contains(&format!("{package}-{v}\n")), "{rpms}");
    }
    let text = spec("  patroni: { install: rpm, rpm_version: 4.1.5 }", "", "");
    let diags = support::diagnostics("firstboot.yml", &text, false);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code.as_str(), "PG0303");
    let expected = diags[0].expected.clone().unwrap_or_default();
    assert!(expected.contains("4.1.0"), "{expected}");
    assert!(diags[0].help.as_deref().unwrap_or("").contains("pip"));
}

// Item 3: S3 credentials on bare metal.

#[test]
fn s3_credentials_default_to_shared_keys_on_a_bare_metal_site() {
    let s3 = "repos: [{ type: s3, bucket: bk, region: eu-west-1, key: { env: S3_KEY }, key_secret: { env: S3_SECRET } }]";
    let text = spec("", "", "").replace(
        "repos: [{ type: posix, path: /srv/backup, mount: { server: nfs1.example.com, export: /exports/main } }]",
        s3,
    );
    let t = build(&text);
    let conf = file(&t, "hosts/pg1/rootfs/etc/pgbackrest/pgbackrest.conf");
    assert!(!conf.contains("repo1-s3-key-type=auto"), "{conf}");
    // Without key references the defaulted `shared` says why it is the default.
    let keyless = text.replace(", key: { env: S3_KEY }, key_secret: { env: S3_SECRET }", "");
    let diags = support::diagnostics("firstboot.yml", &keyless, false);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code.as_str(), "PG0210");
    assert!(
        diags[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("bare-metal")
    );
    // Explicit `auto` there is an error with a hint.
    let auto = text.replace("region: eu-west-1,", "region: eu-west-1, key_type: auto,");
    assert_eq!(codes(&auto), ["PG0300"]);
}

// Item 4: shared backup storage.

#[test]
fn a_shared_posix_repository_is_a_mount_unit_patroni_requires() {
    let t = build(&spec("", "", ""));
    let unit = file(&t, "hosts/pg2/rootfs/etc/systemd/system/srv-backup.mount");
    assert!(
        unit.contains("What=nfs1.example.com:/exports/main\n"),
        "{unit}"
    );
    assert!(unit.contains("Where=/srv/backup\n"));
    assert!(unit.contains("Type=nfs\n"));
    let patroni = file(&t, "hosts/pg2/rootfs/etc/systemd/system/patroni.service");
    assert!(
        patroni.contains("RequiresMountsFor=/srv/backup\n"),
        "{patroni}"
    );
    let list = file(&t, "hosts/pg2/overlay.list");
    assert!(
        list.lines()
            .any(|l| l.contains("postgres") && l.ends_with(" /srv/backup/")),
        "the repository path is not created owned by postgres:\n{list}"
    );
    let ks = file(&t, "hosts/pg2/kickstart.ks");
    assert!(
        ks.contains("srv-backup.mount"),
        "the mount unit is not enabled"
    );
    assert!(file(&t, "hosts/pg2/rpms.txt").contains("nfs-utils\n"));
}

#[test]
fn an_unshared_posix_repository_and_a_missing_repository_are_errors() {
    let text = spec("", "", "");
    let unshared = text.replace(
        ", mount: { server: nfs1.example.com, export: /exports/main }",
        "",
    );
    assert_eq!(codes(&unshared), ["PG0301"]);
    let none = text.replace(
        "      pgbackrest:\n        repos: [{ type: posix, path: /srv/backup, mount: { server: nfs1.example.com, export: /exports/main } }]\n",
        "      etcd: { token: main-etcd }\n",
    );
    let diags = support::diagnostics("firstboot.yml", &none, false);
    assert!(
        !diags.is_empty() && diags.iter().all(|d| d.code.as_str() == "PG0211"),
        "{diags:#?}"
    );
    assert!(diags[0].help.is_some(), "no hint");
}

// Item 5: boot safety.

#[test]
fn pxe_boots_the_local_disk_unless_the_host_opts_in_to_installing() {
    let t = build(&spec("", "", ""));
    let grub = file(&t, "pxe/grub.cfg-01-52-54-00-00-00-11");
    let pxelinux = file(&t, "pxe/pxelinux.cfg/01-52-54-00-00-00-11");
    assert!(grub.contains("set default=local\n"), "{grub}");
    assert!(pxelinux.contains("DEFAULT local\n"), "{pxelinux}");
    assert!(pxelinux.contains("LOCALBOOT 0"));
    let t = build(&spec(
        "",
        "",
        ", install: true, disk: { os_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4 }",
    ));
    let grub = file(&t, "pxe/grub.cfg-01-52-54-00-00-00-11");
    let pxelinux = file(&t, "pxe/pxelinux.cfg/01-52-54-00-00-00-11");
    assert!(grub.contains("set default=install\n"), "{grub}");
    assert!(pxelinux.contains("DEFAULT install\n"), "{pxelinux}");
    // Installing by default without a named disk is refused.
    assert_eq!(codes(&spec("", "", ", install: true")), ["PG0302"]);
}

#[test]
fn the_kickstart_wipes_only_named_disks_and_takes_stable_names() {
    let t = build(&spec("", "", ""));
    let ks = file(&t, "hosts/pg2/kickstart.ks");
    assert!(
        !ks.contains("clearpart"),
        "a host without named disks gets clearpart:\n{ks}"
    );
    assert!(!ks.contains("zerombr"));
    let t = build(&spec(
        "",
        "",
        ", disk: { os_disk: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4, data_disk: 'disk/by-path/pci-0000:00:05.0-scsi-0:0:1:0' }",
    ));
    let ks = file(&t, "hosts/pg1/kickstart.ks");
    let disks = "disk/by-id/wwn-0x5000c500a1b2c3d4,disk/by-path/pci-0000:00:05.0-scsi-0:0:1:0";
    assert!(
        ks.contains(&format!("ignoredisk --only-use={disks}\n")),
        "{ks}"
    );
    assert!(ks.contains(&format!("clearpart --all --initlabel --drives={disks}\n")));
    assert!(ks.contains("bootloader --boot-drive=disk/by-id/wwn-0x5000c500a1b2c3d4\n"));
    assert!(ks.contains("--ondisk=disk/by-path/pci-0000:00:05.0-scsi-0:0:1:0"));
}

// Item 6: etcd member replacement.

#[test]
fn a_member_can_join_an_existing_etcd_cluster_and_the_runbook_says_how() {
    let t = build(&spec("", "etcd: { initial_cluster_state: existing }", ""));
    let pg1 = file(&t, "hosts/pg1/rootfs/etc/etcd/etcd.conf");
    let pg2 = file(&t, "hosts/pg2/rootfs/etc/etcd/etcd.conf");
    assert!(
        pg1.contains("ETCD_INITIAL_CLUSTER_STATE=existing\n"),
        "{pg1}"
    );
    assert!(pg2.contains("ETCD_INITIAL_CLUSTER_STATE=new\n"));
    let runbook = file(&t, "clusters/main/etcd-runbook.md");
    for needle in [
        "member remove <ID>",
        "member add pg1 --peer-urls=https://10.1.0.11:2380",
        "initial_cluster_state: existing",
        "endpoint health --cluster",
    ] {
        assert!(
            runbook.contains(needle),
            "runbook lacks `{needle}`:\n{runbook}"
        );
    }
}

// Item 7: network, time zone, majors, locale.

#[test]
fn network_and_locale_rules() {
    let text = spec("", "", "");
    // Outside the site's subnet: the address, and its gateway for that host.
    let mut moved = codes(&text.replace("address: 10.1.0.10,", "address: 10.1.7.10,"));
    moved.sort();
    assert_eq!(moved, ["PG0304", "PG0305"]);
    assert_eq!(
        codes(&text.replace("gateway: 10.1.0.1,", "gateway: 10.2.0.1,")),
        ["PG0305"]
    );
    assert_eq!(codes(&text.replace("dns: [10.1.0.2] }", "}")), ["PG0307"]);
    assert_eq!(
        codes(&spec("  os: { timezone: Mars/Olympus }", "", "")),
        ["PG0306"]
    );
    assert_eq!(
        codes(&spec("", "postgresql: { major: 16 }", "")),
        ["PG0308"]
    );
    // IP-literal repositories need no DNS server.
    let literal = spec(
        "  patroni: { install: rpm }\n  etcd: { version: 3.6.8 }",
        "",
        "",
    )
    .replace("dns: [10.1.0.2] }", "}")
    .replace(
        "  repos: { artifacts: 'http://boot.example.com/pgimg' }",
        "  repos: { artifacts: 'http://10.1.0.3/pgimg', baseos: 'http://10.1.0.3/BaseOS/', appstream: 'http://10.1.0.3/AppStream/', pgdg: 'http://10.1.0.3/pgdg', pgdg_extras: 'http://10.1.0.3/extras' }",
    );
    assert_eq!(codes(&literal), Vec::<String>::new());
    // initdb's locale brings its language pack; C.UTF-8 needs none.
    let t = build(&spec(
        "  postgresql: { initdb: { locale: de_DE.UTF-8 } }",
        "",
        "",
    ));
    assert!(file(&t, "hosts/pg1/rpms.txt").contains("glibc-langpack-de\n"));
    let t = build(&spec(
        "  postgresql: { initdb: { locale: C.UTF-8 } }",
        "",
        "",
    ));
    assert!(!file(&t, "hosts/pg1/rpms.txt").contains("glibc-langpack"));
}

// Item 8: cluster-wide settings stay cluster-wide.

#[test]
fn host_parameters_are_local_and_host_timings_are_refused() {
    let t = build(&spec(
        "  postgresql: { parameters: { max_connections: 300 } }",
        "postgresql: { parameters: { work_mem: 64MB } }",
        "",
    ));
    let yml = file(&t, "hosts/pg1/rootfs/etc/patroni/patroni.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&yml).expect("patroni.yml");
    let dcs = &doc["bootstrap"]["dcs"]["postgresql"]["parameters"];
    let local = &doc["postgresql"]["parameters"];
    assert!(
        dcs["work_mem"].is_null(),
        "a host's parameter is in bootstrap.dcs:\n{yml}"
    );
    assert_eq!(local["work_mem"].as_str(), Some("64MB"), "{yml}");
    assert!(
        !dcs["max_connections"].is_null(),
        "a fleet parameter left bootstrap.dcs"
    );
    let pg2: serde_yaml::Value =
        serde_yaml::from_str(&file(&t, "hosts/pg2/rootfs/etc/patroni/patroni.yml")).expect("yaml");
    assert!(pg2["postgresql"]["parameters"]["work_mem"].is_null());
    let diags = support::diagnostics(
        "firstboot.yml",
        &spec("", "patroni: { ttl: 40 }", ""),
        false,
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code.as_str(), "PG0309");
    assert!(
        diags[0]
            .expected
            .as_deref()
            .unwrap_or("")
            .contains("site `east`")
    );
}

// Item 9: the listing tells the truth.

#[test]
fn both_install_paths_apply_the_listed_directory_owners_and_modes() {
    let t = build(&spec("", "", ""));
    let ks = file(&t, "hosts/pg1/kickstart.ks");
    let ud = file(&t, "hosts/pg1/user-data");
    for (what, text) in [("kickstart", &ks), ("user-data", &ud)] {
        let tar = text.find("tar --no-overwrite-dir").expect("tar");
        let chown = text
            .find("chown etcd:etcd /var/lib/etcd")
            .unwrap_or_else(|| panic!("{what}: no chown of /var/lib/etcd"));
        let chmod = text
            .find("chmod 0700 /var/lib/etcd")
            .unwrap_or_else(|| panic!("{what}: no chmod of /var/lib/etcd"));
        assert!(
            tar < chown && tar < chmod,
            "{what}: owners applied before unpacking"
        );
        assert!(text.contains("/var/spool/pgbackrest"), "{what}");
    }
    // Every directory the listing shows with a non-default owner or mode is covered.
    let list = file(&t, "hosts/pg1/overlay.list");
    for line in list.lines().filter(|l| l.starts_with('d')) {
        let path = line.rsplit(' ').next().unwrap_or("").trim_end_matches('/');
        if line.contains("postgres") || line.contains("etcd ") {
            assert!(
                ks.contains(&format!(" {path}")),
                "kickstart does not fix {path}:\n{line}"
            );
        }
    }
}
