//! The per-host secrets artifact: `secrets/<host>/*.env`, mode 0600, never in
//! the manifest. Files hold `KEY=value` lines for systemd's EnvironmentFile.

use std::collections::BTreeSet;

use super::Artifact;
use crate::load::SecretValues;
use crate::model::{Cluster, Fleet};
use crate::plan::context::paths;
use crate::spec::v1::{Role, SecretRef};

/// Secret files per host, and the references the hosts need that were not supplied.
pub fn render(fleet: &Fleet, values: &SecretValues) -> (Vec<(String, Artifact)>, BTreeSet<String>) {
    let mut files = Vec::new();
    let mut missing = BTreeSet::new();
    for (cluster, _, host) in fleet.hosts().filter(|(_, _, h)| h.has(Role::Pg)) {
        let mut patroni = Vec::new();
        let mut pgbackrest = Vec::new();
        let mut need =
            |var: String, r: &Option<SecretRef>, what: &str, dest: &mut Vec<String>| match r {
                Some(r) => match values.values.get(&r.label()) {
                    Some(v) => dest.push(format!("{var}={v}\n")),
                    None => {
                        missing.insert(format!("{} ({what}, {var})", r.label()));
                    }
                },
                None => {
                    missing.insert(format!(
                        "{what} of cluster `{}` ({var}): no reference in the spec",
                        cluster.name
                    ));
                }
            };
        let s = &cluster.secrets;
        need(
            "PATRONI_SUPERUSER_PASSWORD".into(),
            &s.superuser_password,
            "superuser password",
            &mut patroni,
        );
        need(
            "PATRONI_REPLICATION_PASSWORD".into(),
            &s.replication_password,
            "replication password",
            &mut patroni,
        );
        need(
            "PATRONI_REWIND_PASSWORD".into(),
            &s.rewind_password,
            "rewind password",
            &mut patroni,
        );
        if s.restapi_password.is_some() {
            patroni.push("PATRONI_RESTAPI_USERNAME=patroni\n".into());
            need(
                "PATRONI_RESTAPI_PASSWORD".into(),
                &s.restapi_password,
                "REST API password",
                &mut patroni,
            );
        }
        let site = cluster_site_of(cluster, &host.name);
        // The site's own repositories, then the source's read-only one of a DR site (numbered after them).
        let repos = site
            .map(|s| {
                let mut r = crate::plan::context::site_repos(cluster, s);
                r.extend(crate::plan::daytwo::source_repo(cluster, s));
                r
            })
            .unwrap_or_default();
        for (i, r) in repos.iter().enumerate() {
            let n = i + 1;
            if r.key_type == crate::spec::v1::S3KeyType::Shared {
                need(
                    format!("PGBACKREST_REPO{n}_S3_KEY"),
                    &r.key,
                    "S3 access key",
                    &mut pgbackrest,
                );
                need(
                    format!("PGBACKREST_REPO{n}_S3_KEY_SECRET"),
                    &r.key_secret,
                    "S3 secret key",
                    &mut pgbackrest,
                );
            }
            if s.backup_cipher_pass.is_some() {
                need(
                    format!("PGBACKREST_REPO{n}_CIPHER_PASS"),
                    &s.backup_cipher_pass,
                    "backup cipher passphrase",
                    &mut pgbackrest,
                );
            }
        }
        for (lines, dest) in [
            (patroni, paths::PATRONI_ENV),
            (pgbackrest, paths::PGBACKREST_ENV),
        ] {
            if !lines.is_empty() {
                files.push((
                    format!("secrets/{}{dest}", host.name),
                    Artifact {
                        bytes: lines.concat().into_bytes(),
                        mode: 0o600,
                    },
                ));
            }
        }
    }
    (files, missing)
}

fn cluster_site_of<'a>(cluster: &'a Cluster, host: &str) -> Option<&'a crate::model::Site> {
    cluster
        .sites
        .iter()
        .find(|s| s.hosts.iter().any(|h| h.name == host))
}
