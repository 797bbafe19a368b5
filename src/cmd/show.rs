//! `pgimg show` (the fleet as a table) and `pgimg resolve` (one host's
//! effective settings, each with the layer and line that set it).

use std::fmt::Write as _;

use serde::Serialize;

use crate::Validated;
use crate::load::RoleTree;
use crate::model::{Cluster, Config, Host, Site};
use crate::plan::context::Mapping;
use crate::plan::roles::RoleDefs;
use crate::spec::v1::Role;

/// Left-aligned columns, two spaces apart, no trailing blanks.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn roles_text(h: &Host) -> String {
    h.roles.iter().map(enum_text).collect::<Vec<_>>().join(",")
}

/// A spec enum as the spec spells it.
fn enum_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn site_text(c: &Cluster, s: &Site) -> String {
    match c.source_of(s) {
        Some(src) => format!("{} (DR of {})", s.name, src.name),
        None => s.name.clone(),
    }
}

/// The fleet as a table: cluster, site, host, address, roles, ports, boot.
/// Ports are those the roles open (`roles/*/role.yaml`), as the build plans them.
pub fn show(v: &Validated) -> Result<String, crate::Error> {
    let defs = RoleDefs::parse(&RoleTree::embedded())?;
    let plans = v
        .fleet
        .hosts()
        .map(|(c, s, h)| crate::plan::plan_host(&defs, &v.fleet, c, s, h, &Mapping::default()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = vec![
        [
            "cluster", "site", "host", "address", "roles", "ports", "boot",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for ((c, s, h), plan) in v.fleet.hosts().zip(&plans) {
        let mut ports: Vec<u16> = plan.ports.iter().filter_map(|p| p.port).collect();
        ports.dedup();
        rows.push(vec![
            c.name.clone(),
            site_text(c, s),
            h.name.clone(),
            h.address.clone(),
            roles_text(h),
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            match &h.boot.mac {
                Some(mac) => format!("pxe {mac}"),
                None => "user-data".into(),
            },
        ]);
    }
    let hosts = rows.len() - 1;
    let mut out = table(&rows);
    let _ = writeln!(
        out,
        "\n{} cluster{}, {} site{}, {hosts} host{}",
        v.fleet.clusters.len(),
        super::term::plural(v.fleet.clusters.len()),
        v.fleet
            .clusters
            .iter()
            .map(|c| c.sites.len())
            .sum::<usize>(),
        super::term::plural(v.fleet.clusters.iter().map(|c| c.sites.len()).sum()),
        super::term::plural(hosts),
    );
    Ok(out)
}

/// Every setting of a host, by settings path (`patroni/ttl`), as the spec spells it.
pub fn settings(c: &Config) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut put = |path: &str, value: String| rows.push((path.to_string(), value));
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "[]".to_string()
        } else {
            format!("[{}]", v.join(", "))
        }
    };
    let os = &c.os;
    put("os/distro", enum_text(&os.distro));
    put("os/timezone", os.timezone.clone());
    put("os/lang", os.lang.clone());
    put("os/keyboard", os.keyboard.clone());
    put("os/selinux", enum_text(&os.selinux));
    put("os/firewall", os.firewall.to_string());
    put("os/admin_user", os.admin_user.clone());
    put(
        "os/ssh_keys",
        format!(
            "{} key{}",
            os.ssh_keys.len(),
            super::term::plural(os.ssh_keys.len())
        ),
    );
    for (k, v) in &os.sysctl {
        put(&format!("os/sysctl/{k}"), v.clone());
    }
    put("os/limits/nofile", os.nofile.to_string());
    put("os/limits/nproc", os.nproc.to_string());
    put("os/ntp_servers", list(&os.ntp_servers));
    let n = &c.network;
    put(
        "network/prefix",
        n.prefix
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(none)".into()),
    );
    put("network/gateway", opt(&n.gateway));
    put("network/dns", list(&n.dns));
    put("network/domain", opt(&n.domain));
    put("network/client_networks", list(&n.client_networks));
    let r = &c.repos;
    put("repos/baseos", opt(&r.baseos));
    put("repos/appstream", opt(&r.appstream));
    put("repos/pgdg", r.pgdg.clone());
    put("repos/pgdg_extras", opt(&r.pgdg_extras));
    put("repos/pypi", opt(&r.pypi));
    put("repos/installer", opt(&r.installer));
    put("repos/artifacts", opt(&r.artifacts));
    let pg = &c.postgresql;
    put("postgresql/major", pg.major.to_string());
    put("postgresql/version", opt(&pg.version));
    put("postgresql/port", pg.port.to_string());
    put(
        "postgresql/max_slot_wal_keep_size_mb",
        pg.max_slot_wal_keep_size_mb.to_string(),
    );
    put("postgresql/data_dir", pg.data_dir.clone());
    if pg.parameters.is_empty() {
        put("postgresql/parameters", "{}".into());
    }
    for (k, v) in &pg.parameters {
        put(
            &format!("postgresql/parameters/{k}"),
            crate::model::scalar_text(v, "on", "off"),
        );
    }
    put("postgresql/initdb/encoding", pg.encoding.clone());
    put("postgresql/initdb/locale", pg.locale.clone());
    put(
        "postgresql/initdb/data_checksums",
        pg.data_checksums.to_string(),
    );
    if pg.pg_hba.is_empty() {
        put("postgresql/pg_hba", "[] (pgimg's own rows only)".into());
    }
    for (i, rule) in pg.pg_hba.iter().enumerate() {
        put(
            &format!("postgresql/pg_hba/{i}"),
            serde_json::to_string(rule).unwrap_or_default(),
        );
    }
    put(
        "postgresql/allow_remote_trust",
        pg.allow_remote_trust.to_string(),
    );
    put(
        "postgresql/superuser_remote",
        pg.superuser_remote.to_string(),
    );
    put("postgresql/users/superuser", pg.superuser.clone());
    put("postgresql/users/replication", pg.replication_user.clone());
    put("postgresql/users/rewind", pg.rewind_user.clone());
    put("postgresql/extra_packages", list(&pg.extra_packages));
    let p = &c.patroni;
    put("patroni/version", p.version.clone());
    put("patroni/rpm_version", p.rpm_version.clone());
    put("patroni/install", enum_text(&p.install));
    put("patroni/ttl", p.ttl.to_string());
    put("patroni/loop_wait", p.loop_wait.to_string());
    put("patroni/retry_timeout", p.retry_timeout.to_string());
    put(
        "patroni/maximum_lag_on_failover",
        p.maximum_lag_on_failover.to_string(),
    );
    put("patroni/synchronous_mode", enum_text(&p.synchronous_mode));
    put(
        "patroni/synchronous_mode_strict",
        p.synchronous_mode_strict.to_string(),
    );
    put(
        "patroni/synchronous_node_count",
        p.synchronous_node_count.to_string(),
    );
    put("patroni/restapi_port", p.restapi_port.to_string());
    put("patroni/use_pg_rewind", p.use_pg_rewind.to_string());
    put("patroni/use_slots", p.use_slots.to_string());
    put("patroni/watchdog", enum_text(&p.watchdog));
    put("patroni/namespace", p.namespace.clone());
    put("patroni/tags/nofailover", p.nofailover.to_string());
    put("patroni/tags/noloadbalance", p.noloadbalance.to_string());
    put("patroni/tags/clonefrom", p.clonefrom.to_string());
    put("patroni/tags/nosync", p.nosync.to_string());
    let e = &c.etcd;
    put("etcd/version", opt(&e.version));
    put("etcd/token", opt(&e.token));
    put("etcd/client_port", e.client_port.to_string());
    put("etcd/peer_port", e.peer_port.to_string());
    put(
        "etcd/auto_compaction_retention_hours",
        e.auto_compaction_retention_hours.to_string(),
    );
    put(
        "etcd/quota_backend_bytes",
        e.quota_backend_bytes.to_string(),
    );
    put(
        "etcd/heartbeat_interval_ms",
        e.heartbeat_interval_ms.to_string(),
    );
    put(
        "etcd/election_timeout_ms",
        e.election_timeout_ms.to_string(),
    );
    put(
        "etcd/initial_cluster_state",
        if e.join_existing { "existing" } else { "new" }.to_string(),
    );
    let b = &c.pgbackrest;
    put("pgbackrest/version", opt(&b.version));
    put(
        "pgbackrest/archive_push_queue_max_mb",
        b.archive_push_queue_max_mb.to_string(),
    );
    put("pgbackrest/stanza", opt(&b.stanza));
    for (i, repo) in b.repos.iter().enumerate() {
        let at = |f: &str| format!("pgbackrest/repos/{i}/{f}");
        put(&at("type"), enum_text(&repo.kind));
        put(&at("path"), opt(&repo.path));
        if repo.kind == crate::spec::v1::RepoType::S3 {
            put(&at("bucket"), opt(&repo.bucket));
            put(&at("endpoint"), opt(&repo.endpoint));
            put(&at("region"), opt(&repo.region));
            put(&at("uri_style"), enum_text(&repo.uri_style));
            put(&at("key_type"), enum_text(&repo.key_type));
            put(
                &at("key"),
                repo.key
                    .as_ref()
                    .map(crate::spec::v1::SecretRef::label)
                    .unwrap_or_else(|| "(none)".into()),
            );
            put(
                &at("key_secret"),
                repo.key_secret
                    .as_ref()
                    .map(crate::spec::v1::SecretRef::label)
                    .unwrap_or_else(|| "(none)".into()),
            );
        }
        put(&at("retention_full"), repo.retention_full.to_string());
        put(&at("retention_diff"), repo.retention_diff.to_string());
    }
    put("pgbackrest/compress_type", enum_text(&b.compress_type));
    put("pgbackrest/compress_level", b.compress_level.to_string());
    put("pgbackrest/process_max", b.process_max.to_string());
    put("pgbackrest/archive_timeout", b.archive_timeout.to_string());
    put("pgbackrest/archive_async", b.archive_async.to_string());
    put("pgbackrest/schedule/full", b.full.clone());
    put("pgbackrest/schedule/diff", b.diff.clone());
    put("pgbackrest/schedule/incr", b.incr.clone());
    let h = &c.haproxy;
    put(
        "haproxy/replica_max_lag_bytes",
        h.replica_max_lag_bytes.to_string(),
    );
    put("haproxy/virtual_address", opt(&h.virtual_address));
    put("haproxy/virtual_router_id", h.virtual_router_id.to_string());
    put("haproxy/write_port", h.write_port.to_string());
    put("haproxy/read_port", h.read_port.to_string());
    put("haproxy/stats_port", h.stats_port.to_string());
    put("haproxy/maxconn", h.maxconn.to_string());
    put(
        "haproxy/server_maxconn",
        h.server_maxconn
            .map(|n| n.to_string())
            .unwrap_or_else(|| "(derived)".into()),
    );
    put("haproxy/check_interval_ms", h.check_interval_ms.to_string());
    put("haproxy/check_fall", h.check_fall.to_string());
    put("haproxy/check_rise", h.check_rise.to_string());
    rows
}

/// Where a setting of `host` came from: the spec pointer that set it, if any.
///
/// A leaf the spec wrote has its own origin. A field inside a list (a
/// repository's `retention_full`) was set by the layer that wrote the list,
/// if that list entry has the field; otherwise it is a built-in default.
fn origin_pointer(v: &Validated, host: &Host, path: &str) -> Option<String> {
    if let Some(p) = host.origins.get(path) {
        return Some(p.clone());
    }
    let mut ancestor = path;
    while let Some(i) = ancestor.rfind('/') {
        ancestor = &ancestor[..i];
        if let Some(p) = host.origins.get(ancestor) {
            let rest = &path[ancestor.len()..];
            let pointer = format!("{p}{rest}");
            return v.parsed.spans.contains(&pointer).then_some(pointer);
        }
    }
    None
}

/// The layer a settings pointer belongs to, in words.
fn layer_name(c: &Cluster, s: &Site, h: &Host, pointer: &str) -> String {
    let within = |prefix: &str| pointer == prefix || pointer.starts_with(&format!("{prefix}/"));
    if within(&format!("{}/settings", h.pointer)) {
        format!("host {}", h.name)
    } else if within(&format!("{}/settings", s.pointer)) {
        format!("site {}", s.name)
    } else if within(&format!("{}/settings", c.pointer)) {
        format!("cluster {}", c.name)
    } else if within("/defaults") {
        "defaults".into()
    } else {
        pointer.to_string()
    }
}

/// One host's effective settings: value, layer, and file:line of the spec
/// that set it, or `built-in` for pgimg's default (the reference guide's).
pub fn resolve(v: &Validated, host_name: &str) -> Result<String, crate::Error> {
    let Some((c, s, h)) = v.fleet.hosts().find(|(_, _, h)| h.name == host_name) else {
        let names: Vec<&str> = v.fleet.hosts().map(|(_, _, h)| h.name.as_str()).collect();
        let hint = strsim_closest(host_name, &names)
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        return Err(crate::Error::Input(format!(
            "no host `{host_name}` in {}{hint} (`pgimg show` lists them)",
            v.parsed.source.name
        )));
    };
    let file = &v.parsed.source.name;
    let at = |pointer: &str| {
        v.parsed
            .spans
            .value(pointer)
            .map(|sp| format!("{file}:{}", sp.line))
            .unwrap_or_default()
    };
    let mut out = String::new();
    let _ = writeln!(out, "host {} ({})", h.name, at(&h.pointer));
    let mut facts = vec![
        vec!["cluster".to_string(), c.name.clone()],
        vec!["site".to_string(), site_text(c, s)],
        vec!["address".to_string(), h.address.clone()],
        vec!["roles".to_string(), roles_text(h)],
    ];
    if !h.extra_addresses.is_empty() {
        facts.push(vec!["extra addresses".into(), h.extra_addresses.join(", ")]);
    }
    if h.has(Role::Pg) {
        facts.push(vec!["Patroni member".into(), h.member_name.clone()]);
        facts.push(vec!["Patroni scope".into(), s.scope.clone()]);
    }
    if s.is_dr() {
        facts.push(vec!["replication slot".into(), s.slot_name.clone()]);
    }
    facts.push(vec![
        "boot".into(),
        match &h.boot.mac {
            Some(mac) => format!("pxe {mac}"),
            None => "user-data".into(),
        },
    ]);
    for row in table(&facts).lines() {
        let _ = writeln!(out, "  {row}");
    }
    out.push('\n');
    let mut rows = vec![
        ["setting", "value", "set by", "at"]
            .map(String::from)
            .to_vec(),
    ];
    for (path, value) in settings(&h.config) {
        let (layer, line) = match origin_pointer(v, h, &path) {
            Some(p) => (layer_name(c, s, h, &p), at(&p)),
            None => ("built-in".to_string(), String::new()),
        };
        rows.push(vec![path, value, layer, line]);
    }
    out.push_str(&table(&rows));
    Ok(out)
}

fn strsim_closest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::levenshtein(name, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}
