//! The secrets contract of a host: every file that carries a secret, where it
//! lands on the host, its owner and mode, which unit reads it, and which
//! variable comes from which reference. The contract is public (names only)
//! as `hosts/<host>/secrets.list`; the values go to `secrets/<host>/`.
//!
//! Owners and modes: systemd reads an `EnvironmentFile=` as root before it
//! drops privileges (systemd.exec(5), "EnvironmentFile="), so the files that
//! only units read are `root:root 0600`; libpq reads `~/.pgpass` as the
//! client user and ignores it when group or others can read it
//! (https://www.postgresql.org/docs/current/libpq-pgpass.html), so that one
//! is `postgres:postgres 0600`.

use std::fmt::Write as _;

use crate::model::{Cluster, Host, Site};
use crate::plan::context::{paths, site_repos};
use crate::spec::v1::{Role, S3KeyType, SecretRef};

/// Where the check script's password lives: the home of `postgres` on EL9.
pub const POSTGRES_PGPASS: &str = "/var/lib/pgsql/.pgpass";

/// One variable (or `.pgpass` line) of a secret file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Variable name (`PATRONI_SUPERUSER_PASSWORD`), or the user of a `.pgpass` line.
    pub name: String,
    /// What it is, in words.
    pub what: &'static str,
    /// Where the value comes from; `None` for a fixed, non-secret value.
    pub source: Option<SecretRef>,
    /// The fixed value of a non-secret line (`PATRONI_RESTAPI_USERNAME=patroni`).
    pub fixed: Option<&'static str>,
}

/// The format of a secret file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `NAME=value` lines for systemd's `EnvironmentFile=`.
    Env,
    /// libpq's password file: `host:port:database:user:password` lines.
    Pgpass,
}

/// One file of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// Absolute path on the host.
    pub path: &'static str,
    pub owner: &'static str,
    pub group: &'static str,
    pub mode: u32,
    /// The units or programs that read it, and how.
    pub readers: &'static str,
    pub format: Format,
    pub entries: Vec<Entry>,
}

/// The user the Patroni REST API's unsafe endpoints require (Patroni's `restapi.authentication`).
pub const RESTAPI_USER: &str = "patroni";

/// The secret files of a host; empty for hosts without the `pg` role.
pub fn host_files(cluster: &Cluster, site: &Site, host: &Host) -> Vec<SecretFile> {
    if !host.has(Role::Pg) {
        return Vec::new();
    }
    let s = &cluster.secrets;
    let var = |name: &str, what: &'static str, r: &Option<SecretRef>| Entry {
        name: name.to_string(),
        what,
        source: r.clone(),
        fixed: None,
    };
    let mut patroni = vec![
        var(
            "PATRONI_SUPERUSER_PASSWORD",
            "PostgreSQL superuser password",
            &s.superuser_password,
        ),
        var(
            "PATRONI_REPLICATION_PASSWORD",
            "replication password",
            &s.replication_password,
        ),
        var(
            "PATRONI_REWIND_PASSWORD",
            "pg_rewind password",
            &s.rewind_password,
        ),
    ];
    if s.restapi_password.is_some() {
        patroni.push(Entry {
            name: "PATRONI_RESTAPI_USERNAME".into(),
            what: "Patroni REST API user",
            source: None,
            fixed: Some(RESTAPI_USER),
        });
        patroni.push(var(
            "PATRONI_RESTAPI_PASSWORD",
            "Patroni REST API password",
            &s.restapi_password,
        ));
    }
    let mut pgbackrest = Vec::new();
    // The site's own repositories, then a DR site's read-only one of its
    // source (numbered after them, `plan::daytwo::source_repo`).
    let mut repos = site_repos(cluster, site);
    repos.extend(crate::plan::daytwo::source_repo(cluster, site));
    for (i, r) in repos.iter().enumerate() {
        let n = i + 1;
        if r.key_type == S3KeyType::Shared {
            pgbackrest.push(var(
                &format!("PGBACKREST_REPO{n}_S3_KEY"),
                "S3 access key",
                &r.key,
            ));
            pgbackrest.push(var(
                &format!("PGBACKREST_REPO{n}_S3_KEY_SECRET"),
                "S3 secret key",
                &r.key_secret,
            ));
        }
        if s.backup_cipher_pass.is_some() {
            pgbackrest.push(var(
                &format!("PGBACKREST_REPO{n}_CIPHER_PASS"),
                "pgBackRest repository cipher passphrase",
                &s.backup_cipher_pass,
            ));
        }
    }
    let mut files = vec![SecretFile {
        path: paths::PATRONI_ENV,
        owner: "root",
        group: "root",
        mode: 0o600,
        readers: "patroni.service (EnvironmentFile=, read by systemd as root)",
        format: Format::Env,
        entries: patroni,
    }];
    if !pgbackrest.is_empty() {
        files.push(SecretFile {
            path: paths::PGBACKREST_ENV,
            owner: "root",
            group: "root",
            mode: 0o600,
            readers: "patroni.service (archive-push, restore) and the scheduled backup services (EnvironmentFile=, read by systemd as root)",
            format: Format::Env,
            entries: pgbackrest,
        });
    }
    files.push(SecretFile {
        path: POSTGRES_PGPASS,
        owner: "postgres",
        group: "postgres",
        mode: 0o600,
        readers: "psql run as postgres by the cluster check script (libpq password file)",
        format: Format::Pgpass,
        entries: vec![var(
            &host.config.postgresql.superuser,
            "PostgreSQL superuser password",
            &s.superuser_password,
        )],
    });
    files
}

/// `.pgpass` escapes `:` and `\` with a backslash.
fn pgpass_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

/// The file's bytes with the values filled in, or the labels of the
/// references whose values are missing.
pub fn file_bytes(
    f: &SecretFile,
    value: impl Fn(&SecretRef) -> Option<String>,
) -> Result<Vec<u8>, Vec<String>> {
    let mut out = String::new();
    let mut missing = Vec::new();
    for e in &f.entries {
        let v = match (&e.source, e.fixed) {
            (_, Some(fixed)) => fixed.to_string(),
            (Some(r), None) => match value(r) {
                Some(v) => v,
                None => {
                    missing.push(format!("{} ({}, {})", r.label(), e.what, e.name));
                    continue;
                }
            },
            (None, None) => {
                missing.push(format!("{} ({}): no reference in the spec", e.what, e.name));
                continue;
            }
        };
        match f.format {
            Format::Env => {
                let _ = writeln!(out, "{}={v}", e.name);
            }
            Format::Pgpass => {
                let _ = writeln!(
                    out,
                    "*:*:*:{}:{}",
                    pgpass_escape(&e.name),
                    pgpass_escape(&v)
                );
            }
        }
    }
    if missing.is_empty() {
        Ok(out.into_bytes())
    } else {
        Err(missing)
    }
}

/// `hosts/<host>/secrets.list`: the contract in words, names only.
pub fn listing(host: &Host, files: &[SecretFile], delivery: &str) -> String {
    let mut out = format!(
        "# Secrets of host {}, generated by pgimg: where each lands, owner, mode, reader, source.\n\
         # Names only: the values are in secrets/{}/ of the build output, never here.\n",
        host.name, host.name
    );
    if files.is_empty() {
        out.push_str("# This host needs no secret.\n");
        return out;
    }
    let _ = writeln!(out, "# Delivery: {delivery}");
    for f in files {
        let _ = writeln!(
            out,
            "\nfile {} {}:{} {:04o}\n  read by: {}",
            f.path, f.owner, f.group, f.mode, f.readers
        );
        for e in &f.entries {
            let from = match (&e.source, e.fixed) {
                (_, Some(_)) => "fixed (not a secret)".to_string(),
                (Some(r), None) => r.label(),
                (None, None) => "MISSING: no reference in the spec".to_string(),
            };
            let _ = writeln!(out, "  {:<34} {:<40} {}", e.name, from, e.what);
        }
    }
    out
}

/// Where `fetch-secrets` finds its instructions on the host.
pub const SOURCE_CONF: &str = "/etc/pgimg/secrets.conf";

/// The SSM parameter of a reference, under the prefix: `env:NAME` → `NAME`,
/// `file:PATH` → `PATH` without a leading `/` or `./`.
pub fn ssm_name(r: &SecretRef) -> String {
    match r {
        SecretRef::Env(n) => n.to_string(),
        SecretRef::File(f) => f
            .as_str()
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string(),
    }
}

/// The default SSM prefix of a cluster.
pub fn ssm_prefix(cluster: &Cluster) -> String {
    cluster
        .secrets
        .delivery
        .ssm
        .as_ref()
        .and_then(|s| s.prefix.as_ref())
        .map(|p| p.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("/pgimg/{}", cluster.name))
}

/// `/etc/pgimg/secrets.conf`: where `fetch-secrets` gets each secret and
/// where it puts it. Names and paths only; `fetch-secrets` parses it line by
/// line and never runs it, so no value in it can become a command.
pub fn source_conf(
    cluster: &Cluster,
    host: &Host,
    files: &[SecretFile],
    m: &crate::plan::context::Mapping,
) -> String {
    let d = &cluster.secrets.delivery;
    let mut out = format!(
        "# Where fetch-secrets gets the secrets of {} and where it puts them; generated by pgimg.\n\
         # Names only, no secret. Lines: `key value`, `file PATH OWNER GROUP MODE FORMAT`,\n\
         # `var NAME PARAMETER` (from SSM, under ssm_prefix), `fixed NAME VALUE`.\n",
        host.name
    );
    if let Some(s) = &d.ssm {
        let _ = writeln!(out, "ssm_prefix {}", ssm_prefix(cluster));
        if let Some(r) = &s.region {
            let _ = writeln!(out, "ssm_region {r}");
        }
        if let Some(e) = &s.endpoint {
            let _ = writeln!(out, "ssm_endpoint {e}");
        }
        let _ = writeln!(
            out,
            "metadata_endpoint {}",
            m.url(
                s.metadata_endpoint
                    .as_ref()
                    .map_or("http://169.254.169.254", |e| e.as_str())
            )
        );
    }
    if let Some(h) = &d.https {
        let _ = writeln!(
            out,
            "bundle_url {}/{}.tar.gz",
            h.url.as_str().trim_end_matches('/'),
            host.name
        );
    }
    // patroni.env last: its arrival starts Patroni (patroni-secrets.path).
    let mut ordered: Vec<&SecretFile> = files
        .iter()
        .filter(|f| f.path != paths::PATRONI_ENV)
        .collect();
    ordered.extend(files.iter().filter(|f| f.path == paths::PATRONI_ENV));
    for f in ordered {
        let format = match f.format {
            Format::Env => "env",
            Format::Pgpass => "pgpass",
        };
        let _ = writeln!(
            out,
            "file {} {} {} {:04o} {format}",
            f.path, f.owner, f.group, f.mode
        );
        for e in &f.entries {
            match (&e.source, e.fixed) {
                (_, Some(v)) => {
                    let _ = writeln!(out, "fixed {} {v}", e.name);
                }
                (Some(r), None) => {
                    let _ = writeln!(out, "var {} {}", e.name, ssm_name(r));
                }
                (None, None) => {}
            }
        }
    }
    out
}

/// How the host's secrets reach it, in words, for its `secrets.list`.
pub fn delivery_words(cluster: &crate::model::Cluster, host: &crate::model::Host) -> String {
    let d = &cluster.secrets.delivery;
    let mut ways = Vec::new();
    if d.ssm.is_some() {
        ways.push(format!(
            "cloud (user-data): pgimg-secrets.service reads SSM parameters under {} with the instance role",
            ssm_prefix(cluster)
        ));
    }
    if let Some(h) = &d.https {
        ways.push(format!(
            "bare metal (kickstart): %post fetches {}/{}.tar.gz, checked against pgimg.secrets_sha256= on the installer's kernel command line (secrets/{}.tar.gz.sha256)",
            h.url.as_str().trim_end_matches('/'),
            host.name,
            host.name
        ));
    }
    if ways.is_empty() {
        "none configured (`secrets.delivery`): copy secrets/<host>/ of the build output onto the host with the owners and modes listed".to_string()
    } else {
        ways.join("; ")
    }
}
