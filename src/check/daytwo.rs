//! Rules over the day-two settings: etcd's timers, HAProxy's connection
//! budget and virtual address, and the backup schedules' timers.

use super::Ctx;
use crate::diag::{Code, Diagnostic};
use crate::model::{Host, Site};
use crate::spec::calendar;
use crate::spec::v1::{Role, ScalarValue};

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
pub(crate) fn client_connections(host: &Host) -> i64 {
    int_parameter(host, "max_connections").unwrap_or(DEFAULT_MAX_CONNECTIONS)
        - int_parameter(host, "superuser_reserved_connections")
            .unwrap_or(DEFAULT_SUPERUSER_RESERVED)
}

/// HAProxy's per-server `maxconn` on `haproxy`: the spec's, else the client
/// budget of the site's first pg host less a headroom, shared by the site's HAProxies.
pub(crate) fn server_maxconn(site: &Site, haproxy: &Host) -> u32 {
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

/// etcd refuses to start when `election-timeout < 5 × heartbeat-interval`
/// (`server/embed/config.go`, `Validate`, etcd-io/etcd v3.5 and v3.6).
pub(crate) fn etcd_timing(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts().filter(|(_, _, h)| h.has(Role::Etcd)) {
        let e = &h.config.etcd;
        if e.election_timeout_ms < 5 * e.heartbeat_interval_ms {
            out.push(
                Diagnostic::error(
                    Code::EtcdElection,
                    // The value the user set: the timeout, else the heartbeat that outgrew it.
                    h.origins
                        .get("etcd/election_timeout_ms")
                        .or(h.origins.get("etcd/heartbeat_interval_ms"))
                        .unwrap_or(&h.pointer),
                    format!(
                        "`election_timeout_ms` is {} with `heartbeat_interval_ms` {}",
                        e.election_timeout_ms, e.heartbeat_interval_ms
                    ),
                )
                .expected(format!(
                    "at least {} (5 heartbeats): etcd refuses to start otherwise",
                    5 * e.heartbeat_interval_ms
                )),
            );
        }
    }
    out
}

/// Clients queue in HAProxy instead of meeting "too many clients" in
/// PostgreSQL only while every HAProxy's per-server limit, summed, stays
/// under what PostgreSQL admits for ordinary users.
pub(crate) fn haproxy_budget(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for cluster in &ctx.fleet.clusters {
        for site in &cluster.sites {
            let proxies: Vec<_> = site.with_role(Role::Haproxy).collect();
            let Some(budget) = site.with_role(Role::Pg).map(client_connections).min() else {
                continue;
            };
            let total: i64 = proxies.iter().map(|h| server_maxconn(site, h) as i64).sum();
            if let Some(h) = proxies
                .iter()
                .find(|h| h.config.haproxy.server_maxconn.is_some())
                && total >= budget
            {
                out.push(
                    Diagnostic::error(
                        Code::ServerMaxconn,
                        &h.origin("haproxy/server_maxconn"),
                        format!(
                            "site `{}`: {} HAProxy host(s) may open {total} connections to one server",
                            site.name,
                            proxies.len()
                        ),
                    )
                    .expected(format!(
                        "a total below {budget} (max_connections - superuser_reserved_connections)"
                    )),
                );
            }
            if proxies.len() < 2
                && let Some(h) = proxies
                    .iter()
                    .find(|h| h.config.haproxy.virtual_address.is_some())
            {
                out.push(
                    Diagnostic::error(
                        Code::VirtualAddressSingle,
                        &h.origin("haproxy/virtual_address"),
                        format!("site `{}` has one HAProxy host", site.name),
                    )
                    .expected(
                        "two or more `haproxy` hosts for keepalived to move the address between",
                    ),
                );
            }
        }
    }
    out
}

/// Each backup schedule becomes a systemd timer; a schedule it cannot say
/// exactly is refused rather than run at other times.
pub(crate) fn backup_schedules(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // A fleet's hosts share a few schedules: each is judged once.
    let mut judged: std::collections::HashMap<&str, Option<String>> = Default::default();
    for (_, _, h) in ctx.fleet.hosts().filter(|(_, _, h)| h.has(Role::Pg)) {
        let b = &h.config.pgbackrest;
        for (kind, cron) in [("full", &b.full), ("diff", &b.diff), ("incr", &b.incr)] {
            let problem = judged.entry(cron).or_insert_with(|| {
                // A field out of its range is PG0219's; this rule is about what a timer can say.
                if super::values::cron_problem(cron).is_some() {
                    return None;
                }
                calendar::on_calendar(cron).err()
            });
            if let Some(why) = problem.clone() {
                let pointer = h.origin(&format!("pgbackrest/schedule/{kind}"));
                if out.iter().any(|d: &Diagnostic| d.pointer == pointer) {
                    continue;
                }
                out.push(
                    Diagnostic::error(Code::BackupSchedule, &pointer, why).expected(
                        "five cron fields within range, not both a day of month and a day of week",
                    ),
                );
            }
        }
    }
    out
}
