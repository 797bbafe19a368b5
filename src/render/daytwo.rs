//! Day-two facts derived from the model, shared by the templates' context,
//! patroni.yml and the semantic checks: connection budgets, the DR site's
//! read-only view of its source's repository, keepalived and the
//! per-member stagger of maintenance timers.

use crate::model::{BackupRepo, Cluster, Host, Site};
use crate::spec::v1::{RepoType, Role, ScalarValue};

/// PostgreSQL's defaults for the two settings HAProxy's limit is derived from.
const DEFAULT_MAX_CONNECTIONS: i64 = 100;
const DEFAULT_SUPERUSER_RESERVED: i64 = 3;
/// Connections kept for Patroni's own sessions and monitoring.
const HEADROOM: i64 = 5;

fn int_parameter(host: &Host, name: &str) -> Option<i64> {
    match host.config.postgresql.parameters.get(name)? {
        ScalarValue::Int(i) => Some(*i),
        ScalarValue::Text(t) => t.0.trim().parse().ok(),
        _ => None,
    }
}

/// `max_connections - superuser_reserved_connections`: what ordinary clients may open.
pub fn client_connections(host: &Host) -> i64 {
    int_parameter(host, "max_connections").unwrap_or(DEFAULT_MAX_CONNECTIONS)
        - int_parameter(host, "superuser_reserved_connections")
            .unwrap_or(DEFAULT_SUPERUSER_RESERVED)
}

/// HAProxy's per-server `maxconn` on `haproxy`: the spec's, else the client
/// budget of the site's first pg host less a headroom, shared by the site's HAProxies.
pub fn server_maxconn(site: &Site, haproxy: &Host) -> u32 {
    if let Some(n) = haproxy.config.haproxy.server_maxconn {
        return n;
    }
    let budget = site
        .with_role(Role::Pg)
        .map(client_connections)
        .min()
        .unwrap_or(DEFAULT_MAX_CONNECTIONS - DEFAULT_SUPERUSER_RESERVED);
    let proxies = site.with_role(Role::Haproxy).count().max(1) as i64;
    ((budget - HEADROOM) / proxies).max(1) as u32
}

/// The source's repository a DR site may read (for `archive-get` and a cold
/// restore), never write: the source's first repository, when it is S3 and so
/// reachable from another region. A posix repository is storage of the
/// source's own hosts, out of the DR site's reach.
///
/// Repository options in a stanza section apply to that stanza only: with
/// pgBackRest 2.55.1, `--repo=2` is valid for the stanza whose section
/// defines repo2 and rejected ("key '2' is not valid for 'repo' option")
/// for any other; the conformance suite runs pgBackRest on the result.
pub fn source_repo<'a>(cluster: &'a Cluster, site: &'a Site) -> Option<&'a BackupRepo> {
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
pub fn etcd_maintenance_minute(site: &Site, host: &Host) -> u32 {
    let index = site
        .with_role(Role::Etcd)
        .position(|h| h.name == host.name)
        .unwrap_or(0) as u32;
    (index * 15) % 60
}

/// The `daytwo` part of a host's template context.
pub fn host_context(
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    m: &super::context::Mapping,
) -> serde_json::Value {
    use super::context::{hostport, repo_json, stanza};
    use crate::spec::v1::WatchdogMode;
    use serde_json::json;
    let c = &host.config;
    let own_repos = c.pgbackrest.repos.len();
    let cipher = cluster.secrets.backup_cipher_pass.is_some();
    // The source's repository takes the number after the site's own, inside
    // the source stanza's section only: nothing the DR stanza runs writes there.
    let source_repo = source_repo(cluster, site).and_then(|r| {
        let src = cluster.source_of(site)?;
        let mut v = repo_json(own_repos, r, &stanza(src), &host.name, m, cipher);
        v["stanza"] = json!(stanza(src));
        Some(v)
    });
    let calendar = |cron: &str| super::calendar::on_calendar(cron).unwrap_or_default();
    let haproxies: Vec<&Host> = site.with_role(Role::Haproxy).collect();
    let keepalived = c
        .haproxy
        .virtual_address
        .as_ref()
        .filter(|_| host.has(Role::Haproxy) && haproxies.len() >= 2)
        .map(|vip| {
            let index = haproxies.iter().position(|h| h.name == host.name).unwrap_or(0);
            let vip = m.addr(vip);
            json!({
                "bind": if vip.contains(':') { format!("ipv6@{vip}") } else { vip.clone() },
                "virtual_address": vip,
                "router_id": c.haproxy.virtual_router_id,
                "interface": host.boot.interface.clone().unwrap_or_else(|| "eth0".into()),
                // The first HAProxy of the site holds the address while it is healthy.
                "priority": 150 - 10 * index.min(10),
                "peers": haproxies.iter().filter(|h| h.name != host.name).map(|h| m.addr(&h.address)).collect::<Vec<_>>(),
            })
        });
    // Every entry point of the source: its HAProxies' write ports (libpq
    // tries them in order), else its pg hosts.
    let source_entry_points = cluster
        .source_of(site)
        .map(|src| {
            source_entry_points(src, m).unwrap_or_else(|| super::context::source_endpoint(src, m))
        })
        .map(|(hosts, port)| json!({"hosts": hosts, "port": port}));
    let etcd_hosts = |s: &Site| {
        s.with_role(Role::Etcd)
            .map(|h| hostport(&m.addr(&h.address), h.config.etcd.client_port))
            .collect::<Vec<_>>()
            .join(",")
    };
    json!({
        "watchdog": match c.patroni.watchdog {
            WatchdogMode::Off => "off",
            WatchdogMode::Automatic => "automatic",
            WatchdogMode::Required => "required",
        },
        "watchdog_on": c.patroni.watchdog != WatchdogMode::Off,
        "max_slot_wal_keep_size_mb": c.postgresql.max_slot_wal_keep_size_mb,
        "follower_slots": cluster.followers_of(site).map(|f| f.slot_name.clone()).collect::<Vec<_>>(),
        "repo_numbers": (1..=own_repos).collect::<Vec<_>>(),
        "source_repo": source_repo,
        "source_entry_points": source_entry_points,
        "schedule": {
            "full": calendar(&c.pgbackrest.full),
            "diff": calendar(&c.pgbackrest.diff),
            "incr": calendar(&c.pgbackrest.incr),
        },
        "etcd_maintenance_minute": format!("{:02}", etcd_maintenance_minute(site, host)),
        "etcd_hosts": etcd_hosts(site),
        "keepalived": keepalived,
        "ntp": !c.os.ntp_servers.is_empty(),
        "namespace": c.patroni.namespace,
    })
}

/// Every write entry point of a source site, comma-separated for libpq, and
/// their port: its HAProxies (which must share a write port), else `None`.
pub fn source_entry_points(src: &Site, m: &super::context::Mapping) -> Option<(String, u16)> {
    let proxies: Vec<&Host> = src.with_role(Role::Haproxy).collect();
    let port = proxies.first()?.config.haproxy.write_port;
    if proxies.iter().any(|h| h.config.haproxy.write_port != port) {
        return None;
    }
    let hosts: Vec<String> = proxies.iter().map(|h| m.addr(&h.address)).collect();
    Some((hosts.join(","), port))
}

/// `clusters/<cluster>/dcs-<site>.yaml`: the dynamic configuration Patroni
/// keeps in the DCS for each site, exactly the `bootstrap.dcs` of its
/// members' patroni.yml. Patroni applies `bootstrap.dcs` only when it
/// initializes a cluster; on a running one a change takes
/// `patronictl edit-config --replace` of this file (patroni/ctl.py `edit_config`).
pub fn dcs_artifacts(
    cluster: &Cluster,
    m: &super::context::Mapping,
) -> Vec<(String, super::Artifact)> {
    let mut out = Vec::new();
    for site in &cluster.sites {
        let Some(host) = site.with_role(Role::Pg).next() else {
            continue;
        };
        let config = super::patroni::config(cluster, site, host, m);
        let value = serde_json::to_value(&config.bootstrap.dcs).unwrap_or(serde_json::Value::Null);
        let patroni_config = m.path(&host.name, super::context::paths::PATRONI_CONFIG);
        let mut text = format!(
            "# Dynamic configuration of scope {scope} (site {site}), generated by pgimg: what Patroni\n\
             # keeps in the DCS, identical to bootstrap.dcs of every member's patroni.yml.\n\
             # bootstrap.dcs is applied once, when the cluster is initialized; on a running\n\
             # cluster apply a change with (on a pg host of the site, as postgres):\n\
             #   patronictl -c {patroni_config} edit-config --replace dcs-{site}.yaml {scope}\n\
             # and review the diff it shows before confirming.\n",
            scope = site.scope,
            site = site.name,
        );
        text.push_str(&super::yaml::to_yaml(&value));
        out.push((
            format!("clusters/{}/dcs-{}.yaml", cluster.name, site.name),
            super::Artifact {
                bytes: text.into_bytes(),
                mode: 0o644,
            },
        ));
    }
    out
}
