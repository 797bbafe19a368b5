//! What a change means on a running host, as data: which unit a file
//! belongs to and how it picks the change up, which kickstart commands only
//! take effect at installation, and each PostgreSQL parameter's context.
//!
//! Sources:
//! - Patroni re-reads `patroni.yml` on SIGHUP (`patronictl reload`), and
//!   `bootstrap.dcs` is the dynamic configuration, written to the DCS once
//!   and then changed only with `patronictl edit-config`; a PostgreSQL
//!   parameter of context `postmaster` sets `pending_restart`
//!   (patroni/patroni `docs/patroni_configuration.rst`, "There are 3 types of
//!   Patroni configuration"; `patroni/ctl.py` `edit_config`, `--apply`,
//!   `--replace`, `--force`, and `restart --pending`).
//! - etcd reads `ETCD_*` only at start, and ignores the `--initial-cluster*`
//!   flags once a member has data (etcd-io/website
//!   `content/en/docs/v3.5/op-guide/clustering.md`, "will be ignored on
//!   subsequent runs"); members join and leave with `etcdctl member add` /
//!   `member remove` and a joining member starts with
//!   `--initial-cluster-state existing` (`op-guide/runtime-configuration.md`).
//! - pgBackRest reads `pgbackrest.conf` at each command; nothing stays running.
//! - cronie re-reads `/etc/cron.d` when a file there changes (cronie's
//!   cron(8): inotify on its spool directories, else their modification
//!   time checked every minute).
//! - HAProxy's unit (haproxy/haproxy `admin/systemd/haproxy.service.in`, as
//!   distributions ship it) runs the master-worker mode (`-Ws`) and reloads
//!   by checking the configuration (`-c -q`) and sending SIGUSR2 to the
//!   master, which starts new workers and lets the old ones finish their
//!   connections (`doc/configuration.txt`, `master-worker`).
//! - Parameter contexts: `pg17-parameter-contexts.tsv`, generated from
//!   `postgres --describe-config` of PostgreSQL 17 by
//!   `scripts/gen-pg-parameter-contexts`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// How a running host picks up a changed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// `systemctl reload <unit>`.
    Reload(&'static str),
    /// `systemctl restart <unit>`.
    Restart(&'static str),
    /// A systemd unit file: `systemctl daemon-reload`, then restart the unit it defines.
    UnitFile,
    /// A command to run on the host.
    Run(&'static str),
    /// Nothing to restart: the next use reads the new file.
    Nothing,
}

/// A file (or every file under a directory, for a path ending in `/`) and its effect.
pub(crate) struct FileRule {
    pub path: &'static str,
    pub effect: Effect,
    pub why: &'static str,
}

/// The first matching rule wins; exact paths come before their directories.
pub(crate) const FILE_RULES: &[FileRule] = &[
    FileRule {
        path: "/etc/patroni/patroni.yml",
        effect: Effect::Reload("patroni.service"),
        why: "Patroni re-reads patroni.yml on SIGHUP (the unit's ExecReload); bootstrap.dcs is not read again, see the DCS change",
    },
    FileRule {
        path: "/etc/patroni/requirements.txt",
        effect: Effect::Run(
            "/opt/patroni/bin/pip install -r /etc/patroni/requirements.txt, then restart patroni.service one member at a time, the leader last after a switchover",
        ),
        why: "the Patroni version pinned for pip changed; a running Patroni keeps its old code until restarted, and stopping Patroni stops its PostgreSQL",
    },
    FileRule {
        path: "/etc/etcd/etcd.conf",
        effect: Effect::Restart("etcd.service"),
        why: "etcd reads its environment file only at start; restart one member at a time, waiting for `etcdctl endpoint health`",
    },
    FileRule {
        path: "/etc/haproxy/haproxy.cfg",
        effect: Effect::Reload("haproxy.service"),
        why: "HAProxy reloads its configuration without dropping established connections; check it first with `haproxy -c -f /etc/haproxy/haproxy.cfg`",
    },
    FileRule {
        path: "/etc/pgbackrest/pgbackrest.conf",
        effect: Effect::Nothing,
        why: "pgBackRest reads its configuration at every command: the next archive-push, backup and expire use it",
    },
    FileRule {
        path: "/etc/hosts",
        effect: Effect::Nothing,
        why: "read at every name lookup",
    },
    FileRule {
        path: "/etc/sysctl.d/",
        effect: Effect::Run("sysctl --system"),
        why: "kernel settings are applied at boot by systemd-sysctl, or now by `sysctl --system`",
    },
    FileRule {
        path: "/etc/cron.d/",
        effect: Effect::Nothing,
        why: "crond notices a changed file in /etc/cron.d within a minute",
    },
    FileRule {
        path: "/etc/systemd/system/",
        effect: Effect::UnitFile,
        why: "systemd reads unit files at daemon-reload; the running service keeps the old settings until restarted",
    },
    FileRule {
        path: "/etc/security/limits.d/",
        effect: Effect::Nothing,
        why: "pam_limits applies to new login sessions; services take their limits from their unit (LimitNOFILE)",
    },
    FileRule {
        path: "/usr/local/libexec/pgimg/",
        effect: Effect::Nothing,
        why: "scripts run on demand (cron, Patroni callbacks, by hand): the next run uses the new version",
    },
    FileRule {
        path: "/var/lib/pgsql/",
        effect: Effect::Nothing,
        why: "the postgres user's shell profile: read at the next login",
    },
];

/// The rule of a file on the host, if any.
pub(crate) fn file_rule(path: &str) -> Option<&'static FileRule> {
    FILE_RULES.iter().find(|r| {
        if r.path.ends_with('/') {
            path.starts_with(r.path)
        } else {
            path == r.path
        }
    })
}

/// etcd keys that only matter when a member bootstraps.
pub(crate) const ETCD_BOOTSTRAP_ONLY: &[&str] = &[
    "ETCD_INITIAL_CLUSTER",
    "ETCD_INITIAL_CLUSTER_STATE",
    "ETCD_INITIAL_CLUSTER_TOKEN",
    "ETCD_INITIAL_ADVERTISE_PEER_URLS",
];

/// Kickstart commands that anaconda applies only while installing: a change
/// to one of them reaches a running host only by reinstalling it.
pub(crate) const KICKSTART_INSTALL_TIME: &[(&str, &str)] = &[
    ("part", "disk layout"),
    ("logvol", "disk layout"),
    ("volgroup", "disk layout"),
    ("clearpart", "disk layout"),
    ("ignoredisk", "disk layout"),
    ("zerombr", "disk layout"),
    ("autopart", "disk layout"),
    ("reqpart", "disk layout"),
    ("bootloader", "boot loader"),
    ("network", "network configuration"),
    ("url", "installation source"),
    ("repo", "installation repositories"),
    ("module", "installation repositories"),
    ("lang", "system language"),
    ("keyboard", "keyboard"),
    ("timezone", "time zone"),
    ("selinux", "SELinux mode"),
    ("firewall", "firewall"),
    ("rootpw", "accounts"),
    ("user", "accounts"),
    ("sshkey", "accounts"),
];

/// PostgreSQL 17's run-time parameters and their contexts.
const PG17_CONTEXTS: &str = include_str!("pg17-parameter-contexts.tsv");

/// The context of a parameter (`postmaster`, `sighup`, `superuser`, `user`, …), by lower-case name.
pub(crate) fn parameter_context(name: &str) -> Option<&'static str> {
    static TABLE: OnceLock<BTreeMap<String, &'static str>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            PG17_CONTEXTS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('\t'))
                .map(|(n, c)| (n.to_ascii_lowercase(), c))
                .collect()
        })
        .get(&name.to_ascii_lowercase())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_come_from_postgresql_17() {
        assert_eq!(parameter_context("shared_buffers"), Some("postmaster"));
        assert_eq!(parameter_context("work_mem"), Some("user"));
        assert_eq!(parameter_context("wal_keep_size"), Some("sighup"));
        assert_eq!(parameter_context("DateStyle"), Some("user"));
        assert_eq!(parameter_context("no_such_parameter"), None);
    }

    #[test]
    fn exact_rules_win_over_directories() {
        assert_eq!(
            file_rule("/etc/systemd/system/patroni.service").map(|r| r.effect),
            Some(Effect::UnitFile)
        );
        assert_eq!(
            file_rule("/etc/patroni/patroni.yml").map(|r| r.effect),
            Some(Effect::Reload("patroni.service"))
        );
        assert!(file_rule("/etc/unknown.conf").is_none());
    }
}
