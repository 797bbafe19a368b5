//! Stage "resolve": the raw spec → the fleet with every default applied.
//!
//! Settings are layered fleet → cluster → site → host and merged here, once,
//! as JSON trees (a mapping merges key by key, anything else replaces), so
//! that each resolved leaf remembers the pointer of the layer that set it and
//! a semantic check can point at the line the user wrote. Built-in defaults
//! (the table in `spec::defaults`) are filled in afterwards.
//!
//! Invariant: nothing here derives `Deserialize` or `Serialize`, and every
//! collection is ordered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::source::child;
use crate::spec::v1::{
    self, CompressType, Distro, HbaRule, PatroniInstall, RepoType, RetentionType, Role, S3KeyType,
    ScalarValue, SecretRef, SelinuxMode, SyncMode, UriStyle,
};

/// The built-in defaults, re-exported where the model applies them.
pub use crate::spec::defaults;
use crate::spec::defaults as d;

#[derive(Debug, Clone)]
pub struct Fleet {
    pub source_date_epoch: u64,
    pub clusters: Vec<Cluster>,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub pointer: String,
    pub secrets: Secrets,
    pub sites: Vec<Site>,
}

#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub superuser_password: Option<SecretRef>,
    pub replication_password: Option<SecretRef>,
    pub rewind_password: Option<SecretRef>,
    pub restapi_password: Option<SecretRef>,
    pub backup_cipher_pass: Option<SecretRef>,
    pub etcd_root_password: Option<SecretRef>,
    pub etcd_password: Option<SecretRef>,
    pub haproxy_stats_password: Option<SecretRef>,
    /// The cluster's, else the fleet's.
    pub delivery: v1::SecretDelivery,
    pub tls: Tls,
    /// The CA certificate's reference, `<tls.dir>/<cluster>/ca.crt` (TLS on).
    pub tls_ca: Option<SecretRef>,
}

/// TLS of a cluster (`secrets.tls`, the cluster's else the fleet's).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub enabled: bool,
    /// Where the certificates are, relative to the spec (`tls`).
    pub dir: String,
    /// Pointer of the `enabled: false` that turned it off.
    pub off_pointer: Option<String>,
}

impl Secrets {
    /// etcd authentication is on: TLS, and both etcd passwords referenced.
    pub fn etcd_auth(&self) -> bool {
        self.tls.enabled && self.etcd_root_password.is_some() && self.etcd_password.is_some()
    }
}

impl Secrets {
    /// Every reference the cluster sets (the S3 keys of repositories are apart).
    pub fn refs(&self) -> impl Iterator<Item = &SecretRef> {
        [
            &self.superuser_password,
            &self.replication_password,
            &self.rewind_password,
            &self.restapi_password,
            &self.backup_cipher_pass,
            &self.etcd_root_password,
            &self.etcd_password,
            &self.haproxy_stats_password,
        ]
        .into_iter()
        .flatten()
    }

    /// The references every cluster needs, and whether the spec gives each one.
    pub fn required(&self) -> Vec<(&'static str, bool)> {
        let mut out = vec![
            ("superuser_password", self.superuser_password.is_some()),
            ("replication_password", self.replication_password.is_some()),
            ("rewind_password", self.rewind_password.is_some()),
        ];
        // A closed control plane: etcd and the stats page log their users in.
        if self.tls.enabled {
            out.push(("etcd_root_password", self.etcd_root_password.is_some()));
            out.push(("etcd_password", self.etcd_password.is_some()));
            out.push((
                "haproxy_stats_password",
                self.haproxy_stats_password.is_some(),
            ));
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub pointer: String,
    pub scope: String,
    pub scope_pointer: String,
    /// The name of the site this DR site follows.
    pub standby_of: Option<String>,
    /// Slot this site holds on its source (meaningful for DR sites).
    pub slot_name: String,
    pub slot_pointer: String,
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub pointer: String,
    pub address: String,
    pub extra_addresses: Vec<String>,
    pub member_name: String,
    pub roles: BTreeSet<Role>,
    pub boot: Boot,
    /// Shared by every host whose layers resolve alike (a fleet's hosts
    /// mostly do): a resolved configuration is kilobytes.
    pub config: Arc<Config>,
    /// Settings path (`patroni/ttl`) → pointer of the layer that set it.
    pub origins: Arc<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub mac: Option<String>,
    pub interface: Option<String>,
    pub os_disk: Option<String>,
    pub data_disk: Option<String>,
    pub data_size_gib: Option<u32>,
    /// The PXE entry installs by default (else it boots the local disk).
    pub install: bool,
}

/// Every setting of one host, with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub os: Os,
    pub network: Network,
    pub repos: Repos,
    pub postgresql: Postgres,
    pub patroni: Patroni,
    pub etcd: Etcd,
    pub pgbackrest: Pgbackrest,
    pub haproxy: Haproxy,
}

#[derive(Debug, Clone)]
pub struct Os {
    pub distro: Distro,
    pub timezone: String,
    pub lang: String,
    pub keyboard: String,
    pub selinux: SelinuxMode,
    pub firewall: bool,
    pub admin_user: String,
    pub ssh_keys: Vec<String>,
    /// Kernel settings of every host.
    pub sysctl: BTreeMap<String, String>,
    /// Kernel settings for PostgreSQL, written only on pg hosts.
    pub pg_sysctl: BTreeMap<String, String>,
    pub nofile: u32,
    pub nproc: u32,
    pub ntp_servers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub prefix: Option<u8>,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    pub domain: Option<String>,
    pub client_networks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Repos {
    pub baseos: Option<String>,
    pub appstream: Option<String>,
    pub pgdg: String,
    pub pgdg_extras: Option<String>,
    pub pypi: Option<String>,
    pub installer: Option<String>,
    pub artifacts: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Postgres {
    pub major: u32,
    pub version: Option<String>,
    pub port: u16,
    pub data_dir: String,
    pub bin_dir: String,
    /// Parameters set in the spec, merged over the built-in ones by `plan`.
    pub parameters: BTreeMap<String, ScalarValue>,
    pub encoding: String,
    pub locale: String,
    pub data_checksums: bool,
    pub pg_hba: Vec<HbaRule>,
    pub allow_remote_trust: bool,
    pub superuser_remote: bool,
    pub superuser: String,
    pub replication_user: String,
    pub rewind_user: String,
    pub extra_packages: Vec<String>,
    pub max_slot_wal_keep_size_mb: u32,
}

#[derive(Debug, Clone)]
pub struct Patroni {
    /// The pip (PyPI) version.
    pub version: String,
    /// The PGDG RPM version; never the pip one.
    pub rpm_version: String,
    pub install: PatroniInstall,
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    pub maximum_lag_on_failover: u64,
    pub synchronous_mode: SyncMode,
    pub synchronous_mode_strict: bool,
    pub synchronous_node_count: u32,
    pub restapi_port: u16,
    pub use_pg_rewind: bool,
    pub use_slots: bool,
    pub namespace: String,
    pub nofailover: bool,
    pub noloadbalance: bool,
    pub clonefrom: bool,
    pub nosync: bool,
    pub watchdog: v1::WatchdogMode,
}

#[derive(Debug, Clone)]
pub struct Etcd {
    pub version: Option<String>,
    /// The member joins a running cluster (`ETCD_INITIAL_CLUSTER_STATE=existing`).
    pub join_existing: bool,
    pub token: Option<String>,
    pub client_port: u16,
    pub peer_port: u16,
    pub auto_compaction_retention_hours: u32,
    pub quota_backend_bytes: u64,
    pub heartbeat_interval_ms: u32,
    pub election_timeout_ms: u32,
}

#[derive(Debug, Clone)]
pub struct Pgbackrest {
    pub version: Option<String>,
    pub stanza: Option<String>,
    /// Repositories as written at this host's layer; a DR site's own repositories follow its source's in `plan`.
    pub repos: Vec<BackupRepo>,
    pub compress_type: CompressType,
    pub compress_level: u8,
    pub process_max: u16,
    pub archive_timeout: u32,
    pub archive_async: bool,
    pub archive_push_queue_max_mb: u32,
    pub full: String,
    pub diff: String,
    pub incr: String,
}

#[derive(Debug, Clone)]
pub struct BackupRepo {
    pub kind: RepoType,
    pub path: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub uri_style: UriStyle,
    pub key_type: S3KeyType,
    /// The spec sets `key_type` (else it follows the site: see `site_key_type`).
    pub key_type_explicit: bool,
    pub key: Option<SecretRef>,
    pub key_secret: Option<SecretRef>,
    pub retention_full_type: RetentionType,
    pub retention_full: u32,
    pub retention_diff: u32,
    /// The shared file system of a posix repository.
    pub mount: Option<v1::RepoMount>,
    /// Pointer of this repository in the spec.
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct Haproxy {
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
    pub maxconn: u32,
    /// `None`: derived from PostgreSQL's connection limit and the site's HAProxy count.
    pub server_maxconn: Option<u32>,
    pub replica_max_lag_bytes: u64,
    pub virtual_address: Option<String>,
    pub virtual_router_id: u8,
    pub check_interval_ms: u32,
    pub check_fall: u32,
    pub check_rise: u32,
}

impl Fleet {
    pub fn hosts(&self) -> impl Iterator<Item = (&Cluster, &Site, &Host)> {
        self.clusters.iter().flat_map(|c| {
            c.sites
                .iter()
                .flat_map(move |s| s.hosts.iter().map(move |h| (c, s, h)))
        })
    }
}

impl Cluster {
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The site this DR site follows.
    pub fn source_of(&self, site: &Site) -> Option<&Site> {
        site.standby_of.as_deref().and_then(|n| self.site(n))
    }

    /// Sites that follow `site` directly.
    pub fn followers_of<'a>(&'a self, site: &'a Site) -> impl Iterator<Item = &'a Site> {
        self.sites
            .iter()
            .filter(move |s| s.standby_of.as_deref() == Some(site.name.as_str()))
    }
}

impl Site {
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.roles.contains(&role))
    }

    pub fn is_dr(&self) -> bool {
        self.standby_of.is_some()
    }

    /// The host that speaks for the site as a whole (its settings, the
    /// cluster files' view of it): its first `pg` host, else its first host.
    pub fn representative(&self) -> Option<&Host> {
        self.with_role(Role::Pg).next().or(self.hosts.first())
    }

    /// The settings of the site as a whole: those of its representative host.
    pub fn config(&self) -> &Config {
        &self
            .representative()
            .expect("a site has at least one host (schema: minItems 1)")
            .config
    }
}

impl Host {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Pointer of the layer that set a setting, or of the host when it is a built-in default.
    pub fn origin(&self, path: &str) -> String {
        self.origins
            .get(path)
            .cloned()
            .unwrap_or_else(|| self.pointer.clone())
    }
}

/// Deep-merges `layer` into `base`, recording each leaf's origin.
fn merge(
    base: &mut Value,
    layer: &Value,
    path: &str,
    pointer: &str,
    origins: &mut BTreeMap<String, String>,
) {
    match (base, layer) {
        (Value::Object(b), Value::Object(l)) => {
            for (k, v) in l {
                let sub_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}/{k}")
                };
                let sub_ptr = child(pointer, k);
                let slot = b.entry(k.clone()).or_insert(Value::Null);
                if v.is_null() {
                    continue;
                }
                if slot.is_object() && v.is_object() {
                    merge(slot, v, &sub_path, &sub_ptr, origins);
                } else {
                    *slot = v.clone();
                    record_leaves(v, &sub_path, &sub_ptr, origins);
                }
            }
        }
        (_, Value::Null) => {}
        (b, l) => *b = l.clone(),
    }
}

fn record_leaves(v: &Value, path: &str, pointer: &str, origins: &mut BTreeMap<String, String>) {
    if v.is_null() {
        return;
    }
    origins.insert(path.to_string(), pointer.to_string());
    if let Value::Object(m) = v {
        for (k, sub) in m {
            record_leaves(sub, &format!("{path}/{k}"), &child(pointer, k), origins);
        }
    }
}

fn settings_json(s: Option<&v1::Settings>) -> Value {
    s.and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// A lock of the resolution's shared copies. A thread that panicked while
/// holding it left a complete map (each change is one insert), so its
/// poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Applies every default; the spec must have passed the schema.
pub fn resolve(spec: &v1::Spec) -> Fleet {
    let fleet_settings = settings_json(spec.defaults.as_ref());
    use rayon::prelude::*;
    // Hosts whose merged settings and origins are alike share one copy.
    // Clusters are resolved in parallel (merging each host's four layers
    // is most of the work), so the copies are shared through locks; which
    // thread makes a copy first does not matter, as equal keys make equal
    // copies.
    let configs: Mutex<HashMap<(String, String), Arc<Config>>> = Mutex::default();
    let shared_origins: Mutex<HashSet<Arc<BTreeMap<String, String>>>> = Mutex::default();
    // `key`: the merged settings' text and the repositories' pointer.
    let config_for = |key: (String, String), merged: &Value| {
        let known = lock(&configs).get(&key).map(Arc::clone);
        match known {
            Some(c) => c,
            None => {
                // The schema has vetted every layer, so the merge fits `Settings` too.
                let raw: v1::Settings = serde_json::from_value(merged.clone()).unwrap_or_default();
                let c = Arc::new(config_from(raw, &key.1));
                Arc::clone(lock(&configs).entry(key).or_insert(c))
            }
        }
    };
    let share_origins = |origins: Arc<BTreeMap<String, String>>| {
        let mut shared = lock(&shared_origins);
        match shared.get(&origins) {
            Some(o) => Arc::clone(o),
            None => {
                shared.insert(Arc::clone(&origins));
                origins
            }
        }
    };
    let clusters = spec
        .clusters
        .par_iter()
        .enumerate()
        .map(|(ci, c)| {
            let cp = format!("/clusters/{ci}");
            let mut secrets = merge_secrets(spec.secrets.as_ref(), c.secrets.as_ref(), &cp);
            secrets.tls_ca = crate::secrets::tls_files(spec, ci).map(|f| f.ca_cert);
            let cluster_settings = settings_json(c.settings.as_deref());
            let sites = c
                .sites
                .iter()
                .enumerate()
                .map(|(si, s)| {
                    let sp = format!("{cp}/sites/{si}");
                    let site_settings = settings_json(s.settings.as_deref());
                    let (scope, scope_pointer) = match &s.scope {
                        Some(sc) => (sc.0.clone(), format!("{sp}/scope")),
                        None if s.standby_of.is_some() => {
                            (format!("{}_{}", c.name, s.name), format!("{sp}/name"))
                        }
                        None => (c.name.0.clone(), format!("{cp}/name")),
                    };
                    let (slot_name, slot_pointer) = match &s.slot_name {
                        Some(n) => (n.0.clone(), format!("{sp}/slot_name")),
                        None => (
                            format!("standby_{}", s.name.0.replace('-', "_")),
                            format!("{sp}/name"),
                        ),
                    };
                    // The fleet's, cluster's and site's layers, merged once
                    // for the site: most hosts add no layer of their own,
                    // and share this merge, its configuration and origins.
                    let mut site_origins = BTreeMap::new();
                    let mut site_merged = Value::Object(Default::default());
                    for (layer, ptr) in [
                        (&fleet_settings, "/defaults".to_string()),
                        (&cluster_settings, format!("{cp}/settings")),
                        (&site_settings, format!("{sp}/settings")),
                    ] {
                        merge(&mut site_merged, layer, "", &ptr, &mut site_origins);
                    }
                    let bare = strip_nulls(site_merged.clone());
                    let bare_text = bare.to_string();
                    let bare_origins = share_origins(Arc::new(site_origins.clone()));
                    let hosts = s
                        .hosts
                        .iter()
                        .enumerate()
                        .map(|(hi, h)| {
                            let hp = format!("{sp}/hosts/{hi}");
                            let (config, origins) = match h.settings.as_deref() {
                                None => {
                                    let key =
                                        (bare_text.clone(), repos_pointer(&hp, &bare_origins));
                                    (config_for(key, &bare), Arc::clone(&bare_origins))
                                }
                                Some(own) => {
                                    let mut origins = site_origins.clone();
                                    let mut merged = site_merged.clone();
                                    merge(
                                        &mut merged,
                                        &settings_json(Some(own)),
                                        "",
                                        &format!("{hp}/settings"),
                                        &mut origins,
                                    );
                                    let merged = strip_nulls(merged);
                                    let key = (merged.to_string(), repos_pointer(&hp, &origins));
                                    (config_for(key, &merged), share_origins(Arc::new(origins)))
                                }
                            };
                            let boot = h.boot.as_ref();
                            let disk = boot.and_then(|b| b.disk.as_ref());
                            Host {
                                name: h.name.0.clone(),
                                pointer: hp,
                                address: h.address.0.clone(),
                                extra_addresses: h
                                    .extra_addresses
                                    .iter()
                                    .flatten()
                                    .map(|a| a.0.clone())
                                    .collect(),
                                member_name: h.member_name.as_ref().unwrap_or(&h.name).0.clone(),
                                roles: h.roles.iter().copied().collect(),
                                boot: Boot {
                                    mac: boot
                                        .and_then(|b| b.mac.as_ref())
                                        .map(|m| m.0.to_ascii_lowercase()),
                                    interface: boot
                                        .and_then(|b| b.interface.as_ref())
                                        .map(|i| i.0.clone()),
                                    os_disk: disk
                                        .and_then(|d| d.os_disk.as_ref())
                                        .map(|d| d.0.clone()),
                                    data_disk: disk
                                        .and_then(|d| d.data_disk.as_ref())
                                        .map(|d| d.0.clone()),
                                    data_size_gib: disk.and_then(|d| d.data_size_gib),
                                    install: boot
                                        .and_then(|b| b.install)
                                        .unwrap_or(d::BOOT_INSTALL),
                                },
                                config,
                                origins,
                            }
                        })
                        .collect();
                    let mut hosts: Vec<Host> = hosts;
                    site_key_type(&mut hosts);
                    Site {
                        name: s.name.0.clone(),
                        pointer: sp,
                        scope,
                        scope_pointer,
                        standby_of: s.standby_of.as_ref().map(|n| n.0.clone()),
                        slot_name,
                        slot_pointer,
                        hosts,
                    }
                })
                .collect();
            Cluster {
                name: c.name.0.clone(),
                pointer: cp,
                secrets,
                sites,
            }
        })
        .collect();
    Fleet {
        source_date_epoch: spec.source_date_epoch.unwrap_or(d::SOURCE_DATE_EPOCH),
        clusters,
    }
}

/// S3 credentials follow the site: EC2's instance role (`auto`) does not
/// exist on bare metal, so a site with a host installed over PXE (`boot.mac`)
/// defaults to `shared` keys.
fn site_key_type(hosts: &mut [Host]) {
    if !hosts.iter().any(|h| h.boot.mac.is_some()) {
        return;
    }
    // Each shared configuration is changed once and stays shared.
    let mut changed: HashMap<*const Config, Arc<Config>> = HashMap::new();
    for h in hosts {
        let was = Arc::as_ptr(&h.config);
        if let Some(c) = changed.get(&was) {
            h.config = Arc::clone(c);
            continue;
        }
        let config = Arc::make_mut(&mut h.config);
        for r in &mut config.pgbackrest.repos {
            if r.kind == RepoType::S3 && !r.key_type_explicit {
                r.key_type = S3KeyType::Shared;
            }
        }
        changed.insert(was, Arc::clone(&h.config));
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The cluster's `secrets.tls` fields, else the fleet's, else the defaults.
pub fn merge_tls(
    fleet: Option<&v1::Secrets>,
    cluster: Option<&v1::Secrets>,
    cluster_pointer: &str,
) -> Tls {
    let tls = |s: Option<&v1::Secrets>| s.and_then(|s| s.tls.clone());
    let (c, f) = (tls(cluster), tls(fleet));
    let enabled_at = match (
        c.as_ref().and_then(|t| t.enabled),
        f.as_ref().and_then(|t| t.enabled),
    ) {
        (Some(e), _) => Some((e, format!("{cluster_pointer}/secrets/tls/enabled"))),
        (None, Some(e)) => Some((e, "/secrets/tls/enabled".to_string())),
        (None, None) => None,
    };
    let enabled = enabled_at.as_ref().map_or(d::TLS_ENABLED, |(e, _)| *e);
    Tls {
        enabled,
        dir: c
            .as_ref()
            .and_then(|t| t.dir.clone())
            .or_else(|| f.as_ref().and_then(|t| t.dir.clone()))
            .map_or_else(|| d::TLS_DIR.to_string(), |p| p.to_string()),
        off_pointer: enabled_at.filter(|(e, _)| !e).map(|(_, p)| p),
    }
}

fn merge_secrets(
    fleet: Option<&v1::Secrets>,
    cluster: Option<&v1::Secrets>,
    cluster_pointer: &str,
) -> Secrets {
    let pick = |f: fn(&v1::Secrets) -> &Option<SecretRef>| {
        cluster
            .and_then(|c| f(c).clone())
            .or_else(|| fleet.and_then(|s| f(s).clone()))
    };
    Secrets {
        superuser_password: pick(|s| &s.superuser_password),
        replication_password: pick(|s| &s.replication_password),
        rewind_password: pick(|s| &s.rewind_password),
        restapi_password: pick(|s| &s.restapi_password),
        backup_cipher_pass: pick(|s| &s.backup_cipher_pass),
        etcd_root_password: pick(|s| &s.etcd_root_password),
        etcd_password: pick(|s| &s.etcd_password),
        haproxy_stats_password: pick(|s| &s.haproxy_stats_password),
        tls: merge_tls(fleet, cluster, cluster_pointer),
        tls_ca: None,
        delivery: cluster
            .and_then(|c| c.delivery.clone())
            .or_else(|| fleet.and_then(|s| s.delivery.clone()))
            .unwrap_or_default(),
    }
}

/// Renders a scalar the way PostgreSQL and sysctl files want it.
pub fn scalar_text(v: &ScalarValue, truthy: &str, falsy: &str) -> String {
    match v {
        ScalarValue::Bool(true) => truthy.to_string(),
        ScalarValue::Bool(false) => falsy.to_string(),
        ScalarValue::Int(i) => i.to_string(),
        ScalarValue::Float(f) => f.to_string(),
        ScalarValue::Text(t) => t.0.clone(),
    }
}

fn default_sysctl() -> BTreeMap<String, String> {
    d::SYSCTL
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn default_pg_sysctl() -> BTreeMap<String, String> {
    d::PG_SYSCTL
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Where the host's backup repositories were set: its layer's pointer, or
/// where its own settings would hold them.
fn repos_pointer(host_pointer: &str, origins: &BTreeMap<String, String>) -> String {
    origins
        .get("pgbackrest/repos")
        .cloned()
        .unwrap_or_else(|| format!("{host_pointer}/settings/pgbackrest/repos"))
}

fn config_from(s: v1::Settings, repos_pointer: &str) -> Config {
    let os = s.os.unwrap_or_default();
    let net = s.network.unwrap_or_default();
    let repos = s.repos.unwrap_or_default();
    let pg = s.postgresql.unwrap_or_default();
    let pat = s.patroni.unwrap_or_default();
    let etcd = s.etcd.unwrap_or_default();
    let br = s.pgbackrest.unwrap_or_default();
    let hap = s.haproxy.unwrap_or_default();
    let limits = os.limits.unwrap_or_default();
    let mut sysctl = default_sysctl();
    let mut pg_sysctl = default_pg_sysctl();
    for (k, v) in os.sysctl.unwrap_or_default() {
        // A key the pg hosts set apart stays apart, so the user's value is not overridden there.
        let map = if pg_sysctl.contains_key(&k.0) {
            &mut pg_sysctl
        } else {
            &mut sysctl
        };
        map.insert(k.0, scalar_text(&v, "1", "0"));
    }
    let major = pg.major.unwrap_or(d::PG_MAJOR);
    let initdb = pg.initdb.unwrap_or_default();
    let users = pg.users.unwrap_or_default();
    let tags = pat.tags.unwrap_or_default();
    let schedule = br.schedule.unwrap_or_default();
    // No built-in repository: a node-local one would die with its node (PG0211).
    let backup_repos = br
        .repos
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| BackupRepo {
            kind: r.kind,
            path: r.path.map(|p| p.0),
            bucket: r.bucket.map(|b| b.0),
            endpoint: r.endpoint.map(|e| e.0),
            region: r.region.map(|r| r.0),
            uri_style: r.uri_style.unwrap_or(d::REPO_URI_STYLE),
            key_type: r.key_type.unwrap_or(d::REPO_KEY_TYPE),
            key_type_explicit: r.key_type.is_some(),
            key: r.key,
            key_secret: r.key_secret,
            retention_full_type: r.retention_full_type.unwrap_or(d::REPO_RETENTION_FULL_TYPE),
            retention_full: r.retention_full.unwrap_or(d::REPO_RETENTION_FULL),
            retention_diff: r.retention_diff.unwrap_or(d::REPO_RETENTION_DIFF),
            mount: r.mount,
            pointer: child(repos_pointer, i),
        })
        .collect();
    Config {
        os: Os {
            distro: os.distro.unwrap_or(d::OS_DISTRO),
            timezone: os
                .timezone
                .map(|t| t.0)
                .unwrap_or_else(|| d::OS_TIMEZONE.into()),
            lang: os.lang.map(|t| t.0).unwrap_or_else(|| d::OS_LANG.into()),
            keyboard: os
                .keyboard
                .map(|t| t.0)
                .unwrap_or_else(|| d::OS_KEYBOARD.into()),
            selinux: os.selinux.unwrap_or(d::OS_SELINUX),
            firewall: os.firewall.unwrap_or(d::OS_FIREWALL),
            admin_user: os
                .admin_user
                .map(|t| t.0)
                .unwrap_or_else(|| d::OS_ADMIN_USER.into()),
            ssh_keys: os
                .ssh_keys
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.0)
                .collect(),
            sysctl,
            pg_sysctl,
            nofile: limits.nofile.unwrap_or(d::LIMIT_NOFILE),
            nproc: limits.nproc.unwrap_or(d::LIMIT_NPROC),
            ntp_servers: os
                .ntp_servers
                .unwrap_or_default()
                .into_iter()
                .map(|n| n.0)
                .collect(),
        },
        network: Network {
            prefix: net.prefix,
            gateway: net.gateway.map(|g| g.0),
            dns: net
                .dns
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.0)
                .collect(),
            domain: net.domain.map(|d| d.0),
            client_networks: net
                .client_networks
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.0)
                .collect(),
        },
        repos: Repos {
            baseos: repos.baseos.map(|u| u.0),
            appstream: repos.appstream.map(|u| u.0),
            pgdg: repos
                .pgdg
                .map(|u| u.0.trim_end_matches('/').to_string())
                .unwrap_or_else(|| d::PGDG_URL.into()),
            pgdg_extras: repos.pgdg_extras.map(|u| u.0),
            pypi: repos.pypi.map(|u| u.0),
            installer: repos.installer.map(|u| u.0),
            artifacts: repos
                .artifacts
                .map(|u| u.0.trim_end_matches('/').to_string()),
        },
        postgresql: Postgres {
            major,
            version: pg.version.map(|v| v.0),
            port: pg.port.unwrap_or(d::PG_PORT),
            data_dir: pg
                .data_dir
                .map(|d| d.0)
                // `spec::defaults::DERIVED`, `PostgresSettings.data_dir`.
                .unwrap_or_else(|| format!("/var/lib/pgsql/{major}/data")),
            bin_dir: format!("/usr/pgsql-{major}/bin"),
            parameters: pg
                .parameters
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.0, v))
                .collect(),
            encoding: initdb
                .encoding
                .map(|e| e.0)
                .unwrap_or_else(|| d::INITDB_ENCODING.into()),
            locale: initdb
                .locale
                .map(|l| l.0)
                .unwrap_or_else(|| d::INITDB_LOCALE.into()),
            data_checksums: initdb.data_checksums.unwrap_or(d::INITDB_DATA_CHECKSUMS),
            pg_hba: pg.pg_hba.unwrap_or_default(),
            allow_remote_trust: pg.allow_remote_trust.unwrap_or(d::PG_ALLOW_REMOTE_TRUST),
            superuser_remote: pg.superuser_remote.unwrap_or(d::PG_SUPERUSER_REMOTE),
            superuser: users
                .superuser
                .map(|u| u.0)
                .unwrap_or_else(|| d::PG_SUPERUSER.into()),
            replication_user: users
                .replication
                .map(|u| u.0)
                .unwrap_or_else(|| d::PG_REPLICATION_USER.into()),
            rewind_user: users
                .rewind
                .map(|u| u.0)
                .unwrap_or_else(|| d::PG_REWIND_USER.into()),
            extra_packages: pg
                .extra_packages
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.0)
                .collect(),
            max_slot_wal_keep_size_mb: pg
                .max_slot_wal_keep_size_mb
                .unwrap_or(d::PG_MAX_SLOT_WAL_KEEP_SIZE_MB),
        },
        patroni: Patroni {
            version: pat
                .version
                .map(|v| v.0)
                .unwrap_or_else(|| d::PATRONI_VERSION.into()),
            rpm_version: pat
                .rpm_version
                .map(|v| v.0)
                .unwrap_or_else(crate::facts::catalog::pins::patroni_rpm),
            install: pat.install.unwrap_or(d::PATRONI_INSTALL),
            ttl: pat.ttl.unwrap_or(d::PATRONI_TTL),
            loop_wait: pat.loop_wait.unwrap_or(d::PATRONI_LOOP_WAIT),
            retry_timeout: pat.retry_timeout.unwrap_or(d::PATRONI_RETRY_TIMEOUT),
            maximum_lag_on_failover: pat
                .maximum_lag_on_failover
                .unwrap_or(d::PATRONI_MAXIMUM_LAG_ON_FAILOVER),
            synchronous_mode: pat.synchronous_mode.unwrap_or(d::PATRONI_SYNCHRONOUS_MODE),
            synchronous_mode_strict: pat
                .synchronous_mode_strict
                .unwrap_or(d::PATRONI_SYNCHRONOUS_MODE_STRICT),
            synchronous_node_count: pat
                .synchronous_node_count
                .unwrap_or(d::PATRONI_SYNCHRONOUS_NODE_COUNT),
            restapi_port: pat.restapi_port.unwrap_or(d::PATRONI_RESTAPI_PORT),
            use_pg_rewind: pat.use_pg_rewind.unwrap_or(d::PATRONI_USE_PG_REWIND),
            use_slots: pat.use_slots.unwrap_or(d::PATRONI_USE_SLOTS),
            namespace: pat
                .namespace
                .map(|n| n.0)
                .unwrap_or_else(|| d::PATRONI_NAMESPACE.into()),
            nofailover: tags.nofailover.unwrap_or(d::TAG_NOFAILOVER),
            noloadbalance: tags.noloadbalance.unwrap_or(d::TAG_NOLOADBALANCE),
            clonefrom: tags.clonefrom.unwrap_or(d::TAG_CLONEFROM),
            nosync: tags.nosync.unwrap_or(d::TAG_NOSYNC),
            watchdog: pat.watchdog.unwrap_or(d::PATRONI_WATCHDOG),
        },
        etcd: Etcd {
            version: Some(
                etcd.version
                    .map(|v| v.0)
                    .unwrap_or_else(crate::facts::catalog::pins::etcd),
            ),
            join_existing: etcd.initial_cluster_state == Some(v1::EtcdClusterState::Existing),
            token: etcd.token.map(|t| t.0),
            client_port: etcd.client_port.unwrap_or(d::ETCD_CLIENT_PORT),
            peer_port: etcd.peer_port.unwrap_or(d::ETCD_PEER_PORT),
            auto_compaction_retention_hours: etcd
                .auto_compaction_retention_hours
                .unwrap_or(d::ETCD_AUTO_COMPACTION_RETENTION_HOURS),
            quota_backend_bytes: etcd
                .quota_backend_bytes
                .unwrap_or(d::ETCD_QUOTA_BACKEND_BYTES),
            heartbeat_interval_ms: etcd
                .heartbeat_interval_ms
                .unwrap_or(d::ETCD_HEARTBEAT_INTERVAL_MS),
            election_timeout_ms: etcd
                .election_timeout_ms
                .unwrap_or(d::ETCD_ELECTION_TIMEOUT_MS),
        },
        pgbackrest: Pgbackrest {
            version: Some(
                br.version
                    .map(|v| v.0)
                    .unwrap_or_else(crate::facts::catalog::pins::pgbackrest),
            ),
            stanza: br.stanza.map(|s| s.0),
            repos: backup_repos,
            compress_type: br.compress_type.unwrap_or(d::BACKREST_COMPRESS_TYPE),
            compress_level: br.compress_level.unwrap_or(d::BACKREST_COMPRESS_LEVEL),
            process_max: br.process_max.unwrap_or(d::BACKREST_PROCESS_MAX),
            archive_timeout: br.archive_timeout.unwrap_or(d::BACKREST_ARCHIVE_TIMEOUT),
            archive_async: br.archive_async.unwrap_or(d::BACKREST_ARCHIVE_ASYNC),
            archive_push_queue_max_mb: br
                .archive_push_queue_max_mb
                .unwrap_or(d::BACKREST_ARCHIVE_PUSH_QUEUE_MAX_MB),
            full: schedule
                .full
                .map(|c| c.0)
                .unwrap_or_else(|| d::SCHEDULE_FULL.into()),
            diff: schedule
                .diff
                .map(|c| c.0)
                .unwrap_or_else(|| d::SCHEDULE_DIFF.into()),
            incr: schedule
                .incr
                .map(|c| c.0)
                .unwrap_or_else(|| d::SCHEDULE_INCR.into()),
        },
        haproxy: Haproxy {
            write_port: hap.write_port.unwrap_or(d::HAPROXY_WRITE_PORT),
            read_port: hap.read_port.unwrap_or(d::HAPROXY_READ_PORT),
            stats_port: hap.stats_port.unwrap_or(d::HAPROXY_STATS_PORT),
            maxconn: hap.maxconn.unwrap_or(d::HAPROXY_MAXCONN),
            server_maxconn: hap.server_maxconn,
            replica_max_lag_bytes: hap
                .replica_max_lag_bytes
                .unwrap_or(d::HAPROXY_REPLICA_MAX_LAG_BYTES),
            virtual_address: hap.virtual_address.map(|a| a.0),
            virtual_router_id: hap
                .virtual_router_id
                .unwrap_or(d::HAPROXY_VIRTUAL_ROUTER_ID),
            check_interval_ms: hap
                .check_interval_ms
                .unwrap_or(d::HAPROXY_CHECK_INTERVAL_MS),
            check_fall: hap.check_fall.unwrap_or(d::HAPROXY_CHECK_FALL),
            check_rise: hap.check_rise.unwrap_or(d::HAPROXY_CHECK_RISE),
        },
    }
}
