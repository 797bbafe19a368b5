//! Day two in production: one test per concern of the rendered artifacts
//! (archive recovery, the DR site's repositories, the DR slot's cap, etcd's
//! compaction, HAProxy, the DR lag check, fencing, host tuning and timers,
//! the per-site DCS file). The reference example, and variants of it with one
//! setting changed, are built in memory.

use std::process::Command;

use serde_yaml::Value;

use crate::golden::build_example;
use crate::support;

type Tree = pgimg::render::ArtifactTree;

fn text(tree: &Tree, path: &str) -> String {
    let a = tree
        .files
        .get(path)
        .unwrap_or_else(|| panic!("the build has no {path}"));
    String::from_utf8(a.bytes.clone()).expect("utf-8")
}

fn yaml(tree: &Tree, path: &str) -> Value {
    serde_yaml::from_str(&text(tree, path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |cur, k| {
        cur.get(k)
            .unwrap_or_else(|| panic!("no `{path}` (missing `{k}`)"))
    })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string"))
}

/// The reference example with `from` replaced by `to` (exactly once).
fn build_variant(from: &str, to: &str) -> Tree {
    let rel = "examples/reference-cluster.yml";
    let original = support::read(rel);
    assert_eq!(original.matches(from).count(), 1, "`{from}` in {rel}");
    let text = original.replace(from, to);
    let validated = support::validate(rel, &text).unwrap_or_else(|d| panic!("{d:#?}"));
    let inputs = pgimg::BuildInputs {
        roles: pgimg::load::RoleTree::embedded(),
        secrets: Default::default(),
        mapping: Default::default(),
        overlays: Default::default(),
    };
    pgimg::build(&validated, &inputs).unwrap_or_else(|e| panic!("{e}"))
}

const PG: &[&str] = &["pg1", "pg2", "pg3", "dr-pg1", "dr-pg2", "dr-pg3"];
const PRIMARY_HAPROXY: &str = r#"- { name: haproxy, address: 172.31.10.50, roles: [haproxy], boot: { mac: "52:54:00:1f:0a:32" } }"#;

fn patroni(tree: &Tree, host: &str) -> Value {
    yaml(
        tree,
        &format!("hosts/{host}/rootfs/etc/patroni/patroni.yml"),
    )
}

#[test]
fn item1_every_member_restores_archived_wal() {
    let tree = build_example("reference-cluster");
    for host in PG {
        let stanza = if host.starts_with("dr-") {
            "dr_cluster"
        } else {
            "pg_cluster"
        };
        let doc = patroni(&tree, host);
        assert_eq!(
            str_at(&doc, "postgresql.recovery_conf.restore_command"),
            format!(
                "/usr/bin/pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza={stanza} archive-get %f \"%p\""
            ),
            "{host}"
        );
    }
    // The DR standby leader reads the source's archive from the source's
    // repository, numbered after the DR site's own, in the source's stanza.
    let dr = patroni(&tree, "dr-pg1");
    assert_eq!(
        str_at(&dr, "bootstrap.dcs.standby_cluster.restore_command"),
        "/usr/bin/pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=pg_cluster --repo=2 archive-get %f \"%p\""
    );
    assert!(
        at(&patroni(&tree, "pg1"), "bootstrap.dcs")
            .get("standby_cluster")
            .is_none()
    );
}

#[test]
fn item2_the_dr_site_writes_only_to_its_own_repositories() {
    let tree = build_example("reference-cluster");
    let conf = text(&tree, "hosts/dr-pg1/rootfs/etc/pgbackrest/pgbackrest.conf");
    let (global, stanzas) = conf
        .split_once("\n[dr_cluster]\n")
        .expect("a [dr_cluster] section");
    assert!(
        global.contains("repo1-s3-bucket=your-pgbackrest-dr-bucket\n"),
        "{global}"
    );
    assert!(
        !global.contains("repo2-"),
        "only the DR site's own repositories are global"
    );
    assert!(
        global.contains("\narchive-async=y\n")
            && global.contains("\narchive-push-queue-max=8192MiB\n")
    );
    let source = stanzas
        .split_once("\n[pg_cluster]\n")
        .expect("the source's stanza")
        .1;
    assert!(
        source.contains("repo2-s3-bucket=your-pgbackrest-bucket\n"),
        "{source}"
    );
    // Scheduled and first backups name each repository.
    let backup = text(&tree, "hosts/dr-pg1/rootfs/usr/local/libexec/pgimg/backup");
    assert!(
        backup.contains("for repo in 1; do") && backup.contains("--repo=\"$repo\""),
        "{backup}"
    );
    let first = text(
        &tree,
        "hosts/dr-pg1/rootfs/usr/local/libexec/pgimg/first-backup",
    );
    assert!(
        first.contains("--repo=\"$repo\" --type=full backup"),
        "{first}"
    );
    // The source's shared S3 keys reach the DR hosts under the source repository's number.
    let notes = tree.notes.join("\n");
    assert!(notes.contains("PGBACKREST_REPO2_S3_KEY"), "{notes}");
    let runbook = text(&tree, "clusters/pg_cluster/dr-runbook-dr.md");
    assert!(
        runbook.contains("## 8. Cold restore") && runbook.contains("--stanza=pg_cluster --repo=2")
    );
}

#[test]
fn item3_the_dr_slot_is_bounded_and_watched_from_the_source() {
    let tree = build_example("reference-cluster");
    let doc = patroni(&tree, "pg1");
    assert_eq!(
        str_at(
            &doc,
            "bootstrap.dcs.postgresql.parameters.max_slot_wal_keep_size"
        ),
        "16384MB"
    );
    let varied = build_variant(
        "    major: 17\n",
        "    major: 17\n    max_slot_wal_keep_size_mb: 4096\n",
    );
    assert_eq!(
        str_at(
            &patroni(&varied, "pg2"),
            "bootstrap.dcs.postgresql.parameters.max_slot_wal_keep_size"
        ),
        "4096MB"
    );
    for host in ["pg1", "pg2", "pg3"] {
        let script = text(
            &tree,
            &format!("hosts/{host}/rootfs/usr/local/libexec/pgimg/slot-check"),
        );
        assert!(
            script.contains("for slot in patroni_standby_leader; do")
                && script.contains("safe_wal_size")
        );
        assert!(tree.files.contains_key(&format!(
            "hosts/{host}/rootfs/etc/systemd/system/pgimg-slot-check.timer"
        )));
    }
    assert!(
        !tree
            .files
            .contains_key("hosts/dr-pg1/rootfs/usr/local/libexec/pgimg/slot-check")
    );
    let check = text(&tree, "clusters/pg_cluster/check");
    // The slot check goes through HAProxy as the superuser, which the
    // reference example keeps off the network (`postgresql.superuser_remote`).
    assert!(check.contains(
        "skip  pg_cluster: the superuser is not reachable over the network (postgresql.superuser_remote)"
    ));
}

#[test]
fn item4_etcd_compacts_and_is_maintained() {
    let tree = build_variant(
        "    install: pip\n",
        "    install: pip\n  etcd:\n    heartbeat_interval_ms: 200\n    election_timeout_ms: 2000\n    auto_compaction_retention_hours: 2\n",
    );
    for host in ["pg1", "dr-pg2"] {
        let env = text(&tree, &format!("hosts/{host}/rootfs/etc/etcd/etcd.conf"));
        for line in [
            "ETCD_AUTO_COMPACTION_MODE=periodic",
            "ETCD_AUTO_COMPACTION_RETENTION=2",
            "ETCD_QUOTA_BACKEND_BYTES=4294967296",
            "ETCD_HEARTBEAT_INTERVAL=200",
            "ETCD_ELECTION_TIMEOUT=2000",
        ] {
            assert!(
                env.lines().any(|l| l == line),
                "{host}: no `{line}` in\n{env}"
            );
        }
        let script = text(
            &tree,
            &format!("hosts/{host}/rootfs/usr/local/libexec/pgimg/etcd-maintenance"),
        );
        assert!(script.contains("snapshot save") && script.contains("etcdctl defrag"));
    }
    // Members of a site defragment at different minutes.
    let minutes: Vec<String> = ["pg1", "pg2", "pg3"]
        .iter()
        .map(|h| {
            let t = text(
                &tree,
                &format!("hosts/{h}/rootfs/etc/systemd/system/etcd-maintenance.timer"),
            );
            t.lines()
                .find(|l| l.starts_with("OnCalendar="))
                .expect("OnCalendar")
                .to_string()
        })
        .collect();
    assert_eq!(
        minutes,
        [
            "OnCalendar=*-*-* 03:00:00",
            "OnCalendar=*-*-* 03:15:00",
            "OnCalendar=*-*-* 03:30:00"
        ]
    );
}

#[test]
fn item5_haproxy_drops_privileges_bounds_lag_and_queues() {
    let tree = build_example("reference-cluster");
    let process = text(&tree, "hosts/haproxy/rootfs/etc/haproxy/pgimg-process.cfg");
    for line in [
        "    user haproxy",
        "    group haproxy",
        "    chroot /var/lib/haproxy",
        "    stats socket /var/lib/haproxy/stats mode 600 level admin",
    ] {
        assert!(process.lines().any(|l| l == line), "no `{line}`");
    }
    let unit = text(
        &tree,
        "hosts/haproxy/rootfs/etc/systemd/system/haproxy.service.d/pgimg.conf",
    );
    assert!(
        unit.contains("\nExecStart=\nExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/pgimg-process.cfg -p /run/haproxy.pid\n"),
        "{unit}"
    );
    let cfg = text(&tree, "hosts/haproxy/rootfs/etc/haproxy/haproxy.cfg");
    assert!(cfg.contains("option httpchk GET /replica?lag=16777216"));
    // max_connections 100 - superuser_reserved_connections 3 - headroom 5.
    assert!(
        cfg.contains("server pg1 172.31.47.229:5432 maxconn 92 check port 8008"),
        "{cfg}"
    );
    assert!(
        !tree
            .files
            .contains_key("hosts/haproxy/rootfs/etc/keepalived/keepalived.conf")
    );

    // A second HAProxy with a virtual address: keepalived on both, the budget
    // shared, and the DR site follows every entry point of the source.
    let second = format!(
        "{PRIMARY_HAPROXY}\n          - {{ name: haproxy2, address: 172.31.10.51, roles: [haproxy], settings: {{ haproxy: {{ virtual_address: 172.31.10.49 }} }} }}"
    );
    let two = build_variant(
        PRIMARY_HAPROXY,
        &second.replace(
            "roles: [haproxy], boot",
            "roles: [haproxy], settings: { haproxy: { virtual_address: 172.31.10.49 } }, boot",
        ),
    );
    let cfg = text(&two, "hosts/haproxy2/rootfs/etc/haproxy/haproxy.cfg");
    assert!(cfg.contains("maxconn 46 check"), "{cfg}");
    assert!(
        cfg.contains("    bind 172.31.10.49:5000\n")
            && cfg.contains("    bind 172.31.10.49:5001\n"),
        "{cfg}"
    );
    assert!(
        text(
            &two,
            "hosts/haproxy2/rootfs/etc/sysctl.d/92-pgimg-keepalived.conf"
        )
        .contains("net.ipv4.ip_nonlocal_bind = 1")
    );
    let first = text(&two, "hosts/haproxy/rootfs/etc/keepalived/keepalived.conf");
    let other = text(&two, "hosts/haproxy2/rootfs/etc/keepalived/keepalived.conf");
    assert!(first.contains("priority 150") && other.contains("priority 140"));
    assert!(first.contains("        172.31.10.51\n") && other.contains("        172.31.10.50\n"));
    assert!(first.contains("        172.31.10.49\n"));
    let dr = patroni(&two, "dr-pg1");
    assert_eq!(
        str_at(&dr, "bootstrap.dcs.standby_cluster.host"),
        "172.31.10.50,172.31.10.51"
    );
}

#[test]
fn item6_the_dr_lag_check_measures_liveness_lag_and_rpo() {
    let tree = build_example("reference-cluster");
    let script = text(
        &tree,
        "hosts/dr-pg1/rootfs/usr/local/libexec/pgimg/dr-lag-check",
    );
    assert!(
        !script.contains("latest_end_time"),
        "an idle source must not look like lag"
    );
    for needle in [
        "last_msg_receipt_time",
        "pg_last_wal_receive_lsn()",
        "SELECT pg_current_wal_lsn()",
        "pg_last_xact_replay_timestamp()",
        "pg_last_wal_replay_lsn()",
        "host=172.31.10.50 port=5000",
    ] {
        assert!(script.contains(needle), "dr-lag-check lacks `{needle}`");
    }
    let runbook = text(&tree, "clusters/pg_cluster/dr-runbook-dr.md");
    let probes: Vec<&str> = runbook.lines().filter(|l| l.starts_with("curl ")).collect();
    assert_eq!(probes.len(), 3);
    assert!(
        probes.iter().all(|l| l.starts_with("curl -sf ")),
        "{probes:?}"
    );
}

#[test]
fn item7_a_watchdog_fences_the_primary() {
    let tree = build_example("reference-cluster");
    let doc = patroni(&tree, "pg1");
    assert_eq!(str_at(&doc, "watchdog.mode"), "automatic");
    assert_eq!(str_at(&doc, "watchdog.device"), "/dev/watchdog");
    assert_eq!(
        text(
            &tree,
            "hosts/pg1/rootfs/etc/modules-load.d/pgimg-softdog.conf"
        )
        .lines()
        .last(),
        Some("softdog")
    );
    let rule = text(
        &tree,
        "hosts/pg1/rootfs/etc/udev/rules.d/61-pgimg-watchdog.rules",
    );
    assert!(rule.contains(r#"KERNEL=="watchdog", OWNER="postgres""#));
    let required = build_variant(
        "    install: pip\n",
        "    install: pip\n    watchdog: required\n",
    );
    assert_eq!(
        str_at(&patroni(&required, "dr-pg3"), "watchdog.mode"),
        "required"
    );
    let off = build_variant(
        "    install: pip\n",
        "    install: pip\n    watchdog: 'off'\n",
    );
    assert_eq!(str_at(&patroni(&off, "pg1"), "watchdog.mode"), "off");
    assert!(
        !off.files
            .contains_key("hosts/pg1/rootfs/etc/modules-load.d/pgimg-softdog.conf")
    );
}

#[test]
fn item8_host_tuning_and_timers() {
    let tree = build_variant(
        "    timezone: UTC\n",
        "    timezone: UTC\n    ntp_servers: [ntp1.example.com, 172.31.0.3]\n",
    );
    let pg = text(&tree, "hosts/pg1/rootfs/etc/sysctl.d/91-pgimg-db.conf");
    assert!(pg.contains("vm.overcommit_memory = 2"));
    assert!(
        !tree
            .files
            .contains_key("hosts/haproxy/rootfs/etc/sysctl.d/91-pgimg-db.conf")
    );
    for host in ["pg1", "haproxy"] {
        let common = text(
            &tree,
            &format!("hosts/{host}/rootfs/etc/sysctl.d/90-pgimg.conf"),
        );
        assert!(
            !common.contains("shmmax")
                && !common.contains("shmall")
                && !common.contains("overcommit"),
            "{common}"
        );
        let chrony = text(&tree, &format!("hosts/{host}/rootfs/etc/chrony.conf"));
        assert!(chrony.contains("server ntp1.example.com iburst\nserver 172.31.0.3 iburst\n"));
    }
    assert!(
        text(&tree, "hosts/pg1/rootfs/etc/tuned/pgimg-db/tuned.conf")
            .contains("transparent_hugepages=never")
    );
    assert_eq!(
        text(&tree, "hosts/pg1/rootfs/etc/tuned/active_profile"),
        "pgimg-db\n"
    );
    // Backups are timers over one templated service that reads the credentials file.
    let service = text(
        &tree,
        "hosts/pg1/rootfs/etc/systemd/system/pgimg-backup@.service",
    );
    assert!(service.contains("EnvironmentFile=-/etc/pgbackrest/pgbackrest.env"));
    let backup = text(&tree, "hosts/pg1/rootfs/usr/local/libexec/pgimg/backup");
    assert!(backup.contains("flock -n 9"));
    assert!(
        text(
            &tree,
            "hosts/pg1/rootfs/usr/local/libexec/pgimg/first-backup"
        )
        .contains("/var/log/pgbackrest/backup.lock")
    );
    assert!(!tree.files.keys().any(|k| k.contains("/cron.d/")));
    // The check script leaves nothing behind and gives patronictl every etcd member.
    let check = text(&tree, "clusters/pg_cluster/check");
    assert!(!check.contains("CREATE TABLE"));
    assert!(check.contains("check_members pg_cluster 172.31.47.229:2379,172.31.34.169:2379,172.31.39.118:2379 /service/ 0"));
}

/// Every OnCalendar= expression rendered for the example parses in systemd
/// and fires when the cron schedule would.
#[test]
fn item8_timer_schedules_mean_what_the_cron_schedules_said() {
    let tree = build_example("reference-cluster");
    let expected = [
        ("pgimg-backup-full.timer", "Sun *-*-* 01:00:00"),
        ("pgimg-backup-diff.timer", "Mon..Sat *-*-* 01:00:00"),
        ("pgimg-backup-incr.timer", "*-*-* 00/4:00:00"),
        ("pgimg-slot-check.timer", "*-*-* *:00/5:00"),
        ("etcd-maintenance.timer", "*-*-* 03:00:00"),
    ];
    for (unit, normalized) in expected {
        let t = text(
            &tree,
            &format!("hosts/pg1/rootfs/etc/systemd/system/{unit}"),
        );
        let spec = t
            .lines()
            .find_map(|l| l.strip_prefix("OnCalendar="))
            .unwrap_or_else(|| panic!("{unit} has no OnCalendar="));
        let out = Command::new("systemd-analyze")
            .args(["calendar", spec])
            .output()
            .expect("systemd-analyze (scripts/install-test-deps installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{unit}: `{spec}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Normalized form: "))
            .unwrap_or_default();
        assert_eq!(got, normalized, "{unit}: `{spec}`");
    }
}

#[test]
fn item9_each_site_gets_its_dynamic_configuration() {
    let tree = build_example("reference-cluster");
    for (site, host) in [("primary", "pg1"), ("dr", "dr-pg1")] {
        let dcs = yaml(&tree, &format!("clusters/pg_cluster/dcs-{site}.yaml"));
        assert_eq!(
            &dcs,
            at(&patroni(&tree, host), "bootstrap.dcs"),
            "dcs-{site}.yaml"
        );
    }
    let text = text(&tree, "clusters/pg_cluster/dcs-primary.yaml");
    assert!(text.contains("edit-config --replace dcs-primary.yaml pg_cluster"));
    assert!(
        text.contains("slots:\n  patroni_standby_leader:\n    type: 'physical'\n"),
        "{text}"
    );
    let runbook = crate::daytwo::text(&tree, "clusters/pg_cluster/dr-runbook-dr.md");
    assert!(runbook.contains(
        "edit-config --set slots.patroni_standby_leader.type=physical --force pg_cluster"
    ));
}
