//! The reference example renders the reference guide's Patroni settings on
//! every member, with that member's own addresses, plus the DR wiring the
//! guide does by hand (standby_cluster, the permanent slot, pg_hba).

use std::collections::BTreeSet;
use std::io::Read;

use serde_yaml::Value;

use crate::golden::build_example;

/// The guide's hosts: name, address, site scope.
const PG_HOSTS: &[(&str, &str, &str)] = &[
    ("pg1", "172.31.47.229", "pg_cluster"),
    ("pg2", "172.31.34.169", "pg_cluster"),
    ("pg3", "172.31.39.118", "pg_cluster"),
    ("dr-pg1", "172.32.47.229", "dr_cluster"),
    ("dr-pg2", "172.32.34.169", "dr_cluster"),
    ("dr-pg3", "172.32.39.118", "dr_cluster"),
];
const SOURCE_HAPROXY: &str = "172.31.10.50";
const SLOT: &str = "patroni_standby_leader";

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .unwrap_or_else(|| panic!("patroni.yml has no `{path}` (missing `{part}`)"));
    }
    cur
}

fn str_of<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string: {:?}", get(v, path)))
}

fn site_addresses(scope: &str) -> Vec<&'static str> {
    PG_HOSTS
        .iter()
        .filter(|(_, _, s)| *s == scope)
        .map(|(_, a, _)| *a)
        .collect()
}

fn replication_sources(doc: &Value) -> BTreeSet<String> {
    get(doc, "postgresql.pg_hba")
        .as_sequence()
        .expect("pg_hba is a list")
        .iter()
        .map(|r| r.as_str().expect("pg_hba rows are strings"))
        .filter(|r| r.split_whitespace().nth(1) == Some("replication"))
        .map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            assert_eq!(
                (f[0], f[2], f.get(4).copied()),
                // TLS is on by default: replication only over SSL.
                ("hostssl", "replicator", Some("scram-sha-256")),
                "replication row `{r}`"
            );
            f[3].strip_suffix("/32")
                .unwrap_or_else(|| panic!("replication row `{r}` is not one host"))
                .to_string()
        })
        .collect()
}

#[test]
fn reference_patroni_yml_matches_the_guide() {
    let tree = build_example("reference-cluster");
    for &(host, addr, scope) in PG_HOSTS {
        let path = format!("hosts/{host}/rootfs/etc/patroni/patroni.yml");
        let text = std::str::from_utf8(&tree.files[&path].bytes).unwrap();
        let doc: Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let ctx = |what: &str| format!("{host}: {what}");

        assert_eq!(str_of(&doc, "scope"), scope, "{}", ctx("scope"));
        assert_eq!(str_of(&doc, "name"), host, "{}", ctx("name"));
        for key in ["restapi.listen", "restapi.connect_address"] {
            assert_eq!(str_of(&doc, key), format!("{addr}:8008"), "{}", ctx(key));
        }
        for key in ["postgresql.listen", "postgresql.connect_address"] {
            assert_eq!(str_of(&doc, key), format!("{addr}:5432"), "{}", ctx(key));
        }
        let etcd: Vec<&str> = get(&doc, "etcd3.hosts")
            .as_sequence()
            .expect("etcd3.hosts is a list")
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        let want: Vec<String> = site_addresses(scope)
            .iter()
            .map(|a| format!("{a}:2379"))
            .collect();
        assert_eq!(etcd, want, "{}", ctx("etcd3.hosts: the site's own etcd"));

        let dcs = get(&doc, "bootstrap.dcs");
        assert_eq!(get(dcs, "ttl").as_u64(), Some(30), "{}", ctx("ttl"));
        assert_eq!(
            get(dcs, "loop_wait").as_u64(),
            Some(10),
            "{}",
            ctx("loop_wait")
        );
        assert_eq!(
            get(dcs, "retry_timeout").as_u64(),
            Some(10),
            "{}",
            ctx("retry")
        );
        assert_eq!(
            get(dcs, "maximum_lag_on_failover").as_u64(),
            Some(1048576),
            "{}",
            ctx("maximum_lag_on_failover")
        );
        assert_eq!(get(dcs, "postgresql.use_pg_rewind").as_bool(), Some(true));
        assert_eq!(get(dcs, "postgresql.use_slots").as_bool(), Some(true));

        // Path-bearing parameters live in the member's own section; the
        // effective set is both, and the two must not disagree.
        let shared = get(dcs, "postgresql.parameters").as_mapping().unwrap();
        let local = get(&doc, "postgresql.parameters").as_mapping().unwrap();
        for (k, v) in local {
            if let Some(s) = shared.get(k) {
                assert_eq!(s, v, "{}", ctx("parameter set twice with different values"));
            }
        }
        let param = |name: &str| {
            local
                .get(name)
                .or_else(|| shared.get(name))
                .unwrap_or_else(|| panic!("{}", ctx(&format!("no parameter `{name}`"))))
        };
        assert_eq!(
            param("hot_standby").as_str(),
            Some("on"),
            "{}",
            ctx("hot_standby")
        );
        assert_eq!(param("wal_keep_size").as_str(), Some("256MB"));
        assert_eq!(param("max_wal_senders").as_u64(), Some(10));
        assert_eq!(param("max_replication_slots").as_u64(), Some(10));
        assert_eq!(param("wal_level").as_str(), Some("replica"));
        assert_eq!(param("archive_mode").as_str(), Some("on"));
        let archive = param("archive_command").as_str().unwrap();
        assert!(
            archive.contains("pgbackrest")
                && archive.contains(&format!("--stanza={scope} "))
                && archive.ends_with("archive-push %p"),
            "{}",
            ctx(&format!("archive_command `{archive}`"))
        );

        let initdb: Value =
            serde_yaml::from_str("[{encoding: UTF8}, {locale: en_US.UTF-8}, data-checksums]")
                .unwrap();
        assert_eq!(get(&doc, "bootstrap.initdb"), &initdb, "{}", ctx("initdb"));

        assert_eq!(str_of(&doc, "postgresql.bin_dir"), "/usr/pgsql-17/bin");
        assert_eq!(
            str_of(&doc, "postgresql.data_dir"),
            "/var/lib/pgsql/17/data"
        );
        for (role, user) in [
            ("superuser", "postgres"),
            ("replication", "replicator"),
            ("rewind", "rewind_user"),
        ] {
            let a = get(&doc, &format!("postgresql.authentication.{role}"));
            assert_eq!(str_of(a, "username"), user, "{}", ctx(role));
            assert!(a.get("password").is_none(), "{}", ctx("password in file"));
        }
        let methods: Value = serde_yaml::from_str("[pgbackrest, basebackup]").unwrap();
        assert_eq!(
            get(&doc, "postgresql.create_replica_methods"),
            &methods,
            "{}",
            ctx("create_replica_methods")
        );
        let restore = str_of(&doc, "postgresql.pgbackrest.command");
        assert!(
            restore.contains(&format!("--stanza={scope} ")) && restore.ends_with("--delta restore"),
            "{}",
            ctx(&format!("restore command `{restore}`"))
        );
        assert_eq!(
            get(&doc, "postgresql.pgbackrest.keep_data").as_bool(),
            Some(true)
        );
        assert_eq!(
            get(&doc, "postgresql.pgbackrest.no_params").as_bool(),
            Some(true)
        );
        assert_eq!(str_of(&doc, "postgresql.basebackup.checkpoint"), "fast");
        for tag in ["nofailover", "noloadbalance", "clonefrom", "nosync"] {
            assert_eq!(
                get(&doc, &format!("tags.{tag}")).as_bool(),
                Some(false),
                "{}",
                ctx(tag)
            );
        }

        // DR wiring, both ends.
        let mut want_repl: BTreeSet<String> = site_addresses(scope)
            .iter()
            .map(|a| a.to_string())
            .collect();
        if scope == "dr_cluster" {
            let sc = get(dcs, "standby_cluster");
            assert_eq!(
                str_of(sc, "host"),
                SOURCE_HAPROXY,
                "{}",
                ctx("standby host")
            );
            assert_eq!(
                get(sc, "port").as_u64(),
                Some(5000),
                "{}",
                ctx("standby port")
            );
            assert_eq!(str_of(sc, "primary_slot_name"), SLOT);
            assert!(
                dcs.get("slots").is_none(),
                "{}",
                ctx("a DR site keeps no slot")
            );
        } else {
            assert!(dcs.get("standby_cluster").is_none(), "{}", ctx("standby"));
            assert_eq!(
                str_of(dcs, &format!("slots.{SLOT}.type")),
                "physical",
                "{}",
                ctx("permanent slot for the DR site")
            );
            want_repl.extend(site_addresses("dr_cluster").iter().map(|a| a.to_string()));
            want_repl.insert(SOURCE_HAPROXY.to_string());
        }
        assert_eq!(
            replication_sources(&doc),
            want_repl,
            "{}",
            ctx("pg_hba replication rows")
        );
        let last: Vec<&str> = get(&doc, "postgresql.pg_hba")
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        assert!(
            last.iter().all(|r| !r.contains(" trust")),
            "{}",
            ctx("no trust row")
        );
    }
}

/// Strings the guide uses as placeholder passwords, and the values a
/// build is given: none may appear in any public artifact.
#[test]
fn no_secret_in_any_public_artifact() {
    const PLACEHOLDERS: &[&str] = &[
        "ChangeMe",
        "Rep-Pass",
        "PgSuperPass",
        "Rewind-Pass",
        "password:",
    ];
    const GIVEN: &[(&str, &str)] = &[
        ("env:PGIMG_SUPERUSER_PASSWORD", "Sup3r-Secret-Value-1"),
        ("env:PGIMG_REPLICATION_PASSWORD", "Repl-Secret-Value-2"),
        ("env:PGIMG_REWIND_PASSWORD", "Rewind-Secret-Value-3"),
        ("env:PGIMG_RESTAPI_PASSWORD", "Rest-Secret-Value-4"),
        ("env:PGIMG_BACKUP_CIPHER_PASS", "Cipher-Secret-Value-5"),
        ("env:PGIMG_S3_KEY", "S3-Key-Value-6"),
        ("env:PGIMG_S3_KEY_SECRET", "S3-Secret-Value-7"),
        ("env:PGIMG_ETCD_ROOT_PASSWORD", "Etcd-Root-Value-8"),
        ("env:PGIMG_ETCD_PASSWORD", "Etcd-Patroni-Value-9"),
        ("env:PGIMG_HAPROXY_STATS_PASSWORD", "Stats-Value-10"),
    ];
    let text = crate::support::read("examples/reference-cluster.yml");
    let v = crate::support::validate("examples/reference-cluster.yml", &text).unwrap();
    let mut secrets = pgimg::load::SecretValues::default();
    for (label, value) in GIVEN {
        secrets.values.insert(label.to_string(), value.to_string());
    }
    // The TLS files, made as `secrets init` makes them: a private key's body
    // (any of its base64 lines) must not reach a public artifact either.
    let today = pgimg::certs::Day::from_unix(1_800_000_000);
    let ca = pgimg::certs::new_ca("pg_cluster", today).unwrap();
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in pgimg::secrets::references(&v.parsed.spec) {
        if r.kind != pgimg::secrets::ValueKind::Pem {
            continue;
        }
        let label = r.label();
        let value = if label.ends_with("/ca.crt") {
            ca.cert.clone()
        } else {
            let host = label.rsplit('/').next().unwrap().split('.').next().unwrap();
            let names = pgimg::plan::secrets::TlsNames {
                name: host.to_string(),
                fqdn: host.to_string(),
                addresses: vec!["10.0.0.1".to_string()],
            };
            let pem = pgimg::certs::host_cert("pg_cluster", &ca.key, &names, today).unwrap();
            if label.ends_with(".key") {
                let body = pem.key.lines().nth(1).unwrap().to_string();
                keys.push((label.clone(), body));
                pem.key
            } else {
                pem.cert
            }
        };
        secrets.values.insert(label, value.trim_end().to_string());
    }
    assert!(!keys.is_empty(), "the reference example has host keys");
    let inputs = pgimg::BuildInputs {
        roles: pgimg::load::RoleTree::embedded(),
        secrets,
        mapping: Default::default(),
        overlays: Default::default(),
    };
    let tree = pgimg::build(&v, &inputs).unwrap();
    let mut seen_in_secrets = BTreeSet::new();
    for (path, a) in &tree.files {
        let mut bytes = a.bytes.clone();
        if path.ends_with(".tar.gz") {
            bytes.clear();
            flate2::read::GzDecoder::new(a.bytes.as_slice())
                .read_to_end(&mut bytes)
                .unwrap();
        }
        let text = String::from_utf8_lossy(&bytes);
        if !pgimg::render::manifest::is_public(path) {
            assert_eq!(a.mode, 0o600, "{path}: secret files are 0600");
            for (_, value) in GIVEN {
                if text.contains(value) {
                    seen_in_secrets.insert(*value);
                }
            }
            continue;
        }
        for p in PLACEHOLDERS {
            assert!(!text.contains(p), "{path} contains `{p}`");
        }
        for (label, value) in GIVEN {
            assert!(
                !text.contains(value),
                "{path} contains the value of {label}"
            );
        }
        for (label, body) in &keys {
            assert!(
                !text.contains(body.as_str()),
                "{path} contains the key of {label}"
            );
            assert!(
                !text.contains("PRIVATE KEY"),
                "{path} contains a private key"
            );
        }
    }
    assert_eq!(
        seen_in_secrets.len(),
        GIVEN.len(),
        "every supplied secret reaches secrets/"
    );
}
