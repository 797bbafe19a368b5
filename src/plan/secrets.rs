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
    /// A PEM certificate or key, the value of its one entry as it is.
    Pem,
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

/// The user Patroni logs in to etcd as (`etcd_password`), with read-write
/// access to the Patroni namespace only (the etcd-auth unit grants it).
pub const ETCD_PATRONI_USER: &str = "patroni";

/// The user of HAProxy's stats page (`haproxy_stats_password`).
pub const STATS_USER: &str = "stats";

/// What a host's certificate names (its subject alternative names): the
/// FQDN and short name, and every address clients dial for it. A pg host's
/// also lists its site's HAProxies and virtual address, because a DR site
/// streams through them with `sslmode=verify-full` and libpq then checks the
/// address it dialled against the certificate of the member behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsNames {
    pub name: String,
    pub fqdn: String,
    pub addresses: Vec<String>,
}

/// The names of a host's certificate, mapped (the lab's are loopback addresses).
pub fn tls_names(site: &Site, host: &Host, m: &crate::plan::context::Mapping) -> TlsNames {
    let mut addresses = vec![m.addr(&host.address)];
    addresses.extend(host.extra_addresses.iter().map(|a| m.addr(a)));
    if host.has(Role::Pg) {
        for h in site.with_role(Role::Haproxy) {
            addresses.push(m.addr(&h.address));
            if let Some(vip) = &h.config.haproxy.virtual_address {
                addresses.push(m.addr(vip));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    addresses.retain(|a| seen.insert(a.clone()));
    TlsNames {
        name: host.name.clone(),
        fqdn: match &host.config.network.domain {
            Some(d) => format!("{}.{d}", host.name),
            None => host.name.clone(),
        },
        addresses,
    }
}

/// A PEM file of the contract.
fn pem_file(
    path: &'static str,
    owner: &'static str,
    mode: u32,
    readers: &'static str,
    what: &'static str,
    source: &SecretRef,
) -> SecretFile {
    SecretFile {
        path,
        owner,
        group: owner,
        mode,
        readers,
        format: Format::Pem,
        entries: vec![Entry {
            name: "PEM".into(),
            what,
            source: Some(source.clone()),
            fixed: None,
        }],
    }
}

/// The TLS files of a host (TLS on): the CA certificate everywhere, and the
/// host's certificate with a copy of its key per daemon user that reads it
/// (PostgreSQL refuses a key others can read, and etcd runs as `etcd`).
fn tls_files(cluster: &Cluster, host: &Host) -> Vec<SecretFile> {
    let Some(ca) = &cluster.secrets.tls_ca else {
        return Vec::new();
    };
    let mut out = vec![pem_file(
        paths::TLS_CA,
        "root",
        0o644,
        "etcd, Patroni, PostgreSQL, HAProxy and patronictl (the CA they trust)",
        "cluster CA certificate",
        ca,
    )];
    if !(host.has(Role::Pg) || host.has(Role::Etcd)) {
        return out;
    }
    let (cert, key) = crate::secrets::host_tls(ca, &host.name);
    out.push(pem_file(
        paths::TLS_CERT,
        "root",
        0o644,
        "etcd, Patroni and PostgreSQL (this host's certificate)",
        "host certificate",
        &cert,
    ));
    if host.has(Role::Pg) {
        out.push(pem_file(
            paths::TLS_PG_KEY,
            "postgres",
            0o600,
            "PostgreSQL (ssl_key_file), Patroni (REST API, etcd client) as postgres",
            "host private key",
            &key,
        ));
    }
    if host.has(Role::Etcd) {
        out.push(pem_file(
            paths::TLS_ETCD_KEY,
            "etcd",
            0o600,
            "etcd.service as etcd (client and peer TLS)",
            "host private key",
            &key,
        ));
    }
    out
}

/// The secret files of a host.
pub fn host_files(cluster: &Cluster, site: &Site, host: &Host) -> Vec<SecretFile> {
    let s = &cluster.secrets;
    let var = |name: &str, what: &'static str, r: &Option<SecretRef>| Entry {
        name: name.to_string(),
        what,
        source: r.clone(),
        fixed: None,
    };
    let fixed = |name: &str, what: &'static str, v: &'static str| Entry {
        name: name.to_string(),
        what,
        source: None,
        fixed: Some(v),
    };
    let mut files = tls_files(cluster, host);
    if host.has(Role::Etcd) && s.etcd_auth() {
        // etcdctl reads its flags from ETCDCTL_<FLAG> (etcdctl/README.md,
        // "Global flags ... can be set with environment variables"): the
        // etcd-auth unit and the maintenance script log in as root with them.
        files.push(SecretFile {
            path: paths::ETCD_AUTH_ENV,
            owner: "root",
            group: "root",
            mode: 0o600,
            readers: "etcd-auth.service and etcd-maintenance.service (EnvironmentFile=, read by systemd as root)",
            format: Format::Env,
            entries: vec![
                fixed("ETCDCTL_USER", "etcd admin user", "root"),
                var("ETCDCTL_PASSWORD", "etcd root password", &s.etcd_root_password),
                var(
                    "PGIMG_ETCD_PATRONI_PASSWORD",
                    "etcd password of Patroni",
                    &s.etcd_password,
                ),
            ],
        });
    }
    if host.has(Role::Haproxy) && s.haproxy_stats_password.is_some() {
        files.push(SecretFile {
            path: paths::HAPROXY_STATS_ENV,
            owner: "root",
            group: "root",
            mode: 0o600,
            readers: "haproxy.service (EnvironmentFile= of pgimg's drop-in; haproxy.cfg expands it)",
            format: Format::Env,
            entries: vec![var(
                "PGIMG_STATS_PASSWORD",
                "HAProxy stats password",
                &s.haproxy_stats_password,
            )],
        });
    }
    if !host.has(Role::Pg) {
        return files;
    }
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
    if s.etcd_auth() {
        // Patroni reads PATRONI_ETCD3_USERNAME and _PASSWORD (patroni/config.py,
        // `_get_auth` for the `etcd3` section), but only when another PATRONI_ETCD3_
        // setting is in the environment: patroni.service sets PATRONI_ETCD3_PROTOCOL
        // for that. The user name is in patroni.yml too.
        patroni.push(var(
            "PATRONI_ETCD3_PASSWORD",
            "etcd password of Patroni",
            &s.etcd_password,
        ));
    }
    files.push(SecretFile {
        path: paths::PATRONI_ENV,
        owner: "root",
        group: "root",
        mode: 0o600,
        readers: "patroni.service (EnvironmentFile=, read by systemd as root)",
        format: Format::Env,
        entries: patroni,
    });
    if !pgbackrest.is_empty() {
        files.push(SecretFile {
            path: paths::PGBACKREST_ENV,
            // Readable by postgres: PostgreSQL's archive-push and restore run
            // as postgres with these values in their environment already, and
            // pgBackRest at a shell (check script, runbooks) needs them too.
            owner: "root",
            group: "postgres",
            mode: 0o640,
            readers: "patroni.service (archive-push, restore) and the scheduled backup services (EnvironmentFile=, read by systemd as root); postgres at a shell through /usr/local/libexec/pgimg/pgbackrest (the check script, the runbooks)",
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
    if s.etcd_auth() {
        files.push(SecretFile {
            path: PATRONICTL_ENV,
            owner: "postgres",
            group: "postgres",
            mode: 0o600,
            readers: "patronictl run as postgres by the cluster check script (sourced)",
            format: Format::Env,
            entries: vec![
                fixed(
                    "PATRONI_ETCD3_USERNAME",
                    "etcd user of Patroni",
                    ETCD_PATRONI_USER,
                ),
                var(
                    "PATRONI_ETCD3_PASSWORD",
                    "etcd password of Patroni",
                    &s.etcd_password,
                ),
            ],
        });
    }
    files
}

/// patronictl's etcd login for postgres (the check script sources it).
pub const PATRONICTL_ENV: &str = "/var/lib/pgsql/.patronictl.env";

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
            Format::Pem => {
                let _ = writeln!(out, "{}", v.trim_end());
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
         # `var NAME PARAMETER` (from SSM, under ssm_prefix; a `pem` file's parameter holds\n\
         # the PEM file base64-encoded on one line), `fixed NAME VALUE`.\n",
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
    for f in install_order(files) {
        let format = match f.format {
            Format::Env => "env",
            Format::Pgpass => "pgpass",
            Format::Pem => "pem",
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

/// The order `fetch-secrets` installs a host's files in: patroni.env last,
/// because its arrival starts Patroni (patroni-secrets.path).
pub fn install_order(files: &[SecretFile]) -> Vec<&SecretFile> {
    let mut ordered: Vec<&SecretFile> = files
        .iter()
        .filter(|f| f.path != paths::PATRONI_ENV)
        .collect();
    ordered.extend(files.iter().filter(|f| f.path == paths::PATRONI_ENV));
    ordered
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
