//! Every built-in default of the spec language, in one table: the value the
//! code uses and the documentation people read.
//!
//! `model::resolve` applies these constants; `schema::generate` writes each
//! row into the schema (the `default` keyword and the last sentence of the
//! field's description), and `docs/spec.md` is generated from that schema.
//! The defaults belong to the language, not to a stage, so the table lives
//! here and both the schema (parse stage) and the model read it without an
//! import against the pipeline.
//!
//! Adding a field with a default is one row: `NAME: Type = value; "Def.field", "note";`
//! where `Def` is the field's type name as in the schema's `$defs` (`Spec`
//! for the top level) and the note says where the value comes from, when
//! that is not obvious. A default computed from other settings is a row of
//! [`DERIVED`] with the rule in words.

use serde_json::{Value, json};

use super::v1::{
    CompressType, Distro, EtcdClusterState, PatroniInstall, RetentionType, S3KeyType, SelinuxMode,
    SyncMode, UriStyle, WatchdogMode,
};

/// What a field defaults to.
pub enum DefaultValue {
    /// A fixed value: the JSON a user could write to get the same result.
    Fixed(fn() -> Value),
    /// A value derived from other settings, described in words.
    Derived(&'static str),
}

/// One row of the table.
pub struct Entry {
    /// The field, as `<type in $defs>.<property>`, such as `PatroniSettings.ttl`.
    pub field: &'static str,
    pub value: DefaultValue,
    /// Where the value comes from or why it was chosen; may be empty.
    pub note: &'static str,
}

impl Entry {
    /// The schema type and the property of the row.
    pub fn def_and_property(&self) -> (&'static str, &'static str) {
        self.field
            .split_once('.')
            .expect("a defaults row names `Type.field`")
    }

    /// The default as a user would read it in the docs: JSON for a fixed value, words otherwise.
    pub fn shown(&self) -> String {
        match &self.value {
            DefaultValue::Fixed(v) => match v() {
                Value::String(s) => format!("`{s}`"),
                Value::Object(m) => format!("the {} built-in keys of `default`", m.len()),
                other => format!("`{other}`"),
            },
            DefaultValue::Derived(words) => words.to_string(),
        }
    }
}

macro_rules! fixed_defaults {
    ($($(#[$doc:meta])* $name:ident: $ty:ty = $value:expr; $field:literal, $note:literal;)*) => {
        $($(#[$doc])* pub const $name: $ty = $value;)*

        /// The rows with a fixed value, in the order of the spec's types.
        pub const FIXED: &[Entry] = &[$(Entry {
            field: $field,
            value: DefaultValue::Fixed(|| serde_json::to_value($name).expect("a default serializes")),
            note: $note,
        },)*];
    };
}

fixed_defaults! {
    SOURCE_DATE_EPOCH: u64 = 0; "Spec.source_date_epoch", "the Unix epoch: archives do not depend on the build's time";

    OS_DISTRO: Distro = Distro::Rocky; "OsSettings.distro", "";
    OS_TIMEZONE: &str = "UTC"; "OsSettings.timezone", "";
    OS_LANG: &str = "en_US.UTF-8"; "OsSettings.lang", "";
    OS_KEYBOARD: &str = "us"; "OsSettings.keyboard", "";
    OS_SELINUX: SelinuxMode = SelinuxMode::Enforcing; "OsSettings.selinux", "";
    OS_FIREWALL: bool = true; "OsSettings.firewall", "";
    OS_ADMIN_USER: &str = "admin"; "OsSettings.admin_user", "";
    LIMIT_NOFILE: u32 = 65536; "LimitSettings.nofile", "reference guide, section 1.4";
    LIMIT_NPROC: u32 = 16384; "LimitSettings.nproc", "reference guide, section 1.4";

    PGDG_URL: &str = "https://download.postgresql.org/pub/repos/yum"; "RepoSettings.pgdg", "";
    BOOT_INSTALL: bool = false; "Boot.install", "the PXE entry boots the local disk; installing is chosen at the boot menu";
    ETCD_INITIAL_CLUSTER_STATE: EtcdClusterState = EtcdClusterState::New; "EtcdSettings.initial_cluster_state", "the members bootstrap the cluster together";
    NFS_OPTIONS: &str = "vers=4.2,hard,noatime"; "RepoMount.options", "";

    PG_MAJOR: u32 = 17; "PostgresSettings.major", "the reference stack's major version";
    PG_PORT: u16 = 5432; "PostgresSettings.port", "reference guide";
    PG_ALLOW_REMOTE_TRUST: bool = false; "PostgresSettings.allow_remote_trust", "";
    PG_SUPERUSER_REMOTE: bool = false; "PostgresSettings.superuser_remote", "a closed database by default: the superuser is for the host itself";
    PG_MAX_SLOT_WAL_KEEP_SIZE_MB: u32 = 16384; "PostgresSettings.max_slot_wal_keep_size_mb", "16 GiB: a DR site down for hours keeps its slot, one down for days is rebuilt";
    INITDB_ENCODING: &str = "UTF8"; "InitdbSettings.encoding", "";
    INITDB_LOCALE: &str = "en_US.UTF-8"; "InitdbSettings.locale", "";
    INITDB_DATA_CHECKSUMS: bool = true; "InitdbSettings.data_checksums", "pg_rewind needs checksums or `wal_log_hints`; both are on";
    PG_SUPERUSER: &str = "postgres"; "PgUsers.superuser", "";
    PG_REPLICATION_USER: &str = "replicator"; "PgUsers.replication", "reference guide";
    PG_REWIND_USER: &str = "rewind_user"; "PgUsers.rewind", "reference guide";

    PATRONI_VERSION: &str = "4.1.5"; "PatroniSettings.version", "the Patroni release pgimg is tested with";
    PATRONI_INSTALL: PatroniInstall = PatroniInstall::Pip; "PatroniSettings.install", "as in the reference guide";
    PATRONI_TTL: u32 = 30; "PatroniSettings.ttl", "Patroni's own default (docs/dynamic_configuration.rst)";
    PATRONI_LOOP_WAIT: u32 = 10; "PatroniSettings.loop_wait", "Patroni's own default";
    PATRONI_RETRY_TIMEOUT: u32 = 10; "PatroniSettings.retry_timeout", "Patroni's own default";
    PATRONI_MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576; "PatroniSettings.maximum_lag_on_failover", "1 MiB, as in Patroni's examples";
    PATRONI_SYNCHRONOUS_MODE: SyncMode = SyncMode::Off; "PatroniSettings.synchronous_mode", "Patroni's own default";
    PATRONI_SYNCHRONOUS_MODE_STRICT: bool = false; "PatroniSettings.synchronous_mode_strict", "";
    PATRONI_SYNCHRONOUS_NODE_COUNT: u32 = 1; "PatroniSettings.synchronous_node_count", "Patroni's own default";
    PATRONI_RESTAPI_PORT: u16 = 8008; "PatroniSettings.restapi_port", "reference guide";
    PATRONI_USE_PG_REWIND: bool = true; "PatroniSettings.use_pg_rewind", "reference guide";
    PATRONI_USE_SLOTS: bool = true; "PatroniSettings.use_slots", "";
    PATRONI_NAMESPACE: &str = "/service/"; "PatroniSettings.namespace", "";
    PATRONI_WATCHDOG: WatchdogMode = WatchdogMode::Automatic; "PatroniSettings.watchdog", "Patroni's own default";
    TAG_NOFAILOVER: bool = false; "PatroniTags.nofailover", "";
    TAG_NOLOADBALANCE: bool = false; "PatroniTags.noloadbalance", "";
    TAG_CLONEFROM: bool = false; "PatroniTags.clonefrom", "";
    TAG_NOSYNC: bool = false; "PatroniTags.nosync", "";

    ETCD_CLIENT_PORT: u16 = 2379; "EtcdSettings.client_port", "reference guide";
    ETCD_PEER_PORT: u16 = 2380; "EtcdSettings.peer_port", "reference guide";
    ETCD_AUTO_COMPACTION_RETENTION_HOURS: u32 = 1; "EtcdSettings.auto_compaction_retention_hours", "hourly, as autobase renders it";
    ETCD_QUOTA_BACKEND_BYTES: u64 = 4 * 1024 * 1024 * 1024; "EtcdSettings.quota_backend_bytes", "4 GiB; etcd's own default is 2 GiB and it suggests at most 8 GiB";
    ETCD_HEARTBEAT_INTERVAL_MS: u32 = 100; "EtcdSettings.heartbeat_interval_ms", "etcd's own default";
    ETCD_ELECTION_TIMEOUT_MS: u32 = 1000; "EtcdSettings.election_timeout_ms", "etcd's own default";

    BACKREST_COMPRESS_TYPE: CompressType = CompressType::Lz4; "PgbackrestSettings.compress_type", "reference guide";
    BACKREST_COMPRESS_LEVEL: u8 = 3; "PgbackrestSettings.compress_level", "reference guide";
    BACKREST_PROCESS_MAX: u16 = 4; "PgbackrestSettings.process_max", "reference guide";
    BACKREST_ARCHIVE_TIMEOUT: u32 = 300; "PgbackrestSettings.archive_timeout", "reference guide";
    BACKREST_ARCHIVE_ASYNC: bool = true; "PgbackrestSettings.archive_async", "so that an unreachable repository cannot stop a primary";
    BACKREST_ARCHIVE_PUSH_QUEUE_MAX_MB: u32 = 8192; "PgbackrestSettings.archive_push_queue_max_mb", "";
    TLS_ENABLED: bool = true; "TlsSettings.enabled", "a closed control plane by default";
    TLS_DIR: &str = "tls"; "TlsSettings.dir", "next to the spec";
    REPO_URI_STYLE: UriStyle = UriStyle::Host; "BackupRepo.uri_style", "pgBackRest's own default (`repo-s3-uri-style`)";
    REPO_KEY_TYPE: S3KeyType = S3KeyType::Auto; "BackupRepo.key_type", "on a site with bare-metal hosts (`boot.mac`) the default is `shared`: EC2's instance role does not exist there";
    REPO_RETENTION_FULL_TYPE: RetentionType = RetentionType::Count; "BackupRepo.retention_full_type", "pgBackRest's own default (`repo-retention-full-type`)";
    REPO_RETENTION_FULL: u32 = 4; "BackupRepo.retention_full", "reference guide";
    REPO_RETENTION_DIFF: u32 = 14; "BackupRepo.retention_diff", "reference guide";
    SCHEDULE_FULL: &str = "0 1 * * 0"; "BackupSchedule.full", "Sunday 01:00, reference guide";
    SCHEDULE_DIFF: &str = "0 1 * * 1-6"; "BackupSchedule.diff", "Monday to Saturday 01:00, reference guide";
    SCHEDULE_INCR: &str = "0 */4 * * *"; "BackupSchedule.incr", "every 4 hours, reference guide";

    HAPROXY_WRITE_PORT: u16 = 5000; "HaproxySettings.write_port", "reference guide";
    HAPROXY_READ_PORT: u16 = 5001; "HaproxySettings.read_port", "reference guide";
    HAPROXY_STATS_PORT: u16 = 7000; "HaproxySettings.stats_port", "reference guide";
    HAPROXY_MAXCONN: u32 = 1000; "HaproxySettings.maxconn", "reference guide";
    HAPROXY_REPLICA_MAX_LAG_BYTES: u64 = 16 * 1024 * 1024; "HaproxySettings.replica_max_lag_bytes", "16 MiB";
    HAPROXY_VIRTUAL_ROUTER_ID: u8 = 51; "HaproxySettings.virtual_router_id", "keepalived's sample configuration";
    HAPROXY_CHECK_INTERVAL_MS: u32 = 3000; "HaproxySettings.check_interval_ms", "reference guide";
    HAPROXY_CHECK_FALL: u32 = 3; "HaproxySettings.check_fall", "reference guide";
    HAPROXY_CHECK_RISE: u32 = 2; "HaproxySettings.check_rise", "reference guide";
}

/// The PostgreSQL majors pgimg renders for (PG0170); the schema's range of
/// `postgresql.major` says the same, which a test checks.
pub const PG_MAJORS: std::ops::RangeInclusive<u32> = 14..=18;

/// The posix repository path when the spec names none.
pub const REPO_POSIX_PATH: &str = "/var/lib/pgbackrest";

/// A PostgreSQL run-time parameter's built-in value, as patroni.yml carries it.
#[derive(Debug, Clone, Copy)]
pub enum Param {
    Text(&'static str),
    Int(i64),
}

impl Param {
    pub fn json(self) -> Value {
        match self {
            Param::Text(t) => json!(t),
            Param::Int(i) => json!(i),
        }
    }
}

/// Cluster-wide PostgreSQL parameters of the reference guide; the spec's
/// `postgresql.parameters` are merged over them.
pub const PG_PARAMETERS: &[(&str, Param)] = &[
    ("hot_standby", Param::Text("on")),
    ("wal_level", Param::Text("replica")),
    ("wal_keep_size", Param::Text("256MB")),
    ("max_wal_senders", Param::Int(10)),
    ("max_replication_slots", Param::Int(10)),
    ("wal_log_hints", Param::Text("on")),
    ("archive_mode", Param::Text("on")),
    ("password_encryption", Param::Text("scram-sha-256")),
];

/// Kernel tuning of the reference guide (section 1.3); the spec's `os.sysctl`
/// is merged over it.
pub const SYSCTL: &[(&str, &str)] = &[
    ("net.core.somaxconn", "65535"),
    ("net.ipv4.tcp_max_syn_backlog", "65535"),
    ("net.core.netdev_max_backlog", "10000"),
    ("net.ipv4.tcp_keepalive_time", "300"),
    ("net.ipv4.tcp_keepalive_intvl", "30"),
    ("net.ipv4.tcp_keepalive_probes", "10"),
    // The guide's 65536 would lower EL9's system-wide default (2^63-1) to one
    // process's own open-file limit; pgimg keeps the system-wide limit ample.
    ("fs.file-max", "2097152"),
];

/// The reference guide's memory settings, for PostgreSQL's hosts only: strict
/// overcommit keeps the OOM killer away from the postmaster, but on an HAProxy
/// or swapless host it only lowers the commit limit. The guide's
/// `kernel.shmmax`/`shmall` are not used: they would lower EL9's defaults, and
/// PostgreSQL (9.3 and later) allocates its shared memory with mmap.
pub const PG_SYSCTL: &[(&str, &str)] =
    &[("vm.overcommit_memory", "2"), ("vm.overcommit_ratio", "80")];

/// Defaults that are collections: the built-in tables above, and one posix repository.
pub const COLLECTIONS: &[Entry] = &[
    Entry {
        field: "OsSettings.sysctl",
        value: DefaultValue::Fixed(|| {
            Value::Object(
                SYSCTL
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect(),
            )
        }),
        note: "reference guide, section 1.3, without its `kernel.shm*`; on pg hosts also `vm.overcommit_memory` 2 and `vm.overcommit_ratio` 80; keys you set replace these one by one",
    },
    Entry {
        field: "PostgresSettings.parameters",
        value: DefaultValue::Fixed(|| {
            Value::Object(
                PG_PARAMETERS
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.json()))
                    .collect(),
            )
        }),
        note: "reference guide; keys you set replace these one by one, `archive_command` and `unix_socket_directories` are pgimg's",
    },
    Entry {
        field: "PgbackrestSettings.repos",
        value: DefaultValue::Fixed(|| json!([{"type": "posix"}])),
        note: "one repository on the host itself",
    },
];

/// Defaults computed from other settings.
pub const DERIVED: &[Entry] = &[
    Entry {
        field: "HaproxySettings.server_maxconn",
        value: DefaultValue::Derived(
            "`max_connections - superuser_reserved_connections` of the site's pg hosts, less 5 for Patroni and monitoring, divided between the site's HAProxies",
        ),
        note: "",
    },
    Entry {
        field: "Site.scope",
        value: DefaultValue::Derived(
            "the cluster's name for the primary site, `<cluster>_<site>` for a DR site",
        ),
        note: "",
    },
    Entry {
        field: "Site.slot_name",
        value: DefaultValue::Derived("`standby_<site>`, with `-` written as `_`"),
        note: "",
    },
    Entry {
        field: "Host.member_name",
        value: DefaultValue::Derived("the host name"),
        note: "",
    },
    Entry {
        field: "Boot.interface",
        value: DefaultValue::Derived("the interface with `mac`, else the first"),
        note: "",
    },
    Entry {
        field: "DiskLayout.os_disk",
        value: DefaultValue::Derived("the installer's choice"),
        note: "",
    },
    Entry {
        field: "DiskLayout.data_size_gib",
        value: DefaultValue::Derived(
            "the whole data disk, or automatic partitioning without a data disk",
        ),
        note: "",
    },
    Entry {
        field: "NetworkSettings.prefix",
        value: DefaultValue::Derived("24 for IPv4, 64 for IPv6"),
        note: "",
    },
    Entry {
        field: "RepoSettings.baseos",
        value: DefaultValue::Derived("the distribution's mirror list"),
        note: "",
    },
    Entry {
        field: "RepoSettings.appstream",
        value: DefaultValue::Derived("the distribution's mirror list"),
        note: "",
    },
    Entry {
        field: "RepoSettings.installer",
        value: DefaultValue::Derived("the distribution's BaseOS for x86_64"),
        note: "also the kickstart's installation source unless `baseos` is set",
    },
    Entry {
        field: "RepoSettings.pgdg_extras",
        value: DefaultValue::Derived("`<pgdg>/extras/redhat/rhel-9-$basearch`"),
        note: "PGDG moved extras there on 2025-11-24 (docs/packages.md)",
    },
    Entry {
        field: "RepoSettings.pypi",
        value: DefaultValue::Derived("pip's default index, `https://pypi.org/simple`"),
        note: "",
    },
    Entry {
        field: "PatroniSettings.rpm_version",
        value: DefaultValue::Derived(
            "the newest `patroni` in pgimg's package catalog (`data/catalog.yaml`)",
        ),
        note: "PGDG's RPM lags PyPI: the pip version is never reused",
    },
    Entry {
        field: "PostgresSettings.version",
        value: DefaultValue::Derived("the newest in the repository"),
        note: "",
    },
    Entry {
        field: "PostgresSettings.data_dir",
        value: DefaultValue::Derived("`/var/lib/pgsql/<major>/data`"),
        note: "the PGDG packages' layout",
    },
    Entry {
        field: "EtcdSettings.version",
        value: DefaultValue::Derived(
            "the newest `etcd` of PGDG extras in pgimg's package catalog (`data/catalog.yaml`)",
        ),
        note: "",
    },
    Entry {
        field: "EtcdSettings.token",
        value: DefaultValue::Derived("`<scope>-etcd`"),
        note: "",
    },
    Entry {
        field: "PgbackrestSettings.version",
        value: DefaultValue::Derived(
            "the newest `pgbackrest` of PGDG in pgimg's package catalog (`data/catalog.yaml`)",
        ),
        note: "",
    },
    Entry {
        field: "PgbackrestSettings.stanza",
        value: DefaultValue::Derived("the site's scope"),
        note: "",
    },
    Entry {
        field: "BackupRepo.path",
        value: DefaultValue::Derived(
            "`/var/lib/pgbackrest` for posix, `/pgbackrest/<stanza>` in the bucket for S3",
        ),
        note: "",
    },
    Entry {
        field: "BackupRepo.endpoint",
        value: DefaultValue::Derived("`s3.<region>.amazonaws.com`"),
        note: "",
    },
];

/// Every row of the table.
pub fn table() -> impl Iterator<Item = &'static Entry> {
    FIXED.iter().chain(COLLECTIONS).chain(DERIVED)
}

/// The row of a field, if it has a default.
pub fn of(def: &str, property: &str) -> Option<&'static Entry> {
    table().find(|e| e.def_and_property() == (def, property))
}
