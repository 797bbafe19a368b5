//! Lints for choices that stay legal but leave a cluster fragile or open.

use super::Ctx;
use crate::diag::{Code, Diagnostic};
use crate::source::child;
use crate::spec::v1::{RepoType, Role, S3KeyType};

/// Three (or more) etcd members of which a bare majority share hosts with
/// Patroni, while another Patroni host has none: losing those hosts loses the
/// DCS quorum, and the surviving Patroni member cannot become leader.
pub fn etcd_placement(ctx: &Ctx) -> Vec<Diagnostic> {
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
pub fn repository_cipher(ctx: &Ctx) -> Vec<Diagnostic> {
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
                    format!(
                        "cluster `{}` backs up to S3 without a repository cipher",
                        c.name
                    ),
                )
                .expected(
                    "`secrets: { backup_cipher_pass: { env: NAME } }` (pgBackRest aes-256-cbc)",
                )
                .help("anyone who can read the bucket can read every backup"),
            );
        }
    }
    out
}

/// No REST API password: Patroni's unsafe endpoints (`POST /switchover`,
/// `/restart`, `/reinitialize`, `PATCH /config`) answer anyone who reaches the port.
pub fn restapi_authentication(ctx: &Ctx) -> Vec<Diagnostic> {
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
