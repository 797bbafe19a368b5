//! The facts each template sees: one typed context per host (`HostContext`),
//! derived from the model with the build's address and path mapping applied.
//! Templates see it serialized; a field a template needs and the context
//! lacks is a compile error here, not a strict-mode failure at render time.
//!
//! Cross-site facts (the etcd members of a site, a DR site's source
//! endpoint, the slots a source must keep, the replication rows of pg_hba)
//! are derived here, once, never typed twice by the user.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{BackupRepo, Cluster, Fleet, Host, Site, scalar_text};
use crate::spec::v1::{
    CompressType, Distro, HbaMethod, HbaType, PatroniInstall, RepoType, Role, S3KeyType,
    SelinuxMode, UriStyle,
};

/// How a build maps the spec onto machines: a real build maps nothing; a lab
/// build puts every host on its own loopback address and every absolute
/// path under a per-host directory.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub addresses: BTreeMap<String, String>,
    /// Each host's own stand-in for 127.0.0.1 (a lab gives every host its own loopback address).
    pub localhost: BTreeMap<String, String>,
    /// Directory under which each host gets `<root>/<host>`; `None` for a real build.
    pub root: Option<String>,
    /// The address a host's connections arrive from, when that is not its own
    /// address: on one machine every loopback connection comes from the local
    /// route's source (127.0.0.1), whichever loopback address the client
    /// stands for. `None` (a real build): each host's own address.
    pub source: Option<String>,
    /// Names a lab's own name service answers (stand-ins of services outside
    /// the cluster), as `/etc/hosts` lines: address → names. Empty for a real build.
    pub names: BTreeMap<String, Vec<String>>,
}

impl Mapping {
    pub fn addr(&self, a: &str) -> String {
        self.addresses
            .get(a)
            .cloned()
            .unwrap_or_else(|| a.to_string())
    }

    /// The address connections from the host at spec address `a` arrive from.
    pub fn source_of(&self, a: &str) -> String {
        self.source.clone().unwrap_or_else(|| self.addr(a))
    }

    /// What 127.0.0.1 is on `host`.
    pub fn localhost(&self, host: &str) -> String {
        self.localhost
            .get(host)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".to_string())
    }

    /// A URL with its host mapped like an address (`http://169.254.169.254`
    /// → the lab's stand-in): only an IP literal in `addresses` moves.
    pub fn url(&self, u: &str) -> String {
        let Some((scheme, rest)) = u.split_once("://") else {
            return u.to_string();
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => {
                (h, Some(p))
            }
            _ => (authority, None),
        };
        match self.addresses.get(host) {
            Some(a) => match port {
                Some(p) => format!("{scheme}://{a}:{p}{tail}"),
                None => format!("{scheme}://{a}{tail}"),
            },
            None => u.to_string(),
        }
    }

    /// The prefix of a host's absolute paths: empty for a real build.
    pub fn prefix(&self, host: &str) -> String {
        match &self.root {
            Some(r) => format!("{}/{host}", r.trim_end_matches('/')),
            None => String::new(),
        }
    }

    pub fn path(&self, host: &str, p: &str) -> String {
        format!("{}{p}", self.prefix(host))
    }
}

/// `host:port`, with brackets for IPv6.
pub fn hostport(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

fn host_prefix(addr: &str) -> String {
    if addr.contains(':') {
        format!("{addr}/128")
    } else {
        format!("{addr}/32")
    }
}

/// Where things live on a host, before mapping.
pub mod paths {
    pub const PATRONI_CONFIG: &str = "/etc/patroni/patroni.yml";
    pub const PATRONI_ENV: &str = "/etc/patroni/patroni.env";
    pub const PGBACKREST_ENV: &str = "/etc/pgbackrest/pgbackrest.env";
    pub const PGBACKREST_CONFIG: &str = "/etc/pgbackrest/pgbackrest.conf";
    pub const PATRONI_VENV: &str = "/opt/patroni";
    pub const LIBEXEC: &str = "/usr/local/libexec/pgimg";
    pub const SOCKET_DIR: &str = "/run/postgresql";
    pub const POSTGRES_HOME: &str = "/var/lib/pgsql";
    pub const PGBACKREST_BIN: &str = "/usr/bin/pgbackrest";
    pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";
    /// TLS files (secrets): the CA, the host's certificate and its key per reader.
    pub const TLS_DIR: &str = "/etc/pgimg/tls";
    pub const TLS_CA: &str = "/etc/pgimg/tls/ca.crt";
    pub const TLS_CERT: &str = "/etc/pgimg/tls/host.crt";
    pub const TLS_PG_KEY: &str = "/etc/pgimg/tls/postgres.key";
    pub const TLS_ETCD_KEY: &str = "/etc/pgimg/tls/etcd.key";
    /// etcdctl's root login (secret), for the etcd-auth unit and the maintenance script.
    pub const ETCD_AUTH_ENV: &str = "/etc/etcd/etcd-auth.env";
    /// The stats password HAProxy expands (secret).
    pub const HAPROXY_STATS_ENV: &str = "/etc/haproxy/pgimg-stats.env";
}

/// The stanza of a site: the spec's, else the site's scope.
pub fn stanza(site: &Site) -> String {
    site.config()
        .pgbackrest
        .stanza
        .clone()
        .unwrap_or_else(|| site.scope.clone())
}

/// The write endpoint a DR site follows: its source's HAProxy, else the source's pg hosts.
pub fn source_endpoint(src: &Site, m: &Mapping) -> (String, u16) {
    match src.with_role(Role::Haproxy).next() {
        Some(h) => (m.addr(&h.address), h.config.haproxy.write_port),
        None => {
            let hosts: Vec<String> = src
                .with_role(Role::Pg)
                .map(|h| m.addr(&h.address))
                .collect();
            (hosts.join(","), src.config().postgresql.port)
        }
    }
}

/// The pgBackRest repositories a site writes, `repo1` first: its own only.
/// A DR site's backups and archive must survive the loss of its source's
/// region, so its own repository is repo1; it reads its source's repository
/// through a stanza section of its own (`render::daytwo::source_repo`).
pub fn site_repos<'a>(_cluster: &'a Cluster, site: &'a Site) -> Vec<&'a BackupRepo> {
    site.config().pgbackrest.repos.iter().collect()
}

pub fn repo_context(
    i: usize,
    r: &BackupRepo,
    stanza: &str,
    host: &str,
    m: &Mapping,
    cipher: bool,
) -> RepoContext {
    let path = match (r.kind, &r.path) {
        (RepoType::S3, Some(p)) => p.clone(),
        (RepoType::Posix, Some(p)) => m.path(host, p),
        (RepoType::Posix, None) => m.path(host, "/var/lib/pgbackrest"),
        (RepoType::S3, None) => format!("/pgbackrest/{stanza}"),
    };
    let region = r.region.clone().unwrap_or_default();
    RepoContext {
        n: i + 1,
        s3: r.kind == RepoType::S3,
        path,
        bucket: r.bucket.clone(),
        endpoint: r
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("s3.{region}.amazonaws.com")),
        region,
        uri_style: match r.uri_style {
            UriStyle::Host => "host",
            UriStyle::Path => "path",
        },
        key_auto: r.key_type == S3KeyType::Auto,
        cipher,
        retention_time: r.retention_full_type == crate::spec::v1::RetentionType::Time,
        retention_full: r.retention_full,
        retention_diff: r.retention_diff,
    }
}

fn compress(c: CompressType) -> &'static str {
    match c {
        CompressType::Lz4 => "lz4",
        CompressType::Zst => "zst",
        CompressType::Gz => "gz",
        CompressType::Bz2 => "bz2",
        CompressType::None => "none",
    }
}

/// The pg_hba rows of a site: local, loopback, replication from exactly the
/// hosts that stream from this site, the user's rows, then the catch-all.
pub fn pg_hba(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> Vec<String> {
    let pg = &host.config.postgresql;
    // With TLS every row for another host is `hostssl` (pg_hba.conf: "hostssl
    // ... matches only when the connection is made with SSL encryption",
    // https://www.postgresql.org/docs/current/auth-pg-hba-conf.html); the
    // loopback rows stay `host`.
    let tls = cluster.secrets.tls.enabled;
    let net = if tls { "hostssl" } else { "host" };
    let mut rows = vec![
        "local all all peer".to_string(),
        format!(
            "host all all {} scram-sha-256",
            host_prefix(&m.localhost(&host.name))
        ),
        "host all all ::1/128 scram-sha-256".to_string(),
    ];
    if !pg.superuser_remote {
        // Patroni connects to its own member at its address (`postgresql.listen`) as
        // the superuser: the host itself stays admitted before the superuser's `reject`,
        // from where its connections arrive (its own address, or a lab's loopback source).
        rows.push(format!(
            "{net} all all {} scram-sha-256",
            host_prefix(&m.source_of(&host.address))
        ));
    }
    let mut replicators: Vec<String> = Vec::new();
    let mut push = |a: String| {
        if !replicators.contains(&a) {
            replicators.push(a);
        }
    };
    for h in site.with_role(Role::Pg) {
        push(m.source_of(&h.address));
    }
    for follower in cluster.followers_of(site) {
        for h in follower.with_role(Role::Pg) {
            push(m.source_of(&h.address));
        }
        // A DR site streams through this site's HAProxy, so the connection arrives from it.
        for h in site.with_role(Role::Haproxy) {
            push(m.source_of(&h.address));
        }
    }
    for a in replicators {
        rows.push(format!(
            "{net} replication {} {} scram-sha-256",
            pg.replication_user,
            host_prefix(&a)
        ));
    }
    for r in &pg.pg_hba {
        let kind = match r.kind {
            HbaType::Local => "local",
            HbaType::Host => net,
            HbaType::Hostssl => "hostssl",
            HbaType::Hostnossl => "hostnossl",
        };
        let method = match r.method {
            HbaMethod::ScramSha256 => "scram-sha-256",
            HbaMethod::Md5 => "md5",
            HbaMethod::Peer => "peer",
            HbaMethod::Cert => "cert",
            HbaMethod::Reject => "reject",
            HbaMethod::Trust => "trust",
        };
        match &r.address {
            Some(a) => rows.push(format!("{kind} {} {} {} {method}", r.database, r.user, a)),
            None => rows.push(format!("{kind} {} {} {method}", r.database, r.user)),
        }
    }
    if !pg.superuser_remote {
        // The superuser is for the host itself unless the spec says otherwise
        // (`superuser_remote`, or a `pg_hba` row of its own above).
        rows.push(format!("{net} all {} 0.0.0.0/0 reject", pg.superuser));
        rows.push(format!("{net} all {} ::/0 reject", pg.superuser));
    }
    rows.push(format!("{net} all all 0.0.0.0/0 scram-sha-256"));
    rows.push(format!("{net} all all ::/0 scram-sha-256"));
    rows
}

/// Parameters that name paths of this host: they go to the member's local
/// configuration, because the DCS copy is shared by every member.
pub fn local_parameters(
    site: &Site,
    host: &Host,
    m: &Mapping,
    tls: bool,
) -> BTreeMap<String, Value> {
    let stanza = stanza(site);
    let pgbackrest = m.path(&host.name, paths::PGBACKREST_BIN);
    let config = m.path(&host.name, paths::PGBACKREST_CONFIG);
    let mut p = BTreeMap::new();
    p.insert(
        "archive_command".to_string(),
        json!(format!(
            "{pgbackrest} --config={config} --stanza={stanza} archive-push %p"
        )),
    );
    p.insert(
        "unix_socket_directories".to_string(),
        json!(m.path(&host.name, paths::SOCKET_DIR)),
    );
    if tls {
        // https://www.postgresql.org/docs/current/runtime-config-connection.html#RUNTIME-CONFIG-CONNECTION-SSL
        p.insert("ssl".to_string(), json!("on"));
        p.insert(
            "ssl_cert_file".to_string(),
            json!(m.path(&host.name, paths::TLS_CERT)),
        );
        p.insert(
            "ssl_key_file".to_string(),
            json!(m.path(&host.name, paths::TLS_PG_KEY)),
        );
        p.insert(
            "ssl_ca_file".to_string(),
            json!(m.path(&host.name, paths::TLS_CA)),
        );
    }
    // A host's own parameters: the DCS copy is the same for every member.
    for (k, v) in spec_parameters(host).filter(|(k, _)| is_host_parameter(host, k)) {
        p.insert(k, v);
    }
    p
}

/// True for a parameter set in the host's own `settings`, not for the site or above.
pub fn is_host_parameter(host: &Host, name: &str) -> bool {
    host.origins
        .get(&format!("postgresql/parameters/{name}"))
        .is_some_and(|p| crate::check::is_host_layer(p))
}

fn spec_parameters(host: &Host) -> impl Iterator<Item = (String, Value)> + '_ {
    host.config.postgresql.parameters.iter().map(|(k, v)| {
        let value = match v {
            crate::spec::v1::ScalarValue::Int(i) => json!(i),
            other => json!(scalar_text(other, "on", "off")),
        };
        (k.clone(), value)
    })
}

/// Cluster-wide PostgreSQL parameters: the built-in ones (`spec::defaults`),
/// then the spec's from the site, cluster and fleet layers (a host's own go
/// to its local configuration, `local_parameters`).
pub fn parameters(host: &Host) -> BTreeMap<String, Value> {
    let mut p: BTreeMap<String, Value> = crate::spec::defaults::PG_PARAMETERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.json()))
        .collect();
    // Bounds the WAL a slot holds back, above all a DR site's permanent slot:
    // a DR site that is down invalidates its slot instead of filling pg_wal.
    p.insert(
        "max_slot_wal_keep_size".to_string(),
        json!(format!(
            "{}MB",
            host.config.postgresql.max_slot_wal_keep_size_mb
        )),
    );
    for (k, v) in spec_parameters(host).filter(|(k, _)| !is_host_parameter(host, k)) {
        p.insert(k, v);
    }
    p
}

/// Everything a host's templates see. Field names are the template
/// contract (`{{pg.port}}`, `{{site.etcd_endpoints}}`); `role.yaml` guards
/// name its booleans (`host.is_pg`, `site.is_dr`, `patroni.pip`).
#[derive(Debug, Clone, Serialize)]
pub struct HostContext {
    /// The prefix of every absolute path: empty for a real build.
    pub root: String,
    pub pgimg_version: &'static str,
    pub host: HostFacts,
    pub paths: Paths,
    pub cluster: ClusterFacts,
    pub site: SiteFacts,
    pub os: OsContext,
    pub pg: PgContext,
    pub patroni: PatroniContext,
    pub etcd: EtcdContext,
    pub pgbackrest: PgbackrestContext,
    pub haproxy: HaproxyContext,
    pub source_date_epoch: u64,
    /// Day-two facts (`render::daytwo::host_context`).
    pub daytwo: super::daytwo::DayTwo,
    pub secrets: SecretsContext,
    pub firewall: FirewallContext,
    pub tls: TlsContext,
}

/// TLS and the control plane's logins (`secrets.tls`, on by default).
#[derive(Debug, Clone, Serialize)]
pub struct TlsContext {
    pub enabled: bool,
    /// `https` with TLS, else `http`: etcd's URLs and the REST API's.
    pub scheme: &'static str,
    /// Mapped paths of the TLS files (secrets, delivered with the host's others).
    pub ca: String,
    pub cert: String,
    pub pg_key: String,
    pub etcd_key: String,
    pub dir: String,
    /// etcd authentication is on (TLS and both etcd passwords referenced).
    pub etcd_auth: bool,
    /// This host enables etcd authentication for its site (its first etcd member).
    pub etcd_auth_member: bool,
    pub etcd_auth_env: String,
    /// The Patroni namespace the etcd user `patroni` may read and write.
    pub etcd_namespace: String,
    pub etcd_patroni_user: &'static str,
    /// HAProxy's stats page asks for a password.
    pub stats_auth: bool,
    pub stats_env: String,
    pub stats_user: &'static str,
    /// etcdctl's TLS flags, with the key this host's client reads (postgres's on a pg host).
    pub etcdctl: String,
    /// etcdctl's TLS flags for a unit that runs as `etcd` (etcd's own key).
    pub etcdctl_as_etcd: String,
    /// curl's flags for the REST API: ` --cacert CA` with TLS, else empty.
    pub curl: String,
    /// patronictl's etcd login for postgres (sourced by the check script).
    pub patronictl_env: String,
}

fn tls_context(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> TlsContext {
    let s = &cluster.secrets;
    let enabled = s.tls.enabled;
    let mp = |p: &str| m.path(&host.name, p);
    let key = if host.has(Role::Pg) {
        paths::TLS_PG_KEY
    } else {
        paths::TLS_ETCD_KEY
    };
    let etcdctl_flags = |key: &str| {
        if enabled {
            format!(
                " --cacert={} --cert={} --key={}",
                mp(paths::TLS_CA),
                mp(paths::TLS_CERT),
                mp(key)
            )
        } else {
            String::new()
        }
    };
    TlsContext {
        enabled,
        scheme: if enabled { "https" } else { "http" },
        ca: mp(paths::TLS_CA),
        cert: mp(paths::TLS_CERT),
        pg_key: mp(paths::TLS_PG_KEY),
        etcd_key: mp(paths::TLS_ETCD_KEY),
        dir: mp(paths::TLS_DIR),
        etcd_auth: s.etcd_auth(),
        etcd_auth_member: s.etcd_auth()
            && host.has(Role::Etcd)
            && site.with_role(Role::Etcd).next().map(|h| &h.name) == Some(&host.name),
        etcd_auth_env: mp(paths::ETCD_AUTH_ENV),
        etcd_namespace: host.config.patroni.namespace.clone(),
        etcd_patroni_user: crate::plan::secrets::ETCD_PATRONI_USER,
        stats_auth: s.haproxy_stats_password.is_some(),
        stats_env: mp(paths::HAPROXY_STATS_ENV),
        stats_user: crate::plan::secrets::STATS_USER,
        etcdctl: etcdctl_flags(key),
        etcdctl_as_etcd: etcdctl_flags(paths::TLS_ETCD_KEY),
        curl: if enabled {
            format!(" --cacert {}", mp(paths::TLS_CA))
        } else {
            String::new()
        },
        patronictl_env: mp(crate::plan::secrets::PATRONICTL_ENV),
    }
}

/// How a pg host fetches its secrets (`crate::plan::secrets`).
#[derive(Debug, Clone, Serialize)]
pub struct SecretsContext {
    /// The host fetches its secrets itself (`secrets.delivery` is set).
    pub fetch: bool,
    /// From SSM Parameter Store, by `pgimg-secrets.service`.
    pub ssm: bool,
    /// As a bundle over HTTPS, by the kickstart's `%post`.
    pub https: bool,
    /// `/etc/pgimg/secrets.conf`: names and paths only.
    pub conf: String,
    /// The file `fetch-secrets` installs last: once it is there, the secrets are.
    pub last: String,
}

fn secrets_context(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> SecretsContext {
    let d = &cluster.secrets.delivery;
    let files = crate::plan::secrets::host_files(cluster, site, host);
    let fetch = !files.is_empty() && (d.ssm.is_some() || d.https.is_some());
    SecretsContext {
        last: crate::plan::secrets::install_order(&files)
            .last()
            .map(|f| m.path(&host.name, f.path))
            .unwrap_or_default(),
        fetch,
        ssm: fetch && d.ssm.is_some(),
        https: fetch && d.https.is_some(),
        conf: if fetch {
            crate::plan::secrets::source_conf(cluster, host, &files, m)
        } else {
            String::new()
        },
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    pub name: String,
    pub fqdn: String,
    pub address: String,
    pub member_name: String,
    pub is_pg: bool,
    pub is_etcd: bool,
    pub is_haproxy: bool,
    pub localhost: String,
    /// HAProxy's `bind` form of the address (`ipv6@…` for IPv6).
    pub address_any: String,
}

/// Paths on the host as the rendered files name them (mapped in a lab build).
#[derive(Debug, Clone, Serialize)]
pub struct Paths {
    pub patroni_config: String,
    pub patroni_env: String,
    pub pgbackrest_config: String,
    pub pgbackrest_env: String,
    pub pgbackrest: String,
    pub patronictl: String,
    pub patroni: String,
    pub etcdctl: String,
    pub psql: String,
    pub pgctl: String,
    pub libexec: String,
    pub socket_dir: String,
    pub data_dir: String,
}

/// Another host of the cluster, as this host's files name it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberFacts {
    pub name: String,
    pub member_name: String,
    pub address: String,
    pub fqdn: String,
}

/// An etcd member of the site, for etcd's settings and the etcd runbook.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdMemberFacts {
    #[serde(flatten)]
    pub member: MemberFacts,
    pub peer_url: String,
    /// The spec marks it as joining a running cluster (`initial_cluster_state: existing`).
    pub joins_existing: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterFacts {
    pub name: String,
    /// Every host of every site: DR runbooks and checks name them.
    pub hosts: Vec<MemberFacts>,
    /// `/etc/hosts` lines of a lab's stand-ins (`Mapping::names`); empty for a real build.
    pub lab_names: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteFacts {
    pub name: String,
    pub scope: String,
    pub is_dr: bool,
    pub source: Option<SourceFacts>,
    pub slot_name: String,
    pub stanza: String,
    pub etcd_members: Vec<EtcdMemberFacts>,
    pub etcd_initial_cluster: String,
    pub etcd_endpoints: String,
    pub dcs_url: Option<String>,
    pub pg_hosts: Vec<MemberFacts>,
    pub haproxy_servers: Vec<HaproxyServer>,
    pub has_followers: bool,
    pub haproxy: Option<SiteHaproxy>,
}

/// The site a DR site follows, and the endpoint it streams from.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFacts {
    pub name: String,
    pub scope: String,
    pub endpoint: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct HaproxyServer {
    pub name: String,
    pub address: String,
    pub check_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteHaproxy {
    pub name: String,
    pub address: String,
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct OsContext {
    pub distro: &'static str,
    pub timezone: String,
    pub selinux: &'static str,
    pub firewall: bool,
    pub admin_user: String,
    pub sysctl: Vec<Sysctl>,
    /// Kernel settings for PostgreSQL, written only on pg hosts.
    pub pg_sysctl: Vec<Sysctl>,
    pub ntp_servers: Vec<String>,
    pub nofile: u32,
    pub nproc: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgContext {
    pub major: u32,
    pub port: u16,
    pub data_dir: String,
    /// The directory that holds the data directory: the data disk's mount point.
    pub data_parent: String,
    pub bin_dir: String,
    pub superuser: String,
    /// The superuser may log in over the network (`postgresql.superuser_remote`).
    pub superuser_remote: bool,
    pub replication_user: String,
    pub packages: PgPackages,
    pub extra_packages: Vec<String>,
    /// The glibc language pack of initdb's locale: one, or none for `C`/`C.UTF-8`.
    pub langpacks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgPackages {
    pub server: String,
    pub contrib: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PatroniContext {
    pub version: String,
    /// Installed with pip into a venv (else the PGDG RPM).
    pub pip: bool,
    pub bin: String,
    pub ctl: String,
    pub venv: &'static str,
    pub restapi_port: u16,
    pub rest_url: String,
    pub config: &'static str,
    pub env: &'static str,
    pub rpm: String,
    pub rpm_etcd: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EtcdContext {
    pub client_port: u16,
    pub peer_port: u16,
    pub token: String,
    pub client_url: String,
    pub peer_url: String,
    pub listen_client_urls: String,
    pub package: String,
    pub auto_compaction_retention_hours: u32,
    pub quota_backend_bytes: u64,
    pub heartbeat_interval_ms: u32,
    pub election_timeout_ms: u32,
    /// `new`, or `existing` for a member that joins a running cluster.
    pub initial_cluster_state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgbackrestContext {
    pub package: String,
    pub repos: Vec<RepoContext>,
    /// The site's shared posix repository, mounted by a `.mount` unit.
    pub mount: Option<super::storage::MountContext>,
    /// `mount` is set (a guard of `role.yaml`).
    pub mounted: bool,
    /// The first posix repository's path (unmapped), created owned by postgres.
    pub posix_dir: Option<String>,
    /// `posix_dir` is set.
    pub posix: bool,
    pub compress_type: &'static str,
    pub compress_level: u8,
    pub process_max: u16,
    pub archive_timeout: u32,
    pub archive_async: bool,
    pub archive_push_queue_max: String,
    pub cipher: bool,
    pub schedule: BackupSchedule,
}

/// One pgBackRest repository as `pgbackrest.conf` numbers it (`repo<n>-…`).
#[derive(Debug, Clone, Serialize)]
pub struct RepoContext {
    pub n: usize,
    pub s3: bool,
    /// The repository path (mapped for posix repositories in a lab build).
    pub path: String,
    pub bucket: Option<String>,
    pub endpoint: String,
    pub region: String,
    pub uri_style: &'static str,
    pub key_auto: bool,
    pub cipher: bool,
    /// `retention_full` counts days (pgBackRest `repo-retention-full-type=time`).
    pub retention_time: bool,
    pub retention_full: u32,
    pub retention_diff: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupSchedule {
    pub full: String,
    pub diff: String,
    pub incr: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HaproxyContext {
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
    pub maxconn: u32,
    pub server_maxconn: u32,
    pub replica_max_lag_bytes: u64,
    /// The check interval with its unit, as haproxy.cfg takes it.
    pub inter: String,
    pub fall: u32,
    pub rise: u32,
}

fn fqdn_of(h: &Host) -> String {
    match &h.config.network.domain {
        Some(d) => format!("{}.{d}", h.name),
        None => h.name.clone(),
    }
}

/// An installed package name, with `-<version>` when the spec pins one.
fn package(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}-{v}"),
        None => name.to_string(),
    }
}

/// Who connects to this host, as firewall sources (`a/32`, `b/128`, or the
/// spec's client networks), each list sorted and without the host itself
/// (its own connections arrive on the loopback interface, which firewalld
/// always accepts). `role.yaml` `ports:` name these lists in `from:`; they
/// follow what the rendered files make connect:
#[derive(Debug, Clone, Serialize)]
pub struct FirewallContext {
    /// The other etcd members of the site (etcd.conf's initial cluster: peer
    /// and client ports; the maintenance script talks to its own member only).
    pub etcd_peers: Vec<String>,
    /// Whoever reads this site's etcd: the site's Patroni members
    /// (patroni.yml `etcd3.hosts`) and, for a DR site, its source's members,
    /// where the cluster's `check` script runs (`etcdctl endpoint health`,
    /// `patronictl list` of every site).
    pub etcd_clients: Vec<String>,
    /// The site's Patroni members: replication and pg_rewind (PostgreSQL),
    /// leader race and `patronictl` (REST API), the `check` script (HAProxy).
    pub members: Vec<String>,
    /// The site's HAProxies: health checks on the REST API, then PostgreSQL.
    pub haproxies: Vec<String>,
    /// The members of the DR sites that follow this site: their standby
    /// leader and lag check connect to its HAProxies' write port, else to
    /// its members (pg_hba lets them replicate from either).
    pub followers: Vec<String>,
    /// The site's other HAProxies when keepalived runs: VRRP adverts.
    pub haproxy_peers: Vec<String>,
    /// `network.client_networks`.
    pub clients: Vec<String>,
}

fn firewall_context(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> FirewallContext {
    let sources = |hosts: &mut dyn Iterator<Item = &Host>| {
        let mut out: Vec<String> = hosts
            .filter(|h| h.name != host.name)
            .map(|h| host_prefix(&m.source_of(&h.address)))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let mut etcd_clients: Vec<&Host> = site.with_role(Role::Pg).collect();
    if let Some(src) = cluster.source_of(site) {
        etcd_clients.extend(src.with_role(Role::Pg));
    }
    let keepalived =
        host.config.haproxy.virtual_address.is_some() && site.with_role(Role::Haproxy).count() >= 2;
    FirewallContext {
        etcd_peers: sources(&mut site.with_role(Role::Etcd)),
        etcd_clients: sources(&mut etcd_clients.into_iter()),
        members: sources(&mut site.with_role(Role::Pg)),
        haproxies: sources(&mut site.with_role(Role::Haproxy)),
        followers: sources(
            &mut cluster
                .followers_of(site)
                .flat_map(|f| f.with_role(Role::Pg)),
        ),
        haproxy_peers: if keepalived && host.has(Role::Haproxy) {
            sources(&mut site.with_role(Role::Haproxy))
        } else {
            Vec::new()
        },
        clients: host.config.network.client_networks.clone(),
    }
}

/// The context of one host.
pub fn host_context(
    fleet: &Fleet,
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    m: &Mapping,
) -> HostContext {
    let c = &host.config;
    let addr = m.addr(&host.address);
    let stanza = stanza(site);
    // etcd's and the REST API's URLs: https with TLS.
    let scheme = if cluster.secrets.tls.enabled {
        "https"
    } else {
        "http"
    };
    let member = |h: &Host| MemberFacts {
        name: h.name.clone(),
        member_name: h.member_name.clone(),
        address: m.addr(&h.address),
        fqdn: fqdn_of(h),
    };
    let initial_cluster: Vec<String> = site
        .with_role(Role::Etcd)
        .map(|h| {
            format!(
                "{}={scheme}://{}",
                h.name,
                hostport(&m.addr(&h.address), h.config.etcd.peer_port)
            )
        })
        .collect();
    let etcd_endpoints: Vec<String> = site
        .with_role(Role::Etcd)
        .map(|h| {
            format!(
                "{scheme}://{}",
                hostport(&m.addr(&h.address), h.config.etcd.client_port)
            )
        })
        .collect();
    let source = cluster.source_of(site).map(|src| {
        let (endpoint, port) = source_endpoint(src, m);
        SourceFacts {
            name: src.name.clone(),
            scope: src.scope.clone(),
            endpoint,
            port,
        }
    });
    let cipher = cluster.secrets.backup_cipher_pass.is_some();
    let repos: Vec<RepoContext> = site_repos(cluster, site)
        .into_iter()
        .enumerate()
        .map(|(i, r)| repo_context(i, r, &stanza, &host.name, m, cipher))
        .collect();
    let mount = super::storage::repo_mount(&site_repos(cluster, site), m, &host.name);
    let posix_dir = site_repos(cluster, site)
        .into_iter()
        .find(|r| r.kind == RepoType::Posix)
        .map(|r| {
            r.path
                .clone()
                .unwrap_or_else(|| "/var/lib/pgbackrest".into())
        });
    let pip = c.patroni.install == PatroniInstall::Pip;
    let (patroni_bin, patronictl_bin) = patroni_binaries(c.patroni.install);
    let major = c.postgresql.major;
    let local = m.localhost(&host.name);
    let client_url = format!("{scheme}://{}", hostport(&addr, c.etcd.client_port));
    let peer_url = format!("{scheme}://{}", hostport(&addr, c.etcd.peer_port));
    let listen_client_urls = format!(
        "{client_url},{scheme}://{}",
        hostport(&local, c.etcd.client_port)
    );
    let mp = |p: &str| m.path(&host.name, p);
    let data_parent = match c.postgresql.data_dir.rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_string(),
        _ => "/".to_string(),
    };
    let pg_version = c.postgresql.version.as_deref();
    HostContext {
        root: m.prefix(&host.name),
        pgimg_version: env!("CARGO_PKG_VERSION"),
        host: HostFacts {
            name: host.name.clone(),
            fqdn: fqdn_of(host),
            address: addr.clone(),
            member_name: host.member_name.clone(),
            is_pg: host.has(Role::Pg),
            is_etcd: host.has(Role::Etcd),
            is_haproxy: host.has(Role::Haproxy),
            localhost: local,
            address_any: if addr.contains(':') {
                format!("ipv6@{addr}")
            } else {
                addr.clone()
            },
        },
        paths: Paths {
            patroni_config: mp(paths::PATRONI_CONFIG),
            patroni_env: mp(paths::PATRONI_ENV),
            pgbackrest_config: mp(paths::PGBACKREST_CONFIG),
            pgbackrest_env: mp(paths::PGBACKREST_ENV),
            pgbackrest: mp(paths::PGBACKREST_BIN),
            patronictl: mp(&patronictl_bin),
            patroni: mp(&patroni_bin),
            etcdctl: mp(paths::ETCDCTL_BIN),
            psql: mp(&format!("{}/psql", c.postgresql.bin_dir)),
            pgctl: mp(&format!("{}/pg_ctl", c.postgresql.bin_dir)),
            libexec: mp(paths::LIBEXEC),
            socket_dir: mp(paths::SOCKET_DIR),
            data_dir: mp(&c.postgresql.data_dir),
        },
        cluster: ClusterFacts {
            name: cluster.name.clone(),
            hosts: cluster
                .sites
                .iter()
                .flat_map(|s| s.hosts.iter())
                .map(member)
                .collect(),
            lab_names: m
                .names
                .iter()
                .map(|(a, n)| format!("{a} {}\n", n.join(" ")))
                .collect(),
        },
        site: SiteFacts {
            name: site.name.clone(),
            scope: site.scope.clone(),
            is_dr: site.is_dr(),
            source,
            slot_name: site.slot_name.clone(),
            stanza,
            etcd_members: site
                .with_role(Role::Etcd)
                .map(|h| EtcdMemberFacts {
                    member: member(h),
                    peer_url: format!(
                        "{scheme}://{}",
                        hostport(&m.addr(&h.address), h.config.etcd.peer_port)
                    ),
                    joins_existing: h.config.etcd.join_existing,
                })
                .collect(),
            etcd_initial_cluster: initial_cluster.join(","),
            etcd_endpoints: etcd_endpoints.join(","),
            dcs_url: site.with_role(Role::Etcd).next().map(|h| {
                format!(
                    "etcd3://{}",
                    hostport(&m.addr(&h.address), h.config.etcd.client_port)
                )
            }),
            pg_hosts: site.with_role(Role::Pg).map(member).collect(),
            haproxy_servers: site
                .with_role(Role::Pg)
                .map(|h| HaproxyServer {
                    name: h.member_name.clone(),
                    address: hostport(&m.addr(&h.address), h.config.postgresql.port),
                    check_port: h.config.patroni.restapi_port,
                })
                .collect(),
            has_followers: cluster.followers_of(site).next().is_some(),
            haproxy: site.with_role(Role::Haproxy).next().map(|h| SiteHaproxy {
                name: h.name.clone(),
                address: m.addr(&h.address),
                write_port: h.config.haproxy.write_port,
                read_port: h.config.haproxy.read_port,
                stats_port: h.config.haproxy.stats_port,
            }),
        },
        os: OsContext {
            distro: match c.os.distro {
                Distro::Rocky => "rocky",
                Distro::Alma => "alma",
            },
            timezone: c.os.timezone.clone(),
            selinux: match c.os.selinux {
                SelinuxMode::Enforcing => "enforcing",
                SelinuxMode::Permissive => "permissive",
                SelinuxMode::Disabled => "disabled",
            },
            firewall: c.os.firewall,
            admin_user: c.os.admin_user.clone(),
            sysctl: c
                .os
                .sysctl
                .iter()
                .map(|(k, v)| Sysctl {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            pg_sysctl: c
                .os
                .pg_sysctl
                .iter()
                .map(|(k, v)| Sysctl {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            ntp_servers: c.os.ntp_servers.clone(),
            nofile: c.os.nofile,
            nproc: c.os.nproc,
        },
        pg: PgContext {
            major,
            port: c.postgresql.port,
            data_dir: c.postgresql.data_dir.clone(),
            data_parent,
            bin_dir: c.postgresql.bin_dir.clone(),
            superuser: c.postgresql.superuser.clone(),
            superuser_remote: c.postgresql.superuser_remote,
            replication_user: c.postgresql.replication_user.clone(),
            packages: PgPackages {
                server: package(&format!("postgresql{major}-server"), pg_version),
                contrib: package(&format!("postgresql{major}-contrib"), pg_version),
            },
            extra_packages: c.postgresql.extra_packages.clone(),
            langpacks: super::storage::langpack(&c.postgresql.locale)
                .into_iter()
                .collect(),
        },
        patroni: PatroniContext {
            version: c.patroni.version.clone(),
            pip,
            bin: patroni_bin,
            ctl: patronictl_bin,
            venv: paths::PATRONI_VENV,
            restapi_port: c.patroni.restapi_port,
            rest_url: format!("{scheme}://{}", hostport(&addr, c.patroni.restapi_port)),
            config: paths::PATRONI_CONFIG,
            env: paths::PATRONI_ENV,
            // The RPM's own version, never the pip one (PGDG's RPM lags PyPI).
            rpm: package("patroni", Some(&c.patroni.rpm_version)),
            rpm_etcd: package("patroni-etcd", Some(&c.patroni.rpm_version)),
        },
        etcd: EtcdContext {
            client_port: c.etcd.client_port,
            peer_port: c.etcd.peer_port,
            token: c
                .etcd
                .token
                .clone()
                .unwrap_or_else(|| format!("{}-etcd", site.scope)),
            client_url,
            peer_url,
            listen_client_urls,
            package: package("etcd", c.etcd.version.as_deref()),
            auto_compaction_retention_hours: c.etcd.auto_compaction_retention_hours,
            quota_backend_bytes: c.etcd.quota_backend_bytes,
            heartbeat_interval_ms: c.etcd.heartbeat_interval_ms,
            election_timeout_ms: c.etcd.election_timeout_ms,
            initial_cluster_state: if c.etcd.join_existing {
                "existing"
            } else {
                "new"
            },
        },
        pgbackrest: PgbackrestContext {
            package: package("pgbackrest", c.pgbackrest.version.as_deref()),
            repos,
            mounted: mount.is_some(),
            mount,
            posix: posix_dir.is_some(),
            posix_dir,
            compress_type: compress(c.pgbackrest.compress_type),
            compress_level: c.pgbackrest.compress_level,
            process_max: c.pgbackrest.process_max,
            archive_timeout: c.pgbackrest.archive_timeout,
            archive_async: c.pgbackrest.archive_async,
            archive_push_queue_max: format!("{}MiB", c.pgbackrest.archive_push_queue_max_mb),
            cipher,
            schedule: BackupSchedule {
                full: c.pgbackrest.full.clone(),
                diff: c.pgbackrest.diff.clone(),
                incr: c.pgbackrest.incr.clone(),
            },
        },
        haproxy: HaproxyContext {
            write_port: c.haproxy.write_port,
            read_port: c.haproxy.read_port,
            stats_port: c.haproxy.stats_port,
            maxconn: c.haproxy.maxconn,
            server_maxconn: crate::check::daytwo::server_maxconn(site, host),
            replica_max_lag_bytes: c.haproxy.replica_max_lag_bytes,
            inter: format!("{}ms", c.haproxy.check_interval_ms),
            fall: c.haproxy.check_fall,
            rise: c.haproxy.check_rise,
        },
        source_date_epoch: fleet.source_date_epoch,
        daytwo: super::daytwo::host_context(cluster, site, host, m),
        secrets: secrets_context(cluster, site, host, m),
        firewall: firewall_context(cluster, site, host, m),
        tls: tls_context(cluster, site, host, m),
    }
}

/// Where Patroni and patronictl are installed: the pip venv or the RPM's `/usr/bin`.
pub fn patroni_binaries(install: PatroniInstall) -> (String, String) {
    match install {
        PatroniInstall::Pip => (
            format!("{}/bin/patroni", paths::PATRONI_VENV),
            format!("{}/bin/patronictl", paths::PATRONI_VENV),
        ),
        PatroniInstall::Rpm => ("/usr/bin/patroni".into(), "/usr/bin/patronictl".into()),
    }
}
