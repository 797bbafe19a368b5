//! patroni.yml, serialized from typed structs (never templated), so that
//! every value keeps its type for Patroni's YAML 1.1 reader.
//!
//! Passwords are not here: Patroni reads them from `PATRONI_*_PASSWORD` in
//! the environment file its unit references.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::{Cluster, Host, Site};
use crate::plan::context::{
    Mapping, hostport, local_parameters, parameters, paths, pg_hba, source_endpoint, stanza,
    stanza as stanza_of,
};
use crate::spec::v1::{SyncMode, WatchdogMode};

#[derive(Serialize)]
pub struct PatroniConfig {
    pub scope: String,
    pub namespace: String,
    pub name: String,
    pub restapi: RestApi,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctl: Option<Ctl>,
    pub etcd3: Etcd3,
    pub bootstrap: Bootstrap,
    pub postgresql: Postgresql,
    pub watchdog: Watchdog,
    pub tags: Tags,
}

/// Fencing: Patroni keeps `/dev/watchdog` (softdog, loaded by
/// `modules-load.d`, owned by postgres through a udev rule) alive while it
/// leads; a hung Patroni resets the host before its leader key expires.
/// docs/watchdog.rst and docs/yaml_configuration.rst ("Watchdog") of patroni/patroni.
#[derive(Serialize)]
pub struct Watchdog {
    pub mode: &'static str,
    pub device: String,
    pub safety_margin: i32,
}

/// Recovery settings of every member. Patroni strips recovery settings from
/// `postgresql.auto.conf`, where pgBackRest's restore writes its
/// `restore_command` (patroni/postgresql/config.py `_sanitize_auto_conf`;
/// docs/releases.rst, 1.6.1: "one can still specify it in the
/// `postgresql.recovery_conf.restore_command` section"), so it is set here:
/// a replica restored from an old backup, or one that lost its slot, and
/// pg_rewind's `--restore-target-wal` fetch WAL from the archive.
#[derive(Serialize)]
pub struct RecoveryConf {
    pub restore_command: String,
}

#[derive(Serialize)]
pub struct RestApi {
    pub listen: String,
    pub connect_address: String,
    /// Who may call the unsafe endpoints (POST, PUT, PATCH, DELETE): the
    /// site's members and HAProxies only; Patroni's default allows all.
    /// https://patroni.readthedocs.io/en/latest/yaml_configuration.html#rest-api
    pub allowlist: Vec<String>,
    /// HTTPS (TLS on): `restapi.certfile`, `keyfile`, `cafile`
    /// (docs/yaml_configuration.rst, "REST API"); clients are not asked for a
    /// certificate (`verify_client` stays `none`): the allowlist and basic
    /// authentication guard the unsafe endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cafile: Option<String>,
}

/// patronictl's, and Patroni's own, REST API client: the CA that signed the
/// members' certificates (`ctl.cacert`, patroni/request.py `reload_config`).
#[derive(Serialize)]
pub struct Ctl {
    pub cacert: String,
}

/// `etcd3:` (docs/yaml_configuration.rst, "Etcd"): with TLS, `protocol:
/// https` and the client certificate etcd's `--client-cert-auth` asks for;
/// with etcd authentication, the user (its password is
/// `PATRONI_ETCD3_PASSWORD` in the environment file, never here).
#[derive(Serialize)]
pub struct Etcd3 {
    pub hosts: Vec<String>,
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'static str>,
}

#[derive(Serialize)]
pub struct Bootstrap {
    pub dcs: Dcs,
    pub initdb: Vec<Value>,
    /// Runs after initdb, before the member takes the leader key
    /// (patroni/ha.py `post_bootstrap`: `take_leader` follows the script),
    /// so before any replica's base backup makes PostgreSQL archive its
    /// first segment: the stanza is created while nothing archives. A
    /// failing script cancels the bootstrap (`cancel_initialization`), so
    /// the script never fails; `first-backup` creates the stanza if it
    /// could not.
    pub post_bootstrap: String,
}

#[derive(Serialize)]
pub struct Dcs {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    pub maximum_lag_on_failover: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_mode: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_mode_strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_node_count: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, Slot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_cluster: Option<StandbyCluster>,
    pub postgresql: DcsPostgresql,
}

#[derive(Serialize)]
pub struct Slot {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Serialize)]
pub struct StandbyCluster {
    pub host: String,
    pub port: u16,
    pub primary_slot_name: String,
    pub create_replica_methods: Vec<&'static str>,
    /// WAL from the source's archive when streaming cannot serve it
    /// (docs/dynamic_configuration.rst, `standby_cluster.restore_command`;
    /// cascading replicas of the standby cluster use it too, docs/releases.rst 2.1.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
}

#[derive(Serialize)]
pub struct DcsPostgresql {
    pub use_pg_rewind: bool,
    pub use_slots: bool,
    pub parameters: BTreeMap<String, Value>,
}

#[derive(Serialize)]
pub struct Postgresql {
    pub listen: String,
    pub connect_address: String,
    pub data_dir: String,
    pub bin_dir: String,
    pub pgpass: String,
    pub authentication: Authentication,
    pub parameters: BTreeMap<String, Value>,
    pub pg_hba: Vec<String>,
    pub recovery_conf: RecoveryConf,
    pub create_replica_methods: Vec<&'static str>,
    pub pgbackrest: PgbackrestMethod,
    pub basebackup: BTreeMap<String, String>,
    pub callbacks: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct Authentication {
    pub superuser: User,
    pub replication: User,
    pub rewind: User,
}

/// A connection user; with TLS, replication, pg_rewind and the DR standby
/// verify the server's certificate and name (libpq `sslmode=verify-full`
/// with `sslrootcert`: https://www.postgresql.org/docs/current/libpq-ssl.html;
/// Patroni passes `postgresql.authentication.*` ssl keys to its connections,
/// docs/yaml_configuration.rst, "PostgreSQL").
#[derive(Serialize)]
pub struct User {
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
}

#[derive(Serialize)]
pub struct PgbackrestMethod {
    pub command: String,
    pub keep_data: bool,
    pub no_params: bool,
}

#[derive(Serialize)]
pub struct Tags {
    pub nofailover: bool,
    pub noloadbalance: bool,
    pub clonefrom: bool,
    pub nosync: bool,
}

pub fn config(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> PatroniConfig {
    let c = &host.config;
    let addr = m.addr(&host.address);
    let p = |path: &str| m.path(&host.name, path);
    let stanza = stanza(site);
    let tls = cluster.secrets.tls.enabled;
    let tls_path = |path: &str| tls.then(|| p(path));
    let verified = |username: &str| User {
        username: username.to_string(),
        sslmode: tls.then_some("verify-full"),
        sslrootcert: tls_path(paths::TLS_CA),
    };
    let etcd_hosts = site
        .with_role(crate::spec::v1::Role::Etcd)
        .map(|h| hostport(&m.addr(&h.address), h.config.etcd.client_port))
        .collect();
    let sync = c.patroni.synchronous_mode;
    let slots = cluster
        .followers_of(site)
        .map(|f| (f.slot_name.clone(), Slot { kind: "physical" }))
        .collect();
    let pgbackrest = p("/usr/bin/pgbackrest");
    let pgbackrest_config = p(paths::PGBACKREST_CONFIG);
    let standby_cluster = cluster.source_of(site).map(|src| {
        // Every entry point of the source (each HAProxy): libpq tries them in
        // turn, and Patroni adds target_session_attrs=read-write to a
        // multi-host standby connection (patroni/postgresql/config.py,
        // build_recovery_params).
        let (host, port) = crate::plan::daytwo::source_entry_points(src, m)
            .unwrap_or_else(|| source_endpoint(src, m));
        let restore_command = crate::plan::daytwo::source_repo(cluster, site).map(|_| {
            format!(
                "{pgbackrest} --config={pgbackrest_config} --stanza={} --repo={} archive-get %f \"%p\"",
                stanza_of(src),
                c.pgbackrest.repos.len() + 1
            )
        });
        StandbyCluster {
            host,
            port,
            primary_slot_name: site.slot_name.clone(),
            create_replica_methods: vec!["basebackup"],
            restore_command,
        }
    });
    let initdb = {
        let mut v = vec![
            serde_json::json!({"encoding": c.postgresql.encoding}),
            serde_json::json!({"locale": c.postgresql.locale}),
        ];
        if c.postgresql.data_checksums {
            v.push(Value::String("data-checksums".into()));
        }
        v
    };
    let callback = p(&format!("{}/patroni-callback", paths::LIBEXEC));
    PatroniConfig {
        scope: site.scope.clone(),
        namespace: c.patroni.namespace.clone(),
        name: host.member_name.clone(),
        restapi: RestApi {
            listen: hostport(&addr, c.patroni.restapi_port),
            connect_address: hostport(&addr, c.patroni.restapi_port),
            allowlist: restapi_allowlist(site, m),
            certfile: tls_path(paths::TLS_CERT),
            keyfile: tls_path(paths::TLS_PG_KEY),
            cafile: tls_path(paths::TLS_CA),
        },
        ctl: tls_path(paths::TLS_CA).map(|cacert| Ctl { cacert }),
        etcd3: Etcd3 {
            hosts: etcd_hosts,
            protocol: if tls { "https" } else { "http" },
            cacert: tls_path(paths::TLS_CA),
            cert: tls_path(paths::TLS_CERT),
            key: tls_path(paths::TLS_PG_KEY),
            username: cluster
                .secrets
                .etcd_auth()
                .then_some(crate::plan::secrets::ETCD_PATRONI_USER),
        },
        bootstrap: Bootstrap {
            dcs: Dcs {
                ttl: c.patroni.ttl,
                loop_wait: c.patroni.loop_wait,
                retry_timeout: c.patroni.retry_timeout,
                maximum_lag_on_failover: c.patroni.maximum_lag_on_failover,
                synchronous_mode: match sync {
                    SyncMode::Off => None,
                    SyncMode::On => Some(Value::Bool(true)),
                    SyncMode::Quorum => Some(Value::String("quorum".into())),
                },
                synchronous_mode_strict: (sync != SyncMode::Off)
                    .then_some(c.patroni.synchronous_mode_strict),
                synchronous_node_count: (sync != SyncMode::Off)
                    .then_some(c.patroni.synchronous_node_count),
                slots,
                standby_cluster,
                postgresql: DcsPostgresql {
                    use_pg_rewind: c.patroni.use_pg_rewind,
                    use_slots: c.patroni.use_slots,
                    parameters: parameters(host),
                },
            },
            initdb,
            post_bootstrap: p(&format!("{}/post-bootstrap", paths::LIBEXEC)),
        },
        postgresql: Postgresql {
            listen: hostport(&addr, c.postgresql.port),
            connect_address: hostport(&addr, c.postgresql.port),
            data_dir: p(&c.postgresql.data_dir),
            bin_dir: p(&c.postgresql.bin_dir),
            pgpass: p(&format!("{}/.pgpass_patroni", paths::POSTGRES_HOME)),
            authentication: Authentication {
                // Patroni's own connections, to its member's address: no name to verify beyond it.
                superuser: User {
                    username: c.postgresql.superuser.clone(),
                    sslmode: None,
                    sslrootcert: None,
                },
                replication: verified(&c.postgresql.replication_user),
                rewind: verified(&c.postgresql.rewind_user),
            },
            // Local parameters that must hold on every member whatever the DCS says.
            parameters: local_parameters(site, host, m, tls),
            pg_hba: pg_hba(cluster, site, host, m),
            recovery_conf: RecoveryConf {
                restore_command: format!(
                    "{pgbackrest} --config={pgbackrest_config} --stanza={stanza} archive-get %f \"%p\""
                ),
            },
            create_replica_methods: vec!["pgbackrest", "basebackup"],
            pgbackrest: PgbackrestMethod {
                command: format!(
                    "{} --config={} --stanza={stanza} --delta restore",
                    p("/usr/bin/pgbackrest"),
                    p(paths::PGBACKREST_CONFIG)
                ),
                keep_data: true,
                no_params: true,
            },
            basebackup: [("checkpoint".to_string(), "fast".to_string())]
                .into_iter()
                .collect(),
            callbacks: [
                ("on_role_change".to_string(), callback.clone()),
                ("on_start".to_string(), callback),
            ]
            .into_iter()
            .collect(),
        },
        watchdog: Watchdog {
            mode: match c.patroni.watchdog {
                WatchdogMode::Off => "off",
                WatchdogMode::Automatic => "automatic",
                WatchdogMode::Required => "required",
            },
            device: p("/dev/watchdog"),
            safety_margin: 5,
        },
        tags: Tags {
            nofailover: c.patroni.nofailover,
            noloadbalance: c.patroni.noloadbalance,
            clonefrom: c.patroni.clonefrom,
            nosync: c.patroni.nosync,
        },
    }
}

/// The addresses the unsafe REST endpoints answer: where the site's members
/// (Patroni itself, patronictl) and HAProxies connect from.
fn restapi_allowlist(site: &Site, m: &Mapping) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in site
        .with_role(crate::spec::v1::Role::Pg)
        .chain(site.with_role(crate::spec::v1::Role::Haproxy))
    {
        let a = m.source_of(&h.address);
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The file's bytes.
pub fn render(cluster: &Cluster, site: &Site, host: &Host, m: &Mapping) -> String {
    let value = serde_json::to_value(config(cluster, site, host, m)).unwrap_or(Value::Null);
    let mut out = format!(
        "# patroni.yml for member {} of scope {}, generated by pgimg; do not edit.\n# Passwords come from the PATRONI_*_PASSWORD variables of {}.\n",
        host.member_name,
        site.scope,
        m.path(&host.name, paths::PATRONI_ENV)
    );
    out.push_str(&super::yaml::to_yaml(&value));
    out
}
