//! Lints for choices that stay legal but leave a cluster fragile or open.

use super::Ctx;
use crate::diag::{Code, Diagnostic};
use crate::source::child;
use crate::spec::v1::{RepoType, Role, S3KeyType};

/// Three (or more) etcd members of which a bare majority share hosts with
/// Patroni, while another Patroni host has none: losing those hosts loses the
/// DCS quorum, and the surviving Patroni member cannot become leader.
pub(super) fn etcd_placement(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            let etcd = s.with_role(Role::Etcd).count();
            let shared = s.with_role(Role::Etcd).filter(|h| h.has(Role::Pg)).count();
            let pg_without_etcd = s.with_role(Role::Pg).any(|h| !h.has(Role::Etcd));
            if etcd >= 3 && shared == etcd / 2 + 1 && pg_without_etcd {
                out.push(
                    Diagnostic::error(
                        Code::EtcdMajorityWithPatroni,
                        &child(&s.pointer, "hosts"),
                        format!(
                            "site `{}`: {shared} of its {etcd} etcd members run on Patroni hosts, a bare majority",
                            s.name
                        ),
                    )
                    .expected("etcd on every Patroni host, or a majority of etcd members on hosts of their own")
                    .help("losing those hosts loses the etcd quorum, and the surviving Patroni member cannot lead"),
                );
            }
        }
    }
    out
}

/// An S3 repository without `backup_cipher_pass`: backups sit in the bucket unencrypted by pgBackRest.
pub(super) fn repository_cipher(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (c, _, h) in ctx.fleet.hosts().filter(|(_, _, h)| h.has(Role::Pg)) {
        if c.secrets.backup_cipher_pass.is_some() {
            continue;
        }
        for r in h
            .config
            .pgbackrest
            .repos
            .iter()
            .filter(|r| r.kind == RepoType::S3 && r.bucket.is_some() && r.region.is_some())
            // An incomplete repository is PG0210's; one problem at a time.
            .filter(|r| {
                r.key_type != S3KeyType::Shared || (r.key.is_some() && r.key_secret.is_some())
            })
        {
            out.push(
                Diagnostic::error(
                    Code::S3WithoutCipher,
                    &r.pointer,
                    // Merged for every host the repository's setting reaches,
                    // which may be several clusters' (`once_per_setting`).
                    "backups go to S3 without a repository cipher",
                )
                .expected(
                    "`secrets: { backup_cipher_pass: { env: NAME } }` (pgBackRest aes-256-cbc)",
                )
                .help("anyone who can read the bucket can read every backup")
                // A repository set for the fleet is one warning, naming its hosts.
                .for_host(&h.name),
            );
        }
    }
    out
}

/// No REST API password: Patroni's unsafe endpoints (`POST /switchover`,
/// `/restart`, `/reinitialize`, `PATCH /config`) answer anyone who reaches the port.
pub(super) fn restapi_authentication(ctx: &Ctx) -> Vec<Diagnostic> {
    ctx.fleet
        .clusters
        .iter()
        .filter(|c| c.secrets.restapi_password.is_none())
        .map(|c| {
            Diagnostic::error(
                Code::RestApiOpen,
                &c.pointer,
                format!("cluster `{}` leaves Patroni's REST API without authentication", c.name),
            )
            .expected("`secrets: { restapi_password: { env: NAME } }` in the spec or the cluster")
            .help("without it anyone who reaches the REST port can switch over, restart or reinitialize members")
        })
        .collect()
}

/// TLS turned off explicitly: the opt-out is allowed, and said out loud.
pub(super) fn tls_off(ctx: &Ctx) -> Vec<Diagnostic> {
    ctx.fleet
        .clusters
        .iter()
        .filter_map(|c| {
            let p = c.secrets.tls.off_pointer.as_ref()?;
            Some(
                Diagnostic::error(
                    Code::TlsOff,
                    p,
                    format!(
                        "cluster `{}` turns TLS off: etcd, PostgreSQL and the Patroni REST API speak plain text",
                        c.name
                    ),
                )
                .expected("`secrets: { tls: { enabled: true } }` (the default)")
                .help("anyone on the network path reads passwords, WAL and the DCS; `pgimg secrets init` creates the certificates"),
            )
        })
        .collect()
}

/// TLS on, but etcd or the stats page without a password to log in with.
pub(super) fn control_plane_authentication(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in ctx.fleet.clusters.iter().filter(|c| c.secrets.tls.enabled) {
        let has_haproxy = c
            .sites
            .iter()
            .any(|s| s.with_role(Role::Haproxy).next().is_some());
        let s = &c.secrets;
        let mut missing = Vec::new();
        if s.etcd_root_password.is_none() {
            missing.push("etcd_root_password");
        }
        if s.etcd_password.is_none() {
            missing.push("etcd_password");
        }
        if has_haproxy && s.haproxy_stats_password.is_none() {
            missing.push("haproxy_stats_password");
        }
        if missing.is_empty() {
            continue;
        }
        out.push(
            Diagnostic::error(
                Code::ControlPlaneOpen,
                &c.pointer,
                format!(
                    "cluster `{}` has no {}: {} without authentication",
                    c.name,
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if missing.iter().any(|m| m.starts_with("etcd")) {
                        "etcd runs"
                    } else {
                        "the HAProxy stats page runs"
                    }
                ),
            )
            .expected(format!("`secrets: {{ {}: {{ env: NAME }} }}`", missing[0]))
            .help("`pgimg secrets init` creates every password the spec references"),
        );
    }
    out
}

/// A version as numbers (`4.1.0-4PGDG` → [4, 1, 0]).
fn version(v: &str) -> Vec<u32> {
    v.split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// True when an etcd version has the authentication change of etcd 3.6.9,
/// 3.5.28 and 3.4.42; `None` (the spec does not pin etcd) counts as the
/// change: the default pin follows the package catalog, which moves on.
fn etcd_with_auth_change(v: Option<&str>) -> bool {
    let Some(v) = v else { return true };
    let v = version(v);
    let at_least = |min: &[u32]| v.as_slice() >= min;
    match v.get(..2) {
        Some([3, 4]) => at_least(&[3, 4, 42]),
        Some([3, 5]) => at_least(&[3, 5, 28]),
        _ => at_least(&[3, 6, 9]),
    }
}

/// Patroni 4.1.1's release notes: with etcd 3.6.9, 3.5.28 or 3.4.42 and
/// authentication on, older Patroni loses member discovery and its lease
/// keepalive (patroni/patroni docs/releases.rst, "Version 4.1.1").
pub(super) fn patroni_etcd_auth(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for c in ctx.fleet.clusters.iter().filter(|c| c.secrets.etcd_auth()) {
        for s in &c.sites {
            // The version the spec pins itself, if it does.
            let etcd = s.with_role(Role::Etcd).next().map(|h| {
                h.origins
                    .contains_key("etcd/version")
                    .then_some(h.config.etcd.version.as_deref())
                    .flatten()
            });
            let Some(etcd) = etcd else { continue };
            let Some(h) = s.with_role(Role::Pg).find(|h| {
                let p = &h.config.patroni;
                let v = match p.install {
                    crate::spec::v1::PatroniInstall::Pip => &p.version,
                    _ => &p.rpm_version,
                };
                version(v).as_slice() < [4, 1, 1].as_slice() && etcd_with_auth_change(etcd)
            }) else {
                continue;
            };
            let p = &h.config.patroni;
            let (key, v) = match p.install {
                crate::spec::v1::PatroniInstall::Pip => ("patroni/version", &p.version),
                _ => ("patroni/rpm_version", &p.rpm_version),
            };
            let pointer = h
                .origins
                .get(key)
                .cloned()
                .unwrap_or_else(|| h.pointer.clone());
            // One diagnostic per place to edit, naming every site it affects.
            if let Some(d) = out.iter_mut().find(|d| d.pointer == pointer) {
                d.message = d
                    .message
                    .replacen("site `", &format!("sites `{}`, `", s.name), 1);
                continue;
            }
            out.push(
                Diagnostic::error(
                    Code::PatroniEtcdAuth,
                    &pointer,
                    format!(
                        "site `{}` runs Patroni {v} against etcd {} with etcd authentication on",
                        s.name,
                        etcd.unwrap_or("(not pinned by the spec: the catalog's default moves on)")
                    ),
                )
                .expected("Patroni 4.1.1 or later (`patroni: { install: pip, version: 4.1.5 }`), or etcd pinned below 3.6.9 / 3.5.28 / 3.4.42")
                .help("Patroni before 4.1.1 loses member discovery and its lease keepalive on those etcd releases (Patroni docs/releases.rst, 4.1.1)"),
            );
        }
    }
    out
}
