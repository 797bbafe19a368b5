//! Version 1 of the spec language: the raw, deserialized shape of `spec.yml`.
//!
//! These types only describe what a user may write. Defaults and derived
//! values are applied later, once, in `model::resolve`. Every field carries a
//! doc comment because schemars turns it into the schema's `description`,
//! which editors show while the spec is being written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::scalar::*;

/// A pgimg spec: a fleet of Patroni PostgreSQL clusters and the hosts that run them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pgimg spec")]
pub struct Spec {
    /// Version of the spec language; this pgimg reads version 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Seconds since the Unix epoch used as the modification time of every archived file.
    /// At most 8589934591, the largest time a ustar header's 11 octal digits hold.
    #[schemars(range(max = 8589934591u64))]
    pub source_date_epoch: Option<u64>,
    /// Settings for every cluster, site and host of the fleet, unless overridden closer to the host.
    pub defaults: Option<Settings>,
    /// Where the secrets come from, for every cluster unless a cluster names its own.
    pub secrets: Option<Secrets>,
    /// The clusters of the fleet.
    #[schemars(length(min = 1))]
    pub clusters: Vec<Cluster>,
}

/// One Patroni cluster: a primary site and, optionally, DR sites that follow it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Name of the cluster; also the Patroni scope of its primary site unless that site sets `scope`.
    pub name: Name,
    /// Settings for this cluster's sites and hosts, over the fleet defaults.
    pub settings: Option<Box<Settings>>,
    /// Secret references for this cluster, over the fleet's.
    pub secrets: Option<Secrets>,
    /// The sites of the cluster: exactly one without `standby_of` (the primary site).
    #[schemars(length(min = 1))]
    pub sites: Vec<Site>,
}

/// A site: a group of hosts with its own etcd cluster and its own Patroni scope.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Name of the site, unique within the cluster.
    pub name: Name,
    /// Patroni scope of the site.
    pub scope: Option<Name>,
    /// Makes this site a DR site: a Patroni standby cluster that follows the named site of the same cluster.
    pub standby_of: Option<Name>,
    /// Name of the permanent physical replication slot that this DR site holds on its source.
    pub slot_name: Option<Ident>,
    /// Settings for this site's hosts, over the cluster's.
    pub settings: Option<Box<Settings>>,
    /// The hosts of the site.
    #[schemars(length(min = 1))]
    pub hosts: Vec<Host>,
}

/// A machine of the fleet.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Short host name, unique across the fleet; also its etcd member name.
    pub name: HostName,
    /// The host's primary IPv4 or IPv6 address, unique across the fleet.
    pub address: Address,
    /// Further addresses of the host (for uniqueness checks and `/etc/hosts`).
    pub extra_addresses: Option<Vec<Address>>,
    /// Patroni member name; unique across a cluster and its DR sites.
    pub member_name: Option<HostName>,
    /// What the host runs.
    #[schemars(length(min = 1))]
    pub roles: Vec<Role>,
    /// Facts needed to install the host from bare metal.
    pub boot: Option<Boot>,
    /// Settings for this host only, over its site's.
    pub settings: Option<Box<Settings>>,
}

/// A role a host plays. A site that is `standby_of` another plays the DR role as a whole.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// PostgreSQL managed by Patroni, with pgBackRest.
    Pg,
    /// A member of the site's etcd cluster.
    Etcd,
    /// HAProxy routing writes to the leader and reads to the replicas.
    Haproxy,
}

/// Bare-metal installation facts of a host.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// MAC address of the boot interface; hosts with a MAC get PXE entries.
    pub mac: Option<Mac>,
    /// Name of the network interface that carries the host's address.
    pub interface: Option<Interface>,
    /// Disk layout for the installer.
    pub disk: Option<DiskLayout>,
    /// Whether the host's PXE entry starts the installer by default (else it boots the
    /// local disk, and installing is chosen at the boot menu). Set it for a host's first
    /// install or a deliberate reinstall, then remove it: the installer wipes the disks
    /// the layout names.
    pub install: Option<bool>,
}

/// Disk layout for the installer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskLayout {
    /// The disk the operating system is installed on.
    pub os_disk: Option<Disk>,
    /// A dedicated disk for the PostgreSQL data directory, mounted at its parent.
    pub data_disk: Option<Disk>,
    /// Size in GiB of the data volume.
    #[schemars(range(min = 1, max = 1048576))]
    pub data_size_gib: Option<u32>,
}

/// Settings that can be set for the fleet, a cluster, a site or a host; the closest one wins.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Operating system settings.
    pub os: Option<OsSettings>,
    /// Network settings of the hosts.
    pub network: Option<NetworkSettings>,
    /// Where installers and hosts find packages and boot files.
    pub repos: Option<RepoSettings>,
    /// PostgreSQL settings.
    pub postgresql: Option<PostgresSettings>,
    /// Patroni settings.
    pub patroni: Option<PatroniSettings>,
    /// etcd settings.
    pub etcd: Option<EtcdSettings>,
    /// pgBackRest settings.
    pub pgbackrest: Option<PgbackrestSettings>,
    /// HAProxy settings.
    pub haproxy: Option<HaproxySettings>,
}

/// Operating system settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OsSettings {
    /// The distribution.
    pub distro: Option<Distro>,
    /// Time zone.
    pub timezone: Option<TimeZone>,
    /// System language.
    pub lang: Option<Locale>,
    /// Keyboard layout.
    pub keyboard: Option<Keyboard>,
    /// SELinux mode.
    pub selinux: Option<SelinuxMode>,
    /// Whether firewalld runs with exactly the ports the host's roles need.
    pub firewall: Option<bool>,
    /// Name of the administrator account that gets the SSH keys and sudo.
    pub admin_user: Option<UserName>,
    /// SSH public keys of the administrator account.
    pub ssh_keys: Option<Vec<SshKey>>,
    /// Kernel parameters written to `/etc/sysctl.d/`, merged key by key over the built-in tuning.
    pub sysctl: Option<BTreeMap<SysctlName, ScalarValue>>,
    /// Process limits of the `postgres` user.
    pub limits: Option<LimitSettings>,
    /// NTP servers chrony uses (none: the distribution's pool).
    pub ntp_servers: Option<Vec<HostName>>,
}

/// The Enterprise Linux 9 rebuild the hosts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distro {
    /// Rocky Linux 9.
    Rocky,
    /// AlmaLinux 9.
    Alma,
}

/// SELinux mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelinuxMode {
    /// Enforce the policy (recommended).
    Enforcing,
    /// Log denials without enforcing.
    Permissive,
    /// No SELinux at all.
    Disabled,
}

/// Process limits of the `postgres` user.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Open files (soft and hard limit).
    #[schemars(range(min = 1024, max = 1048576))]
    pub nofile: Option<u32>,
    /// Processes (soft and hard limit).
    #[schemars(range(min = 256, max = 4194304))]
    pub nproc: Option<u32>,
}

/// Network settings of the hosts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// Prefix length of the hosts' addresses.
    #[schemars(range(min = 1, max = 128))]
    pub prefix: Option<u8>,
    /// Default gateway.
    pub gateway: Option<Address>,
    /// DNS servers.
    pub dns: Option<Vec<Address>>,
    /// DNS domain; hosts get `<name>.<domain>` as their full name.
    pub domain: Option<HostName>,
    /// Networks the cluster's clients connect from (`10.20.0.0/16`). With
    /// the firewall on, HAProxy's listeners and PostgreSQL are open to
    /// these networks, besides the cluster's own hosts that connect to
    /// them; without any, no client outside the cluster reaches them.
    pub client_networks: Option<Vec<Cidr>>,
}

/// Where installers and hosts find packages and boot files.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoSettings {
    /// BaseOS repository URL.
    pub baseos: Option<Url>,
    /// AppStream repository URL.
    pub appstream: Option<Url>,
    /// Base URL of the PGDG yum repository.
    pub pgdg: Option<Url>,
    /// URL of PGDG's extras repository, where etcd comes from.
    pub pgdg_extras: Option<Url>,
    /// Python package index for `patroni.install: pip`.
    pub pypi: Option<Url>,
    /// URL of the installer tree for `inst.repo=`, and the kickstart's installation source unless `baseos` is set.
    pub installer: Option<Url>,
    /// Base URL under which the build output (`hosts/<host>/kickstart.ks`) is served to installers.
    pub artifacts: Option<Url>,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Major version, 14 to 18.
    #[schemars(range(min = 14, max = 18))]
    pub major: Option<u32>,
    /// Pinned package version, such as `17.6`.
    pub version: Option<Version>,
    /// Port PostgreSQL listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Data directory.
    pub data_dir: Option<AbsPath>,
    /// Run-time parameters, merged key by key over the built-in ones.
    pub parameters: Option<BTreeMap<ParamName, ScalarValue>>,
    /// Options for `initdb`.
    pub initdb: Option<InitdbSettings>,
    /// Extra pg_hba rows placed after the generated replication rows and before the final catch-all.
    pub pg_hba: Option<Vec<HbaRule>>,
    /// Allows `trust` on non-local pg_hba rows (PG0190).
    pub allow_remote_trust: Option<bool>,
    /// Lets the superuser log in over the network (from any address the catch-all admits);
    /// otherwise only the host itself (socket, loopback) and the spec's own `pg_hba` rows reach it.
    pub superuser_remote: Option<bool>,
    /// Role names Patroni uses.
    pub users: Option<PgUsers>,
    /// Extra packages, such as `postgresql17-contrib` or extensions.
    pub extra_packages: Option<Vec<Token>>,
    /// Megabytes of WAL a replication slot may hold back, above all the permanent
    /// slot of a DR site (`max_slot_wal_keep_size`). A slot past it is
    /// invalidated and its DR site must be rebuilt, but the primary's disk does not fill.
    #[schemars(range(min = 1024, max = 1073741823))]
    pub max_slot_wal_keep_size_mb: Option<u32>,
}

/// Options for `initdb`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitdbSettings {
    /// Database encoding.
    pub encoding: Option<Token>,
    /// Locale.
    pub locale: Option<Locale>,
    /// Page checksums.
    pub data_checksums: Option<bool>,
}

/// One pg_hba row.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HbaRule {
    /// Connection type.
    #[serde(rename = "type")]
    pub kind: HbaType,
    /// Database name, `all` or `replication`.
    pub database: Ident,
    /// Role name or `all`.
    pub user: Ident,
    /// Client address; required unless the type is `local`.
    pub address: Option<Cidr>,
    /// Authentication method.
    pub method: HbaMethod,
}

/// pg_hba connection type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HbaType {
    /// Unix-domain socket.
    Local,
    /// TCP/IP, with or without SSL.
    Host,
    /// TCP/IP with SSL only.
    Hostssl,
    /// TCP/IP without SSL only.
    Hostnossl,
}

/// pg_hba authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HbaMethod {
    /// SCRAM-SHA-256 password authentication.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// MD5 password authentication (deprecated).
    Md5,
    /// Operating-system user of a local connection.
    Peer,
    /// Client certificate.
    Cert,
    /// Reject the connection.
    Reject,
    /// Allow without a password.
    Trust,
}

/// Role names Patroni uses.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgUsers {
    /// Superuser.
    pub superuser: Option<Ident>,
    /// Replication user.
    pub replication: Option<Ident>,
    /// pg_rewind user.
    pub rewind: Option<Ident>,
}

/// Patroni settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatroniSettings {
    /// Pinned Patroni version from PyPI, for `install: pip`.
    pub version: Option<Version>,
    /// Pinned version of PGDG's `patroni` RPMs, for `install: rpm`. PGDG's RPM lags PyPI: never reuse the pip version.
    pub rpm_version: Option<Version>,
    /// How Patroni is installed.
    pub install: Option<PatroniInstall>,
    /// Leader key time to live in seconds; at least 20 (PG0121).
    #[schemars(range(min = 1, max = 86400))]
    pub ttl: Option<u32>,
    /// Seconds between HA loop runs; at least 1.
    #[schemars(range(min = 1, max = 86400))]
    pub loop_wait: Option<u32>,
    /// Seconds before DCS and PostgreSQL operations are retried; at least 3 (PG0121).
    #[schemars(range(min = 1, max = 86400))]
    pub retry_timeout: Option<u32>,
    /// Bytes a replica may lag and still be promoted.
    pub maximum_lag_on_failover: Option<u64>,
    /// Synchronous replication mode: `off`, `on` or `quorum`; `true` and `false` mean `on` and `off`, as Patroni reads them.
    pub synchronous_mode: Option<SyncMode>,
    /// Refuse writes when no synchronous replica is available.
    pub synchronous_mode_strict: Option<bool>,
    /// Number of synchronous replicas.
    #[schemars(range(min = 1, max = 100))]
    pub synchronous_node_count: Option<u32>,
    /// Port of the Patroni REST API.
    #[schemars(range(min = 1, max = 65535))]
    pub restapi_port: Option<u16>,
    /// Use pg_rewind to rejoin a former leader.
    pub use_pg_rewind: Option<bool>,
    /// Use replication slots for members.
    pub use_slots: Option<bool>,
    /// DCS namespace.
    pub namespace: Option<AbsPath>,
    /// Member tags.
    pub tags: Option<PatroniTags>,
    /// Patroni's use of `/dev/watchdog` (softdog) to fence a primary whose Patroni hangs.
    pub watchdog: Option<WatchdogMode>,
}

/// Patroni's watchdog mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchdogMode {
    /// No watchdog.
    Off,
    /// Use the watchdog when it can be opened, run without it otherwise.
    Automatic,
    /// Never lead without an active watchdog.
    Required,
}

/// How Patroni is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatroniInstall {
    /// The `patroni` and `patroni-etcd` RPMs from PGDG.
    Rpm,
    /// pip into `/opt/patroni` with the psycopg3 and etcd3 extras.
    Pip,
}

/// Patroni synchronous replication mode.
///
/// Patroni documents `off`, `on` and `quorum` and also reads booleans
/// (patroni/patroni `docs/dynamic_configuration.rst`, `synchronous_mode`;
/// `patroni/validator.py`, `validate_synchronous_mode`), so `true` and
/// `false` are accepted as `on` and `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Asynchronous replication.
    Off,
    /// Synchronous replication to `synchronous_node_count` replicas.
    On,
    /// Quorum-based synchronous replication.
    Quorum,
}

impl<'de> Deserialize<'de> for SyncMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(SyncMode::On),
            serde_json::Value::Bool(false) => Ok(SyncMode::Off),
            serde_json::Value::String(s) if s == "on" => Ok(SyncMode::On),
            serde_json::Value::String(s) if s == "off" => Ok(SyncMode::Off),
            serde_json::Value::String(s) if s == "quorum" => Ok(SyncMode::Quorum),
            other => Err(serde::de::Error::custom(format!(
                "invalid synchronous_mode {other}"
            ))),
        }
    }
}

impl JsonSchema for SyncMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SyncMode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Patroni synchronous replication mode: `off`, `on` (synchronous replication to `synchronous_node_count` replicas) or `quorum`; `true` and `false` mean `on` and `off`.",
            "enum": ["off", "on", "quorum", true, false],
        })
    }
}

/// Patroni member tags.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatroniTags {
    /// Never promote this member.
    pub nofailover: Option<bool>,
    /// Keep this member out of the read load balancer.
    pub noloadbalance: Option<bool>,
    /// Prefer this member as the source of new replicas.
    pub clonefrom: Option<bool>,
    /// Never make this member a synchronous replica.
    pub nosync: Option<bool>,
}

/// etcd settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Pinned etcd package version.
    pub version: Option<Version>,
    /// Initial cluster token.
    pub token: Option<Token>,
    /// Client port.
    #[schemars(range(min = 1, max = 65535))]
    pub client_port: Option<u16>,
    /// Peer port.
    #[schemars(range(min = 1, max = 65535))]
    pub peer_port: Option<u16>,
    /// Hours of key history kept before periodic compaction.
    #[schemars(range(min = 1, max = 8760))]
    pub auto_compaction_retention_hours: Option<u32>,
    /// Backend size quota in bytes.
    #[schemars(range(min = 104857600, max = 8589934592u64))]
    pub quota_backend_bytes: Option<u64>,
    /// Milliseconds between leader heartbeats.
    #[schemars(range(min = 10, max = 10000))]
    pub heartbeat_interval_ms: Option<u32>,
    /// Milliseconds without a heartbeat before an election (at least 5 heartbeats, PG0113).
    #[schemars(range(min = 50, max = 50000))]
    pub election_timeout_ms: Option<u32>,
    /// `existing` for a member that joins a running etcd cluster, such as a
    /// reinstalled member after `etcdctl member add`; `new` when the members
    /// bootstrap the cluster together. See the cluster's etcd runbook.
    pub initial_cluster_state: Option<EtcdClusterState>,
}

/// How an etcd member starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EtcdClusterState {
    /// The members bootstrap a new cluster together.
    New,
    /// The member joins a running cluster that already lists it (`etcdctl member add`).
    Existing,
}

/// pgBackRest settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgbackrestSettings {
    /// Pinned pgBackRest version.
    pub version: Option<Version>,
    /// Stanza name.
    pub stanza: Option<Ident>,
    /// Repositories, `repo1` first. A DR site gets its own repositories after its source's.
    pub repos: Option<Vec<BackupRepo>>,
    /// Compression.
    pub compress_type: Option<CompressType>,
    /// Compression level for archive-push.
    #[schemars(range(min = 0, max = 22))]
    pub compress_level: Option<u8>,
    /// Parallel processes.
    #[schemars(range(min = 1, max = 999))]
    pub process_max: Option<u16>,
    /// Seconds to wait for WAL to reach the archive.
    #[schemars(range(min = 1, max = 86400))]
    pub archive_timeout: Option<u32>,
    /// Push WAL asynchronously through a spool directory.
    pub archive_async: Option<bool>,
    /// Megabytes of WAL the asynchronous archive queue may hold before pgBackRest drops
    /// WAL rather than let pg_wal fill (`archive-push-queue-max`).
    #[schemars(range(min = 16, max = 1073741823))]
    pub archive_push_queue_max_mb: Option<u32>,
    /// Backup schedule (cron, run only where the node is the leader).
    pub schedule: Option<BackupSchedule>,
}

/// A pgBackRest repository.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = { "properties": { "type": { "const": "s3" } }, "required": ["type"] },
    // The `properties` repeat the names for validators that require a
    // required key to be defined beside it (Ajv's strictRequired).
    "then" = { "required": ["bucket", "region"], "properties": { "bucket": true, "region": true } }
))]
pub struct BackupRepo {
    /// Repository type.
    #[serde(rename = "type")]
    pub kind: RepoType,
    /// Path of the repository (in the bucket for S3); for a mounted posix repository, the mount point.
    pub path: Option<AbsPath>,
    /// S3 bucket; required for `type: s3`.
    pub bucket: Option<Bucket>,
    /// S3 endpoint.
    pub endpoint: Option<Endpoint>,
    /// S3 region; required for `type: s3`.
    pub region: Option<Region>,
    /// S3 URI style.
    pub uri_style: Option<UriStyle>,
    /// S3 credentials: `auto` uses the EC2 instance role, `shared` reads `PGBACKREST_REPO<n>_S3_KEY`/`_KEY_SECRET`.
    pub key_type: Option<S3KeyType>,
    /// S3 access key reference, for `key_type: shared`.
    pub key: Option<SecretRef>,
    /// S3 secret key reference, for `key_type: shared`.
    pub key_secret: Option<SecretRef>,
    /// Whether `retention_full` counts full backups or days (pgBackRest's `repo-retention-full-type`).
    pub retention_full_type: Option<RetentionType>,
    /// Full backups to keep: a number of backups, or of days with `retention_full_type: time`.
    #[schemars(range(min = 1, max = 9999))]
    pub retention_full: Option<u32>,
    /// Differential backups to keep.
    #[schemars(range(min = 1, max = 9999))]
    pub retention_diff: Option<u32>,
    /// The shared file system a posix repository lives on; required when the site has more than one `pg` host.
    pub mount: Option<RepoMount>,
}

/// An NFS export mounted at a posix repository's path by a systemd `.mount` unit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoMount {
    /// The NFS server's host name or IPv4 address.
    pub server: Endpoint,
    /// The exported directory on the server; its root must belong to `postgres` (uid 26 on EL).
    pub export: AbsPath,
    /// Mount options.
    pub options: Option<MountOptions>,
}

/// What pgBackRest's full-backup retention counts (pgbackrest/pgbackrest
/// `build/config.yaml`, `repo-retention-full-type`: `count` or `time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionType {
    /// Keep `retention_full` full backups.
    Count,
    /// Keep full backups for `retention_full` days: an older one expires once a newer one is at least that old.
    Time,
}

/// pgBackRest repository type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepoType {
    /// A directory on the host (or a mounted file system).
    Posix,
    /// An S3-compatible object store.
    S3,
}

/// S3 URI style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UriStyle {
    /// `bucket.endpoint`.
    Host,
    /// `endpoint/bucket`.
    Path,
}

/// Where S3 credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum S3KeyType {
    /// The EC2 instance role.
    Auto,
    /// An access key pair delivered as a secret.
    Shared,
}

/// pgBackRest compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompressType {
    /// LZ4: fast.
    Lz4,
    /// Zstandard.
    Zst,
    /// gzip.
    Gz,
    /// bzip2.
    Bz2,
    /// No compression.
    None,
}

/// Backup schedule.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSchedule {
    /// Full backups.
    pub full: Option<Cron>,
    /// Differential backups.
    pub diff: Option<Cron>,
    /// Incremental backups.
    pub incr: Option<Cron>,
}

/// HAProxy settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HaproxySettings {
    /// Write port, routed to the leader.
    #[schemars(range(min = 1, max = 65535))]
    pub write_port: Option<u16>,
    /// Read port, routed to the replicas.
    #[schemars(range(min = 1, max = 65535))]
    pub read_port: Option<u16>,
    /// Statistics page port.
    #[schemars(range(min = 1, max = 65535))]
    pub stats_port: Option<u16>,
    /// Global connection limit.
    #[schemars(range(min = 1, max = 1000000))]
    pub maxconn: Option<u32>,
    /// Connection limit per PostgreSQL server; every HAProxy of a site together must stay
    /// below `max_connections - superuser_reserved_connections` (PG0201).
    #[schemars(range(min = 1, max = 1000000))]
    pub server_maxconn: Option<u32>,
    /// Bytes a replica may lag and still receive reads (`GET /replica?lag=`).
    pub replica_max_lag_bytes: Option<u64>,
    /// A virtual address keepalived moves between the site's HAProxies (two or more; the
    /// keepalived interface is the host's `boot.interface`, else `eth0`).
    pub virtual_address: Option<Address>,
    /// keepalived's virtual router id for `virtual_address`.
    #[schemars(range(min = 1, max = 255))]
    pub virtual_router_id: Option<u8>,
    /// Milliseconds between health checks.
    #[schemars(range(min = 100, max = 3600000))]
    pub check_interval_ms: Option<u32>,
    /// Failed checks before a server is marked down.
    #[schemars(range(min = 1, max = 100))]
    pub check_fall: Option<u32>,
    /// Passed checks before a server is marked up.
    #[schemars(range(min = 1, max = 100))]
    pub check_rise: Option<u32>,
}

/// Where each secret comes from. Secrets are never values in the spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Password of the PostgreSQL superuser.
    pub superuser_password: Option<SecretRef>,
    /// Password of the replication user; shared by a cluster and its DR sites.
    pub replication_password: Option<SecretRef>,
    /// Password of the pg_rewind user.
    pub rewind_password: Option<SecretRef>,
    /// Password protecting the Patroni REST API's write endpoints (user `patroni`).
    pub restapi_password: Option<SecretRef>,
    /// pgBackRest repository encryption passphrase (enables `aes-256-cbc` on every repository).
    pub backup_cipher_pass: Option<SecretRef>,
    /// Password of etcd's `root` user; with it and `etcd_password`, etcd authentication is enabled (TLS on).
    pub etcd_root_password: Option<SecretRef>,
    /// Password of the etcd user `patroni` (read-write on the Patroni namespace only).
    pub etcd_password: Option<SecretRef>,
    /// Password of HAProxy's stats page (user `stats`).
    pub haproxy_stats_password: Option<SecretRef>,
    /// TLS of etcd (client and peer), PostgreSQL and the Patroni REST API, with a CA per
    /// cluster; its certificates and keys are secrets that `pgimg secrets init` creates.
    pub tls: Option<TlsSettings>,
    /// How hosts get their secrets with no hand step; without it, copy `secrets/<host>/` of the output onto each host yourself.
    pub delivery: Option<SecretDelivery>,
}

/// TLS of a cluster's control plane and database connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// TLS on; `false` is an explicit opt-out (warning PG0411).
    pub enabled: Option<bool>,
    /// Directory of the certificates, relative to the spec: `<dir>/<cluster>/ca.crt` and, per
    /// host, `<dir>/<cluster>/<host>.crt` and `.key` (secrets, referenced as `file:` paths);
    /// `ca.key` stays there and never reaches a host.
    pub dir: Option<FilePath>,
}

/// Automatic delivery of each host's secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretDelivery {
    /// Cloud hosts (user-data): a first-boot unit reads each secret from AWS SSM Parameter Store with the instance role.
    pub ssm: Option<SsmDelivery>,
    /// Bare-metal hosts (kickstart): `%post` fetches `<url>/<host>.tar.gz` and checks it against the sha256 given as `pgimg.secrets_sha256=` on the installer's kernel command line.
    pub https: Option<HttpsDelivery>,
}

/// Secrets from AWS SSM Parameter Store: one SecureString parameter per reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SsmDelivery {
    /// Path under which the parameters live, `/pgimg/<cluster>` when unset: `env:NAME` is `<prefix>/NAME`, `file:PATH` is `<prefix>/PATH`.
    pub prefix: Option<AbsPath>,
    /// Region of the parameters; the instance's (from its metadata) when unset.
    pub region: Option<Region>,
    /// SSM endpoint; `https://ssm.<region>.amazonaws.com` when unset.
    pub endpoint: Option<EndpointUrl>,
    /// Instance metadata service; `http://169.254.169.254` when unset.
    pub metadata_endpoint: Option<EndpointUrl>,
}

/// The host's secrets bundle over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpsDelivery {
    /// Base URL serving `secrets/<host>.tar.gz` of the build output as `<url>/<host>.tar.gz`.
    pub url: EndpointUrl,
}

/// A reference to a secret kept outside the spec.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    /// Read the secret from this environment variable at build time.
    Env(EnvName),
    /// Read the secret from this file at build time (relative to the spec's directory).
    File(FilePath),
}

impl SecretRef {
    /// How a reference is shown to users: `env:NAME` or `file:PATH`, never the value.
    pub fn label(&self) -> String {
        match self {
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(f) => format!("file:{f}"),
        }
    }
}

/// A scalar value for a run-time parameter or kernel setting.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ScalarValue {
    /// A boolean, written as `on`/`off` for PostgreSQL and `1`/`0` for sysctl.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string such as `256MB` or `'on'`.
    Text(Text),
}
