//! Day-two facts derived from the model for the templates' context and
//! patroni.yml: the DR site's read-only view of its source's repository,
//! the source's entry points, keepalived and the per-member stagger of
//! maintenance timers. HAProxy's connection budget is in `check::daytwo`,
//! which checks it.

use serde::Serialize;

use crate::model::{BackupRepo, Cluster, Host, Site};
use crate::plan::context::{BackupSchedule, Mapping, RepoContext};
use crate::spec::v1::{RepoType, Role};

/// The source's repository a DR site may read (for `archive-get` and a cold
/// restore), never write: the source's first repository, when it is S3 and so
/// reachable from another region. A posix repository is storage of the
/// source's own hosts, out of the DR site's reach.
///
/// Repository options in a stanza section apply to that stanza only: with
/// pgBackRest 2.55.1, `--repo=2` is valid for the stanza whose section
/// defines repo2 and rejected ("key '2' is not valid for 'repo' option")
/// for any other; the conformance suite runs pgBackRest on the result.
pub(crate) fn source_repo<'a>(cluster: &'a Cluster, site: &'a Site) -> Option<&'a BackupRepo> {
    if !site.is_dr() {
        return None;
    }
    let src = cluster.source_of(site)?;
    src.config()
        .pgbackrest
        .repos
        .first()
        .filter(|r| r.kind == RepoType::S3)
}

/// Minutes past the hour of a member's etcd maintenance: members of a site
/// take turns, so no two defragment (which blocks the member) at once.
pub(crate) fn etcd_maintenance_minute(site: &Site, host: &Host) -> u32 {
    let index = site
        .with_role(Role::Etcd)
        .position(|h| h.name == host.name)
        .unwrap_or(0) as u32;
    (index * 15) % 60
}

/// The source's repository as a DR site's `pgbackrest.conf` reads it: a
/// repository numbered after the site's own, in the source stanza's section.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRepo {
    #[serde(flatten)]
    pub repo: RepoContext,
    pub stanza: String,
}

/// keepalived on one of a site's HAProxies.
#[derive(Debug, Clone, Serialize)]
pub struct Keepalived {
    /// The address as haproxy.cfg's `bind` takes it (`ipv6@` for IPv6).
    pub bind: String,
    pub virtual_address: String,
    pub router_id: u8,
    pub interface: String,
    pub priority: usize,
    pub peers: Vec<String>,
}

/// The source site's write entry points, as libpq takes them.
#[derive(Debug, Clone, Serialize)]
pub struct EntryPoints {
    pub hosts: String,
    pub port: u16,
}

/// The `daytwo` part of a host's template context.
#[derive(Debug, Clone, Serialize)]
pub struct DayTwo {
    pub watchdog: &'static str,
    pub watchdog_on: bool,
    pub max_slot_wal_keep_size_mb: u32,
    pub follower_slots: Vec<String>,
    pub repo_numbers: Vec<usize>,
    pub source_repo: Option<SourceRepo>,
    pub source_entry_points: Option<EntryPoints>,
    /// The backup schedule as systemd `OnCalendar=` expressions.
    pub schedule: BackupSchedule,
    /// Two digits, as the timer's `OnCalendar=` takes it.
    pub etcd_maintenance_minute: String,
    pub etcd_hosts: String,
    pub has_keepalived: bool,
    pub keepalived: Option<Keepalived>,
    pub ntp: bool,
    pub namespace: String,
}

/// The `daytwo` part of a host's template context.
pub(crate) fn host_context(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> DayTwo {
    use super::context::{hostport, repo_context, stanza};
    use crate::spec::v1::WatchdogMode;
    let c = &host.config;
    let own_repos = c.pgbackrest.repos.len();
    let cipher = cluster.secrets.backup_cipher_pass.is_some();
    // The source's repository takes the number after the site's own, inside
    // the source stanza's section only: nothing the DR stanza runs writes there.
    let source_repo = source_repo(cluster, site).and_then(|r| {
        let src = cluster.source_of(site)?;
        Some(SourceRepo {
            repo: repo_context(own_repos, r, &stanza(src), &host.name, m, cipher),
            stanza: stanza(src),
        })
    });
    let calendar = |cron: &str| crate::spec::calendar::on_calendar(cron).unwrap_or_default();
    let haproxies: Vec<&Host> = site.with_role(Role::Haproxy).collect();
    let keepalived = c
        .haproxy
        .virtual_address
        .as_ref()
        .filter(|_| host.has(Role::Haproxy) && haproxies.len() >= 2)
        .map(|vip| {
            let index = haproxies
                .iter()
                .position(|h| h.name == host.name)
                .unwrap_or(0);
            let vip = m.addr(vip);
            Keepalived {
                bind: if vip.contains(':') {
                    format!("ipv6@{vip}")
                } else {
                    vip.clone()
                },
                virtual_address: vip,
                router_id: c.haproxy.virtual_router_id,
                interface: host.boot.interface.clone().unwrap_or_else(|| "eth0".into()),
                // The first HAProxy of the site holds the address while it is healthy.
                priority: 150 - 10 * index.min(10),
                peers: haproxies
                    .iter()
                    .filter(|h| h.name != host.name)
                    .map(|h| m.addr(&h.address))
                    .collect(),
            }
        });
    // Every entry point of the source: its HAProxies' write ports (libpq
    // tries them in order), else its pg hosts.
    let source_entry_points = cluster
        .source_of(site)
        .map(|src| {
            source_entry_points(src, m).unwrap_or_else(|| super::context::source_endpoint(src, m))
        })
        .map(|(hosts, port)| EntryPoints { hosts, port });
    let etcd_hosts = site
        .with_role(Role::Etcd)
        .map(|h| hostport(&m.addr(&h.address), h.config.etcd.client_port))
        .collect::<Vec<_>>()
        .join(",");
    DayTwo {
        watchdog: match c.patroni.watchdog {
            WatchdogMode::Off => "off",
            WatchdogMode::Automatic => "automatic",
            WatchdogMode::Required => "required",
        },
        watchdog_on: c.patroni.watchdog != WatchdogMode::Off,
        max_slot_wal_keep_size_mb: c.postgresql.max_slot_wal_keep_size_mb,
        follower_slots: cluster
            .followers_of(site)
            .map(|f| f.slot_name.clone())
            .collect(),
        repo_numbers: (1..=own_repos).collect(),
        source_repo,
        source_entry_points,
        schedule: BackupSchedule {
            full: calendar(&c.pgbackrest.full),
            diff: calendar(&c.pgbackrest.diff),
            incr: calendar(&c.pgbackrest.incr),
        },
        etcd_maintenance_minute: format!("{:02}", etcd_maintenance_minute(site, host)),
        etcd_hosts,
        has_keepalived: keepalived.is_some(),
        keepalived,
        ntp: !c.os.ntp_servers.is_empty(),
        namespace: c.patroni.namespace.clone(),
    }
}

/// Every write entry point of a source site, comma-separated for libpq, and
/// their port: its HAProxies (which must share a write port), else `None`.
pub(crate) fn source_entry_points(src: &Site, m: &Mapping) -> Option<(String, u16)> {
    let proxies: Vec<&Host> = src.with_role(Role::Haproxy).collect();
    let port = proxies.first()?.config.haproxy.write_port;
    if proxies.iter().any(|h| h.config.haproxy.write_port != port) {
        return None;
    }
    let hosts: Vec<String> = proxies.iter().map(|h| m.addr(&h.address)).collect();
    Some((hosts.join(","), port))
}
