//! Rules about the shape of clusters, sites and their settings.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, is_pg_identifier};
use crate::diag::{Code, Diagnostic};
use crate::model::{Cluster, Site};
use crate::spec::v1::{RepoType, Role, S3KeyType, SyncMode};

pub(super) fn names(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut clusters = BTreeSet::new();
    // scope → (pointer, cluster index, site) of its first user.
    let mut scopes: BTreeMap<&str, (&str, usize, &Site)> = BTreeMap::new();
    for (ci, c) in ctx.fleet.clusters.iter().enumerate() {
        if !clusters.insert(c.name.as_str()) {
            out.push(
                Diagnostic::error(
                    Code::DuplicateSite,
                    &format!("{}/name", c.pointer),
                    format!("duplicate cluster name `{}`", c.name),
                )
                .expected("a name no other cluster of the fleet has"),
            );
        }
        let mut sites = BTreeSet::new();
        let mut members: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for s in &c.sites {
            if !sites.insert(s.name.as_str()) {
                out.push(
                    Diagnostic::error(
                        Code::DuplicateSite,
                        &format!("{}/name", s.pointer),
                        format!("duplicate site name `{}` in cluster `{}`", s.name, c.name),
                    )
                    .expected("a name no other site of the cluster has"),
                );
            }
            if let Some(&(first, first_ci, first_site)) = scopes.get(s.scope.as_str()) {
                // A DR site with its source's scope is PG0142, reported by `standby_sites`.
                let follows = |dr: &Site, src: &Site| {
                    c.source_of(dr).is_some_and(|x| std::ptr::eq(x, src)) && chain(c, dr).is_ok()
                };
                let dr_and_source =
                    first_ci == ci && (follows(s, first_site) || follows(first_site, s));
                if !dr_and_source {
                    out.push(
                        Diagnostic::error(
                            Code::DuplicateScope,
                            &s.scope_pointer,
                            format!("Patroni scope `{}` is used by two sites", s.scope),
                        )
                        .expected("a scope no other site of the fleet uses")
                        .help(format!(
                            "first used at {} by site `{}`; set `scope` on one of the sites",
                            ctx.place(first),
                            first_site.name
                        )),
                    );
                }
            } else {
                scopes.insert(&s.scope, (&s.scope_pointer, ci, s));
            }
            for h in s.with_role(Role::Pg) {
                let p = if h.member_name != h.name {
                    format!("{}/member_name", h.pointer)
                } else {
                    format!("{}/name", h.pointer)
                };
                if let Some(first) = members.get(h.member_name.as_str()) {
                    out.push(
                        Diagnostic::error(
                            Code::DuplicateMember,
                            &p,
                            format!("Patroni member name `{}` is used twice in cluster `{}` and its DR sites", h.member_name, c.name),
                        )
                        .expected("a member name unique across the cluster and its DR sites")
                        .help(format!("first used at {} by host `{}`; a DR member named like a source member can silently satisfy synchronous replication", ctx.place(first.0), first.1)),
                    );
                } else {
                    members.insert(&h.member_name, (&h.pointer, &h.name));
                }
            }
        }
    }
    out
}

pub(super) fn etcd_quorum(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            if s.with_role(Role::Pg).next().is_none() {
                continue;
            }
            let n = s.with_role(Role::Etcd).count();
            let p = format!("{}/hosts", s.pointer);
            match n {
                0 => out.push(
                    Diagnostic::error(
                        Code::NoEtcd,
                        &p,
                        format!("site `{}` has `pg` hosts but no `etcd` member", s.name),
                    )
                    .expected("an odd number of hosts with the `etcd` role in the site, usually 3"),
                ),
                1 => out.push(
                    Diagnostic::error(
                        Code::SingleEtcd,
                        &p,
                        format!("site `{}` has a single etcd member", s.name),
                    )
                    .expected("3 or 5 etcd members, so that the DCS survives the loss of one")
                    .help("a single member is fine for a lab, not for production"),
                ),
                n if n % 2 == 0 => out.push(
                    Diagnostic::error(
                        Code::EvenEtcd,
                        &p,
                        format!("site `{}` has {n} etcd members", s.name),
                    )
                    .expected(format!(
                        "an odd number: {} tolerates as many failures as {n}",
                        n - 1
                    )),
                ),
                _ => {}
            }
        }
    }
    out
}

pub(super) fn patroni_timing(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts().filter(|(_, _, h)| h.has(Role::Pg)) {
        let p = &h.config.patroni;
        for (value, min, path) in [
            (p.ttl, 20, "patroni/ttl"),
            (p.loop_wait, 1, "patroni/loop_wait"),
            (p.retry_timeout, 3, "patroni/retry_timeout"),
        ] {
            if value < min {
                let name = path.trim_start_matches("patroni/");
                out.push(
                    Diagnostic::error(
                        Code::PatroniMinimum,
                        &h.origin(path),
                        format!("`{name}` is {value}"),
                    )
                    .expected(format!(
                        "at least {min}: Patroni rejects a smaller `{name}`"
                    ))
                    .for_host(&h.name),
                );
            }
        }
        if p.loop_wait + 2 * p.retry_timeout > p.ttl {
            // Point at the value most likely edited last: the one set at the layer
            // closest to the host, and `ttl` (what the expectation suggests) on a tie.
            let mut pointer: Option<&String> = None;
            for k in ["patroni/ttl", "patroni/retry_timeout", "patroni/loop_wait"] {
                if let Some(o) = h.origins.get(k)
                    && pointer.is_none_or(|p| layer_depth(o) > layer_depth(p))
                {
                    pointer = Some(o);
                }
            }
            let pointer = pointer.cloned().unwrap_or_else(|| h.pointer.clone());
            out.push(
                Diagnostic::error(
                    Code::PatroniTiming,
                    &pointer,
                    format!(
                        "loop_wait ({}) + 2 × retry_timeout ({}) = {} exceeds ttl ({})",
                        p.loop_wait,
                        p.retry_timeout,
                        p.loop_wait + 2 * p.retry_timeout,
                        p.ttl
                    ),
                )
                .expected(format!(
                    "`loop_wait + 2 * retry_timeout <= ttl`, e.g. ttl {}",
                    p.loop_wait + 2 * p.retry_timeout
                ))
                .help("otherwise a leader can lose its key while it is still retrying")
                .for_host(&h.name),
            );
        }
    }
    out
}

/// How close to a host the settings layer of a pointer is: fleet defaults 0,
/// cluster 1, site 2, host 3.
fn layer_depth(pointer: &str) -> usize {
    ["/clusters/", "/sites/", "/hosts/"]
        .iter()
        .filter(|seg| pointer.contains(*seg))
        .count()
}

/// Follows `standby_of` links from a site; `Err` names the site where a cycle closes.
fn chain<'a>(c: &'a Cluster, start: &'a Site) -> Result<Vec<&'a Site>, ()> {
    let mut seen = vec![start];
    let mut cur = start;
    while let Some(src) = c.source_of(cur) {
        if seen.iter().any(|s| s.name == src.name) {
            return Err(());
        }
        seen.push(src);
        cur = src;
    }
    Ok(seen)
}

pub(super) fn standby_sites(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        let primaries: Vec<&Site> = c.sites.iter().filter(|s| !s.is_dr()).collect();
        if primaries.len() != 1 {
            out.push(
                Diagnostic::error(
                    Code::PrimarySiteCount,
                    &format!("{}/sites", c.pointer),
                    format!(
                        "cluster `{}` has {} sites without `standby_of`",
                        c.name,
                        primaries.len()
                    ),
                )
                .expected("exactly one primary site; every other site sets `standby_of`"),
            );
        }
        // Source site → slot → the DR site that holds it: a slot serves one standby.
        let mut slots: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for s in &c.sites {
            let Some(src_name) = &s.standby_of else {
                continue;
            };
            let held = slots.entry(src_name.as_str()).or_default();
            // Two sites of one name already get PG0151; their derived slots would only echo it.
            if let Some(first) = held.get(s.slot_name.as_str()).filter(|f| **f != s.name) {
                out.push(
                    Diagnostic::error(
                        Code::DuplicateSlot,
                        &s.slot_pointer,
                        format!(
                            "DR sites `{first}` and `{}` both hold slot `{}` on `{src_name}`",
                            s.name, s.slot_name
                        ),
                    )
                    .expected("a slot name of its own for each DR site")
                    .help("one physical slot serves one standby; the second would never stream"),
                );
            } else {
                held.insert(&s.slot_name, &s.name);
            }
            let p = format!("{}/standby_of", s.pointer);
            let Some(src) = c.source_of(s) else {
                let names: Vec<String> = c
                    .sites
                    .iter()
                    .filter(|o| o.name != s.name)
                    .map(|o| o.name.clone())
                    .collect();
                let mut d = Diagnostic::error(
                    Code::UnknownSource,
                    &p,
                    format!(
                        "`standby_of` names `{src_name}`, which is no site of cluster `{}`",
                        c.name
                    ),
                )
                .expected(format!(
                    "one of {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                if let Some(m) = crate::diag::did_you_mean(src_name, &names) {
                    d = d.help(format!("did you mean `{m}`?"));
                }
                out.push(d);
                continue;
            };
            if chain(c, s).is_err() {
                out.push(
                    Diagnostic::error(
                        Code::StandbyCycle,
                        &p,
                        format!("site `{}` follows itself through `standby_of`", s.name),
                    )
                    .expected("a chain of `standby_of` that ends at the primary site"),
                );
                continue;
            }
            if src.scope == s.scope {
                out.push(
                    Diagnostic::error(
                        Code::SameScope,
                        &s.scope_pointer,
                        format!(
                            "DR site `{}` has the scope `{}` of its source `{}`",
                            s.name, s.scope, src.name
                        ),
                    )
                    .expected("a scope different from the source site's"),
                );
            }
            for (site, what) in [(s, "DR site"), (src, "source site")] {
                if site.with_role(Role::Pg).next().is_none() {
                    out.push(
                        Diagnostic::error(
                            Code::SourceWithoutPg,
                            &p,
                            format!("{what} `{}` has no `pg` host", site.name),
                        )
                        .expected("a source and a DR site that both run PostgreSQL"),
                    );
                }
            }
            let pg: Vec<_> = s.with_role(Role::Pg).collect();
            if !pg.is_empty() && pg.iter().all(|h| h.config.patroni.nofailover) {
                out.push(
                    Diagnostic::error(
                        Code::DrNoFailover,
                        &pg[0].origin("patroni/tags/nofailover"),
                        format!("every member of DR site `{}` has `nofailover`", s.name),
                    )
                    .expected("at least one member that may become the standby leader"),
                );
            }
        }
    }
    out
}

pub(super) fn identifiers(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let bad = |p: &str, what: &str, v: &str| {
        Diagnostic::error(Code::InvalidIdentifier, p, format!("`{v}` is not a valid {what}"))
            .expected("a PostgreSQL identifier: lowercase letters, digits and `_`, starting with a letter or `_`, at most 63 characters")
    };
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            if s.is_dr() && !is_pg_identifier(&s.slot_name) {
                out.push(bad(&s.slot_pointer, "replication slot name", &s.slot_name));
            }
            for h in s.with_role(Role::Pg) {
                let pg = &h.config.postgresql;
                for (v, path, what) in [
                    (&pg.superuser, "postgresql/users/superuser", "role name"),
                    (
                        &pg.replication_user,
                        "postgresql/users/replication",
                        "role name",
                    ),
                    (&pg.rewind_user, "postgresql/users/rewind", "role name"),
                ] {
                    if !is_pg_identifier(v) {
                        out.push(bad(&h.origin(path), what, v).for_host(&h.name));
                    }
                }
                if let Some(st) = &h.config.pgbackrest.stanza
                    && !is_pg_identifier(st)
                {
                    out.push(
                        bad(&h.origin("pgbackrest/stanza"), "stanza name", st).for_host(&h.name),
                    );
                }
                let base = h.origin("postgresql/pg_hba");
                for (i, r) in pg.pg_hba.iter().enumerate() {
                    for (v, field) in [(&r.database.0, "database"), (&r.user.0, "user")] {
                        if !is_pg_identifier(v) {
                            out.push(
                                bad(&format!("{base}/{i}/{field}"), field, v).for_host(&h.name),
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

pub(super) fn major(ctx: &Ctx) -> Vec<Diagnostic> {
    ctx.fleet
        .hosts()
        .filter(|(_, _, h)| {
            h.has(Role::Pg)
                && !crate::spec::defaults::PG_MAJORS.contains(&h.config.postgresql.major)
        })
        .map(|(_, _, h)| {
            Diagnostic::error(
                Code::UnsupportedMajor,
                &h.origin("postgresql/major"),
                format!("PostgreSQL {} is not supported", h.config.postgresql.major),
            )
            .expected(format!(
                "a major version from {} to {}",
                crate::spec::defaults::PG_MAJORS.start(),
                crate::spec::defaults::PG_MAJORS.end()
            ))
            .for_host(&h.name)
        })
        .collect()
}

pub(super) fn synchronous(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            let pg: Vec<_> = s.with_role(Role::Pg).collect();
            let Some(first) = pg.first() else { continue };
            let p = &first.config.patroni;
            if p.synchronous_mode == SyncMode::Off {
                continue;
            }
            let replicas = pg.len() as u32 - 1;
            if p.synchronous_node_count > replicas {
                out.push(
                    Diagnostic::error(
                        Code::SyncCount,
                        &first.origin("patroni/synchronous_node_count"),
                        format!(
                            "`synchronous_node_count` is {} but site `{}` has {replicas} replica{}",
                            p.synchronous_node_count,
                            s.name,
                            if replicas == 1 { "" } else { "s" }
                        ),
                    )
                    .expected(format!("at most {replicas}")),
                );
            } else if p.synchronous_mode_strict && replicas == 1 {
                out.push(
                    Diagnostic::error(
                        Code::StrictSyncSingle,
                        &first.origin("patroni/synchronous_mode_strict"),
                        format!(
                            "site `{}` has a single replica and strict synchronous mode",
                            s.name
                        ),
                    )
                    .expected("at least two replicas with `synchronous_mode_strict`")
                    .help("with one replica, every replica outage stops all writes"),
                );
            }
        }
    }
    out
}

pub(super) fn haproxy_placement(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            if s.with_role(Role::Pg).next().is_some() {
                continue;
            }
            for h in s.with_role(Role::Haproxy) {
                out.push(
                    Diagnostic::error(
                        Code::HaproxyWithoutPg,
                        &format!("{}/roles", h.pointer),
                        format!(
                            "host `{}` runs HAProxy but site `{}` has no `pg` host to route to",
                            h.name, s.name
                        ),
                    )
                    .expected("`haproxy` only in a site with `pg` hosts"),
                );
            }
        }
    }
    out
}

pub(super) fn backup_repos(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts().filter(|(_, _, h)| h.has(Role::Pg)) {
        let br = &h.config.pgbackrest;
        if br.repos.is_empty() {
            out.push(
                Diagnostic::error(
                    Code::NoRepository,
                    &h.origin("pgbackrest/repos"),
                    "pgBackRest has no repository",
                )
                .expected("at least one repository")
                .help("add `pgbackrest.repos`, e.g. `- { type: s3, bucket: …, region: … }`, or a posix repository on a shared `mount`: a node-local directory dies with its node")
                .for_host(&h.name),
            );
        }
        // A missing `bucket` or `region` is the schema's (`if type: s3 then required`).
        for r in &br.repos {
            if r.kind != RepoType::S3 {
                continue;
            }
            if r.key_type == S3KeyType::Shared && (r.key.is_none() || r.key_secret.is_none()) {
                let mut d = Diagnostic::error(Code::S3Incomplete, &r.pointer, "S3 repository with `key_type: shared` but no `key` and `key_secret` references")
                    .expected("`key` and `key_secret` secret references, or `key_type: auto` on EC2")
                    .for_host(&h.name);
                if !r.key_type_explicit {
                    d = d.help("`shared` is the default on a site with bare-metal hosts (`boot.mac`): EC2's instance role does not exist there");
                }
                out.push(d);
            }
        }
    }
    out
}
